"""E-mail invitations to one challenge, failure or asset.

The token itself is never stored: only its SHA-256, so a copy of the database cannot be
turned into working links. An invitation is single-use; accepting it creates an
`AccessGrant` (reason "invitation") and revoking an accepted invitation revokes that grant.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import StrEnum, UTCDateTime, utcnow


class InvitationState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    REVOKED = "revoked"
    EXPIRED = "expired"


class MailedLinkState:
    """State and masked address of a row answered through a mailed single-use link (item
    invitations, list invitations, reviewer invitations). The row has `expires_at`,
    `accepted_at`, `declined_at`, `revoked_at` and `email`."""

    def state(self, now: datetime | None = None) -> str:
        """Ended states win over acceptance: a revoked acceptance is revoked."""
        now = now or utcnow()
        if self.revoked_at is not None:
            return InvitationState.REVOKED.value
        if self.declined_at is not None:
            return InvitationState.DECLINED.value
        if self.accepted_at is not None:
            return InvitationState.ACCEPTED.value
        if self.expires_at is None:
            # never treated as open-ended
            raise ValueError(f"{type(self).__name__} {self.id} has no expiry")
        if self.expires_at <= now:
            return InvitationState.EXPIRED.value
        return InvitationState.PENDING.value

    @property
    def masked_email(self) -> str:
        """e.g. ``i•••@contributor.test``: enough for the invitee to recognise, little for others."""
        local, _, domain = self.email.partition("@")
        return f"{local[:1]}•••@{domain}"


class Invitation(MailedLinkState, db.Model):
    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_item_email", "item_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    # Normalised (stripped, lower-case) address the link was sent to.
    email: Mapped[str] = mapped_column(String(254), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Optional end of the access the invitation gives (copied to the grant on acceptance).
    access_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    accepted_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    grant_id: Mapped[int | None] = mapped_column(
        ForeignKey("access_grants.id", ondelete="SET NULL"), nullable=True
    )

    item = relationship("Item")
    invited_by = relationship("User", foreign_keys=[invited_by_id])
    accepted_by = relationship("User", foreign_keys=[accepted_by_id])
    grant = relationship("AccessGrant")

    def __repr__(self) -> str:  # pragma: no cover
        return f"<Invitation {self.id} item={self.item_id} {self.state()}>"
