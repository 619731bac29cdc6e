"""Reading the site as one persona: every response is scanned for canaries the persona may
not see; pages are crawled by following links (GET only, same site, bounded); every GET
route is requested with guessed ids; responses for ids the persona may not see are
compared with the response for an id that does not exist."""
from __future__ import annotations

import html
import json
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from .world import CANARY_RE, SweepWorld

MISSING_ID = 987_654_321
SITE_HOSTS = ("http://localhost", "https://localhost", "http://127.0.0.1:5000", "https://127.0.0.1:5000")
HREF_RE = re.compile(r"""href\s*=\s*["']([^"']+)["']""", re.I)
URL_RE = re.compile(r"""https?://(?:localhost|127\.0\.0\.1:5000)(/[^\s"'<>]*)""")
TOKEN_LINK_RE = re.compile(r"(/(?:invitations/t|moderation/appeal)/[A-Za-z0-9_\-\.]+)")
SKIP_PREFIXES = ("/static/", "/auth/logout")
# Normalising a response for "hidden answers exactly like missing": per-request values.
_CSRF_RE = re.compile(r'(name="csrf_token"[^>]*value=")[^"]*(")|(value=")[^"]*("[^>]*name="csrf_token")')
_FLASH_RE = re.compile(r'<div class="flashes">.*?</div>\s*</div>', re.S)
_REQID_RE = re.compile(r'<code class="request-id">[^<]*</code>')


@dataclass
class Fetched:
    url: str
    status: int
    body: str
    location: str
    content_type: str


@dataclass
class Walker:
    client: object
    world: SweepWorld
    persona: str
    leaks: set[str] = field(default_factory=set)
    errors: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)
    requests: int = 0

    def __post_init__(self):
        self.allowed = self.world.allowed(self.persona)

    # ------------------------------------------------------------------ scanning

    def scan(self, text: str, where: str, ignore: frozenset[str] = frozenset()) -> None:
        for m in CANARY_RE.finditer(text or ""):
            tok = m.group(0).lower()
            if tok in ignore:
                continue
            c = self.world.canaries.get(tok)
            if c is None:
                self.errors.add(f"unknown canary {tok} at {where}")
                continue
            self.seen.add(tok)
            if tok not in self.allowed:
                self.leaks.add(f"{tok} ({c.what}) at {where}")

    def get(self, url: str, scan: bool = True) -> Fetched:
        self.requests += 1
        r = self.client.get(url)
        body = r.get_data(as_text=False).decode("utf-8", "replace")
        f = Fetched(url, r.status_code, body, r.headers.get("Location", ""), r.headers.get("Content-Type", ""))
        if r.status_code >= 500:
            self.errors.add(f"{r.status_code} at GET {url}")
        if scan:
            echo = frozenset(t.lower() for t in CANARY_RE.findall(url))  # what the persona typed
            where = f"GET {url} [{r.status_code}]"
            self.scan(body, where, echo)
            self.scan("\n".join(f"{k}: {v}" for k, v in r.headers.items()), where + " (headers)", echo)
        return f

    # ------------------------------------------------------------------ crawling

    @staticmethod
    def same_site(link: str) -> str | None:
        link = html.unescape(link.strip())
        for host in SITE_HOSTS:
            if link.startswith(host + "/"):
                link = link[len(host):]
                break
        if not link.startswith("/") or link.startswith("//"):
            return None
        link = link.split("#", 1)[0]
        if link.startswith(SKIP_PREFIXES):
            return None
        return link

    @staticmethod
    def links(f: Fetched) -> list[str]:
        out = HREF_RE.findall(f.body) + URL_RE.findall(f.body)
        if f.location:
            out.append(f.location)
        return out

    def crawl(self, starts: list[str], max_pages: int, per_pattern: int = 4) -> None:
        """Breadth first from `starts`, following same-site links; GET only. At most
        `per_pattern` URLs per path shape (ids and query values aside)."""
        queue = deque(starts)
        visited: set[str] = set()
        shapes: Counter = Counter()
        while queue and len(visited) < max_pages:
            url = self.same_site(queue.popleft()) or ""
            if not url or url in visited:
                continue
            parts = urlsplit(url)
            shape = (re.sub(r"\d+", "N", parts.path),
                     tuple(sorted(k.split("=")[0] for k in parts.query.split("&") if k)))
            if shapes[shape] >= per_pattern and url not in starts:
                continue
            shapes[shape] += 1
            visited.add(url)
            f = self.get(url)
            if f.status < 400 and ("html" in f.content_type or "json" in f.content_type or "xml" in f.content_type
                                   or f.location):
                queue.extend(self.links(f))

    # ------------------------------------------------------------------ hidden == missing

    @staticmethod
    def normal(f: Fetched, url: str) -> tuple:
        body = _CSRF_RE.sub("", f.body)
        body = _FLASH_RE.sub("", body)
        body = _REQID_RE.sub("", body)
        loc = f.location
        for form in (url, quote(url, safe=""), quote(url, safe="/"), html.escape(url)):
            body = body.replace(form, "{URL}")
            loc = loc.replace(form, "{URL}")
        return f.status, loc, body

    def compare(self, hidden: Fetched, missing: Fetched) -> str | None:
        a, b = self.normal(hidden, hidden.url), self.normal(missing, missing.url)
        if a == b:
            return None
        if a[0] != b[0]:
            return f"GET {hidden.url} answers {hidden.status}, a missing id ({missing.url}) {missing.status}"
        if a[1] != b[1]:
            return f"GET {hidden.url} redirects to {hidden.location!r}, a missing id to {missing.location!r}"
        return f"GET {hidden.url} answers another body than a missing id ({missing.url})"


# ---------------------------------------------------------------------------- routes

_ARG_RE = re.compile(r"<(?:(\w+)(?:\(([^)]*)\))?:)?(\w+)>")
KIND_PREFIX = {"challenges": "challenge", "failures": "failure", "assets": "asset"}
# Path parameter -> the object type whose visibility decides the answer.
PARAM_TYPE = {"item_id": "item", "challenge_id": "item", "idea_id": "idea", "question_id": "question",
              "request_id": "request", "list_id": "list", "action_id": "action", "acc_id": "acceptance",
              "agreement_id": "agreement", "file_id": "asset_file"}
WHAT_TYPE = {"questions": "question", "answers": "answer", "comments": "comment"}
TARGET_TYPES = {"challenge": "item", "failure": "item", "asset": "item", "idea": "idea", "question": "question",
                "answer": "answer", "comment": "comment", "asset_request": "request", "user": "user",
                "organisation": "org"}
KNOWN_PARAMS = set(PARAM_TYPE) | {"version", "att_id", "number", "what", "obj_id", "target_type", "target_id",
                                  "slug", "token", "plural", "name", "delivery_id"}


@dataclass
class Probe:
    url: str
    missing: str | None          # the same route with a missing id
    obj: tuple[str, int] | None  # what the id names


def _fill(rule: str, values: dict) -> str:
    return _ARG_RE.sub(lambda m: str(values[m.group(3)]), rule)


def get_rules(app) -> list:
    return [r for r in app.url_map.iter_rules() if "GET" in r.methods and r.endpoint != "static"]


# The routes that get every item id; an item's other pages (management, terms, Q&A forms...)
# get `SweepWorld.sample_items`: every item but the matrix's closed and archived items at
# levels other than `invited` (statuses only differ in what may be done, which the matrix
# of tests/test_policy_matrix.py covers, and `invited` items keep all four).
EVERY_ITEM = {"items.detail", "api.item", "moderation.case", "moderation.report", "moderation.decision_log",
              "ideas.terms_sheet", "ideas.challenge_ideas"}


def probes(app, world: SweepWorld, tokens: list[str]) -> list[Probe]:
    """Every GET route with arguments, with every id of the right kind (and a few of the
    wrong kind), each paired with the same route for a missing id."""
    out: list[Probe] = []
    ids = world.ids
    items_of = {k: [i for i, kind in world.item_kinds.items() if kind == k] for k in KIND_PREFIX.values()}
    any_att = next((a for atts in world.attachments.values() for a in atts), 1)
    for rule in get_rules(app):
        args = {m.group(3): (m.group(1), m.group(2)) for m in _ARG_RE.finditer(rule.rule)}
        if not args:
            continue
        unknown = set(args) - KNOWN_PARAMS
        if unknown:
            raise AssertionError(f"the sweep does not know how to fill {sorted(unknown)} in {rule.rule}: teach it")
        segs = rule.rule.strip("/").split("/")
        kind = KIND_PREFIX.get(segs[0]) or (KIND_PREFIX.get(segs[1]) if segs[0] == "engage" and len(segs) > 1
                                            else None)
        choices = [dict()]
        for name, (conv, conv_args) in args.items():
            if conv == "any":
                opts = [o.strip() for o in conv_args.split(",")]
                choices = [dict(c, **{name: o}) for c in choices for o in opts]
        for base in choices:
            if "item_id" in args or "challenge_id" in args:
                name = "item_id" if "item_id" in args else "challenge_id"
                if kind:
                    # Ids of another kind only where the kind is the whole path (/failures/ID).
                    others = [i for k, lst in items_of.items() if k != kind for i in lst[:1]] \
                        if rule.endpoint == "items.detail" else []
                    pool = items_of[kind] + others
                else:
                    pool = list(world.item_kinds)
                if rule.endpoint not in EVERY_ITEM:
                    pool = [i for i in pool if i in world.sample_items]
                for i in pool:
                    vals = dict(base, **{name: i})
                    miss = dict(base, **{name: MISSING_ID})
                    if "version" in args:
                        v = (world.challenge_versions.get(i) or [1])[0]
                        vals["version"] = miss["version"] = v
                    out.append(Probe(_fill(rule.rule, vals), _fill(rule.rule, miss), ("item", i)))
            elif "idea_id" in args:
                for i in ids["idea"]:
                    # Every file and revision of the idea (another idea's file for one without).
                    subs = [{}]
                    if "att_id" in args:
                        subs = [{"att_id": a} for a in world.attachments.get(i) or [any_att]]
                    if "number" in args:
                        subs = [{"number": n} for n in world.revisions.get(i) or [1]]
                    for sub in subs:
                        out.append(Probe(_fill(rule.rule, dict(base, idea_id=i, **sub)),
                                         _fill(rule.rule, dict(base, idea_id=MISSING_ID, **sub)), ("idea", i)))
            elif "obj_id" in args:
                t = WHAT_TYPE[base["what"]]
                for i in ids.get(t, {}):
                    out.append(Probe(_fill(rule.rule, dict(base, obj_id=i)), _fill(rule.rule, dict(base, obj_id=MISSING_ID)),
                                     (t, i)))
            elif "target_id" in args:
                for tname, t in TARGET_TYPES.items():
                    pool = items_of[tname] if t == "item" else list(ids.get(t, {}))
                    for i in pool:
                        out.append(Probe(_fill(rule.rule, {"target_type": tname, "target_id": i}),
                                         _fill(rule.rule, {"target_type": tname, "target_id": MISSING_ID}),
                                         (t, i) if t in ids else None))
            elif "slug" in args:
                # A webhook delivery page under each organisation: the world's deliveries, if any,
                # else a guessed id (an integrations page answers 403/404, never another
                # organisation's delivery).
                extra = [{"delivery_id": d} for d in sorted(ids.get("delivery", {})) or [1]] \
                    if "delivery_id" in args else [{}]
                for s in world.org_slugs + ["no-such-organisation"]:
                    for sub in extra:
                        out.append(Probe(_fill(rule.rule, dict(base, slug=s, **sub)), None, None))
            elif "token" in args:
                prefix = rule.rule.split("<", 1)[0]
                for t in [t for t in tokens if t.startswith(prefix)] + [prefix + "no-such-token"]:
                    out.append(Probe(t, None, None))
            else:
                param = next((p for p in args if p in PARAM_TYPE), None)
                if param is None:
                    out.append(Probe(_fill(rule.rule, base), None, None))
                    continue
                t = PARAM_TYPE[param]
                for i in ids.get(t, {}):
                    out.append(Probe(_fill(rule.rule, dict(base, **{param: i})),
                                     _fill(rule.rule, dict(base, **{param: MISSING_ID})), (t, i)))
    return out


def start_urls(app) -> list[str]:
    """Every GET route without arguments, and the lists with each of their filters."""
    urls = [r.rule for r in get_rules(app) if not r.arguments and not r.rule.startswith(SKIP_PREFIXES)]
    for plural in ("challenges", "failures", "assets"):
        for status in ("draft", "open", "closed", "archived"):
            urls += [f"/{plural}/?status={status}", f"/api/v1/{plural}?status={status}&per_page=100",
                     f"/feeds/{plural}.atom?status={status}"]
    urls += ["/api/v1/items?per_page=100", "/api/v1/items?per_page=100&page=2", "/moderation/?status=closed",
             "/moderation/?status=all", "/search?q=sweepmark", "/api/v1/items?per_page=100&sort=title"]
    # Error pages for malformed filters (they answer with what was wrong, never with data).
    urls += ["/challenges/?status=nope", "/api/v1/items?page=0", "/feeds/items.atom?sort=sideways",
             "/moderation/?type=nope", "/search?q=%22&page=999"]
    return urls


def org_urls(slugs: list[str]) -> list[str]:
    """The lists filtered by organisation."""
    out = []
    for slug in slugs:
        out += [f"/challenges/?org={slug}", f"/api/v1/items?org={slug}&per_page=100", f"/feeds/items.atom?org={slug}"]
    return out


def mail_links(mails: list[tuple[str, str]]) -> list[str]:
    out = []
    for _subject, body in mails:
        out += URL_RE.findall(body)
        out += re.findall(r"(?<![\w/<])(/[a-z][\w\-/\.]*)", body)  # not closing tags of the HTML part
    return out


def mail_tokens(mails: list[tuple[str, str]]) -> list[str]:
    return sorted({m for _s, body in mails for m in TOKEN_LINK_RE.findall(body)})


def search_json(w: Walker, q: str, **params) -> dict:
    from urllib.parse import urlencode

    url = "/api/search?" + urlencode(dict(q=q, per_page=100, **params))
    w.requests += 1
    r = w.client.get(url)
    if r.status_code != 200:
        w.errors.add(f"{r.status_code} at GET {url}")
        return {}
    data = r.get_json()
    # The query is echoed back as typed: only what the search found is scanned.
    found = {k: data.get(k) for k in ("results", "facets", "suggestion", "total")}
    w.scan(json.dumps(found), f"GET {url}", frozenset(t.lower() for t in CANARY_RE.findall(q)))
    return data
