"""Reaching people: in-app notifications, each person's delivery choices, the mail outbox,
follows, announcements and the record of deadline reminders already given."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import StrEnum, UTCDateTime, utcnow


class Channel(StrEnum):
    """How a person hears about one kind of event."""

    SITE = "site"        # in the site only
    INSTANT = "instant"  # in the site and by e-mail at once
    DIGEST = "digest"    # in the site and in a daily e-mail digest
    OFF = "off"          # not at all

    @property
    def label(self) -> str:
        return {"site": "In the site only", "instant": "In the site and by e-mail at once",
                "digest": "In the site and in a daily e-mail digest", "off": "Not at all"}[self.value]


class MailStatus(StrEnum):
    PENDING = "pending"      # waiting for the worker (or for its next attempt)
    SENDING = "sending"      # claimed by one worker, which is handing it to the mail server
    SENT = "sent"
    FAILED = "failed"        # gave up (or interrupted mid-send: see marketplace/mail/worker.py)
    CANCELLED = "cancelled"  # the recipient may no longer see what it is about


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_unread", "user_id", "read_at"),
                      Index("ix_notifications_digest", "digest_pending", "user_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The event code (e.g. "idea.shortlisted"); people see its plain-words label instead.
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(500))
    url: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What it is about, so a list can ask the policy again when it is shown.
    about_type: Mapped[str | None] = mapped_column(String(24), nullable=True)
    about_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Waiting for the person's daily digest (their choice for this kind was "digest").
    digest_pending: Mapped[bool] = mapped_column(Boolean, default=False)


class NotificationPref(db.Model):
    """One person's choice for one kind of notification; no row means the kind's default."""

    __tablename__ = "notification_prefs"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    category: Mapped[str] = mapped_column(String(32), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class OutgoingMail(db.Model):
    """The mail outbox: every e-mail the site sends, written in the transaction of the change
    that causes it and sent by the worker (marketplace/mail/worker.py), which claims one row
    at a time and records the outcome."""

    __tablename__ = "outgoing_mail"
    __table_args__ = (Index("ix_outgoing_mail_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    to_email: Mapped[str] = mapped_column(String(254), index=True)
    # The recipient's account, when the mail is for one (the worker asks the policy again).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    # What sort of mail ("account.verify", "invitation.item", a notification category, ...).
    kind: Mapped[str] = mapped_column(String(40), default="")
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text, default="")
    headers_json: Mapped[str] = mapped_column(Text, default="{}")
    # The Message-ID, fixed when queued, so a message sent again keeps its identity.
    message_id: Mapped[str] = mapped_column(String(200), default="")
    # What the mail is about: listing pages show it only as far as their reader may see that.
    about_type: Mapped[str | None] = mapped_column(String(24), nullable=True)
    about_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Carries a one-time link (reset, verification, invitation): its text is dropped once sent.
    secret: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=MailStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Mails that must go out at most once (e.g. one moderation digest per moderator and day):
    # the unique key makes a second, even concurrent, queueing fail instead of sending twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True, nullable=True)


class FollowKind(StrEnum):
    CHALLENGE = "challenge"
    ORGANISATION = "organisation"
    TAG = "tag"


class Follow(db.Model):
    """Someone follows a challenge (announcements, deadline reminders), an organisation or a
    tag (new challenges)."""

    __tablename__ = "follows"
    __table_args__ = (UniqueConstraint("user_id", "target_kind", "target_key"),
                      Index("ix_follows_target", "target_kind", "target_key"))

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    target_kind: Mapped[str] = mapped_column(String(16))
    # The challenge's or organisation's id, or the tag, as text.
    target_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Announcement(db.Model):
    """A sponsor's message to a challenge's participants and followers."""

    __tablename__ = "announcements"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    item = relationship("Item")
    author = relationship("User")


class DeadlineReminder(db.Model):
    """A challenge's deadline reminder at one lead time was given (unique: at most once per
    deadline value, even with several workers)."""

    __tablename__ = "deadline_reminders"
    __table_args__ = (UniqueConstraint("item_id", "lead_hours", "deadline"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    lead_hours: Mapped[int] = mapped_column(Integer)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
