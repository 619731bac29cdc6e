"""Data-sharing agreements on assets (issue 17): the versioned agreement sheet an asset is
offered under, the asset's files, the agreements between two organisations that an accepted
request becomes, the people named in them, the log of every access to a shared file, and
the reminders sent before post-termination duties fall due.

Who may see or do what with these rows is decided in marketplace/policy/agreements.py;
writes go through marketplace/services/agreements.py.
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import PublishedVersion, StrEnum, UTCDateTime, utcnow


class EndOfTerm(StrEnum):
    """What the partner does with the data when the agreement ends."""

    DELETE = "delete"
    RETURN = "return"

    @property
    def label(self) -> str:
        return {"delete": "Delete the data", "return": "Return the data"}[self.value]


class AgreementStatus(StrEnum):
    PROPOSED = "proposed"  # the owner accepted the request; waiting for the partner's acceptance
    ACTIVE = "active"      # accepted; access runs from starts_at until ends_at (checked at access time)
    ENDED = "ended"        # ended early by either side (or by a phase-out), with a reason
    DECLINED = "declined"  # the partner did not accept the proposal


class DataSharingSheet(PublishedVersion, db.Model):
    """One immutable version of an asset's data-sharing agreement sheet, with its canonical
    JSON and SHA-256 digest (the same canonicalisation as challenge terms sheets)."""

    __tablename__ = "data_sharing_sheets"
    __table_args__ = (UniqueConstraint("item_id", "version"),)
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(Text)
    allowed_uses: Mapped[str] = mapped_column(Text)
    # One role a line (canonical form: a sorted list); only people named in these roles get access.
    access_roles: Mapped[str] = mapped_column(Text)
    duration_days: Mapped[int] = mapped_column(Integer)
    onward_sharing: Mapped[bool] = mapped_column(Boolean, default=False)
    end_of_term: Mapped[str] = mapped_column(String(16))
    end_of_term_days: Mapped[int] = mapped_column(Integer, default=30)
    confidentiality_days: Mapped[int] = mapped_column(Integer, default=0)
    surviving_terms: Mapped[str] = mapped_column(Text, default="")
    publication_rules: Mapped[str] = mapped_column(Text)
    personal_data: Mapped[bool] = mapped_column(Boolean, default=False)
    governing_law: Mapped[str] = mapped_column(String(200))

    item = relationship("Item")

    @property
    def roles(self) -> list[str]:
        return [r for r in (self.access_roles or "").split("\n") if r]

    @property
    def document(self) -> dict:
        return json.loads(self.canonical)


class AssetFile(db.Model):
    """A file of an asset, stored outside static/ under a generated name; served only through
    the policy (members of the owning organisation, and people named in an agreement in force)."""

    __tablename__ = "asset_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(160))
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    item = relationship("Item")


class DataAgreement(db.Model):
    """An agreement between the asset's organisation (owner) and a partner organisation, made
    from an accepted asset request under one sheet version. People named in it (AgreementPerson)
    reach the asset's files from ``starts_at`` until ``ends_at``; the end is checked by the
    policy at access time, so nothing has to run for access to stop."""

    __tablename__ = "data_agreements"
    __table_args__ = (Index("ix_data_agreements_partner", "partner_org_id", "status"),
                      Index("ix_data_agreements_owner", "owner_org_id", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("asset_requests.id", ondelete="SET NULL"),
                                                   nullable=True, unique=True)
    owner_org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    partner_org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    sheet_id: Mapped[int] = mapped_column(ForeignKey("data_sharing_sheets.id", ondelete="RESTRICT"))
    sheet_version: Mapped[int] = mapped_column(Integer)
    sheet_digest: Mapped[str] = mapped_column(String(64))
    # The sheet version this partner accepted before for the same asset (a re-acceptance).
    previous_sheet_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    previous_sheet_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=AgreementStatus.PROPOSED.value)
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    ended_side: Mapped[str | None] = mapped_column(String(12), nullable=True)  # owner | partner
    end_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    item = relationship("Item")
    request = relationship("AssetRequest")
    owner_org = relationship("Organisation", foreign_keys=[owner_org_id])
    partner_org = relationship("Organisation", foreign_keys=[partner_org_id])
    sheet = relationship("DataSharingSheet")
    people = relationship("AgreementPerson", back_populates="agreement", order_by="AgreementPerson.id",
                          cascade="all, delete-orphan")

    @property
    def finished_at(self) -> datetime | None:
        """When access ended or ends: early end, else the agreed end date."""
        return self.ended_at or self.ends_at


class AgreementPerson(db.Model):
    """A person of the partner organisation named in an agreement, in one of the sheet's roles."""

    __tablename__ = "agreement_people"
    __table_args__ = (UniqueConstraint("agreement_id", "user_id"), Index("ix_agreement_people_user", "user_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("data_agreements.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(80))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    agreement = relationship("DataAgreement", back_populates="people")
    user = relationship("User")


class AgreementAccess(db.Model):
    """One access to a shared file under an agreement: who, when, which file. Both parties see it."""

    __tablename__ = "agreement_access_log"
    __table_args__ = (Index("ix_agreement_access_agreement", "agreement_id", "id"),)
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("data_agreements.id", ondelete="CASCADE"))
    file_id: Mapped[int | None] = mapped_column(ForeignKey("asset_files.id", ondelete="SET NULL"), nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    filename: Mapped[str] = mapped_column(String(160))
    accessed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user = relationship("User")


class DutyReminder(db.Model):
    """A reminder of a post-termination duty already sent (the key makes sending idempotent)."""

    __tablename__ = "duty_reminders"

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(160), unique=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
