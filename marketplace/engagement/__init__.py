"""Engagement on items: challenge Q&A, failure discussions, asset terms and requests,
each under the item's declared participation rules (issue 6)."""
from flask import Blueprint

from .. import demo_hooks, policy
from ..items.views import ITEM_PANELS
from ..templating import NAV_LINKS

bp = Blueprint("engagement", __name__)

from . import demo, views  # noqa: F401

ITEM_PANELS.extend([
    ("engagement/_qa_panel.html", lambda item: item.kind == "challenge"),
    ("engagement/_discussion_panel.html", lambda item: item.kind == "failure"),
    ("engagement/_asset_panel.html", lambda item: item.kind == "asset"),
])
NAV_LINKS.extend([
    ("My requests", "engagement.my_requests", lambda u: u.is_authenticated),
    ("Incoming requests", "engagement.incoming",
     lambda u: u.is_authenticated and bool(policy.viewer_for(u).admin_org_ids)),
])
demo_hooks.HOOKS.append(demo.add_engagement_demo)
