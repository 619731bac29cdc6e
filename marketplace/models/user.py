"""Accounts."""
from __future__ import annotations

from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import SiteRole, UTCDateTime, utcnow


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    display_name: Mapped[str] = mapped_column(String(80))
    password_hash: Mapped[str] = mapped_column(String(255))
    site_role: Mapped[str] = mapped_column(String(16), default=SiteRole.USER.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Bumped to end every session of the account at once (password change, suspension, ban):
    # each server-side session (UserSession) holds only while it carries the current value.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    suspended_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    banned: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set when the person followed a link mailed to this address (or registered from an
    # invitation sent to it); taking part in challenges needs it (policy/reach.py).
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # IANA name (marketplace/timezones.py): every time this person is shown is in it.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    # Set when the person deleted their account (services/people.py): the row stays so the
    # acceptances, receipts and decisions others rely on keep their author, under a
    # pseudonym; the personal data is gone and the account can never sign in again.
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    memberships = relationship("Membership", back_populates="user", cascade="all, delete-orphan")

    def get_id(self) -> str:
        # What Flask-Login keeps in the cookie; the session itself is the server-side row
        # named by the cookie's session id (marketplace/auth_loader.py).
        return str(self.id)

    @property
    def email_domain(self) -> str:
        return self.email.rsplit("@", 1)[-1].lower()

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def is_blocked(self) -> bool:
        if self.banned or self.deleted_at is not None:
            return True
        return self.suspended_until is not None and self.suspended_until > utcnow()

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return not self.is_blocked

    def __repr__(self) -> str:  # pragma: no cover
        return f"<User {self.id} {self.email}>"
