"""E-mail invitations to one item, and the "My invitations" page.

Importing the package wires it into the shared extension points: an item panel for the
item's managers, a "My invitations" header link and the demo data.
"""
from flask import Blueprint
from flask_login import current_user

bp = Blueprint("invitations", __name__)

from . import views  # noqa: E402,F401
from .. import demo_hooks, policy, templating  # noqa: E402
from ..items.views import ITEM_PANELS  # noqa: E402


def _panel_wanted(item) -> bool:
    return current_user.is_authenticated and policy.can(current_user, "manage_invitations", item)


def _register_once() -> None:
    if not any(t == "invitations/_item_panel.html" for t, _p in ITEM_PANELS):
        ITEM_PANELS.append(("invitations/_item_panel.html", _panel_wanted))
    if not any(ep == "invitations.mine" for _l, ep, _p in templating.NAV_LINKS):
        templating.NAV_LINKS.append(("My invitations", "invitations.mine", lambda u: u.is_authenticated))
    from .demo import load_demo
    if load_demo not in demo_hooks.HOOKS:
        demo_hooks.HOOKS.append(load_demo)
    from ..auth.views import ADDRESS_PROOFS
    ADDRESS_PROOFS["invitations.open_link"] = _invited_address
    ADDRESS_PROOFS["invitations.list_link"] = _list_invited_address
    ADDRESS_PROOFS["invitations.reviewer_link"] = _reviewer_invited_address


def _invited_address(args: dict) -> str | None:
    """A pending invitation link proves its address (registering from it confirms it)."""
    from ..models import InvitationState
    from ..services.invitations import find_by_token

    inv = find_by_token(args.get("token", ""))
    if inv is None or policy.invitation_state(inv) != InvitationState.PENDING.value:
        return None
    return inv.email


def _list_invited_address(args: dict) -> str | None:
    """A pending list invitation link proves its address too."""
    from ..services.lists import list_link_address

    return list_link_address(args.get("token", ""))


def _reviewer_invited_address(args: dict) -> str | None:
    """A pending reviewer invitation link proves its address too."""
    from ..services.ideas import reviewer_link_address

    return reviewer_link_address(args.get("token", ""))


_register_once()
