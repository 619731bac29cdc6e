"""Rate limits that hold across every web process: who is counted, how much, and where.

Where: Flask-Limiter counts in the storage named by RATELIMIT_STORAGE_URI. Unset, that is
``database://``: `DatabaseStorage` below, fixed-window counters in the site's own database
(table ``rate_limit_counters``), incremented atomically by one upsert, so every gunicorn
worker and every server on the same database shares them; no Redis needed. ``redis://...``
still works (the optional extra), and ``memory://`` counts per process (tests only).

Who: anonymous actions count per client address (the real one behind TRUSTED_PROXIES: see
`_trust_proxies` in marketplace/__init__.py); signed-in actions per account, so changing
address does not reset them. Sign-in counts twice: per address and per account (the e-mail
address typed), so neither many addresses against one account nor one address against many
accounts gets more tries than the limit. Forms that mail the address typed into them
(registration, password reset) count per mailbox too (`typed_mailbox`).

How much: `DEFAULTS` below, each overridable in the app's config (``RATELIMITS = {name:
"5/minute"}``), used by the views' ``@limiter.limit(limit_for(name), ...)`` decorators. A
request over a limit gets a 429 with a clear message and a Retry-After header (errors.py).
"""
from __future__ import annotations

import hashlib
import random
import time

from flask import current_app, request
from flask_login import current_user
from limits.errors import ConfigurationError
from limits.storage import Storage
from sqlalchemy import case, delete, func, select
from sqlalchemy.exc import SQLAlchemyError

DEFAULTS = {
    # Per client address.
    "signin_per_address": "30/minute",
    "register_per_address": "20/hour",
    "reset_per_address": "10/hour",        # "forgot my password" requests
    "account_links": "60/minute",          # opening a mailed verification link
    "account_link_posts": "30/hour",       # setting a password or confirming an address through a mailed link
    "unsubscribe_links": "60/minute",      # unsubscribe links in mails (no sign-in needed)
    "appeals_per_address": "20/hour",      # appeals through a mailed link (the account cannot sign in)
    # Per mailbox: the address typed into a form that mails it (hashed), so nobody floods one
    # mailbox from many places. Values that are no address are not counted (no mail goes out).
    "register_per_mailbox": "5/hour",
    "reset_per_mailbox": "3/hour",
    # Per account: the e-mail address typed into the sign-in form.
    "signin_per_account": "10/minute;50/hour",
    # Per signed-in account (per address for an anonymous caller, whom the view then refuses).
    "posts_per_account": "30/minute",      # questions, answers, comments, requests, edits
    "ideas_per_account": "20/hour",        # idea submissions and revisions
    "invitations_per_account": "120/hour",  # invitations sent (each creates a token and a mail)
    "invitation_links": "30/minute",       # accepting or declining through a link
    "verification_resends": "5/hour",      # a new verification mail
    "email_changes": "5/hour",             # a confirmation mail to a new address
    "follows_per_account": "120/hour",     # following and unfollowing
    "announcements_per_account": "30/hour",  # challenge announcements (each mails the participants)
}


def limit_for(name: str):
    """The limit `name` as Flask-Limiter reads it on each request: config RATELIMITS[name],
    else DEFAULTS[name]."""
    default = DEFAULTS[name]

    def value() -> str:
        return (current_app.config.get("RATELIMITS") or {}).get(name, default)

    value.__name__ = f"limit_{name}"
    return value


def client_address() -> str:
    return f"addr:{request.remote_addr or '-'}"


def account_or_address() -> str:
    """The signed-in account, else the client address."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return client_address()


def signin_account() -> str:
    """The account a sign-in attempt is for: the typed e-mail address, normalised and hashed
    (it is not kept in clear, even in the counters); the address when none was typed."""
    from .email_address import normalise

    email = request.form.get("email") or ""
    try:
        email = normalise(email)
    except Exception:  # noqa: BLE001 - whatever was typed is still one "account" to count
        email = email.strip().lower()
    if not email:
        return client_address()
    return "signin:" + hashlib.sha256(email.encode("utf-8", "replace")).hexdigest()[:32]


def typed_mailbox() -> str:
    """The mailbox a form that mails it names: the typed address, hashed (per mailbox, not per
    visitor), so nobody floods one mailbox with our mails from many places."""
    typed = (request.form.get("email") or "").strip().lower()
    return "mailbox:" + hashlib.sha256(typed.encode("utf-8", "replace")).hexdigest()[:32]


def no_mail_possible() -> bool:
    """A typed value that is no address gets no mail, so the per-mailbox limits leave it out
    (the per-address limit still counts it)."""
    from .email_address import InvalidEmail, check

    try:
        check(request.form.get("email") or "")
    except InvalidEmail:
        return True
    return False


class DatabaseStorage(Storage):
    """`limits` storage in the site's database (``database://``): the counters of the
    fixed-window strategy, one row per key, shared by every process using the database.

    Each hit is one statement, ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``, run in a
    transaction of its own (never the request's): the row is created, restarted when its window
    has ended, or incremented, atomically on SQLite (one writer at a time, WAL) and on
    PostgreSQL (the conflicting row is locked). Ended windows are deleted now and then.
    """

    STORAGE_SCHEME = ["database"]
    MAX_KEY = 200
    PURGE_EVERY = 200  # on average, one hit in this many deletes the ended windows

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options) -> None:
        if uri and uri.rstrip("/") not in ("database:", "database:/"):
            raise ConfigurationError(
                f"{uri!r}: the database storage uses the site's own database; write database:// alone.")
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self):
        return SQLAlchemyError

    @staticmethod
    def _engine():
        from .extensions import db

        return db.engine  # the current app's: the limiter only counts inside requests

    @property
    def _table(self):
        from .models import RateLimitCounter

        return RateLimitCounter.__table__

    def _name(self, key: str) -> str:
        if len(key) <= self.MAX_KEY:
            return key
        return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        engine = self._engine()
        t = self._table
        now = time.time()
        if engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - the site runs on SQLite or PostgreSQL only
            raise ConfigurationError(f"database:// rate limits need SQLite or PostgreSQL, not {engine.dialect.name}")
        ended = t.c.expires_at <= now
        stmt = insert(t).values(name=self._name(key), hits=amount, expires_at=now + expiry)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.name],
            set_={"hits": case((ended, amount), else_=t.c.hits + amount),
                  "expires_at": case((ended, now + expiry), else_=t.c.expires_at)},
        ).returning(t.c.hits)
        with engine.begin() as conn:
            hits = conn.execute(stmt).scalar_one()
            if random.randrange(self.PURGE_EVERY) == 0:
                conn.execute(delete(t).where(t.c.expires_at <= now))
        return int(hits)

    def get(self, key: str) -> int:
        t = self._table
        with self._engine().connect() as conn:
            hits = conn.execute(select(t.c.hits).where(t.c.name == self._name(key),
                                                       t.c.expires_at > time.time())).scalar()
        return int(hits or 0)

    def get_expiry(self, key: str) -> float:
        t = self._table
        now = time.time()
        with self._engine().connect() as conn:
            expires = conn.execute(select(t.c.expires_at).where(t.c.name == self._name(key),
                                                                t.c.expires_at > now)).scalar()
        return float(expires) if expires is not None else now

    def check(self) -> bool:
        try:
            with self._engine().connect() as conn:
                conn.execute(select(func.count()).select_from(self._table))
            return True
        except SQLAlchemyError:
            return False

    def reset(self) -> int | None:
        with self._engine().begin() as conn:
            return conn.execute(delete(self._table)).rowcount

    def clear(self, key: str) -> None:
        with self._engine().begin() as conn:
            conn.execute(delete(self._table).where(self._table.c.name == self._name(key)))
