"""Hostile input through every text field, rendered by Chromium (issue 15).

More than 60 hostile inputs (script tags, event handlers, javascript:/data:/vbscript: links in
Markdown, entity-encoded and mixed-case, mutation XSS, attribute breakouts, SVG with script,
template syntax, over-long and control-character strings, right-to-left overrides, Whoosh query
syntax) go through the test client into item titles, summaries, bodies and tags, organisation
names and descriptions, idea titles, summaries and bodies, questions, answers, comments,
requests, report notes, list names and descriptions, invitation addresses and the search box;
malformed ids, dates and page numbers go into URLs. Then Chromium opens every page that shows
them, with a dialog handler, a `window.__xss` canary and a listener for CSP violations.

Pass: no 5xx anywhere; no dialog, no canary call, no CSP violation (an injected inline script
or handler would be blocked *and reported*); the DOM holds no handler attribute, javascript:,
data: or vbscript: link, inline style, or element the site never emits (independently of the
CSP); stored plain text is shown exactly as text; legitimate text (`a < b && c > d`,
`**bold**`, other scripts) survives.

The first test walks the main pages with no hostile data and asserts the CSP reports nothing:
the templates and static files hold no inline script, handler or style.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.models import AssetRequest, Idea, InvitationList, Item, Organisation, Question, User
from marketplace.services.engagement import MAX_MESSAGE
from marketplace.templating import excerpt

from ..factories import PASSWORD, Factories
from ..factories_ideas import IdeaFactories
from .flows import unique

X = "__x()"
CORPUS = [
    # script tags, in every case and wrapping
    f"<script>{X}</script>", f"<SCRIPT>{X}</SCRIPT>", f"<ScRiPt>{X}</sCrIpT>",
    "<script src=//evil.example/x.js></script>", f"<scr<script>ipt>{X}</scr</script>ipt>",
    f"<img \"\"\"><script>{X}</script>\">", f"</title><script>{X}</script>", f"</textarea><script>{X}</script>",
    # event handlers
    f"<img src=x onerror={X}>", "<img src=x onerror=\"alert(1)\">", f"<IMG SRC=x OnErRoR={X}>",
    f"<svg onload={X}>", f"<body onload={X}>", f"<details open ontoggle={X}>", f"<input autofocus onfocus={X}>",
    f"<video><source onerror={X}></video>", f"<x onclick={X}>click me</x>", f"<div onmouseover=\"{X}\">hover</div>",
    # SVG and MathML
    f"<svg><script>{X}</script></svg>", f"<svg><animate onbegin={X} attributeName=x dur=1s>",
    f"<svg><a xlink:href=\"javascript:{X}\"><text x=20 y=20>svg link</text></a></svg>",
    f"<math><mtext><table><mglyph><style><img src=x onerror={X}>",
    # mutation XSS
    f"<noscript><p title=\"</noscript><img src=x onerror={X}>\">",
    f"<svg></p><style><a id=\"</style><img src=1 onerror={X}>\">",
    f"<form><math><mtext></form><form><mglyph><svg><mtext><style><path id=\"</style><img onerror={X} src>\">",
    f"<a href=\"https://ok.example\" title=\"&quot;><img src=x onerror={X}>\">x</a>",
    # dangerous URLs, raw and in Markdown, entity-encoded and mixed case
    f"<a href=\"javascript:{X}\">raw link</a>", f"[md link](javascript:{X})", f"[md link](JaVaScRiPt:{X})",
    f"[md link](javascript&#58;{X})", f"[md link](&#106;avascript:{X})", f"[md link](java&#x09;script:{X})",
    f"[md link]( javascript:{X})", f"[md link](<javascript:{X}>)",
    "[md link](data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX194KCk8L3NjcmlwdD4=)",
    "[md link](vbscript:msgbox(1))", "[md link](VBScript:msgbox(1))", f"![md image](javascript:{X})",
    f"![md image](x\" onerror=\"{X})", f"[md title](https://ok.example \"t\\\" onmouseover=\\\"{X}\")",
    f"<a href=\"&#x6A;&#x61;&#x76;&#x61;&#x73;&#x63;&#x72;&#x69;&#x70;&#x74;:{X}\">entities</a>",
    f"<a href=\" &#14;  javascript:{X}\">spaced</a>", f"<iframe src=\"javascript:{X}\"></iframe>",
    f"<iframe srcdoc=\"<script>parent.{X}</script>\"></iframe>", f"<object data=\"javascript:{X}\"></object>",
    f"<embed src=\"javascript:{X}\">", f"<meta http-equiv=\"refresh\" content=\"0;url=javascript:{X}\">",
    "<base href=\"//evil.example/\">", "<link rel=stylesheet href=//evil.example/x.css>",
    "<style>@import '//evil.example/x.css';</style>", f"<div style=\"background:url(javascript:{X})\">styled</div>",
    f"&lt;script&gt;{X}&lt;/script&gt;", f"%3Cscript%3E{X}%3C/script%3E", f"\\u003cscript\\u003e{X}\\u003c/script\\u003e",
    f"javascript:{X}",
    # attribute breakouts (titles, tags, values echoed in inputs)
    f"\"><script>{X}</script>", f"'><img src=x onerror={X}>", f"\" onmouseover=\"{X}\" x=\"", f"' autofocus onfocus='{X}",
    f"tag1, \"><svg onload={X}>, tag2",
    # template syntax
    "{{7*7}}", "{{ config.items() }}", "{% for x in range(3) %}loop{% endfor %}", "${7*7}", "<%= 7*7 %>", "#{7*7}",
    # over-long, control characters, bidi
    "A" * 5000, "long title " * 40, "bell\x07 escape\x1b[31m back\x08space tab\tform\x0cfeed",
    "invoice\u202efdp.exe", "\u202eevil\u202c \u200b\u200d\ufeff zero widths", "\u2028line\u2029para",
    # Whoosh query syntax
    "title:(grip OR lidar) AND NOT body:x*", "\"unclosed phrase", "*:*", "grip~2 [a TO z] ^3", "((((",
    "org:* tag:\"x\" OR", "body:<script>",
    # legitimate text that must survive
    "a < b && c > d", "**bold** and _italic_ text", "日本語のテキスト · العربية · Ωμέγα · 👩‍💻", "Tom & Jerry's \"quote\"",
]
LEGIT_TITLE = "a < b && c > d"
REQUEST_BATCH = 8
assert len(CORPUS) >= 60


def at(i: int) -> str:
    return CORPUS[i % len(CORPUS)]


CANARY = """
window.__xss = 0;
window.__x = function () { window.__xss += 1; };
window.__csp = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__csp.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + (e.sample || ''));
}, true);
"""

# What the DOM may hold, whatever was written: checked in the page, independently of the CSP.
DOM_CHECK = r"""
() => {
  const bad = [];
  const ours = new Set(['/static/js/site.js']);
  for (const el of document.querySelectorAll('*')) {
    const tag = el.tagName.toLowerCase();
    if (tag === 'script' && !ours.has(el.getAttribute('src'))) bad.push('script element');
    if (['iframe', 'frame', 'object', 'embed', 'applet', 'base', 'style', 'svg', 'math', 'video', 'audio',
         'source', 'img', 'noscript', 'marquee', 'template'].includes(tag)) bad.push(tag + ' element');
    if (tag === 'meta' && el.hasAttribute('http-equiv')) bad.push('meta http-equiv');
    if (tag === 'link' && !['stylesheet', 'alternate'].includes(el.getAttribute('rel'))) bad.push('link ' + el.rel);
    for (const a of el.attributes) {
      const name = a.name.toLowerCase();
      const value = (a.value || '').toLowerCase().replace(/[\u0000-\u0020]+/g, '');
      if (name.startsWith('on')) bad.push(tag + ' ' + name + ' handler');
      if (name === 'style' || name === 'srcdoc' || name === 'formaction') bad.push(tag + ' ' + name);
      if (['href', 'src', 'action', 'data', 'xlink:href', 'poster', 'background'].includes(name) &&
          /^(javascript|data|vbscript):/.test(value)) bad.push(tag + ' ' + name + '=' + value.slice(0, 40));
    }
  }
  return bad;
}
"""


# The texts a page shows where stored plain text goes (null where the element is missing).
SHOWN = """
() => ({
  h1: document.querySelector('h1')?.textContent ?? null,
  lead: document.querySelector('p.lead')?.textContent ?? null,
  meta: document.querySelector('article.item-detail > p.meta')?.textContent ?? null,
  tags: [...document.querySelectorAll('p.tags a.tag')].map(a => a.textContent),
})
"""


@dataclass
class Rendered:
    url: str
    problems: list = field(default_factory=list)


class Poster:
    """A signed-in test client that posts forms with a valid CSRF token (CSRF is on)."""

    def __init__(self, app, email: str):
        self.client = app.test_client()
        page = self.client.get("/auth/login").text
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        r = self.client.post("/auth/login", data={"email": email, "password": PASSWORD, "csrf_token": token})
        assert r.status_code == 302, f"{email} could not sign in"
        page = self.client.get("/auth/account").text
        self.token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        self.statuses: list[tuple[int, str]] = []

    def post(self, url: str, **data):
        r = self.client.post(url, data={"csrf_token": self.token, **data})
        self.statuses.append((r.status_code, url))
        return r

    def get(self, url: str):
        r = self.client.get(url)
        self.statuses.append((r.status_code, url))
        return r

    @property
    def cookie(self) -> str:
        return self.client.get_cookie("session").value

    def server_errors(self) -> list:
        return [s for s in self.statuses if s[0] >= 500]


@dataclass
class Site:
    app: object
    owner: Poster
    contributor: Poster
    curator: Poster
    moderator: Poster
    reporter: Poster
    failures: list = field(default_factory=list)      # (item id, org slug) per corpus entry
    ideas: list = field(default_factory=list)
    challenge_id: int = 0
    discussion_id: int = 0
    request_ids: list = field(default_factory=list)
    refusals: list = field(default_factory=list)       # responses to render as they came back


def _user(app, name: str, **kw) -> str:
    with app.app_context():
        return Factories().make_user(email=f"{unique(name)}@example.test", name=name.title(), **kw).email


@pytest.fixture(scope="module")
def hostile(live_server):
    app = live_server.app
    emails = {n: _user(app, n) for n in ("owner", "contributor", "curator", "reporter")}
    emails["moderator"] = _user(app, "moderator", site_role="moderator")
    posters = {n: Poster(app, e) for n, e in emails.items()}
    site = Site(app, **posters)
    owner, contributor = site.owner, site.contributor
    n = len(CORPUS)

    # Organisations named and described with each input, each posting a failure filled with them.
    for i in range(n):
        r = owner.post("/orgs/new", name=at(i)[:120], kind="company", description=at(i + 1))
        if r.status_code != 302:
            site.refusals.append(("org", r))
            r = owner.post("/orgs/new", name=f"Fallback org {unique()}", kind="company", description=at(i + 1))
        slug = r.headers["Location"].rsplit("/", 1)[-1]
        with app.app_context():
            org_id = db.session.execute(select(Organisation.id).where(Organisation.slug == slug)).scalar_one()
        fields = {"title": at(i)[:200], "summary": at(i + 1)[:500], "body": at(i + 2), "tags": at(i + 3)[:400],
                  "went_wrong": at(i + 4), "lessons": at(i + 5), "visibility": "public", "publish": "Publish"}
        r = owner.post(f"/failures/new?org={org_id}", **fields)
        if r.status_code != 302:
            site.refusals.append(("failure", r))
            r = owner.post(f"/failures/new?org={org_id}", **{**fields, "title": f"Fallback {i}"})
        site.failures.append((int(r.headers["Location"].rsplit("/", 1)[-1]), slug))

    # A challenge under terms taking many ideas, questions and answers; a failure taking comments.
    with app.app_context():
        f = Factories()
        owner_user = db.session.execute(select(User).where(User.email == emails["owner"])).scalar_one()
        host = f.make_org(name=unique("Hostile host "), owner=owner_user)
        s = IdeaFactories(f).challenge(owner=owner_user, org=host, visibility="public",
                                       rules={"max_ideas_per_contributor": 100, "team_allowed": False,
                                              "max_team_size": 1})
        site.challenge_id = s.challenge.id
        terms = s.terms
        version, digest = terms.version, terms.digest
        from marketplace.services import engagement as eng_svc

        eng_svc.set_rules(owner_user, s.challenge, {"ask_rule": "registered", "question_cutoff_hours": 0})
        discussion = f.make_item(host, kind="failure", visibility="public", title="Hostile discussion")
        eng_svc.set_rules(owner_user, discussion, {"comment_rule": "registered"})
        site.discussion_id = discussion.id
        # One open request of a kind per asset and requester: an asset per batch of inputs.
        assets = []
        for k in range(0, n, REQUEST_BATCH):
            asset = f.make_item(host, kind="asset", visibility="public", title=f"Hostile asset {k}")
            eng_svc.set_rules(owner_user, asset, {"request_rule": "registered", "max_open_requests": 20})
            eng_svc.publish_terms(owner_user, asset, {"licence_kind": "non-exclusive", "field_of_use": "Research",
                                                      "territory": "Worldwide", "duration": "1 year",
                                                      "fee_model": "royalty", "notes": ""})
            t = eng_svc.current_terms(asset)
            assets.append((asset.id, t.version, t.digest))
    cid = site.challenge_id
    for i in range(n):
        r = contributor.post(f"/challenges/{cid}/ideas/new", challenge_id=str(cid),
                             submission_key=secrets.token_urlsafe(24), title=at(i)[:200], summary=at(i + 1)[:500],
                             body=at(i + 2), terms_version=str(version), terms_digest=digest, accept_terms="y",
                             confirm_eligibility="y", confirm_coi="y")
        if r.status_code == 302:
            site.ideas.append(int(r.headers["Location"].rsplit("/", 1)[-1]))
        else:
            site.refusals.append(("idea", r))
        contributor.post(f"/engage/challenges/{cid}/ask", body=at(i))
        contributor.post(f"/engage/failures/{site.discussion_id}/comment", body=at(i + 1))
    with app.app_context():
        questions = db.session.execute(select(Question.id).where(Question.item_id == cid)
                                       .order_by(Question.id)).scalars().all()
    for i, qid in enumerate(questions):
        owner.post(f"/engage/questions/{qid}/answer", body=at(i + 2))
    # Requests carry several inputs each.
    for (asset_id, version, digest), start in zip(assets, range(0, n, REQUEST_BATCH)):
        message = "\n\n".join(at(j) for j in range(start, min(n, start + REQUEST_BATCH)))
        r = contributor.post(f"/engage/assets/{asset_id}/request", kind="licence", message=message,
                             terms_version=str(version), terms_digest=digest)
        if r.status_code != 302:  # too long for one message: the refusal is rendered, then it goes shorter
            site.refusals.append(("request", r))
            contributor.post(f"/engage/assets/{asset_id}/request", kind="licence", message=message[:MAX_MESSAGE],
                             terms_version=str(version), terms_digest=digest)
    with app.app_context():
        site.request_ids = db.session.execute(select(AssetRequest.id).where(
            AssetRequest.item_id.in_([a[0] for a in assets]))).scalars().all()
    # Report notes, list names and descriptions, invitation addresses.
    app.config["MODERATION_REPORTS_PER_HOUR"] = 10_000
    try:
        for i, (fid, _slug) in enumerate(site.failures):
            site.reporter.post(f"/moderation/report/failure/{fid}", category="other", note=at(i)[:2000])
    finally:
        app.config["MODERATION_REPORTS_PER_HOUR"] = 10
    with app.app_context():
        curator_user = db.session.execute(select(User).where(User.email == emails["curator"])).scalar_one()
        cluster = Factories().make_org(name=unique("Hostile cluster "), kind="cluster", owner=curator_user)
        cluster_id = cluster.id
    for i in range(n):
        r = site.curator.post(f"/lists/new?org={cluster_id}", name=at(i)[:120], description=at(i + 1)[:2000])
        if r.status_code != 302:
            site.refusals.append(("list", r))
        r = owner.post(f"/invitations/item/{cid}", email=at(i)[:254], days="7")
        if r.status_code >= 400:
            site.refusals.append(("invitation", r))
    return site


class Browser:
    """One Chromium context (one person's cookies) with the canary, a dialog recorder and a
    console recorder; `open(url)` returns what went wrong on that page."""

    def __init__(self, browser, live_server, cookie: str | None):
        self.ctx = browser.new_context(base_url=live_server.url, locale="en-GB", timezone_id="UTC")
        self.ctx.set_default_timeout(20_000)
        self.ctx.add_init_script(CANARY)
        if cookie:
            self.ctx.add_cookies([{"name": "session", "value": cookie, "url": live_server.url}])
        self.page = self.ctx.new_page()
        self.dialogs: list[str] = []
        self.console: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.console.append(f"page error: {e}"))

    def _dialog(self, d):
        self.dialogs.append(f"{d.type}: {d.message}")
        d.dismiss()

    def open(self, url: str) -> Rendered:
        self.dialogs.clear()
        self.console.clear()
        resp = self.page.goto(url, wait_until="load")
        return self.inspect(url, resp.status if resp else 0)

    def inspect(self, url: str, status: int) -> Rendered:
        out = Rendered(url)
        if status >= 500:
            out.problems.append(f"HTTP {status}")
        self.page.wait_for_timeout(30)  # let error events of broken resources fire
        state = self.page.evaluate("() => ({xss: window.__xss, csp: window.__csp})")
        if state["xss"]:
            out.problems.append(f"canary called {state['xss']} times")
        out.problems += [f"CSP violation: {v}" for v in state["csp"]]
        out.problems += [f"dialog {d}" for d in self.dialogs]
        out.problems += [f"console: {c}" for c in self.console
                         if "Content Security Policy" in c or c.startswith("page error")]
        out.problems += [f"DOM: {b}" for b in self.page.evaluate(DOM_CHECK)]
        return out

    def render(self, live_server, response) -> Rendered:
        """Chromium renders a response the test client got (a refused form echoing its input),
        with its own headers, as if the browser had posted the form."""
        path = f"/__rendered__/{secrets.token_hex(4)}"
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "set-cookie")}
        self.page.route(live_server(path), lambda route: route.fulfill(status=response.status_code,
                                                                       headers=headers, body=response.data))
        try:
            return self.open(path)
        finally:
            self.page.unroute(live_server(path))

    def close(self):
        self.ctx.close()


def _assert_clean(results: list[Rendered]):
    bad = [f"{r.url}: {p}" for r in results for p in r.problems]
    assert not bad, f"{len(bad)} problems:\n" + "\n".join(bad[:40])


# --------------------------------------------------------------------------- the site itself


def test_main_pages_raise_no_csp_violation(browser, live_server, hostile):
    """With no hostile data involved: the templates and static files are CSP-clean."""
    site = hostile
    fid, slug = site.failures[0]
    pages = {
        None: ["/", "/about", "/challenges/", "/failures/", "/assets/", "/orgs/", "/search?q=gripper",
               "/auth/login", "/auth/register", f"/orgs/{slug}", "/terms/verify", "/audit", "/no-such-page"],
        site.owner.cookie: ["/", "/auth/account", f"/challenges/{site.challenge_id}", "/challenges/new",
                            f"/challenges/{site.challenge_id}/terms/edit", f"/challenges/{site.challenge_id}/edit",
                            f"/invitations/item/{site.challenge_id}", "/notifications/", "/orgs/new",
                            f"/failures/{site.discussion_id}"],
        site.moderator.cookie: ["/moderation/", f"/moderation/case/failure/{fid}", "/moderation/appeals"],
        site.curator.cookie: ["/lists/", "/lists/new"],
        site.contributor.cookie: ["/ideas/mine", f"/challenges/{site.challenge_id}/ideas/new"],
    }
    results = []
    for cookie, urls in pages.items():
        b = Browser(browser, live_server, cookie)
        try:
            for url in urls:
                r = b.open(url)
                r.problems += [f"console: {c}" for c in b.console if "Refused" in c]
                results.append(r)
        finally:
            b.close()
    _assert_clean(results)


# --------------------------------------------------------------------------- hostile data


def test_posting_the_corpus_never_gave_a_server_error(hostile):
    site = hostile
    errors = [e for p in (site.owner, site.contributor, site.curator, site.moderator, site.reporter)
              for e in p.server_errors()]
    assert not errors, errors[:20]
    # The corpus really went in: most of each kind of row was stored, not refused.
    assert len(site.failures) == len(CORPUS) and len(site.ideas) > len(CORPUS) - 10
    assert len(site.request_ids) == -(-len(CORPUS) // REQUEST_BATCH)
    with site.app.app_context():
        assert db.session.execute(select(InvitationList.id)).scalars().all()


def test_items_and_organisations_show_hostile_text_as_text(browser, live_server, hostile):
    site = hostile
    b = Browser(browser, live_server, None)
    results = []
    try:
        for i, (fid, slug) in enumerate(site.failures):
            r = b.open(f"/failures/{fid}")
            with site.app.app_context():
                item = db.session.get(Item, fid)
                title, summary, tags = item.title, item.summary, item.tags
                org_name = item.organisation.name
            shown = b.page.evaluate(SHOWN)
            if shown["h1"] != title:
                r.problems.append(f"title shown as {str(shown['h1'])[:60]!r}, stored {title[:60]!r}")
            # The summary is shown as an excerpt: its Markdown as the words a reader sees
            # (templating.excerpt), as text; the canary and DOM checks prove nothing ran.
            if summary and shown["lead"] != excerpt(summary, 500):
                r.problems.append(f"summary shown as {str(shown['lead'])[:60]!r}, stored {summary[:60]!r}")
            if org_name not in (shown["meta"] or ""):
                r.problems.append(f"organisation name {org_name[:60]!r} not shown as stored")
            if shown["tags"] != [f"#{t}" for t in tags]:
                r.problems.append(f"tags shown as {shown['tags']}, stored {tags}")
            results.append(r)
            if i % 4 == 0:  # organisation pages: name and description
                results.append(b.open(f"/orgs/{slug}"))
        for page in range(1, len(CORPUS) // 20 + 2):  # the list pages show titles, summaries, tags
            results.append(b.open(f"/failures/?page={page}"))
        results.append(b.open("/orgs/"))
    finally:
        b.close()
    _assert_clean(results)


def test_legitimate_text_survives(browser, live_server, hostile):
    site = hostile
    legit = CORPUS.index(LEGIT_TITLE)
    fid, _slug = site.failures[legit]
    bold_at = CORPUS.index("**bold** and _italic_ text")
    bold_fid, _ = site.failures[(bold_at - 2) % len(CORPUS)]  # its body (the body takes input i + 2)
    scripts = CORPUS.index("日本語のテキスト · العربية · Ωμέγα · 👩‍💻")
    b = Browser(browser, live_server, None)
    try:
        b.open(f"/failures/{fid}")
        assert b.page.locator("h1").text_content() == "a < b && c > d"
        b.open(f"/failures/{bold_fid}")
        assert b.page.locator(".prose strong", has_text="bold").count() >= 1
        assert b.page.locator(".prose em", has_text="italic").count() >= 1
        fid, _ = site.failures[scripts]
        b.open(f"/failures/{fid}")
        assert b.page.locator("h1").text_content() == CORPUS[scripts]
        b.open(f"/search?q={quote('a < b && c > d')}")
        assert b.page.locator("#header-q").input_value() == "a < b && c > d"
    finally:
        b.close()


def test_ideas_show_hostile_text_as_text(browser, live_server, hostile):
    site = hostile
    b = Browser(browser, live_server, site.contributor.cookie)  # the author sees a sealed idea
    results = []
    try:
        for idea_id in site.ideas:
            r = b.open(f"/ideas/{idea_id}")
            with site.app.app_context():
                title = db.session.get(Idea, idea_id).title
            if (b.page.evaluate(SHOWN)["h1"] or "").strip() != title.strip():
                r.problems.append(f"idea title not shown as stored: {title[:60]!r}")
            results.append(r)
        results.append(b.open("/ideas/mine"))
    finally:
        b.close()
    owner = Browser(browser, live_server, site.owner.cookie)
    try:
        results.append(owner.open(f"/challenges/{site.challenge_id}/ideas"))
    finally:
        owner.close()
    _assert_clean(results)


def test_questions_answers_comments_and_requests(browser, live_server, hostile):
    site = hostile
    results = []
    for cookie in (None, site.owner.cookie, site.contributor.cookie):
        b = Browser(browser, live_server, cookie)
        try:
            results.append(b.open(f"/challenges/{site.challenge_id}"))  # questions and answers
            results.append(b.open(f"/failures/{site.discussion_id}"))   # comments
            if cookie is not None:
                for rid in site.request_ids:
                    results.append(b.open(f"/engage/requests/{rid}"))
                results.append(b.open("/engage/requests/incoming" if cookie == site.owner.cookie
                                      else "/engage/requests/mine"))
                results.append(b.open("/notifications/"))
        finally:
            b.close()
    _assert_clean(results)


def test_reports_lists_and_refused_forms(browser, live_server, hostile):
    site = hostile
    results = []
    b = Browser(browser, live_server, site.moderator.cookie)
    try:
        for page in range(1, len(CORPUS) // 20 + 2):
            results.append(b.open(f"/moderation/?page={page}"))
        for fid, _slug in site.failures[::5]:
            results.append(b.open(f"/moderation/case/failure/{fid}"))
        for kind, response in site.refusals:  # forms refused with the input echoed back
            r = b.render(live_server, response)
            r.url = f"refused {kind} form"
            results.append(r)
    finally:
        b.close()
    b = Browser(browser, live_server, site.curator.cookie)
    try:
        results.append(b.open("/lists/"))
        with site.app.app_context():
            ids = db.session.execute(select(InvitationList.id).order_by(InvitationList.id.desc())
                                     .limit(12)).scalars().all()
        for lid in ids:
            results.append(b.open(f"/lists/{lid}"))
    finally:
        b.close()
    b = Browser(browser, live_server, site.owner.cookie)
    try:
        results.append(b.open(f"/invitations/item/{site.challenge_id}"))
    finally:
        b.close()
    assert any(kind == "invitation" for kind, _ in site.refusals)
    _assert_clean(results)


MALFORMED_URLS = [
    "/challenges/?page=9223372036854775808", "/challenges/?page=-1", "/challenges/?page=abc",
    "/failures/?sort=%3Cscript%3E", "/failures/?tag=%22%3E%3Csvg%20onload%3D__x()%3E", "/challenges/abc",
    "/challenges/99999999999999999999999", "/ideas/-1", "/orgs/%3Cscript%3E", "/search?q=x&page=abc",
    "/search?q=x&per_page=9223372036854775808", "/search?q=x&sort=%22%3E", "/api/v1/items?per_page=abc",
    "/engage/assets/1/terms/-1", "/moderation/?org=abc", "/auth/login?next=%0d%0aX-Injected:%201",
    "/auth/login?next=javascript:__x()", "/feeds/items.atom?page=%3Cscript%3E",
]


def test_search_box_and_malformed_urls(browser, live_server, hostile):
    site = hostile
    results = []
    for cookie, corpus in ((None, CORPUS), (site.owner.cookie, CORPUS[::3])):
        b = Browser(browser, live_server, cookie)
        try:
            for text in corpus:
                r = b.open(f"/search?q={quote(text[:1000], safe='')}")
                if b.page.locator("#header-q").input_value() != text[:1000].replace("\r", ""):
                    # The box shows what was searched for, as a value, not as markup.
                    shown = b.page.locator("#header-q").input_value()
                    if re.sub(r"\s", "", shown) != re.sub(r"\s", "", text[:1000]):
                        r.problems.append(f"search box shows {shown[:60]!r}")
                results.append(r)
            for url in MALFORMED_URLS:
                results.append(b.open(url))
        finally:
            b.close()
    _assert_clean(results)
