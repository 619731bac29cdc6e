"""Invitation lists curated by (cluster) organisations and attached to `invited` items."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow
from .invitations import MailedLinkState


class InvitationList(db.Model):
    __tablename__ = "invitation_lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    organisation = relationship("Organisation")
    members = relationship("ListMember", cascade="all, delete-orphan", back_populates="list")
    shares = relationship("ListShare", cascade="all, delete-orphan")


class ListMember(db.Model):
    """A person or a member organisation on a list; active until removed or expired."""

    __tablename__ = "list_members"
    __table_args__ = (
        Index("ix_list_members_user", "user_id", "list_id"),
        Index("ix_list_members_org", "member_org_id", "list_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(
        ForeignKey("invitation_lists.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    member_org_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), nullable=True
    )
    added_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    list = relationship("InvitationList", back_populates="members")
    user = relationship("User", foreign_keys=[user_id])
    member_org = relationship("Organisation", foreign_keys=[member_org_id])

    def is_active(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        if self.removed_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now


class ListShare(db.Model):
    """Another organisation allowed to attach the list to its own items."""

    __tablename__ = "list_shares"
    __table_args__ = (UniqueConstraint("list_id", "org_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("invitation_lists.id", ondelete="CASCADE"))
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ItemList(db.Model):
    """A list attached to an item: its active members may see the item while on the list."""

    __tablename__ = "item_lists"
    __table_args__ = (UniqueConstraint("item_id", "list_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    list_id: Mapped[int] = mapped_column(
        ForeignKey("invitation_lists.id", ondelete="CASCADE"), index=True
    )
    attached_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    list = relationship("InvitationList")
    item = relationship("Item")


class ListInvitation(MailedLinkState, db.Model):
    """A person invited to an invitation list by e-mail address (account or not).

    The mailed token is kept only as its SHA-256; the link works once. Accepting (signed in
    with the invited address, or registering from the link, which proves it) adds a
    `ListMember` for the account; revoking an accepted invitation removes that member.
    """

    __tablename__ = "list_invitations"
    __table_args__ = (Index("ix_list_invitations_list_email", "list_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("invitation_lists.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # End of the list membership the invitation offers (copied to the member on acceptance).
    member_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("list_members.id", ondelete="SET NULL"),
                                                  nullable=True)
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)

    list = relationship("InvitationList")
    member = relationship("ListMember")
