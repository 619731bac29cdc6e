"""API tokens: create (shown once, stored as a hash), look up, revoke.

Personal tokens act as their owner. Organisation tokens act as an integration account made
for the token: a member of the organisation with the role its admins chose (no more than the
creating admin's own, `policy.may_give_token_role`), so the same services and rules apply to
programs as to people. The account cannot sign in (its password hash is not a hash and its
address is in the reserved .invalid domain) and leaves the organisation when the token is
revoked.

Which scope names exist is listed here; what each scope allows is decided in one place,
marketplace/api/auth.py.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from .. import audit, policy
from ..extensions import db
from ..models import ApiToken, Membership, Organisation, OrgRole, User, utcnow
from .common import ServiceError

TOKEN_PREFIX = "oim_"
INTEGRATION_DOMAIN = "integrations.invalid"
# Password hashes are Argon2 strings; this never verifies, so the account cannot sign in.
NO_PASSWORD = "!integration-account"
MAX_DAYS = 366
# last_used_at is written at most this often per token (not a write on every request).
TOUCH_EVERY = timedelta(seconds=60)

SCOPES: dict[str, str] = {
    "read": "Read everything the account may see (every GET)",
    "write": "Every write below",
    "orgs:write": "Create organisations; add members and change their roles",
    "items:write": "Create and edit challenges, failures and assets; visibility and status",
    "ideas:write": "Submit, revise and withdraw ideas; co-authorship",
    "reviews:write": "Review actions on ideas (shortlist, decline, award)",
    "engagement:write": "Questions, answers, comments and asset requests",
    "invitations:write": "Send, revoke, accept and decline invitations",
    "lists:write": "Invitation lists and their members",
    "reports:write": "Report content to moderators",
    "moderation:write": "Moderators' actions",
    "notifications:write": "Mark notifications as read; notification choices",
}


def hash_token(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_integration(user: User | None) -> bool:
    return user is not None and (user.email or "").endswith("@" + INTEGRATION_DOMAIN)


def _clean(name: str | None, scopes, expires_at: datetime | None) -> tuple[str, list[str]]:
    name = (name or "").strip()
    if not 1 <= len(name) <= 80:
        raise ServiceError("Give the token a name of 1 to 80 characters.", field="name")
    if isinstance(scopes, str):
        scopes = scopes.split()
    chosen = [s for s in dict.fromkeys(scopes or [])]
    unknown = [s for s in chosen if s not in SCOPES]
    if unknown:
        raise ServiceError(f"Unknown scope {unknown[0]!r}; use some of: {', '.join(SCOPES)}.", field="scopes")
    if not chosen:
        raise ServiceError("Choose at least one scope.", field="scopes")
    now = utcnow()
    if expires_at is not None and not now < expires_at <= now + timedelta(days=MAX_DAYS):
        raise ServiceError(f"The expiry must be in the future and within {MAX_DAYS} days.", field="expires_at")
    return name, chosen


def _new_text() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_personal_token(user: User, name: str, scopes, expires_at: datetime | None) -> tuple[ApiToken, str]:
    """A token acting as `user`; returns (row, token text). The text is not kept anywhere."""
    if user is None or not getattr(user, "is_authenticated", False) or user.is_blocked or is_integration(user):
        raise ServiceError("Only a signed-in person can create a personal token.", 403)
    name, chosen = _clean(name, scopes, expires_at)
    text = _new_text()
    t = ApiToken(name=name, token_hash=hash_token(text), prefix=text[:10], scopes=" ".join(chosen),
                 owner_id=user.id, acting_user_id=user.id, expires_at=expires_at)
    db.session.add(t)
    db.session.flush()
    audit.record("token.created", "user", user.id, actor_id=user.id,
                 data={"token_id": t.id, "scopes": chosen,
                       "expires_at": expires_at.isoformat() if expires_at else None})
    db.session.commit()
    return t, text


def create_org_token(actor: User, org: Organisation, name: str, scopes, role: str,
                     expires_at: datetime | None) -> tuple[ApiToken, str]:
    """A token of the organisation acting with `role` through its own integration account."""
    if not policy.can(actor, "manage_integrations", org):
        raise ServiceError("Only the organisation's owners and admins manage its tokens.", 403)
    if role not in OrgRole.values():
        raise ServiceError(f"Unknown role {role!r}.", field="role")
    if not policy.may_give_token_role(policy.viewer_for(actor), org.id, role):
        raise ServiceError("A token may act with your own role at most.", 403, field="role")
    name, chosen = _clean(name, scopes, expires_at)
    bot = User(email=f"integration-{secrets.token_hex(8)}@{INTEGRATION_DOMAIN}",
               display_name=f"{name[:60]} (integration)", password_hash=NO_PASSWORD)
    db.session.add(bot)
    db.session.flush()
    db.session.add(Membership(org_id=org.id, user_id=bot.id, role=role))
    text = _new_text()
    t = ApiToken(name=name, token_hash=hash_token(text), prefix=text[:10], scopes=" ".join(chosen),
                 owner_id=actor.id, org_id=org.id, acting_user_id=bot.id, expires_at=expires_at)
    db.session.add(t)
    db.session.flush()
    audit.record("integration.token_created", "organisation", org.id, actor_id=actor.id,
                 data={"token_id": t.id, "role": role, "scopes": chosen, "integration_user_id": bot.id,
                       "expires_at": expires_at.isoformat() if expires_at else None})
    db.session.commit()
    policy.forget_viewer(actor.id)
    return t, text


def revoke_token(actor: User, t: ApiToken) -> None:
    """Revoke at once: the next request with the token is refused. An organisation token's
    integration account leaves the organisation."""
    if not policy.can(actor, "revoke", t):
        raise ServiceError("There is nothing here, or you may not see it.", 404)
    if t.revoked_at is not None:
        return
    t.revoked_at = utcnow()
    t.revoked_by_id = actor.id
    if t.org_id is not None:
        db.session.execute(delete(Membership).where(Membership.user_id == t.acting_user_id,
                                                    Membership.org_id == t.org_id))
        audit.record("integration.token_revoked", "organisation", t.org_id, actor_id=actor.id,
                     data={"token_id": t.id})
    else:
        audit.record("token.revoked", "user", t.owner_id, actor_id=actor.id, data={"token_id": t.id})
    db.session.commit()
    policy.forget_viewer(t.acting_user_id)


def personal_tokens(user: User) -> list[ApiToken]:
    return db.session.execute(
        policy.visible(user, ApiToken).where(ApiToken.org_id.is_(None))
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc())).scalars().all()


def org_tokens(user: User, org: Organisation) -> list[ApiToken]:
    return db.session.execute(
        policy.visible(user, ApiToken).where(ApiToken.org_id == org.id)
        .order_by(ApiToken.revoked_at.is_not(None), ApiToken.created_at.desc())).scalars().all()


def token_role(t: ApiToken) -> str | None:
    """The role an organisation token acts with now (admins may change it on the members page)."""
    if t.org_id is None:
        return None
    return db.session.execute(select(Membership.role).where(
        Membership.user_id == t.acting_user_id, Membership.org_id == t.org_id)).scalar()


def authenticate(text: str) -> ApiToken | None:
    """The usable token with this text, or None (unknown, revoked, expired, or its account
    blocked). Notes when it was last used."""
    if not text or not text.startswith(TOKEN_PREFIX) or len(text) > 200:
        return None
    digest = hash_token(text)
    t = db.session.execute(select(ApiToken).where(ApiToken.token_hash == digest)).scalar()
    # The lookup is by hash; compare again in constant time so equality is not timed.
    if t is None or not hmac.compare_digest(t.token_hash, digest):
        return None
    now = utcnow()
    if not t.is_usable(now):
        return None
    user = t.acting_user
    if user is None or user.is_blocked:
        return None
    if t.last_used_at is None or now - t.last_used_at >= TOUCH_EVERY:
        db.session.execute(update(ApiToken).where(ApiToken.id == t.id).values(last_used_at=now))
        db.session.commit()
    return t
