"""Server-side sessions and shared rate-limit counters.

`UserSession`: one row per sign-in. The signed session cookie carries only a random session
id; the row (found by the id's SHA-256, never the id itself) says whose session it is and
whether it still holds: not revoked (sign-out, "sign out other sessions", password change,
suspension, ban), within the idle and absolute timeouts, and stamped with the account's
current `session_version`. auth_loader.py checks it on every request in one indexed query.

`RateLimitCounter`: the fixed-window counters of the `limits` library when no Redis is
configured (marketplace/ratelimit.py), shared by every web process through the
database.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow


class UserSession(db.Model):
    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_user_active", "user_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 (hex) of the random session id in the cookie: a copy of this table cannot be
    # replayed as cookies.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # The account's session_version when the session began: bumping the account's version
    # (password change, suspension, ban, an operator's reset) ends every session at once,
    # even one whose row a bulk revocation missed.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    # A summary for the account page ("Firefox on Linux", the address it began from), not a
    # fingerprint: sessions are not bound to either (addresses change on phones).
    ip: Mapped[str] = mapped_column(String(45), default="")
    user_agent: Mapped[str] = mapped_column(String(120), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)

    user = relationship("User")

    def __repr__(self) -> str:  # pragma: no cover
        return f"<UserSession {self.id} user={self.user_id}>"


class RateLimitCounter(db.Model):
    __tablename__ = "rate_limit_counters"

    # The limiter's key (limit, client address or account, route), hashed when long.
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    # Seconds since the epoch (time.time()) at which the window ends: compared with the
    # clock in SQL on every backend, so a float, not a datetime.
    expires_at: Mapped[float] = mapped_column(Float, index=True)
