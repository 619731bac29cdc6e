"""The API's request and response schemas, declared once with pydantic: they validate what
callers send and are the OpenAPI document's components (pydantic writes JSON Schema 2020-12,
which OpenAPI 3.1 uses as is).

Request bodies forbid unknown fields (`extra="forbid"`): a field a caller may not set
(`org_id`, `visibility` on an idea, `status`, `role` where no role is asked for, `user_id`...)
is refused with 422 and nothing is applied. Response schemas describe what is sent; they
leave room for fields added later.
"""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..models import AssetKind, IdeaStatus, OrgKind
from ..models.engagement import RequestKind
from ..models.moderation import ActionKind, ReportCategory
from ..models.notify import Channel
from ..notify import CATEGORIES
from .core import PageMeta, PageQuery

# Literal[("a", "b")] is Literal["a", "b"]: the enums' values, listed once in the models.
OrgKindName = Literal[tuple(OrgKind.values())]  # type: ignore[valid-type]
AssetKindName = Literal[tuple(AssetKind.values())]  # type: ignore[valid-type]
RequestKindName = Literal[tuple(RequestKind.values())]  # type: ignore[valid-type]
ActionKindName = Literal[tuple(ActionKind.values())]  # type: ignore[valid-type]
ReportCategoryName = Literal[tuple(ReportCategory.values())]  # type: ignore[valid-type]
IdeaStatusName = Literal[tuple(IdeaStatus.values())]  # type: ignore[valid-type]
ChannelName = Literal[tuple(Channel.values())]  # type: ignore[valid-type]
CategoryName = Literal[tuple(CATEGORIES)]  # type: ignore[valid-type]

ID = Field(ge=1, le=2**63 - 1)
Visibility = Literal["public", "registered", "invited", "organisation"]
ItemStatus = Literal["draft", "open", "closed", "archived"]
Role = Literal["owner", "admin", "member"]


# What marketplace/textclean.py refuses in JSON bodies (control characters XML cannot carry),
# stated in the schema so callers (and schemathesis) know it. Lone surrogates are refused too;
# they cannot be written in a pattern every regex dialect reads, and valid UTF-8 has none.
TEXT_PATTERN = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]*$"
Text = Annotated[str, Field(pattern=TEXT_PATTERN)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


# --------------------------------------------------------------------------- errors, meta


class ErrorDetail(Out):
    code: str = Field(description="bad_request, unauthenticated, invalid_token, insufficient_scope, forbidden, "
                                  "not_found, conflict, terms_changed, invalid_fields, rate_limited, ...")
    message: str
    fields: dict[str, str] = Field(description="Field (or query parameter) -> what is wrong with it.")


class Error(BaseModel):
    error: ErrorDetail
    status: int = Field(description="The HTTP status, repeated.")


class OpenAPIDocument(Out):
    openapi: str
    info: dict
    paths: dict


# --------------------------------------------------------------------------- organisations


class OrgRef(Out):
    slug: str
    name: str


class OrgOut(Out):
    slug: str
    name: str
    kind: str
    url: str


class OrgList(PageMeta):
    orgs: list[OrgOut]


class OrgCreate(Body):
    name: Text = Field(min_length=1, max_length=120)
    kind: OrgKindName
    description: Text = Field("", max_length=20_000)
    website: Text = Field("", max_length=255)


class MemberOut(Out):
    user_id: int
    display_name: str
    role: str
    integration: bool


class MemberList(PageMeta):
    members: list[MemberOut]


class MemberAdd(Body):
    email: Text = Field(min_length=3, max_length=254)
    role: Role = "member"


class MemberRole(Body):
    role: Role


# --------------------------------------------------------------------------- items


class ItemOut(Out):
    id: int
    kind: str
    title: str
    summary: str
    visibility: str
    status: str
    hidden: bool
    tags: list[str]
    organisation: OrgRef
    created_at: str | None
    published_at: str | None
    url: str


class ItemDetail(ItemOut):
    html: dict[str, str] | None


class ItemList(PageMeta):
    items: list[ItemOut]


class OrgDetail(Out):
    slug: str
    name: str
    kind: str
    description_html: str
    website: str
    items: list[ItemOut]


class ItemQuery(PageQuery):
    kind: Literal["challenge", "failure", "asset"] | None = None
    tag: str | None = Field(None, max_length=40)
    org: str | None = Field(None, max_length=140, description="Organisation slug.")
    status: ItemStatus | None = None
    sort: Literal["newest", "deadline", "oldest", "title"] = "newest"


class KindItemQuery(PageQuery):
    tag: str | None = Field(None, max_length=40)
    org: str | None = Field(None, max_length=140, description="Organisation slug.")
    status: ItemStatus | None = None
    sort: Literal["newest", "deadline", "oldest", "title"] = "newest"


class ItemFields(Body):
    title: Text | None = Field(None, min_length=1, max_length=200)
    summary: Text | None = Field(None, max_length=500)
    body: Text | None = Field(None, max_length=50_000)
    tags: list[Text] | None = Field(None, max_length=12)
    # challenges
    context: Text | None = Field(None, max_length=50_000)
    expected_outcome: Text | None = Field(None, max_length=50_000)
    opens_at: datetime | None = None
    deadline: datetime | None = None
    incentive_summary: Text | None = Field(None, max_length=300)
    # failures
    went_wrong: Text | None = Field(None, max_length=50_000)
    lessons: Text | None = Field(None, max_length=50_000)
    # assets
    asset_kind: AssetKindName | None = None
    availability: Text | None = Field(None, max_length=50_000)
    licensing_note: Text | None = Field(None, max_length=50_000)


class ItemCreate(ItemFields):
    kind: Literal["challenge", "failure", "asset"]
    title: Text = Field(min_length=1, max_length=200)
    visibility: Visibility = "organisation"
    publish: bool = False


class ItemUpdate(ItemFields):
    publish: bool = False


class VisibilityChange(Body):
    visibility: Visibility
    reason: Text = Field("", max_length=500)


class StatusChange(Body):
    status: ItemStatus


# --------------------------------------------------------------------------- terms


class TermsOut(Out):
    version: int
    digest: str
    created_at: str | None
    ip_model: str
    confidentiality: str
    url: str


class TermsList(Out):
    challenge_id: int
    current_digest: str | None
    current_version: int | None
    versions: list[TermsOut]


# --------------------------------------------------------------------------- ideas


class IdeaOut(Out):
    id: int
    challenge_id: int
    status: str
    sealed: bool
    title: str | None
    summary: str | None
    created_at: str | None
    submitted_at: str | None
    url: str


class IdeaDetail(IdeaOut):
    body_html: str | None
    revision: int
    content_sha256: str | None
    you_are: str


class IdeaList(PageMeta):
    ideas: list[IdeaOut]


class IdeaQuery(PageQuery):
    challenge_id: int | None = Field(None, ge=1, le=2**63 - 1)
    status: IdeaStatusName | None = None
    mine: bool = False


class IdeaSubmit(Body):
    title: Text = Field(min_length=1, max_length=200)
    summary: Text = Field("", max_length=500)
    body: Text = Field(min_length=1, max_length=50_000)
    accept_terms_digest: Text = Field(min_length=1, max_length=64,
                                     description="The digest of the current terms, which you accept.")
    coauthors: list[Text] = Field(default_factory=list, max_length=20, description="Co-authors' e-mail addresses.")
    confirm_eligibility: bool = False
    confirm_coi: bool = False
    coi_note: Text = Field("", max_length=2000)
    submission_key: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{16,64}$",
                                       description="Idempotency key: sending it again returns the same idea.")


class IdeaRevise(Body):
    title: Text = Field(min_length=1, max_length=200)
    summary: Text = Field("", max_length=500)
    body: Text = Field(min_length=1, max_length=50_000)
    accept_terms_digest: Text = Field(min_length=1, max_length=64)
    confirm_eligibility: bool = False
    confirm_coi: bool = False
    coi_note: Text = Field("", max_length=2000)


class CoauthorAccept(Body):
    accept_terms_digest: Text = Field(min_length=1, max_length=64,
                                      description="The digest of the current terms, which you accept.")
    confirm_eligibility: bool = False
    confirm_coi: bool = False
    coi_note: Text = Field("", max_length=2000)


class Reason(Body):
    reason: Text = Field(min_length=1, max_length=2000)


class Award(Body):
    incentive: int = Field(ge=0, le=100, description="Index of the incentive in the accepted terms.")
    note: Text = Field("", max_length=2000)


class Scores(Body):
    scores: dict[Annotated[str, Field(pattern=r"^[0-9]{1,18}$")], Annotated[int, Field(ge=0, le=10)]] = Field(
        min_length=1, max_length=50, description="Criterion id -> score (0 to 10).",
        json_schema_extra={"additionalProperties": False})


# --------------------------------------------------------------------------- engagement


class QuestionOut(Out):
    id: int
    item_id: int
    body_html: str
    asked_by: str | None
    answered: bool
    answer_html: str | None
    created_at: str | None


class QuestionList(PageMeta):
    questions: list[QuestionOut]


class QuestionAsk(Body):
    body: Text = Field(min_length=1, max_length=5000)
    show_name: bool = False


class PostBody(Body):
    body: Text = Field(min_length=1, max_length=10_000)


class CommentAdd(Body):
    body: Text = Field(min_length=1, max_length=10_000)
    parent_id: int | None = Field(None, ge=1, le=2**63 - 1)


class CommentOut(Out):
    id: int
    item_id: int
    parent_id: int | None
    body_html: str
    author: str | None
    pinned: bool
    created_at: str | None


class CommentList(PageMeta):
    comments: list[CommentOut]


class AnswerOut(Out):
    id: int
    question_id: int
    body_html: str


class RequestOut(Out):
    id: int
    item_id: int
    kind: str
    status: str
    message_html: str
    terms_version: int | None
    terms_digest: str | None
    requester_org: OrgRef | None
    created_at: str | None


class RequestList(PageMeta):
    requests: list[RequestOut]


class RequestSend(Body):
    kind: RequestKindName
    message: Text = Field("", max_length=5000)
    terms_version: int | None = Field(None, ge=1, le=1_000_000)
    terms_digest: Text | None = Field(None, max_length=64)
    on_behalf_of: Text | None = Field(None, max_length=140, description="Slug of an organisation you administer.")


class RequestDecision(Body):
    decision: Literal["accept", "decline", "follow-up"]
    message: Text = Field("", max_length=5000)


class RequestWithdraw(Body):
    message: Text = Field("", max_length=5000)


# --------------------------------------------------------------------------- invitations


class InvitationOut(Out):
    id: int
    item_id: int
    email: str
    state: str
    created_at: str | None
    expires_at: str | None
    access_until: str | None


class InvitationCreated(InvitationOut):
    accept_url: str = Field(description="Shown once: the link carries the invitation's token.")


class InvitationList(PageMeta):
    invitations: list[InvitationOut]


class InvitationCreate(Body):
    email: Text = Field(min_length=3, max_length=254)
    days: int = Field(14, ge=1, le=90)
    access_until: datetime | None = None


class InvitationToken(Body):
    token: Text = Field(min_length=10, max_length=200)


class InvitationAnswer(Out):
    id: int
    item_id: int
    state: str


# --------------------------------------------------------------------------- lists


class ListOut(Out):
    id: int
    name: str
    description: str
    organisation: OrgRef


class ListList(PageMeta):
    lists: list[ListOut]


class ListCreate(Body):
    name: Text = Field(min_length=1, max_length=120)
    description: Text = Field("", max_length=2000)


class ListMemberOut(Out):
    id: int
    list_id: int
    user: str | None
    organisation: OrgRef | None
    expires_at: str | None
    active: bool


class ListMemberList(PageMeta):
    members: list[ListMemberOut]


class ListMemberAdd(Body):
    email: Text | None = Field(None, max_length=254)
    org: Text | None = Field(None, max_length=140, description="Slug of a member organisation.")
    expires_at: datetime | None = None


# --------------------------------------------------------------------------- search


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    q: str = Field("", max_length=500)
    sort: Literal["relevance", "newest", "deadline"] | None = None
    page: int = Field(1, ge=1, le=10_000)
    per_page: int = Field(20, ge=1, le=100)


class SearchHit(Out):
    key: str
    type: str
    id: int
    kind: str
    title: str
    url: str | None
    snippet: str
    score: float


class FacetValueOut(Out):
    value: str
    label: str
    count: int


class SearchOut(PageMeta):
    q: str
    sort: str
    results: list[SearchHit]
    facets: dict[str, list[FacetValueOut]]
    suggestion: str | None
    notice: str | None


# --------------------------------------------------------------------------- moderation


class ReportCreate(Body):
    target_type: Text = Field(min_length=1, max_length=32, description="challenge, failure, asset, organisation, "
                                                                     "user, idea, question, answer, comment, "
                                                                     "asset_request")
    target_id: int = Field(ge=1, le=2**63 - 1)
    category: ReportCategoryName
    note: Text = Field("", max_length=2000)


class ReportOut(Out):
    id: int
    target_type: str
    target_id: int
    category: str
    status: str
    created_at: str | None


class ReportList(PageMeta):
    reports: list[ReportOut]


class ModerationActionCreate(Body):
    target_type: Text = Field(min_length=1, max_length=32)
    target_id: int = Field(ge=1, le=2**63 - 1)
    kind: ActionKindName
    reason: Text = Field(min_length=1, max_length=2000)
    rule: Text | None = Field(None, max_length=200)
    days: int | None = Field(None, ge=1, le=3650)
    account_id: int | None = Field(None, ge=1, le=2**63 - 1,
                                   description="For suspend, ban, reinstate: which author's account.")


class ModerationActionOut(Out):
    id: int
    kind: str
    target_type: str
    target_id: int


# --------------------------------------------------------------------------- me


class MeOrg(Out):
    id: int
    role: str


class MeOut(Out):
    authenticated: bool
    id: int | None = None
    display_name: str | None = None
    site_role: str | None = None
    organisations: list[MeOrg] | None = None
    token: dict | None = None


class GrantOut(Out):
    id: int
    item_id: int
    expires_at: str | None
    via_org: OrgRef | None


class GrantList(Out):
    grants: list[GrantOut]


class ReceiptOut(Out):
    id: int
    purpose: str
    challenge_id: int
    idea_id: int | None
    terms_version: int
    terms_digest: str
    accepted_at: str | None
    receipt_url: str


class ReceiptList(PageMeta):
    receipts: list[ReceiptOut]


class NotificationOut(Out):
    id: int
    kind: str
    message: str
    url: str
    shown: bool = Field(description="False when it is about something you may no longer see: "
                                    "the message and link are then withheld.")
    created_at: str | None
    read: bool


class NotificationList(PageMeta):
    notifications: list[NotificationOut]


class Count(Out):
    updated: int


class NotificationCategoryOut(Out):
    key: str
    label: str
    channel: ChannelName


class NotificationSettingsOut(Out):
    categories: list[NotificationCategoryOut] = Field(
        description="Each kind of notification and how you hear about it: site (in the site only), instant "
                    "(and by e-mail at once), digest (and in a daily e-mail digest), off.")


class NotificationSettingsChange(Body):
    channels: dict[CategoryName, ChannelName] = Field(
        min_length=1, description="Kind of notification -> channel; kinds not named keep their channel.")
