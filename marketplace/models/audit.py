"""Append-only, hash-chained governance events (see marketplace.audit for writing/verifying)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db
from .base import UTCDateTime, utcnow


class AuditEvent(db.Model):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_subject", "subject_type", "subject_id"),)
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(nullable=True)
    # The challenge/item an event belongs to, for per-item decision logs.
    item_id: Mapped[int | None] = mapped_column(nullable=True, index=True)
    data: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON
    # A unique prev_hash makes concurrent appends on the same head fail and retry,
    # so the chain can never fork.
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class SearchOutbox(db.Model):
    """Index jobs written in the same transaction as the change they reflect."""

    __tablename__ = "search_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    doc_type: Mapped[str] = mapped_column(String(16))
    doc_id: Mapped[int] = mapped_column()
    # True when the change may narrow who can see the document: applied before the
    # request reports success, or filtered out at query time until applied.
    narrowing: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
