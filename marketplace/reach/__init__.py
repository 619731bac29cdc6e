"""Following and announcements (issue 10): follow a challenge, an organisation or a tag;
sponsors post announcements to a challenge's participants and followers; a challenge's
timeline. Importing the package plugs it into the challenge page (a panel) and into item
publication (followers hear of new challenges)."""
from flask import Blueprint

bp = Blueprint("reach", __name__)

from . import views  # noqa: E402,F401
from ..items.views import ITEM_PANELS  # noqa: E402
from ..services import items as _items_svc  # noqa: E402
from ..services.notifications import tell_followers_of_new_item  # noqa: E402

if not any(t == "reach/_challenge_panel.html" for t, _p in ITEM_PANELS):
    # First of the panels: the timeline and announcements lead the challenge's page.
    ITEM_PANELS.insert(0, ("reach/_challenge_panel.html", lambda item: item.kind == "challenge"))
if tell_followers_of_new_item not in _items_svc.PUBLISHED_HOOKS:
    _items_svc.PUBLISHED_HOOKS.append(tell_followers_of_new_item)
