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
    # A job that failed: how often, the last error (with its traceback), and when it may run
    # again (exponential back-off). After SEARCH_MAX_ATTEMPTS failures it is *parked*: kept,
    # shown to operators (`flask search stats`, /admin/search), and skipped by the writer
    # until someone retries it, so it never blocks the jobs behind it.
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    parked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DatabaseIdentity(db.Model):
    """One row: a random id given to this database when it was created. The search index
    records it (with the URL) so an index is never served against another database."""

    __tablename__ = "database_identity"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
