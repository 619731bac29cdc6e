"""Jinja globals and filters (the policy is exposed to templates as `can`) and
security headers on every response.

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

from datetime import datetime, timezone

from flask import Flask
from flask_login import current_user

from . import policy
from .models import ItemKind, Status, Visibility, utcnow

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"  # ASVS 5.0 3.4.1 (L2): a year, subdomains too
PERMISSIONS = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


def fmt_dt(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime(fmt)


def fmt_date(value: datetime | None) -> str:
    return fmt_dt(value, "%Y-%m-%d")


# Features add header/footer links: (label, endpoint, predicate(user) -> bool).
NAV_LINKS: list[tuple[str, str, object]] = [
    ("Notifications", "notifications.index", lambda u: u.is_authenticated),
]
FOOTER_LINKS: list[tuple[str, str]] = []


def init_app(app: Flask) -> None:
    @app.context_processor
    def links():
        from flask import url_for

        eps = set(app.view_functions)
        nav = [
            {"label": label, "url": url_for(ep)}
            for label, ep, pred in NAV_LINKS
            if ep in eps and pred(current_user)
        ]
        foot = [{"label": label, "url": url_for(ep)} for label, ep in FOOTER_LINKS if ep in eps]
        return {"url_endpoints": eps, "nav_links": nav, "footer_links": foot}

    app.jinja_env.globals.update(
        can=lambda action, obj=None: policy.can(current_user, action, obj),
        Visibility=Visibility,
        Status=Status,
        ItemKind=ItemKind,
        now=utcnow,
    )
    app.jinja_env.filters["dt"] = fmt_dt
    app.jinja_env.filters["date"] = fmt_date

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
            # Pages for signed-in users may hold private data: never cache them anywhere.
            resp.headers["Cache-Control"] = "private, no-store"
        else:
            # Anonymous pages too may show what a token opened (an invitation, an appeal) or
            # carry a form's token: not stored unless the view chose otherwise.
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp
