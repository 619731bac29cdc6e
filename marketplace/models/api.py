"""Programs' access: API tokens (personal and organisation), webhooks and their delivery outbox.

A token is stored only as the SHA-256 of its text (tokens are 256 random bits, so a fast hash
is enough: nobody can guess one to look up). A personal token acts as its owner. An
organisation token acts as its own integration account (``acting_user``), a member of the
organisation with the role its admins chose, as GitLab's project access tokens do with their
bot users: every service and every rule then sees an ordinary member, with no second code path.

A webhook's secret signs its deliveries (HMAC-SHA256), so it is kept as is, unlike tokens:
whoever holds the database can read it (and could equally read what the deliveries carry).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow


class ApiToken(db.Model):
    __tablename__ = "api_tokens"
    __table_args__ = (Index("ix_api_tokens_owner", "owner_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, shown in lists so a person can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[str] = mapped_column(String(400))  # space-separated
    # Personal tokens: the person. Organisation tokens: the admin who created it (None once
    # that account is deleted; the token belongs to the organisation, not to them).
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    org_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), nullable=True,
                                               index=True)
    # Whom the token acts as: the owner for personal tokens, the integration account for
    # organisation tokens.
    acting_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)

    acting_user = relationship("User", foreign_keys=[acting_user_id])
    owner = relationship("User", foreign_keys=[owner_id])
    organisation = relationship("Organisation")

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    @property
    def is_org_token(self) -> bool:
        return self.org_id is not None

    def is_usable(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class Webhook(db.Model):
    __tablename__ = "webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    events: Mapped[str] = mapped_column(String(400))  # space-separated
    secret: Mapped[str] = mapped_column(String(80))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    organisation = relationship("Organisation")

    @property
    def event_list(self) -> list[str]:
        return self.events.split()


class WebhookDelivery(db.Model):
    """One event for one endpoint: written in the transaction of the event, sent by the
    webhook worker (``flask webhooks deliver``), retried with back-off, then parked."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)  # the exact JSON body sent (signed as is)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # pending (waiting or between retries) | delivered | parked (gave up; can be re-sent)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)  # first 2,000 characters
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    redelivery_of_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="SET NULL"),
                                                         nullable=True)

    webhook = relationship("Webhook")
