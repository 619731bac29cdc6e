"""The leak sweep (issue 15): a canary in every kind of private content, read back through
every channel by every persona.

The world (tests/sweep/world.py) holds every kind of item at every visibility level and
status, hidden items, ideas in every state (sealed and open), review notes, scores,
questions, answers and comments in every state, asset requests and their events, an
invitation list, NDA texts, an attachment, reports, moderation decisions, an appeal,
e-mails and notifications. The oracle (tests/sweep/oracle.py) says, from the README and the
rule book's prose, which personas may see each canary. Each persona (a real sign-in; the
suspended and banned ones keep the cookie they had before being blocked) then reads:

* every page reachable from the home page, their notifications and their e-mails, and
  every GET route without arguments, with the lists' filters (bounded crawl, GET only);
* every GET route with every id of every kind (guessed ids included): an id they may not
  see must answer exactly like one that does not exist;
* search: everything they may find, and every canary they may not see (total 0, no
  result, snippet, facet or suggestion), with each search backend (the world is built
  again on PostgreSQL for SEARCH_BACKEND=postgres);
* their e-mails.

Pass: no canary where the persona may not see it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from marketplace.extensions import db

from .factories_foundation import dispose, make_app
from .search_backends import BACKENDS, dispose_search_app, make_search_app
from .sweep.walker import (
    Walker,
    mail_links,
    mail_tokens,
    org_urls,
    probes,
    search_json,
    start_urls,
)
from .sweep.world import BLOCKED, COMMON, PASSWORD, PERSONAS, Builder, SweepWorld, deliver_all

NAMES = list(PERSONAS)
MAX_CRAWL = 160


@dataclass
class Site:
    app: object
    world: SweepWorld
    clients: dict
    mail: dict[str, list[tuple[str, str]]]

    def walker(self, persona: str) -> Walker:
        return Walker(self.clients[persona], self.world, persona)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("sweep"))
    yield build_site(app)
    dispose(app)


@pytest.fixture(scope="module", params=BACKENDS)
def search_site(request, site, tmp_path_factory, unavailable):
    """The site for the search sweep, once per search backend: the same world built again on
    PostgreSQL with SEARCH_BACKEND=postgres."""
    if request.param == "whoosh":
        yield site
        return
    app = make_search_app(request.param, tmp_path_factory.mktemp("sweep-pg"), unavailable)
    yield build_site(app)
    dispose_search_app(app)


def build_site(app) -> Site:
    """The world, a signed-in client per persona, and the e-mails each received."""
    b = Builder()
    with app.app_context():
        b.build()
        emails = {n: b.user(n).email for n in b.uid}
    clients = {}
    for name in NAMES:
        c = app.test_client()
        if name != "anonymous":
            r = c.post("/auth/login", data={"email": emails[name], "password": PASSWORD})
            assert r.status_code == 302, f"{name} could not sign in"
        clients[name] = c
    with app.app_context():
        b.block()  # the suspended and banned personas keep their (old) cookies
        world = b.result()
        delivered = deliver_all()
        mail = {n: delivered.get(e.lower(), []) for n, e in world.emails.items()}
        db.session.remove()
    return Site(app, world, clients, mail)


def verdict(w: Walker, what: str) -> None:
    problems = sorted(w.errors) + sorted(w.leaks)
    assert not problems, f"{w.persona}: {len(w.leaks)} leak(s), {len(w.errors)} error(s) in {what} " \
                         f"({w.requests} requests):\n  " + "\n  ".join(problems[:60])


# --------------------------------------------------------------------------- the oracle itself


def test_every_canary_has_a_reader(site):
    """A canary nobody may see would be a typo in the oracle, not a test."""
    for c in site.world.canaries.values():
        assert c.allowed, f"nobody may see {c.token} ({c.what})"
    private = [c for c in site.world.canaries.values() if c.allowed != set(NAMES)]
    assert len(private) > 0.8 * len(site.world.canaries)


# --------------------------------------------------------------------------- channels


@pytest.mark.parametrize("persona", NAMES)
def test_pages_links_notifications_and_mails(site, persona):
    w = site.walker(persona)
    mails = site.mail.get(persona, [])
    for subject, body in mails:
        w.scan(f"{subject}\n{body}", f"the e-mail “{subject}”")
    starts = ["/", "/notifications/"] + start_urls(site.app) + org_urls(site.world.org_slugs) + mail_links(mails)
    w.crawl(starts, MAX_CRAWL)
    verdict(w, "pages, notifications and e-mails")


@pytest.mark.parametrize("persona", NAMES)
def test_guessed_ids(site, persona):
    w = site.walker(persona)
    tokens = mail_tokens(site.mail.get(persona, []))
    missing: dict[str, object] = {}
    hidden_differs = []
    for p in probes(site.app, site.world, tokens):
        f = w.get(p.url)
        if f.status == 200 and re.fullmatch(r"/ideas/\d+", p.url):
            # Scores are numbers, not canaries: the review section is the review panel's.
            shown = 'class="card review-panel"' in f.body
            if shown != (persona in site.world.review_panels[p.obj[1]]):
                w.leaks.add(f"GET {p.url} {'shows' if shown else 'hides'} the review section (scores)")
        if p.obj is None or p.missing is None:
            continue
        t, i = p.obj
        if persona in site.world.ids.get(t, {}).get(i, frozenset(NAMES)):
            continue
        if p.missing not in missing:
            missing[p.missing] = w.get(p.missing)
        diff = w.compare(f, missing[p.missing])
        if diff:
            hidden_differs.append(diff)
    w.errors.update(hidden_differs)
    # Positive control: the walk did read what the persona may see.
    titles = {t for i, t in site.world.item_titles.items() if persona in site.world.ids["item"][i]}
    unseen = titles - w.seen
    assert not unseen, f"{persona} never saw the titles {sorted(unseen)[:10]} it may see: the sweep is blind"
    verdict(w, "guessed ids")


@pytest.mark.parametrize("persona", NAMES)
def test_search(search_site, persona):
    site = search_site
    w = site.walker(persona)
    forbidden = sorted(set(site.world.canaries) - w.allowed)
    for i in range(0, len(forbidden), 8):
        batch = forbidden[i:i + 8]
        data = search_json(w, " OR ".join(batch))
        if data.get("total") or data.get("results"):
            w.leaks.add(f"search for {batch} finds {data.get('total')} result(s): "
                        f"{[r.get('key') for r in data.get('results', [])]}")
    # Near misses: a suggestion never offers a word from a document one may not see (one
    # word per record: the suggester treats every indexed word alike).
    records = sorted({t[:9]: t for t in forbidden}.values())  # cnry + type + number
    for i in range(0, len(records), 5):
        search_json(w, " ".join(t[:-1] + ("q" if t[-1] != "q" else "z") for t in records[i:i + 5]))
    # Everything the persona may find, page by page, with facets and on the HTML page: the
    # counts agree with what is listed (a count never includes what one may not see).
    page, pages, keys = 1, 1, []
    while page <= pages:
        data = search_json(w, COMMON, page=page)
        pages = data.get("pages", 1)
        keys += [r["key"] for r in data.get("results", [])]
        if page == 1:
            first = data
        page += 1
    if first.get("total") != len(keys) or len(set(keys)) != len(keys):
        w.leaks.add(f"search for {COMMON} counts {first.get('total')} results and lists {len(keys)}")
    for fname, values in (first.get("facets") or {}).items():
        # One kind, status and organisation per document (a facet lists its 12 largest
        # values, so only `kind`, with fewer, adds up exactly); tags are many per document.
        counted = sum(v["count"] for v in values)
        if (fname != "tags" and counted > len(keys)) or (fname == "kind" and counted != len(keys)) or \
                any(v["count"] > len(keys) for v in values):
            w.leaks.add(f"the {fname} facet of a search for {COMMON} counts {values}, {len(keys)} results listed")
    for q in (COMMON, f"type:idea {COMMON}", "tag:sweep", f"{COMMON} -tag:sweep"):
        html_page = w.get(f"/search?q={q}")
        for link in re.findall(r'href="(/search\?[^"]+)"', html_page.body)[:4]:
            w.get(link.replace("&amp;", "&"))
    # The HTML page for a forbidden word: nothing found.
    for token in records[::max(1, len(records) // 8)]:
        f = w.get(f"/search?q={token}")
        if ">0 results for" not in f.body:
            w.leaks.add(f"/search?q={token} does not answer 0 results")
    verdict(w, "search")


def test_digests_and_announcement_mails_were_read(site):
    """Positive control for the reach channels: the outsider's daily digest arrived and carries
    the announcement on the public challenge they follow (not the one moderators hid since);
    another follower heard of it by mail at once."""
    digests = [(s, b) for s, b in site.mail["outsider"] if s.startswith("Your daily summary")]
    assert len(digests) == 1, [s for s, _ in site.mail["outsider"]]
    shown = {t for t in re.findall(r"cnryan\d{3}\w\w", digests[0][1])}
    assert shown and all("outsider" in site.world.canaries[t].allowed for t in shown)
    instant = [s for s, _ in site.mail["other_member"] if s.startswith("Announcement")]
    assert len(instant) == 1, [s for s, _ in site.mail["other_member"]]


@pytest.mark.parametrize("persona", BLOCKED)
def test_blocked_accounts_old_cookies_are_anonymous(site, persona):
    """The cookie from before the suspension or ban opens nothing an anonymous visitor
    could not open (their canaries are checked like everyone's above)."""
    c = site.clients[persona]
    assert c.get("/auth/account").status_code == 302
    assert c.get("/api/v1/me").get_json() == {"authenticated": False}
