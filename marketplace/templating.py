"""Jinja globals and filters (the policy is exposed to templates as `can`) and
security headers on every response."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Flask
from flask_login import current_user

from . import policy
from .models import ItemKind, Status, Visibility, utcnow

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


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
            {"label": label, "url": url_for(ep)}
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
    )
    app.jinja_env.filters["dt"] = fmt_dt
    app.jinja_env.filters["date"] = fmt_date

    @app.after_request
    def security_headers(resp):
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Content-Security-Policy", CSP)
        if current_user and getattr(current_user, "is_authenticated", False):
            # Pages for signed-in users may hold private data: never cache them in shared caches.
            resp.headers.setdefault("Cache-Control", "private, no-store")
        return resp
