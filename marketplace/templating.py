"""Jinja globals and filters (the policy is exposed to templates as `can`; `dt` shows a
time in the viewer's zone, see timezones.py) and security headers on every response.

Headers (`security_headers`): a Content-Security-Policy that allows scripts, styles, images
and fonts from this site only, no inline script or style, no plugins, no <base>, forms posting
only here and no framing (templates and static/js hold no inline script, handler or style:
tests/browser/test_hostile_input.py watches Chromium for violations); `nosniff`; a referrer
sent only to this site; HSTS when the request came over HTTPS (directly or, with
TRUSTED_PROXIES, through the proxy); and `Cache-Control: no-store` on every page unless the
view chose a cache policy itself (public feeds for anonymous readers) and always for a
signed-in viewer, whose pages may hold private content.
"""
from __future__ import annotations

import hashlib
from datetime import datetime

from flask import Flask
from flask_login import current_user

from . import policy, timezones
from .formtools import error_list
from .sanitize import plain_text
from .models import ItemKind, Status, Visibility, utcnow

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"  # ASVS 5.0 3.4.1 (L2): a year, subdomains too
PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def fmt_dt(value: datetime | None, zone: str | None = None) -> str:
    """The `dt` filter: a stored time in the viewer's zone (or `zone`), with its abbreviation."""
    return timezones.format_dt(value, zone)


# Excerpts by (content digest, limit): a card's excerpt renders the whole body's Markdown and
# cleans it, a third of a list page's time, for text that rarely changes. The excerpt is a
# function of the text alone, so the same body gives the same excerpt whoever reads it; the
# key is a digest, so the cache never holds bodies (at most _EXCERPTS_MAX short strings).
_EXCERPTS: dict[tuple[bytes, int], str] = {}
_EXCERPTS_MAX = 4096


def excerpt(value: str | None, limit: int = 300) -> str:
    """The `excerpt` filter: Markdown as the words a reader sees (`**1 in 500**` reads
    "1 in 500"), cut at a word near `limit` characters. Plain text: Jinja escapes it."""
    if not value:
        return ""
    key = (hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).digest(), limit)
    found = _EXCERPTS.get(key)
    if found is None:
        found = _cut(plain_text(value), limit)
        if len(_EXCERPTS) >= _EXCERPTS_MAX:
            _EXCERPTS.clear()
        _EXCERPTS[key] = found
    return found


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip(" ,;:.") + "…"


def fmt_date(value: datetime | None, zone: str | None = None) -> str:
    """The day of a stored time in the viewer's zone (or `zone`)."""
    return timezones.format_dt(value, zone, date_only=True)


def _notifications_label(user) -> str:
    from .notify import nav_label  # with the unread count
    return nav_label(user)


# Features add header/footer links: (label or label(user), endpoint, predicate(user) -> bool).
NAV_LINKS: list[tuple[object, str, object]] = [
    (_notifications_label, "notifications.index", lambda u: u.is_authenticated),
]
FOOTER_LINKS: list[tuple[str, str]] = []
# Header links shown in the bar itself (with its unread count); the others are in the
# account menu, so the header keeps to one row at 1280 px.
BAR_ENDPOINTS = frozenset({"notifications.index"})


def _organisation_names() -> list[str]:
    from .services.orgs import organisation_names

    return organisation_names()


def visible_title(item) -> str:
    """An item's title where the viewer may see the item, else its kind and number: an idea's
    authors keep their idea (and receipts) when moderators hide its challenge, not the
    challenge; a reviewer appointed to a draft does not see it before it opens."""
    if item is None:
        return ""
    if policy.can(current_user, "view", item):
        return item.title
    return f"{item.kind_label} #{item.id} (not visible to you)"


def init_app(app: Flask) -> None:
    @app.context_processor
    def links():
        from flask import url_for

        eps = set(app.view_functions)
        nav = [
            {"label": label(current_user) if callable(label) else label, "url": url_for(ep), "endpoint": ep}
            for label, ep, pred in NAV_LINKS
            if ep in eps and pred(current_user)
        ]
        foot = [{"label": label, "url": url_for(ep)} for label, ep in FOOTER_LINKS if ep in eps]
        return {"url_endpoints": eps, "nav_links": nav, "footer_links": foot}

    app.jinja_env.globals.update(
        can=lambda action, obj=None: policy.can(current_user, action, obj),
        visible_title=visible_title,
        Visibility=Visibility,
        Status=Status,
        ItemKind=ItemKind,
        now=utcnow,
        describe_zone=timezones.describe_zone,
        form_error_list=error_list,
        BAR_ENDPOINTS=BAR_ENDPOINTS,
        organisation_names=_organisation_names,
    )
    app.jinja_env.filters["dt"] = fmt_dt
    app.jinja_env.filters["date"] = fmt_date
    app.jinja_env.filters["excerpt"] = excerpt

    @app.after_request
    def security_headers(resp):
        from flask import request

        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        # Stricter than strict-origin-when-cross-origin: other sites get no referrer at all
        # (paths can carry invitation and appeal tokens).
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        resp.headers.setdefault("Permissions-Policy", PERMISSIONS)
        if request.is_secure:
            resp.headers.setdefault("Strict-Transport-Security", HSTS)
        if request.endpoint == "static":
            return resp  # Flask's own caching of static files; no viewer to load
        if current_user and getattr(current_user, "is_authenticated", False):
            # Pages for signed-in users may hold private data: never cache them anywhere
            # (a view's own "no-store", e.g. a mailed link's page, already says so).
            if "no-store" not in resp.headers.get("Cache-Control", ""):
                resp.headers["Cache-Control"] = "private, no-store"
        else:
            # Anonymous pages too may show what a token opened (an invitation, an appeal) or
            # carry a form's token: not stored unless the view chose otherwise.
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp
