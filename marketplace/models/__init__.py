"""All models, importable from one place (Alembic's autogenerate sees them all)."""
from .api import ApiToken, Webhook, WebhookDelivery
from .audit import AuditEvent, DatabaseIdentity, SearchOutbox
from .search import SearchDocument, SearchTerm
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
from .lists import InvitationList, ItemList, ListInvitation, ListMember, ListShare
from .notify import (
    Announcement, Channel, DeadlineReminder, Follow, FollowKind, MailStatus, Notification, NotificationPref,
    OutgoingMail,
)
from .org import Membership, Organisation
from .user import User
from .sessions import RateLimitCounter, UserSession
from .ideas import (
    AcceptancePurpose, AuthorStatus, ChallengeRules, CoauthorInvitation, ChallengeTerms, Confidentiality, Idea, IdeaAttachment,
    IdeaAuthor, IdeaAward, IdeaRevision, IdeaScore, IdeaStatus, IncentiveKind, IPModel, ReviewCriterion,
    ReviewerAppointment, ReviewerInvitation, ReviewerKind, ReviewNote, SealedViewLog, TermsAcceptance, WhoMaySubmit,
)
from .invitations import Invitation, InvitationState
from .judging import (
    ConflictDeclaration, JudgingRound, PanelComment, RoundAssignment, RoundCriterion, RoundEntry, RoundPanelist,
    RoundScore,
)
from .moderation import (
    Appeal, BlockedDomain, ItemModeration, ModerationAction, ModerationActionUser, ModerationFlag,
    ModeratorScope, Report, ReportAuthor,
)
from .insights import ChallengeReview, IdeaFate, ReviewOutcome
from .agreements import (
    AgreementAccess, AgreementPerson, AgreementStatus, AssetFile, DataAgreement, DataSharingSheet, DutyReminder,
    EndOfTerm,
)
from .engagement import (
    Answer, AssetRequest, AssetTerms, Comment, EngagementRules, Question, RequestEvent,
)

__all__ = [
    "AgreementAccess", "AgreementPerson", "AgreementStatus", "AssetFile", "DataAgreement", "DataSharingSheet",
    "DutyReminder", "EndOfTerm",
    "AcceptancePurpose", "AccessGrant", "Announcement", "Answer", "ApiToken", "Appeal", "Asset", "AssetKind", "AssetRequest",
    "AssetTerms", "AuditEvent", "SearchDocument", "SearchTerm", "AuthorStatus", "BlockedDomain", "Challenge", "ChallengeRules",
    "ChallengeReview", "ChallengeTerms", "Channel", "IdeaFate", "ReviewOutcome", "ConflictDeclaration", "JudgingRound", "PanelComment", "RoundAssignment",
    "RoundCriterion", "RoundEntry", "RoundPanelist", "RoundScore", "CoauthorInvitation", "Comment", "DatabaseIdentity", "DeadlineReminder", "Follow", "FollowKind", "Confidentiality", "EngagementRules", "Failure", "Idea",
    "IdeaAttachment", "IdeaAuthor", "IdeaAward", "IdeaRevision", "IdeaScore", "IdeaStatus",
    "IncentiveKind", "Invitation", "InvitationList", "InvitationState", "IPModel", "Item",
    "ItemKind", "ItemList", "ListInvitation", "ItemModeration", "ItemTag", "ListMember", "ListShare", "MailStatus", "Membership",
    "MODEL_BY_KIND", "ModerationAction", "ModerationActionUser", "ModerationFlag",
    "ModeratorScope", "Notification", "NotificationPref", "Organisation", "OrgKind", "OrgRole", "OutgoingMail",
    "Question", "RateLimitCounter", "Report", "ReportAuthor", "RequestEvent", "ReviewCriterion", "ReviewerAppointment", "ReviewerInvitation",
    "ReviewerKind", "ReviewNote", "SealedViewLog", "SearchOutbox", "SiteRole", "Status",
    "TermsAcceptance", "User", "UserSession", "utcnow", "Visibility", "Webhook", "WebhookDelivery", "WhoMaySubmit",
]
