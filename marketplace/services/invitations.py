"""Invitation writes: create (and mail the link), accept, decline, revoke.

Each function asks the policy itself. The token exists only in the mail, on the inviting
admin's screen once, and in the invitee's link; the database keeps its SHA-256. Accepting
locks the invitation row first, so two parallel acceptances of one token give one grant.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask import has_request_context, url_for
from sqlalchemy import select

from .. import audit, email_address, policy
from ..extensions import db
from ..models import AccessGrant, Invitation, InvitationState, Item, Organisation, User, utcnow
from ..notify import notify
from ..timezones import format_dt
from ..urls import external_url
from .accounts import normalise_email
from .common import ServiceError, lock_row

DEFAULT_DAYS = 14
MAX_DAYS = 90

REFUSALS = {
    InvitationState.ACCEPTED.value: "This invitation has already been used. Each link works once.",
    InvitationState.DECLINED.value: "This invitation was declined, so the link no longer works.",
    InvitationState.REVOKED.value: "This invitation was withdrawn by the organisation that sent it.",
    InvitationState.EXPIRED.value: "This invitation has expired. Ask the organisation for a new one.",
}


def hash_token(token: str) -> str:
    return hashlib.sha256((token or "").encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def accept_url(token: str) -> str:
    """Absolute link for the mail: this request's host, or SERVER_NAME (CLI, demo)."""
    return external_url("invitations.open_link", token=token)


def find_mailed(model, token: str):
    """The mailed invitation of `model` (item, list or reviewer invitation) a link belongs
    to: None for an unknown or malformed token."""
    if not token or len(token) > 200:
        return None
    return db.session.execute(select(model).where(model.token_hash == hash_token(token))).scalar_one_or_none()


def locked_mailed(model, find, refuse, user, token: str, *, to_accept: bool = False):
    """The mailed invitation behind `token`, row-locked for `user` to answer.

    `find(token)` looks it up and `refuse(inv, user)` says why it cannot be used (message,
    status); accepting needs an account too. The refusal is asked again under the lock: a
    parallel request may have answered, revoked or used the invitation since the first check."""
    inv = find(token)
    problem = refuse(inv, user)
    if problem is None and to_accept and not getattr(user, "is_authenticated", False):
        problem = ("Sign in or register with the invited e-mail address to accept.", 401)
    if problem:
        raise ServiceError(*problem)
    lock_row(model, inv.id)
    db.session.refresh(inv)
    problem = refuse(inv, user)
    if problem:
        db.session.rollback()
        raise ServiceError(*problem)
    return inv


def find_by_token(token: str) -> Invitation | None:
    """The invitation a link belongs to (None for an unknown or malformed token)."""
    return find_mailed(Invitation, token)


def mailed_refusal(inv, user, is_invitee, *, asked: str = "the organisation",
                   withdrawn_by: str = "the organisation that sent it") -> tuple[str, int] | None:
    """Why the mailed link of `inv` cannot be used by `user` now (message, HTTP status), or
    None. `is_invitee(viewer, inv)` is the policy's test for the invited address; `asked` is
    who to ask for a new link, `withdrawn_by` who withdraws one."""
    if inv is None:
        return "This invitation link is not valid. Check that you copied the whole link.", 404
    state = policy.invitation_state(inv)
    if state != InvitationState.PENDING.value:
        if state == InvitationState.EXPIRED.value:
            return f"This invitation expired on {format_dt(inv.expires_at)}. Ask {asked} for a new one.", 410
        return REFUSALS[state].replace("the organisation that sent it", withdrawn_by), 410
    v = policy.viewer_for(user)
    if v.is_authenticated and not is_invitee(v, inv):
        return (f"This invitation was sent to {inv.masked_email}, not to the account you are signed in "
                "with. Sign out and sign in (or register) with the invited address."), 403
    return None


def refusal(inv: Invitation | None, user) -> tuple[str, int] | None:
    """Why this link cannot be used by `user` now (message, HTTP status), or None."""
    return mailed_refusal(inv, user, policy.is_invitee)


def checked_link(email: str, days) -> str:
    """The invited address, normalised, for a mailed link valid `days` days (form errors
    on the `email` and `days` fields otherwise)."""
    try:
        email = email_address.check(email)
    except email_address.InvalidEmail as e:
        raise ServiceError(str(e), field="email") from None
    if not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ServiceError(f"The link must be valid for 1 to {MAX_DAYS} days.", field="days")
    return email


def pending_mailed(model, email: str, now: datetime, *where):
    """The live invitation of `model` (not answered, revoked or expired at `now`) to `email`
    that also matches `where`, if any: one live link per address and target."""
    return db.session.execute(
        select(model).where(*where, model.email == email, model.accepted_at.is_(None), model.declined_at.is_(None),
                            model.revoked_at.is_(None), model.expires_at > now)
    ).scalars().first()


def decline_mailed(inv, user, may_decline, event: tuple, told: str, url: str, about, **audit_kw) -> None:
    """Decline a locked mailed invitation (item, list or reviewer invitation) once
    `may_decline(viewer, inv)` (the policy) agrees: no account is needed (the link proves the
    mailbox), but a signed-in account must hold the invited address. Records `event` (the
    audit action, subject type and id) with the account that declined (None: signed out),
    tells the inviter `told` (linking `url`, about `about`) and commits."""
    if not may_decline(policy.viewer_for(user), inv):  # pragma: no cover - the refusal covers every case
        db.session.rollback()
        raise ServiceError("You may not decline this invitation.", 403)
    inv.declined_at = utcnow()
    audit.record(*event, actor_id=user.id if getattr(user, "is_authenticated", False) else None, **audit_kw)
    tell_inviter(inv, "invitation.declined", told, url, about)
    db.session.commit()


def tell_inviter(inv, kind: str, message: str, url: str, about) -> None:
    """Tell whoever sent a mailed invitation that it was answered (nobody once their account
    is gone)."""
    if inv.invited_by_id:
        notify(inv.invited_by_id, kind, message, url=url, about=about)


def create_invitation(actor: User, item: Item, email: str, *, days: int = DEFAULT_DAYS,
                      access_until: datetime | None = None) -> tuple[Invitation, str]:
    """Create an invitation and queue its mail; returns (invitation, token). The token is
    not kept anywhere: show it to the inviting admin once."""
    if not policy.can(actor, "invite", item):
        if policy.can(actor, "manage_invitations", item):
            raise ServiceError("Archived items are frozen; no new invitations can be sent.", 409)
        raise ServiceError("Only the organisation's owners and admins can invite people.", 403)
    email = checked_link(email, days)
    now = utcnow()
    if access_until is not None and access_until <= now:
        raise ServiceError("The end of access must be in the future.", field="access_until")
    # Serialise invitations by the item's organisation so two admins cannot send two live
    # links to one address at once (the item row itself has an onupdate timestamp).
    lock_row(Organisation, item.org_id)
    pending = pending_mailed(Invitation, email, now, Invitation.item_id == item.id)
    if pending is not None:
        db.session.rollback()
        raise ServiceError(
            f"{email} already has a pending invitation (sent {format_dt(pending.created_at)}). "
            "Revoke it first to send a new link.", 409, field="email")
    token = new_token()
    inv = Invitation(item_id=item.id, email=email, token_hash=hash_token(token), invited_by_id=actor.id,
                     created_at=now, expires_at=now + timedelta(days=days), access_until=access_until)
    db.session.add(inv)
    db.session.flush()
    # The audit chain is permanent: it keeps the domain, not the address (which stays
    # on the invitation row).
    audit.record("invitation.sent", "invitation", inv.id, actor_id=actor.id, item_id=item.id,
                 data={"to_domain": email.rsplit("@", 1)[-1], "expires_at": inv.expires_at.isoformat(),
                       "access_until": access_until.isoformat() if access_until else None})
    _queue_mail(actor, item, inv, token)
    db.session.commit()
    return inv, token


def _queue_mail(actor: User, item: Item, inv: Invitation, token: str) -> None:
    """The invitation mail, to the address (whoever holds it, account or not). It names the
    item only where the invitation may (policy.invitation_reveals_item), and tells the
    address's owner whether to sign in or to register: the inviting admin is never told."""
    from ..mail.outbox import link, queue
    from .accounts import find_user

    org = item.organisation
    has_account = find_user(inv.email) is not None
    url = accept_url(token)
    queue(inv.email, "invite_item",
          f"{org.name} invites you to a {item.kind_label.lower()} on the Open Innovation Marketplace",
          kind="invitation.item", about=item, secret=True,
          context={"inviter": actor.display_name, "org": org.name, "kind": item.kind_label.lower(),
                   "title": item.title if policy.invitation_reveals_item(item) else None,
                   "url": url, "register_url": link("auth.register", next=url_path(token)),
                   "has_account": has_account, "expires_at": inv.expires_at, "access_until": inv.access_until})


def url_path(token: str) -> str:
    from urllib.parse import urlsplit
    return urlsplit(accept_url(token)).path


def _locked(inv: Invitation) -> Invitation:
    """Take the row lock, then re-read the row: a parallel request may have just used it."""
    lock_row(Invitation, inv.id)
    db.session.refresh(inv)
    return inv


def _locked_answerable(user, token: str, *, to_accept: bool = False) -> Invitation:
    return locked_mailed(Invitation, find_by_token, refusal, user, token, to_accept=to_accept)


def _tell_inviter(inv: Invitation, kind: str, message: str) -> None:
    tell_inviter(inv, kind, message, _item_url(inv), inv.item)


def _item_url(inv: Invitation) -> str:
    return url_for("invitations.for_item", item_id=inv.item_id) if has_request_context() else ""


def accept(user: User, token: str) -> Invitation:
    inv = _locked_answerable(user, token, to_accept=True)
    if not policy.can(user, "accept", inv):  # pragma: no cover - refusal() covers every case
        db.session.rollback()
        raise ServiceError("You may not accept this invitation.", 403)
    now = utcnow()
    expires = inv.access_until if inv.access_until and inv.access_until > now else None
    if inv.access_until is not None and expires is None:
        db.session.rollback()
        raise ServiceError("The access this invitation offered has already ended.", 410)
    grant = AccessGrant(item_id=inv.item_id, user_id=user.id, granted_by_id=inv.invited_by_id,
                        reason="invitation", expires_at=expires, created_at=now)
    db.session.add(grant)
    db.session.flush()
    inv.accepted_at = now
    inv.accepted_by_id = user.id
    inv.grant_id = grant.id
    audit.record("access.granted", "grant", grant.id, actor_id=user.id, item_id=inv.item_id,
                 data={"user_id": user.id, "org_id": None, "reason": "invitation", "invitation_id": inv.id,
                       "expires_at": expires.isoformat() if expires else None})
    audit.record("invitation.accepted", "invitation", inv.id, actor_id=user.id, item_id=inv.item_id,
                 data={"grant_id": grant.id})
    _tell_inviter(inv, "invitation.accepted", f"{user.display_name} accepted your invitation to “{inv.item.title}”.")
    db.session.commit()
    policy.forget_viewer(user.id)
    return inv


def decline(user, token: str) -> Invitation:
    """Decline with the link; no account needed, but a signed-in account must be the invitee."""
    inv = _locked_answerable(user, token)
    decline_mailed(inv, user, policy.can_decline_with_token, ("invitation.declined", "invitation", inv.id),
                   f"An invitation to “{inv.item.title}” ({inv.masked_email}) was declined.",
                   _item_url(inv), inv.item, item_id=inv.item_id)
    return inv


def revoke(actor: User, inv: Invitation) -> Invitation:
    """Withdraw a pending invitation, or end an accepted one together with its grant."""
    if not policy.can(actor, "manage_invitations", inv.item):
        raise ServiceError("Only the organisation's owners and admins can revoke invitations.", 403)
    inv = _locked(inv)
    state = policy.invitation_state(inv)
    if state not in (InvitationState.PENDING.value, InvitationState.ACCEPTED.value):
        db.session.rollback()
        raise ServiceError(f"This invitation is already {state}; there is nothing to revoke.", 409)
    if not policy.can(actor, "revoke", inv):  # pragma: no cover - checked above
        db.session.rollback()
        raise ServiceError("You may not revoke this invitation.", 403)
    now = utcnow()
    inv.revoked_at = now
    inv.revoked_by_id = actor.id
    grant = db.session.get(AccessGrant, inv.grant_id) if inv.grant_id else None
    if grant is not None and grant.revoked_at is None:
        grant.revoked_at = now
        audit.record("access.revoked", "grant", grant.id, actor_id=actor.id, item_id=inv.item_id,
                     data={"user_id": grant.user_id, "org_id": grant.org_id, "invitation_id": inv.id})
    audit.record("invitation.revoked", "invitation", inv.id, actor_id=actor.id, item_id=inv.item_id,
                 data={"was": state, "grant_id": inv.grant_id})
    db.session.commit()
    if grant is not None and grant.user_id:
        policy.forget_viewer(grant.user_id)
    return inv


def invitations_for_item(item: Item) -> list[Invitation]:
    return list(db.session.execute(
        select(Invitation).where(Invitation.item_id == item.id)
        .order_by(Invitation.created_at.desc(), Invitation.id.desc())
    ).scalars())


def invitations_for_user(user: User) -> list[Invitation]:
    """Invitations addressed to the user's e-mail (through the policy's SQL filter)."""
    return list(db.session.execute(
        policy.visible(user, Invitation).where(Invitation.email == normalise_email(user.email))
        .order_by(Invitation.created_at.desc(), Invitation.id.desc()).limit(200)
    ).scalars())
