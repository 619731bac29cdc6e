"""In-app notifications and the outgoing mail log."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, utcnow


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_unread", "user_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(500))
    url: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # What the message names (its table and row), when it names something: the message is
    # shown only while its reader may still see that (moderators may hide it since).
    about_type: Mapped[str | None] = mapped_column(String(40), nullable=True)
    about_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class OutgoingMail(db.Model):
    """Every e-mail the site sends, written in the sender's transaction; a worker (or the
    SMTP settings) delivers it. Development shows them at /notifications/mail-log to admins."""

    __tablename__ = "outgoing_mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    to_email: Mapped[str] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Mails that must go out at most once (e.g. one moderation digest per moderator and day):
    # the unique key makes a second, even concurrent, queueing fail instead of sending twice.
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True, nullable=True)
