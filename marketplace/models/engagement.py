"""Engagement on items: participation rules, challenge Q&A, failure discussions, asset
licence terms and the private requests sent against them.

Who may see or do what with these rows is decided in marketplace/policy/engagement.py;
writes go through marketplace/services/engagement.py.

Every piece of user content here (Question, Answer, Comment, AssetRequest) carries
``author_id``, ``hidden_at`` and ``hidden_reason`` so moderation can hide it (see
marketplace/moderation/registry.py).
"""
from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import PublishedVersion, StrEnum, UTCDateTime, utcnow


class Participation(StrEnum):
    """Who may comment, ask or request on an item (on top of being able to see it)."""

    REGISTERED = "registered"      # any signed-in user who may see the item
    INVITED = "invited"            # members, and holders of invited access (grant or list)
    ORGANISATION = "organisation"  # members of the owning organisation
    NOBODY = "nobody"

    @property
    def label(self) -> str:
        return {
            "registered": "Any signed-in user who can see it",
            "invited": "Invited people and organisations, and our members",
            "organisation": "Members of our organisation only",
            "nobody": "Nobody",
        }[self.value]


class LicenceKind(StrEnum):
    EXCLUSIVE = "exclusive"
    NON_EXCLUSIVE = "non-exclusive"
    OPEN = "open"
    COLLABORATION_ONLY = "collaboration-only"


class FeeModel(StrEnum):
    NONE = "none"                # collaboration only: nothing is licensed
    FREE = "free"
    FIXED = "fixed-fee"
    ROYALTY = "royalty"
    FIXED_PLUS_ROYALTY = "fixed-plus-royalty"
    NEGOTIABLE = "negotiable"


class RequestKind(StrEnum):
    INTEREST = "interest"
    LICENCE = "licence"
    COLLABORATION = "collaboration"


class RequestStatus(StrEnum):
    PENDING = "pending"            # waiting for the owning organisation
    FOLLOW_UP = "follow-up"        # the organisation proposed a follow-up; waiting for the requester
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"


OPEN_REQUEST_STATUSES = (RequestStatus.PENDING.value, RequestStatus.FOLLOW_UP.value)


class EngagementRules(db.Model):
    """The participation rules an item's owners declare; an item without a row uses
    ``DEFAULTS``. Also holds the discussion's closed state (a declared rule too)."""

    __tablename__ = "engagement_rules"

    DEFAULTS: ClassVar[dict] = {
        "comment_rule": Participation.REGISTERED.value,
        "ask_rule": Participation.REGISTERED.value,
        "request_rule": Participation.REGISTERED.value,
        "open_until": None,
        "question_cutoff_hours": 48,
        "max_open_requests": 1,
    }

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), unique=True)
    comment_rule: Mapped[str] = mapped_column(String(16), default=Participation.REGISTERED.value)
    ask_rule: Mapped[str] = mapped_column(String(16), default=Participation.REGISTERED.value)
    request_rule: Mapped[str] = mapped_column(String(16), default=Participation.REGISTERED.value)
    # Participation (comment/ask/request) ends at this time, if set.
    open_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Questions close this many hours before a challenge's deadline.
    question_cutoff_hours: Mapped[int] = mapped_column(Integer, default=48)
    max_open_requests: Mapped[int] = mapped_column(Integer, default=1)
    discussion_closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)

    item = relationship("Item")


class _Content:
    """Columns every piece of engagement content shares (moderation relies on them)."""

    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True,
                                                  index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    hidden_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    @property
    def is_hidden(self) -> bool:
        return self.hidden_at is not None


class Question(_Content, db.Model):
    """A clarifying question on a challenge. Unanswered: seen by the asker and the posting
    organisation; answered: published to everyone who may see the challenge."""

    __tablename__ = "questions"
    __table_args__ = (Index("ix_questions_item", "item_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    show_name: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text, default="")
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    item = relationship("Item")
    author = relationship("User")
    answer = relationship("Answer", back_populates="question", uselist=False, lazy="selectin")

    @property
    def is_answered(self) -> bool:
        return self.answer is not None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class Answer(_Content, db.Model):
    """The posting organisation's answer; one per question. Answers are not deleted (every
    participant may have relied on them); moderators can hide them."""

    __tablename__ = "answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), unique=True)
    # Denormalised from the question so moderation and lists can filter by item directly.
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text, default="")

    question = relationship("Question", back_populates="answer")
    item = relationship("Item")
    author = relationship("User")


class Comment(_Content, db.Model):
    """A comment on a failure, or (with ``parent_id``) a "what we learned too" reply to a
    top-level comment: threads are one level deep."""

    __tablename__ = "comments"
    __table_args__ = (Index("ix_comments_item", "item_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"), nullable=True,
                                                  index=True)
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text, default="")
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pinned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pinned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)

    item = relationship("Item")
    author = relationship("User", foreign_keys="Comment.author_id")
    parent = relationship("Comment", remote_side=[id], back_populates="replies")
    replies = relationship("Comment", back_populates="parent", order_by="Comment.created_at")

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


class AssetTerms(PublishedVersion, db.Model):
    """One immutable version of an asset's licence terms, with its canonical JSON and
    SHA-256 digest; requests reference the exact version and digest their sender saw."""

    __tablename__ = "asset_terms"
    __table_args__ = (UniqueConstraint("item_id", "version"),)
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    licence_kind: Mapped[str] = mapped_column(String(24))
    field_of_use: Mapped[str] = mapped_column(String(200), default="")
    territory: Mapped[str] = mapped_column(String(120), default="")
    duration: Mapped[str] = mapped_column(String(120), default="")
    fee_model: Mapped[str] = mapped_column(String(24))
    notes: Mapped[str] = mapped_column(Text, default="")

    item = relationship("Item")

    @property
    def collaboration_only(self) -> bool:
        return self.licence_kind == LicenceKind.COLLABORATION_ONLY.value


class AssetRequest(_Content, db.Model):
    """Interest, a licence request or a collaboration request for an asset. Private to the
    two parties: the requester (and, when sent on behalf of an organisation, its owners and
    admins) and the owning organisation's owners and admins.

    ``open_key`` is set while the request is open and cleared when it is decided or
    withdrawn; its unique constraint makes parallel duplicates impossible.
    """

    __tablename__ = "asset_requests"
    __table_args__ = (Index("ix_asset_requests_item", "item_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    requester_org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="SET NULL"),
                                                         nullable=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    terms_id: Mapped[int | None] = mapped_column(ForeignKey("asset_terms.id", ondelete="RESTRICT"), nullable=True)
    terms_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    terms_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    message_html: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.PENDING.value)
    open_key: Mapped[str | None] = mapped_column(String(80), unique=True, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    item = relationship("Item")
    author = relationship("User")
    requester_org = relationship("Organisation")
    terms = relationship("AssetTerms")
    events = relationship("RequestEvent", order_by="RequestEvent.id", back_populates="request")

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_REQUEST_STATUSES

    @property
    def party(self) -> str:
        """The requesting party: a person, or an organisation acting through its admins."""
        return f"org:{self.requester_org_id}" if self.requester_org_id else f"user:{self.author_id}"


class RequestEvent(db.Model):
    """The append-only history of a request, seen by both parties."""

    __tablename__ = "asset_request_events"
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("asset_requests.id", ondelete="CASCADE"), index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    # sent, accepted, declined, follow-up, replied, withdrawn
    action: Mapped[str] = mapped_column(String(16))
    side: Mapped[str] = mapped_column(String(12))  # requester | owner
    message: Mapped[str] = mapped_column(Text, default="")
    message_html: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    request = relationship("AssetRequest", back_populates="events")
    actor = relationship("User")

