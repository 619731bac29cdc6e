"""All models, importable from one place (Alembic's autogenerate sees them all)."""
from .audit import AuditEvent, DatabaseIdentity, SearchOutbox
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
from .ideas import (  # noqa: E402,F401
    AcceptancePurpose, AuthorStatus, ChallengeRules, ChallengeTerms, Confidentiality, Idea, IdeaAttachment,
    IdeaAuthor, IdeaAward, IdeaRevision, IdeaScore, IdeaStatus, IncentiveKind, IPModel, ReviewCriterion,
    ReviewerAppointment, ReviewerKind, ReviewNote, SealedViewLog, TermsAcceptance, WhoMaySubmit,
)
# [invitations models]
from .invitations import Invitation, InvitationState  # noqa: E402,F401
# [moderation models]
from .moderation import (  # noqa: E402,F401
    Appeal, BlockedDomain, ItemModeration, ModerationAction, ModerationActionUser, ModerationFlag,
    ModeratorScope, Report, ReportAuthor,
)
# [engagement models]
from .engagement import (  # noqa: E402,F401
    Answer, AssetRequest, AssetTerms, Comment, EngagementRules, Question, RequestEvent,
)

__all__ = [
    "AccessGrant", "Asset", "AssetKind", "AuditEvent", "Challenge", "DatabaseIdentity", "Failure",
    "InvitationList", "Item", "ItemKind", "ItemList", "ItemTag", "ListMember", "ListShare",
    "MODEL_BY_KIND", "Membership", "Notification", "OutgoingMail", "OrgKind", "OrgRole", "Organisation", "SearchOutbox",
    "SiteRole", "Status", "User", "Visibility", "utcnow",
]
