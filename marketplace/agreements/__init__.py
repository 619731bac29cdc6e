"""Data-sharing agreements on assets, partner phase-out and "what remains" (issue 17):
the asset's sheet and files, agreements and their usage log, a partner's participation."""
from flask import Blueprint

from .. import cli as _cli
from ..items.views import ITEM_PANELS
from ..templating import NAV_LINKS

bp = Blueprint("agreements", __name__)

from . import views  # noqa: E402,F401
from .cli import agreements_cli  # noqa: E402

if agreements_cli not in _cli.EXTRA_COMMANDS:
    _cli.EXTRA_COMMANDS.append(agreements_cli)

ITEM_PANELS.append(("agreements/_asset_panel.html", lambda item: item.kind == "asset"))
NAV_LINKS.append(("Agreements", "agreements.mine", lambda u: u.is_authenticated))
