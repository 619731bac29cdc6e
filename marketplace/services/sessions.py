"""Server-side sessions: begun at sign-in, ended at sign-out, all ended at once when the
account's password changes or it is suspended or banned.

The browser's (signed) session cookie carries a random session id; the database keeps only
its SHA-256 (`UserSession.token_hash`). A session holds while its row is not revoked, was
used within the idle timeout, began within the absolute timeout, and carries the account's
current `session_version` (`is_live`). auth_loader.py checks that on every request in one
indexed query. Ending every session of an account bumps the version *and* marks the rows
revoked: the version ends them even if a row were missed, the rows tell the account page
which sessions are gone.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from flask import current_app, has_app_context
from sqlalchemy import delete, func, or_, select, update

from ..extensions import db
from ..models import User, UserSession, utcnow

DEFAULT_IDLE_MINUTES = 120
DEFAULT_ABSOLUTE_DAYS = 14
DEFAULT_REMEMBER_IDLE_DAYS = 14
# last_seen_at is written at most this often per session (a write on every request would
# make each page a write transaction); the idle timeout is as precise as this.
TOUCH_SECONDS = 60
# Ended and expired rows are kept this long for the account page, then purged at sign-in.
KEEP_ENDED_DAYS = 30


def _setting(name: str, default: int) -> int:
    if has_app_context():
        return int(current_app.config.get(name) or default)
    return default


def idle_timeout(remember: bool = False) -> timedelta:
    """How long a session may go unused: SESSION_IDLE_MINUTES (2 hours), or for a session
    begun with "keep me signed in", SESSION_REMEMBER_IDLE_DAYS (14 days)."""
    if remember:
        return timedelta(days=_setting("SESSION_REMEMBER_IDLE_DAYS", DEFAULT_REMEMBER_IDLE_DAYS))
    return timedelta(minutes=_setting("SESSION_IDLE_MINUTES", DEFAULT_IDLE_MINUTES))


def absolute_timeout() -> timedelta:
    """How long a session may last however much it is used: SESSION_ABSOLUTE_DAYS (14 days)."""
    return timedelta(days=_setting("SESSION_ABSOLUTE_DAYS", DEFAULT_ABSOLUTE_DAYS))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def is_live(row: UserSession, user: User, now: datetime | None = None) -> bool:
    """Whether the session still signs `user` in (the user's own block is checked apart)."""
    now = now or utcnow()
    return (row.revoked_at is None
            and row.user_id == user.id
            and row.session_version == (user.session_version or 1)
            and now - row.last_seen_at <= idle_timeout(row.remember)
            and now - row.created_at <= absolute_timeout())


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chromium/", "Chromium"),
             ("Chrome/", "Chrome"), ("Safari/", "Safari"), ("curl/", "curl"), ("python", "Python"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def describe_agent(user_agent: str | None) -> str:
    """"Firefox on Linux": enough to recognise one's own sessions, not a fingerprint."""
    ua = user_agent or ""
    browser = next((name for token, name in _BROWSERS if token in ua), "Unknown browser")
    system = next((name for token, name in _SYSTEMS if token in ua), "")
    return f"{browser} on {system}" if system else browser


def _clean_ip(ip: str | None) -> str:
    ip = (ip or "").strip()
    return ip if re.fullmatch(r"[0-9A-Fa-f:.]{1,45}", ip) else ""


def begin(user: User, ip: str | None = None, user_agent: str | None = None,
          remember: bool = False) -> tuple[UserSession, str]:
    """A new session for `user`: (its row, the random id to put in the cookie). Also purges
    this account's sessions that ended long ago. Commits."""
    now = utcnow()
    keep_after = now - timedelta(days=KEEP_ENDED_DAYS)
    db.session.execute(delete(UserSession).where(
        UserSession.user_id == user.id,
        or_(UserSession.revoked_at < keep_after, UserSession.last_seen_at < keep_after)))
    token = new_token()
    row = UserSession(token_hash=hash_token(token), user_id=user.id, session_version=user.session_version or 1,
                      created_at=now, last_seen_at=now, remember=bool(remember), ip=_clean_ip(ip),
                      user_agent=describe_agent(user_agent))
    db.session.add(row)
    db.session.commit()
    return row, token


def find(token: str) -> tuple[UserSession, User] | None:
    """The session row for a cookie's session id, with its user: one query on a unique index."""
    if not isinstance(token, str) or not 20 <= len(token) <= 100:
        return None
    found = db.session.execute(
        select(UserSession, User).join(User, User.id == UserSession.user_id)
        .where(UserSession.token_hash == hash_token(token))
    ).first()
    return (found[0], found[1]) if found else None


def touch(row: UserSession, now: datetime | None = None) -> None:
    """Record that the session was used, at most every TOUCH_SECONDS. Written on a connection
    of its own, committed at once: the request's own transaction (possibly rolled back,
    possibly a read) is not touched."""
    now = now or utcnow()
    if now - row.last_seen_at < timedelta(seconds=TOUCH_SECONDS):
        return
    with db.engine.begin() as conn:
        conn.execute(update(UserSession).where(UserSession.id == row.id).values(last_seen_at=now))
    row.last_seen_at = now


def revoke(row: UserSession, reason: str = "signed out") -> None:
    """End one session (sign-out). Commits."""
    db.session.execute(update(UserSession).where(UserSession.id == row.id, UserSession.revoked_at.is_(None))
                       .values(revoked_at=utcnow(), revoked_reason=reason[:32]))
    db.session.commit()


def end_all(user: User, reason: str, keep: UserSession | None = None) -> int:
    """End every session of `user` (but `keep`, the one the person is using, if given): the
    account's session version is bumped and their rows revoked. Part of the caller's
    transaction (not committed here). Returns how many live rows were revoked."""
    new_version = (user.session_version or 1) + 1
    user.session_version = new_version
    q = update(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
    if keep is not None:
        q = q.where(UserSession.id != keep.id)
    result = db.session.execute(q.values(revoked_at=utcnow(), revoked_reason=reason[:32]))
    if keep is not None:
        db.session.execute(update(UserSession).where(UserSession.id == keep.id)
                           .values(session_version=new_version))
        keep.session_version = new_version
    return result.rowcount or 0


def end_every_account(reason: str) -> int:
    """End every session of every account at once (an operator's `users end-sessions --all`,
    e.g. after a suspected leak of the secret key): every account's session version is
    bumped and every live row revoked. Part of the caller's transaction. Returns how many
    live rows were revoked."""
    db.session.execute(update(User).values(session_version=func.coalesce(User.session_version, 1) + 1))
    result = db.session.execute(update(UserSession).where(UserSession.revoked_at.is_(None))
                                .values(revoked_at=utcnow(), revoked_reason=reason[:32]))
    return result.rowcount or 0


def end_others(user: User, current: UserSession) -> int:
    """"Sign out other sessions": every session of `user` but `current` ends. Commits."""
    n = end_all(user, "signed out elsewhere", keep=current)
    db.session.commit()
    return n


def live_sessions(user: User) -> list[UserSession]:
    """The account's sessions that still hold, most recently used first (the account page)."""
    now = utcnow()
    rows = db.session.execute(
        select(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None),
                                  UserSession.created_at > now - absolute_timeout())
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc()).limit(100)
    ).scalars().all()
    return [r for r in rows if is_live(r, user, now)]
