"""Moderation and governance: reports, the moderator queue, decisions and appeals, moderator
scopes, automatic participation flags, challenge decision logs and the public audit head.

Importing this package (when its blueprint registers) plugs it into the shared extension
points: item-page panel, navigation and footer links, CLI groups and demo data.
"""
from __future__ import annotations

import os

from flask import Blueprint, Flask

bp = Blueprint("moderation", __name__)

from . import views  # noqa: E402,F401


def _setup(state) -> None:
    app: Flask = state.app
    from ..services.moderation import DEFAULTS
    from . import flags, registry

    for name, default in DEFAULTS.items():
        raw = os.environ.get(name)
        if raw is not None and not isinstance(default, str):
            raw = type(default)(raw)
        app.config.setdefault(name, raw if raw is not None else default)
    flags.init_app(app)
    app.jinja_env.globals.update(discussion_lock=views.discussion_lock, reportable_type=registry.type_of)


bp.record_once(_setup)


def _plug_in() -> None:
    from .. import cli, demo_hooks, templating
    from ..items import views as item_views
    from .cli import audit_cli, moderation_cli
    from .demo import load_demo

    item_views.ITEM_PANELS.append(("moderation/_item_panel.html", lambda item: True))
    templating.NAV_LINKS.append(("Moderation", "moderation.queue", views.shows_moderation_link))
    templating.FOOTER_LINKS.append(("Audit trail", "moderation.audit_head"))
    cli.EXTRA_COMMANDS.extend([moderation_cli, audit_cli])
    demo_hooks.HOOKS.append(load_demo)


_plug_in()
