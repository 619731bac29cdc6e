"""Moderation and governance: reports, moderator actions, appeals, discussion locks,
moderator scopes, automatic participation flags and blocked e-mail domains.

Reports and actions carry a *snapshot* of where their target lives (owning organisation,
context item and whether it is discussion content) taken when they are written. Content
never moves between organisations or challenges, and the snapshot lets the policy filter
the moderator queue in SQL with exactly the rule it applies to one row
(marketplace/policy/places.py).
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import StrEnum, UTCDateTime, utcnow


class ReportCategory(StrEnum):
    SPAM = "spam"
    CONFIDENTIAL = "confidential-information"
    IP_INFRINGEMENT = "ip-infringement"
    ABUSIVE = "abusive"
    PARTICIPATION_RULES = "participation-rules"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {
            "spam": "Spam",
            "confidential-information": "Confidential information disclosed",
            "ip-infringement": "IP infringement",
            "abusive": "Abusive",
            "participation-rules": "Breaks participation rules",
            "other": "Other",
        }[self.value]


class ReportStatus(StrEnum):
    OPEN = "open"
    DISMISSED = "dismissed"
    ACTIONED = "actioned"


class ActionKind(StrEnum):
    DISMISS = "dismiss"
    HIDE = "hide"
    RESTORE = "restore"
    REQUEST_EDIT = "request-edit"
    LOCK = "lock"
    UNLOCK = "unlock"
    DISQUALIFY = "disqualify"
    REQUALIFY = "requalify"
    SUSPEND = "suspend"
    BAN = "ban"
    REINSTATE = "reinstate"

    @property
    def label(self) -> str:
        return {
            "dismiss": "Dismiss the reports",
            "hide": "Hide",
            "restore": "Restore",
            "request-edit": "Ask the author to edit",
            "lock": "Lock discussion",
            "unlock": "Unlock discussion",
            "disqualify": "Disqualify the idea",
            "requalify": "Reinstate the idea",
            "suspend": "Suspend the account",
            "ban": "Ban the account",
            "reinstate": "Reinstate the account",
        }[self.value]

    @property
    def past(self) -> str:
        return {
            "dismiss": "reports dismissed",
            "hide": "hidden",
            "restore": "restored",
            "request-edit": "edit requested",
            "lock": "discussion locked",
            "unlock": "discussion unlocked",
            "disqualify": "disqualified",
            "requalify": "reinstated",
            "suspend": "account suspended",
            "ban": "account banned",
            "reinstate": "account reinstated",
        }[self.value]


# Actions taken *against* an author, which that author may appeal once.
APPEALABLE = frozenset({
    ActionKind.HIDE.value, ActionKind.REQUEST_EDIT.value, ActionKind.LOCK.value,
    ActionKind.DISQUALIFY.value, ActionKind.SUSPEND.value, ActionKind.BAN.value,
})


class AppealStatus(StrEnum):
    PENDING = "pending"
    UPHELD = "upheld"
    OVERTURNED = "overturned"


class FlagKind(StrEnum):
    OVER_LIMIT = "over-limit"
    BLOCKED_DOMAIN = "blocked-domain"
    CONFLICT_OF_INTEREST = "conflict-of-interest"
    NEAR_DUPLICATE = "near-duplicate"

    @property
    def label(self) -> str:
        return {
            "over-limit": "Over the submission limit through linked accounts",
            "blocked-domain": "Submitted from a blocked domain",
            "conflict-of-interest": "Undeclared conflict of interest",
            "near-duplicate": "Near-duplicate of another idea",
        }[self.value]


class FlagStatus(StrEnum):
    OPEN = "open"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


class _Placed:
    """Where a report/action/flag target lives, snapshotted at write time (see module doc)."""

    org_id: Mapped[int | None] = mapped_column(nullable=True, index=True)
    context_item_id: Mapped[int | None] = mapped_column(nullable=True, index=True)
    context_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    is_discussion: Mapped[bool] = mapped_column(Boolean, default=False)


class Report(_Placed, db.Model):
    __tablename__ = "moderation_reports"
    __table_args__ = (
        Index("ix_moderation_reports_target", "target_type", "target_id"),
        Index("ix_moderation_reports_status_created", "status", "created_at"),
        Index("ix_moderation_reports_reporter_created", "reporter_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[int] = mapped_column()
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    category: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=ReportStatus.OPEN.value)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    action_id: Mapped[int | None] = mapped_column(
        ForeignKey("moderation_actions.id", ondelete="SET NULL"), nullable=True
    )

    reporter = relationship("User", foreign_keys=[reporter_id])
    resolved_by = relationship("User", foreign_keys=[resolved_by_id])
    action = relationship("ModerationAction", foreign_keys=[action_id])
    author_rows = relationship("ReportAuthor", cascade="all, delete-orphan", lazy="selectin")

    @property
    def author_ids(self) -> list[int]:
        return [a.user_id for a in self.author_rows]

    @property
    def category_label(self) -> str:
        return ReportCategory(self.category).label if self.category in ReportCategory.values() else self.category

    @property
    def is_open(self) -> bool:
        return self.status == ReportStatus.OPEN.value


class ReportAuthor(db.Model):
    """The authors of a report's target when it was reported ("earlier reports on this author")."""

    __tablename__ = "moderation_report_authors"
    __table_args__ = (UniqueConstraint("report_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("moderation_reports.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


class ModerationAction(_Placed, db.Model):
    """One moderator decision. Never changed: reversing it is another action."""

    __tablename__ = "moderation_actions"
    __table_args__ = (Index("ix_moderation_actions_target", "target_type", "target_id"),)
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    moderator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    action: Mapped[str] = mapped_column(String(16))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[int] = mapped_column()
    target_label: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text)
    rule: Mapped[str | None] = mapped_column(String(300), nullable=True)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What the action replaced (e.g. the idea's previous status), so an appeal can undo it.
    data: Mapped[str] = mapped_column(Text, default="{}")
    # Set when this action undoes another (restore after hide, an overturned appeal, ...).
    reverses_id: Mapped[int | None] = mapped_column(
        ForeignKey("moderation_actions.id", ondelete="SET NULL"), nullable=True
    )

    moderator = relationship("User", foreign_keys=[moderator_id])
    affected_rows = relationship("ModerationActionUser", cascade="all, delete-orphan", lazy="selectin")
    appeal = relationship("Appeal", uselist=False, back_populates="action")

    @property
    def affected_ids(self) -> list[int]:
        return [a.user_id for a in self.affected_rows]

    @property
    def kind(self) -> ActionKind:
        return ActionKind(self.action)

    @property
    def payload(self) -> dict:
        return json.loads(self.data or "{}")


class ModerationActionUser(db.Model):
    """Who an action affects: they are told the reason and may appeal it."""

    __tablename__ = "moderation_action_users"
    __table_args__ = (UniqueConstraint("action_id", "user_id"),)
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("moderation_actions.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


class Appeal(db.Model):
    """One appeal per action (the unique constraint enforces it even under races)."""

    __tablename__ = "moderation_appeals"

    id: Mapped[int] = mapped_column(primary_key=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("moderation_actions.id", ondelete="CASCADE"), unique=True)
    appellant_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    statement: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=AppealStatus.PENDING.value, index=True)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    action = relationship("ModerationAction", back_populates="appeal", foreign_keys=[action_id])
    appellant = relationship("User", foreign_keys=[appellant_id])
    decided_by = relationship("User", foreign_keys=[decided_by_id])

    @property
    def is_pending(self) -> bool:
        return self.status == AppealStatus.PENDING.value


class ItemModeration(db.Model):
    """Moderation state of an item kept off the Item table: the discussion lock."""

    __tablename__ = "item_moderation"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), unique=True)
    discussion_locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    discussion_locked_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    discussion_lock_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class ModeratorScope(db.Model):
    """A moderator for the challenges of one organisation (site moderators need none)."""

    __tablename__ = "moderator_scopes"
    __table_args__ = (UniqueConstraint("user_id", "org_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)

    user = relationship("User", foreign_keys=[user_id])
    organisation = relationship("Organisation")


class ModerationFlag(_Placed, db.Model):
    """An automatic participation-rule check that fired, waiting for a moderator."""

    __tablename__ = "moderation_flags"
    __table_args__ = (UniqueConstraint("kind", "target_type", "target_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[int] = mapped_column()
    detail: Mapped[str] = mapped_column(Text, default="")
    related: Mapped[str] = mapped_column(Text, default="{}")  # JSON: ids of related ideas/users
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=FlagStatus.OPEN.value, index=True)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolution_note: Mapped[str | None] = mapped_column(Text, nullable=True)

    resolved_by = relationship("User", foreign_keys=[resolved_by_id])

    @property
    def kind_label(self) -> str:
        return FlagKind(self.kind).label if self.kind in FlagKind.values() else self.kind

    @property
    def related_data(self) -> dict:
        return json.loads(self.related or "{}")


class BlockedDomain(db.Model):
    """E-mail domains whose submissions are flagged (subdomains included)."""

    __tablename__ = "blocked_domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
