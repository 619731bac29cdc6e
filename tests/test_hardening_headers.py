"""Security headers on every response (issue 15): a Content-Security-Policy without inline
script or style, nosniff, a strict referrer policy, no framing, HSTS over HTTPS (directly or
through the trusted proxy), and no-store on pages for signed-in viewers and on every page
that does not choose to be cached (public feeds; the API's anonymous answers, which are
"private, no-cache": revalidated with their ETag on every use, varying with the cookie and
the Authorization header). The templates and static files hold nothing the policy
would block (tests/browser/test_hostile_input.py watches Chromium for violations)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from .factories_foundation import dispose, make_app
from .hardening_world import VIEWERS, build_world, concrete_urls, login

ROOT = Path(__file__).resolve().parent.parent
REQUIRED_CSP = ["default-src 'self'", "script-src 'self'", "style-src 'self'", "object-src 'none'",
                "base-uri 'none'", "frame-ancestors 'none'", "form-action 'self'"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("headers"), PROPAGATE_UNHANDLED=False)
    with app.app_context():
        world = build_world()
    yield app, world
    dispose(app)


def check_headers(r, url: str, signed_in: bool) -> list[str]:
    problems = []
    h = r.headers
    csp = h.get("Content-Security-Policy", "")
    if (url.startswith("/ideas/") or url.startswith("/agreements/")) and "/files/" in url and r.status_code == 200:
        # Attachments and shared asset files are served under their own, stricter policy
        # (sandboxed, nothing runs).
        if "default-src 'none'" not in csp or "sandbox" not in csp:
            problems.append(f"{url}: attachment CSP {csp!r}")
    else:
        problems += [f"{url}: CSP lacks {d}" for d in REQUIRED_CSP if d not in csp]
    if "unsafe-inline" in csp or "unsafe-eval" in csp:
        problems.append(f"{url}: CSP allows inline or eval")
    if h.get("X-Content-Type-Options") != "nosniff":
        problems.append(f"{url}: no nosniff")
    if h.get("Referrer-Policy") not in ("same-origin", "no-referrer", "strict-origin",
                                        "strict-origin-when-cross-origin"):
        problems.append(f"{url}: Referrer-Policy {h.get('Referrer-Policy')!r}")
    if h.get("X-Frame-Options") != "DENY":
        problems.append(f"{url}: framable")
    cache = h.get("Cache-Control", "")
    if url.startswith("/static/"):
        return problems
    if signed_in and "no-store" not in cache:
        problems.append(f"{url}: signed-in page cached ({cache!r})")
    if not signed_in and "no-store" not in cache and not url.startswith(("/feeds/", "/.well-known/")) \
            and not (url.startswith("/api/") and _api_cache_policy_holds(r)):
        problems.append(f"{url}: anonymous page without a cache policy of its own is stored ({cache!r})")
    if "Strict-Transport-Security" in h:
        problems.append(f"{url}: HSTS over plain HTTP")
    return problems


def _api_cache_policy_holds(r) -> bool:
    """The API's own policy (marketplace/api/auth.py): no shared cache, revalidated on every
    use, per cookie and per token, with an ETag to revalidate a read against."""
    vary = {v.strip().lower() for v in r.headers.get("Vary", "").split(",")}
    has_etag = r.status_code != 200 or "ETag" in r.headers
    return r.headers.get("Cache-Control") == "private, no-cache" and {"cookie", "authorization"} <= vary \
        and has_etag


@pytest.mark.parametrize("viewer", ["anonymous", "owner", "site_admin", "researcher"])
def test_every_response_carries_the_security_headers(site, viewer):
    app, world = site
    c = app.test_client()
    if VIEWERS[viewer]:
        login(c, VIEWERS[viewer])
    problems = []
    urls = [u for _m, _e, u in concrete_urls(app, world, {"GET"})]
    urls += ["/no-such-page", "/challenges/abc", "/auth/logout"]  # 404s and a 405
    for url in urls:
        r = c.get(url)
        problems += check_headers(r, url, VIEWERS[viewer] is not None)
    r = c.post("/api/v1/items")  # 405 from the API
    problems += check_headers(r, "/api/v1/items (POST)", VIEWERS[viewer] is not None)
    assert not problems, "\n".join(problems[:30])


def test_hsts_only_over_https(site):
    app, _world = site
    c = app.test_client()
    assert "Strict-Transport-Security" not in c.get("/").headers
    r = c.get("/", base_url="https://market.example.org")
    assert r.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    # Without a trusted proxy, a client's X-Forwarded-Proto is ignored.
    assert "Strict-Transport-Security" not in c.get("/", headers={"X-Forwarded-Proto": "https"}).headers


def test_hsts_behind_the_trusted_proxy(tmp_path):
    app = make_app(tmp_path, TRUSTED_PROXIES=1)
    try:
        c = app.test_client()
        r = c.get("/about", headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"})
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
        assert "Strict-Transport-Security" not in c.get("/about", headers={"X-Forwarded-Proto": "http"}).headers
    finally:
        dispose(app)


def test_public_feeds_may_be_cached_for_anonymous_readers_only(site):
    app, _world = site
    anon = app.test_client()
    assert anon.get("/feeds/challenges.atom").headers["Cache-Control"] == "public, max-age=300"
    signed = app.test_client()
    login(signed, VIEWERS["owner"])
    assert signed.get("/feeds/challenges.atom").headers["Cache-Control"] == "private, no-store"
    # Static files keep Flask's own caching and load no viewer.
    r = signed.get("/static/css/site.css")
    assert r.status_code == 200 and "no-store" not in r.headers.get("Cache-Control", "")


# --------------------------------------------------------------------------- nothing inline


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an inline event handler"),
    (re.compile(r"\sstyle\s*=", re.I), "an inline style attribute"),
    (re.compile(r"<style\b", re.I), "a <style> element"),
    (re.compile(r"javascript:", re.I), "a javascript: URL"),
]


def test_templates_hold_no_inline_script_handler_or_style():
    problems = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        # HTML mail (templates/mail/) is read in mail programs, which drop <style> elements
        # and apply no CSP: there styles must be inline. Scripts, handlers and javascript:
        # URLs stay forbidden there too.
        mail = path.relative_to(ROOT / "templates").parts[0] == "mail"
        for pattern, what in INLINE:
            if mail and "style" in what:
                continue
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                problems.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not problems, "\n".join(problems)


def test_static_scripts_build_no_markup_from_strings():
    for path in sorted((ROOT / "static").rglob("*.js")):
        text = path.read_text(encoding="utf-8")
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert risky not in text, f"{path.relative_to(ROOT)} uses {risky}"


def test_every_page_loads_only_same_origin_resources(site):
    """No page references a script, style or image on another host (the CSP would block it)."""
    app, world = site
    c = app.test_client()
    login(c, VIEWERS["owner"])
    for _m, _e, url in concrete_urls(app, world, {"GET"}):
        r = c.get(url)
        if r.mimetype != "text/html":
            continue
        for tag in re.findall(r"<(?:script|link|img|iframe)\b[^>]*>", r.text, re.I):
            for src in re.findall(r'\b(?:src|href)="([^"]*)"', tag):
                assert src.startswith("/") and not src.startswith("//"), (url, tag)


def test_no_response_carries_a_cors_header(site):
    """ASVS 3.4.2: the site grants no other origin anything: no Access-Control-* header on any
    page or API answer, whatever Origin asks, and a preflight gets no permission either (the
    browser then keeps other sites' scripts from reading our answers). The one exception is
    the public receipt keys (anyone verifies a receipt with them): a fixed
    `Access-Control-Allow-Origin: *`, never the caller's Origin, never with credentials."""
    app, world = site
    c = app.test_client()
    login(c, VIEWERS["owner"])
    evil = {"Origin": "https://evil.example"}
    urls = [u for _m, _e, u in concrete_urls(app, world, {"GET"})] + ["/api/v1/me", "/api/v1/items"]
    problems = []
    for url in urls:
        r = c.get(url, headers=evil)
        cors = {k: v for k, v in r.headers.items() if k.lower().startswith("access-control-")}
        if url == "/.well-known/receipt-keys.json" and cors == {"Access-Control-Allow-Origin": "*"}:
            continue
        problems += [f"{url}: {k}: {v}" for k, v in cors.items()]
    for url in ("/api/v1/items", "/api/v1/me", "/auth/login"):
        r = c.options(url, headers={**evil, "Access-Control-Request-Method": "POST",
                                    "Access-Control-Request-Headers": "Authorization, X-CSRFToken"})
        problems += [f"OPTIONS {url}: {k}" for k in r.headers.keys() if k.lower().startswith("access-control-")]
    assert len(urls) > 50 and not problems, problems[:20]


def test_every_page_of_a_signed_in_viewer_offers_sign_out(site):
    """ASVS 7.4.4: sign-out is on every page a signed-in person sees (a POST form, CSRF-protected)."""
    app, world = site
    c = app.test_client()
    login(c, VIEWERS["owner"])
    missing = []
    pages = 0
    for _m, _e, url in concrete_urls(app, world, {"GET"}):
        r = c.get(url)
        if r.status_code != 200 or r.mimetype != "text/html":
            continue
        pages += 1
        if not re.search(r'<form method="post" action="/auth/logout"', r.text):
            missing.append(url)
    assert pages > 30 and not missing, missing[:20]
