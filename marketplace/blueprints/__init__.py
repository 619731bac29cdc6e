"""Blueprint registry: one blueprint per feature package."""
from __future__ import annotations

import importlib

from flask import Flask

# (module, attribute, url_prefix)
BLUEPRINTS: list[tuple[str, str, str | None]] = [
    ("marketplace.main", "bp", None),
    ("marketplace.auth", "bp", "/auth"),
    ("marketplace.orgs", "bp", "/orgs"),
    ("marketplace.items", "bp", None),
    ("marketplace.notify", "bp", "/notifications"),
    ("marketplace.api", "bp", "/api"),
    ("marketplace.feeds", "bp", "/feeds"),
    ("marketplace.ideas", "bp", None),
    ("marketplace.judging", "bp", None),    # /challenges/<id>/rounds, /judging, exports; /ideas/<id>/judging
    ("marketplace.invitations", "bp", "/invitations"),
    ("marketplace.lists", "bp", "/lists"),
    ("marketplace.moderation", "bp", None),  # /moderation/..., /challenges/<id>/decisions, /audit
    ("marketplace.engagement", "bp", "/engage"),
    ("marketplace.search.views", "bp", None),
    ("marketplace.mail", "bp", "/mail"),
    ("marketplace.reach", "bp", None),
    ("marketplace.tokens", "bp", None),     # /settings/tokens, /orgs/<slug>/tokens
    ("marketplace.webhooks", "bp", None),   # /orgs/<slug>/webhooks
    ("marketplace.people", "bp", None),     # /settings/data.json, /settings/delete
    ("marketplace.insights", "bp", None),   # dashboards, /transparency, after-action reviews, /admin/audit
    ("marketplace.agreements", "bp", None),  # /agreements/..., /engage/assets/<id>/sharing|files, /orgs/<slug>/partners|remains
]


def register_blueprints(app: Flask) -> None:
    for module, attr, prefix in BLUEPRINTS:
        bp = getattr(importlib.import_module(module), attr)
        app.register_blueprint(bp, url_prefix=prefix)
