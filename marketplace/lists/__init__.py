"""Invitation lists curated by cluster organisations: members, sharing, attaching to items.

Importing the package adds the "Invitation lists" panel to item pages (for the item's
managers) and a Jinja global that feeds it.
"""
from flask import Blueprint
from flask_login import current_user

bp = Blueprint("lists", __name__)

from . import views  # noqa: E402,F401
from .. import policy  # noqa: E402
from ..items.views import ITEM_PANELS  # noqa: E402


def _panel_wanted(item) -> bool:
    return current_user.is_authenticated and policy.can(current_user, "manage_access", item)


if not any(t == "lists/_item_panel.html" for t, _p in ITEM_PANELS):
    ITEM_PANELS.append(("lists/_item_panel.html", _panel_wanted))
