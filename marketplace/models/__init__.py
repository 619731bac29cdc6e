"""All models, importable from one place (Alembic's autogenerate sees them all)."""
from .audit import AuditEvent, SearchOutbox
from .base import (
    AssetKind,
    ItemKind,
    OrgKind,
    OrgRole,
    SiteRole,
    Status,
    Visibility,
    utcnow,
)
from .item import MODEL_BY_KIND, AccessGrant, Asset, Challenge, Failure, Item, ItemTag
from .lists import InvitationList, ItemList, ListMember, ListShare
from .notify import Notification, OutgoingMail
from .org import Membership, Organisation
from .user import User

# Feature models (each section is edited only by its feature):
# [ideas models]
# [invitations models]
# [moderation models]
# [engagement models]

__all__ = [
    "AccessGrant", "Asset", "AssetKind", "AuditEvent", "Challenge", "Failure",
    "InvitationList", "Item", "ItemKind", "ItemList", "ItemTag", "ListMember", "ListShare",
    "MODEL_BY_KIND", "Membership", "Notification", "OutgoingMail", "OrgKind", "OrgRole", "Organisation", "SearchOutbox",
    "SiteRole", "Status", "User", "Visibility", "utcnow",
]
