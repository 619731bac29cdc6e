"""Dashboards and the learning loop (issue 11): an organisation's dashboard and a cluster's
participation figures, the public transparency page, after-action reviews and lessons,
starting a challenge from a past one, the audit chain's verification page and an
organisation's governance events.

Importing the package plugs it into the shared extension points: challenge and failure page
panels, the status hook that asks for a review when a challenge closes, a footer link to
the transparency page and the `flask insights` commands.
"""
from flask import Blueprint

bp = Blueprint("insights", __name__)

from . import views  # noqa: E402,F401
from .cli import insights_cli  # noqa: E402
from .. import cli as _cli, templating as _templating  # noqa: E402
from ..items import views as _item_views  # noqa: E402
from ..services import items as _items_svc  # noqa: E402
from ..services.reviews import _status_hook  # noqa: E402


def _once(seq: list, entry) -> None:
    if entry not in seq:
        seq.append(entry)


_once(_item_views.ITEM_PANELS, ("insights/_item_panel.html", lambda item: item.kind in ("challenge", "failure")))
_once(_items_svc.STATUS_HOOKS, _status_hook)
_once(_templating.FOOTER_LINKS, ("Transparency", "insights.transparency"))
_once(_cli.EXTRA_COMMANDS, insights_cli)
