"""Invitation-list writes: create/edit, members, sharing, attaching lists to items.

Access through a list is never copied anywhere: the policy reads ListMember and ItemList
rows on every request, so adding someone grants and removing (or expiry) revokes at once.
All changes stay inside InvitationList, ListMember, ListShare and ItemList rows, which
the search outbox watches. Each function checks the policy itself and records an audit
event in the same transaction.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from flask import has_request_context, url_for
from sqlalchemy import func, select

from .. import audit, email_address, policy
from ..extensions import db
from ..models import (
    InvitationList,
    InvitationState,
    Item,
    ItemList,
    ListInvitation,
    ListMember,
    ListShare,
    Organisation,
    User,
    Visibility,
    utcnow,
)
from ..notify import notify
from ..timezones import format_dt
from .common import ServiceError, add_unique, lock_row
from .notifications import org_admins

NAME_MAX = 120
DESCRIPTION_MAX = 2000
NOTIFY_MAX = 500  # people told about one attachment; larger lists still get access


def _clean_name(name: str) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise ServiceError("Give the list a name.", field="name")
    if len(name) > NAME_MAX:
        raise ServiceError(f"Use at most {NAME_MAX} characters for the name.", field="name")
    return name


def _clean_description(text: str) -> str:
    text = (text or "").strip()
    if len(text) > DESCRIPTION_MAX:
        raise ServiceError(f"Use at most {DESCRIPTION_MAX} characters.", field="description")
    return text


def _check_name_free(org_id: int, name: str, except_id: int | None = None) -> None:
    q = select(InvitationList.id).where(InvitationList.org_id == org_id,
                                        func.lower(InvitationList.name) == name.lower())
    if except_id is not None:
        q = q.where(InvitationList.id != except_id)
    if db.session.execute(q).first():
        raise ServiceError("Your organisation already has a list with this name.", 409, field="name")


def create_list(actor: User, org: Organisation, name: str, description: str = "") -> InvitationList:
    if not policy.can(actor, "curate_lists", org):
        raise ServiceError("Only owners and admins of a cluster organisation can curate invitation lists.", 403)
    name = _clean_name(name)
    description = _clean_description(description)
    lock_row(Organisation, org.id)  # two admins creating the same name at once
    try:
        _check_name_free(org.id, name)
    except ServiceError:
        db.session.rollback()
        raise
    lst = InvitationList(org_id=org.id, name=name, description=description, created_by_id=actor.id)
    db.session.add(lst)
    db.session.flush()
    audit.record("list.created", "list", lst.id, actor_id=actor.id, data={"org_id": org.id, "name": name})
    db.session.commit()
    return lst


def update_list(actor: User, lst: InvitationList, name: str, description: str) -> InvitationList:
    if not policy.can(actor, "edit", lst):
        raise ServiceError("Only the curating organisation's owners and admins can edit this list.", 403)
    name = _clean_name(name)
    description = _clean_description(description)
    _check_name_free(lst.org_id, name, except_id=lst.id)
    changed = {k: v for k, v in (("name", name), ("description", description)) if getattr(lst, k) != v}
    if not changed:
        return lst
    old_name = lst.name
    lst.name, lst.description = name, description
    audit.record("list.updated", "list", lst.id, actor_id=actor.id,
                 data={"fields": sorted(changed), "from_name": old_name, "to_name": name})
    db.session.commit()
    return lst


# ----------------------------------------------------------------------------- members


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= utcnow():
        raise ServiceError("The membership expiry must be in the future.", field="expires_at")


def add_member(actor: User, lst: InvitationList, *, user: User | None = None, org: Organisation | None = None,
               expires_at: datetime | None = None, commit: bool = True) -> ListMember:
    """Add a person or a member organisation; if already on the list, set the new expiry.
    ``commit=False``: the caller commits (an import applies many rows in one transaction)."""
    if not policy.can(actor, "manage_members", lst):
        raise ServiceError("Only the curating organisation's owners and admins can change this list.", 403)
    if (user is None) == (org is None):
        raise ServiceError("Add exactly one person or one organisation.")
    _check_expiry(expires_at)
    lock_row(InvitationList, lst.id)  # no duplicate rows from parallel adds
    col, value = (ListMember.user_id, user.id) if user else (ListMember.member_org_id, org.id)
    existing = db.session.execute(
        select(ListMember).where(ListMember.list_id == lst.id, col == value, ListMember.removed_at.is_(None))
        .order_by(ListMember.id.desc())
    ).scalars().first()
    who = {"user_id": user.id if user else None, "org_id": org.id if org else None}
    if existing is not None:
        old = existing.expires_at
        existing.expires_at = expires_at
        audit.record("list.member_updated", "list", lst.id, actor_id=actor.id,
                     data={**who, "member_id": existing.id, "from_expires_at": old.isoformat() if old else None,
                           "expires_at": expires_at.isoformat() if expires_at else None})
        if commit:
            db.session.commit()
        _forget(existing)
        return existing
    m = ListMember(list_id=lst.id, user_id=who["user_id"], member_org_id=who["org_id"], added_by_id=actor.id,
                   expires_at=expires_at)
    db.session.add(m)
    db.session.flush()
    audit.record("list.member_added", "list", lst.id, actor_id=actor.id,
                 data={**who, "member_id": m.id, "expires_at": expires_at.isoformat() if expires_at else None})
    if user is not None:
        notify(user, "list.added", f"{lst.organisation.name} added you to its invitation list “{lst.name}”.",
               url=url_for("invitations.mine") if has_request_context() else "")
    if commit:
        db.session.commit()
    _forget(m)
    return m


def remove_member(actor: User, member: ListMember) -> None:
    """Take someone off the list: every item reached through it disappears for them now."""
    if not policy.can(actor, "remove", member):
        raise ServiceError("Only the curating organisation's owners and admins can change this list.", 403)
    if member.removed_at is not None:
        raise ServiceError("This entry was already removed.", 409)
    member.removed_at = utcnow()
    audit.record("list.member_removed", "list", member.list_id, actor_id=actor.id,
                 data={"member_id": member.id, "user_id": member.user_id, "org_id": member.member_org_id})
    db.session.commit()
    _forget(member)


def _forget(member: ListMember) -> None:
    # A viewer memoised earlier in this request must not keep stale access.
    policy.forget_viewer(member.user_id if member.user_id else None)


# ----------------------------------------------------------------------------- sharing


def share(actor: User, lst: InvitationList, org: Organisation) -> ListShare:
    if not policy.can(actor, "share", lst):
        raise ServiceError("Only the curating organisation's owners and admins can share this list.", 403)
    if org.id == lst.org_id:
        raise ServiceError("Your own organisation can always use its lists.", field="org")
    lock_row(InvitationList, lst.id)
    if db.session.execute(select(ListShare.id).where(ListShare.list_id == lst.id,
                                                     ListShare.org_id == org.id)).first():
        db.session.rollback()
        raise ServiceError(f"The list is already shared with {org.name}.", 409, field="org")
    s = ListShare(list_id=lst.id, org_id=org.id)
    add_unique(s, f"The list is already shared with {org.name}.", "org")
    audit.record("list.shared", "list", lst.id, actor_id=actor.id, data={"org_id": org.id})
    for admin in org_admins(org.id):
        notify(admin, "list.shared", f"{lst.organisation.name} shared its invitation list “{lst.name}” "
               f"with {org.name}; you can attach it to your invited items.",
               url=url_for("lists.detail", list_id=lst.id) if has_request_context() else "", about=lst)
    db.session.commit()
    return s


def unshare(actor: User, s: ListShare) -> int:
    """Stop sharing; the organisation's own items stop using the list too (returns how many
    attachments ended). Curators withdraw consent, so access through it ends at once."""
    if not policy.can(actor, "delete", s):
        raise ServiceError("Only the curating organisation's owners and admins can stop sharing.", 403)
    lst = db.session.get(InvitationList, s.list_id)
    attachments = db.session.execute(
        select(ItemList).join(Item, Item.id == ItemList.item_id)
        .where(ItemList.list_id == s.list_id, Item.org_id == s.org_id)
    ).scalars().all()
    for a in attachments:
        audit.record("list.detached", "list", s.list_id, actor_id=actor.id, item_id=a.item_id,
                     data={"reason": "unshared", "org_id": s.org_id})
        db.session.delete(a)
    audit.record("list.unshared", "list", lst.id, actor_id=actor.id,
                 data={"org_id": s.org_id, "detached": len(attachments)})
    db.session.delete(s)
    db.session.commit()
    return len(attachments)


# ----------------------------------------------------------------------------- attachments


def attach(actor: User, item: Item, lst: InvitationList) -> ItemList:
    if not policy.can(actor, "attach_list", item):
        raise ServiceError("Only the item's organisation owners and admins can attach lists "
                           "(and not to archived items).", 403)
    if item.visibility != Visibility.INVITED.value:
        raise ServiceError("Lists only give access to items whose visibility is “invited”; "
                           f"this one is “{item.visibility}”.", 409, field="list_id")
    if not policy.can(actor, "attach", policy.ListUse(lst, item)):
        raise ServiceError("This list is neither curated by nor shared with the item's organisation.",
                           403, field="list_id")
    lock_row(InvitationList, lst.id)
    if db.session.execute(select(ItemList.id).where(ItemList.item_id == item.id,
                                                    ItemList.list_id == lst.id)).first():
        db.session.rollback()
        raise ServiceError("This list is already attached.", 409, field="list_id")
    a = ItemList(item_id=item.id, list_id=lst.id, attached_by_id=actor.id)
    add_unique(a, "This list is already attached.", "list_id")
    audit.record("list.attached", "list", lst.id, actor_id=actor.id, item_id=item.id,
                 data={"list_org_id": lst.org_id})
    _notify_members(lst, item)
    db.session.commit()
    return a


def _notify_members(lst: InvitationList, item: Item) -> None:
    now = utcnow()
    rows = db.session.execute(
        select(ListMember).where(ListMember.list_id == lst.id, ListMember.user_id.is_not(None),
                                 ListMember.removed_at.is_(None)).limit(NOTIFY_MAX)
    ).scalars().all()
    url = url_for("items.detail", kind=item.kind, item_id=item.id) if has_request_context() else ""
    for uid in sorted({m.user_id for m in rows if m.is_active(now)}):
        # notify() asks the policy, so nobody hears about an item they cannot open.
        notify(uid, "list.invited", f"{item.organisation.name} invited you to “{item.title}” "
               f"through the list “{lst.name}”.", url=url, about=item)


def detach(actor: User, a: ItemList) -> None:
    if not policy.can(actor, "detach", a):
        raise ServiceError("Only the item's organisation owners and admins can detach lists.", 403)
    audit.record("list.detached", "list", a.list_id, actor_id=actor.id, item_id=a.item_id,
                 data={"reason": "detached"})
    db.session.delete(a)
    db.session.commit()


# ----------------------------------------------------------------------------- queries


def usable_lists(user: User, item: Item) -> list[InvitationList]:
    """Lists the user could attach to this item (visible to them and usable by its org)."""
    v = policy.viewer_for(user)
    attached = select(ItemList.list_id).where(ItemList.item_id == item.id)
    return list(db.session.execute(
        policy.visible(user, InvitationList)
        .where(policy.usable_lists_clause(v, item.org_id), InvitationList.id.not_in(attached))
        .order_by(func.lower(InvitationList.name))
    ).scalars())


# ----------------------------------------------------------------------------- invitations by e-mail

LIST_LINK_DAYS = 14


def find_list_invitation(token: str) -> ListInvitation | None:
    from .invitations import find_mailed

    return find_mailed(ListInvitation, token)


def list_link_refusal(inv: ListInvitation | None, user) -> tuple[str, int] | None:
    """Why this list link cannot be used by `user` now (message, HTTP status), or None."""
    from .invitations import mailed_refusal

    return mailed_refusal(inv, user, policy.is_list_invitee, asked="the list's curators",
                          withdrawn_by="the list's curators")


def list_link_address(token: str) -> str | None:
    """The address a pending list link proves (registering from it confirms it)."""
    inv = find_list_invitation(token)
    if inv is None or policy.invitation_state(inv) != InvitationState.PENDING.value:
        return None
    return inv.email


def invite_to_list(actor: User, lst: InvitationList, email: str, *, member_until: datetime | None = None,
                   days: int = LIST_LINK_DAYS, commit: bool = True) -> ListInvitation:
    """Invite a person to the list by address and mail the link. The answer is the same
    whether or not the address has an account: everyone accepts from the link (signed in,
    or after registering from it). ``commit=False``: the caller commits (an import)."""
    from ..mail.outbox import link, queue
    from .accounts import find_user
    from .invitations import checked_link, hash_token, new_token, pending_mailed

    if not policy.can(actor, "manage_members", lst):
        raise ServiceError("Only the curating organisation's owners and admins can change this list.", 403)
    email = checked_link(email, days)
    _check_expiry(member_until)
    now = utcnow()
    lock_row(InvitationList, lst.id)  # one live link per address, even from two curators at once
    pending = pending_mailed(ListInvitation, email, now, ListInvitation.list_id == lst.id)
    if pending is not None:
        db.session.rollback()
        raise ServiceError(f"{email} already has a pending invitation to this list (sent "
                           f"{format_dt(pending.created_at)}). Revoke it first to send a new link.", 409, field="email")
    token = new_token()
    inv = ListInvitation(list_id=lst.id, email=email, token_hash=hash_token(token), invited_by_id=actor.id,
                         created_at=now, expires_at=now + timedelta(days=days), member_until=member_until)
    db.session.add(inv)
    db.session.flush()
    audit.record("list.invitation_sent", "list", lst.id, actor_id=actor.id,
                 data={"invitation_id": inv.id, "to_domain": email.rsplit("@", 1)[-1],
                       "expires_at": inv.expires_at.isoformat(),
                       "member_until": member_until.isoformat() if member_until else None})
    url = link("invitations.list_link", token=token)
    # The mail names the list and its curator (as the "added you" notice does), never an item
    # the list opens: those show on "My invitations" once the person is on the list.
    queue(email, "invite_list", f"{lst.organisation.name} invites you to its list “{lst.name}” on the "
          "Open Innovation Marketplace", kind="invitation.list", secret=True,
          context={"inviter": actor.display_name, "org": lst.organisation.name, "list_name": lst.name,
                   "url": url, "has_account": find_user(email) is not None, "expires_at": inv.expires_at,
                   "member_until": member_until})
    if commit:
        db.session.commit()
    return inv


def _locked_list_invitation(user, token: str, *, to_accept: bool = False) -> ListInvitation:
    from .invitations import locked_mailed

    return locked_mailed(ListInvitation, find_list_invitation, list_link_refusal, user, token, to_accept=to_accept)


def accept_list_invitation(user: User, token: str) -> ListInvitation:
    """The signed-in holder of the invited address joins the list (and so sees what it
    opens). The link proves the address, so it is confirmed too."""
    inv = _locked_list_invitation(user, token, to_accept=True)
    if not policy.can(user, "accept", inv):  # pragma: no cover - the refusal covers every case
        db.session.rollback()
        raise ServiceError("You may not accept this invitation.", 403)
    now = utcnow()
    if inv.member_until is not None and inv.member_until <= now:
        db.session.rollback()
        raise ServiceError("The list place this invitation offered has already ended.", 410)
    lst = inv.list
    lock_row(InvitationList, lst.id)
    m = db.session.execute(
        select(ListMember).where(ListMember.list_id == lst.id, ListMember.user_id == user.id,
                                 ListMember.removed_at.is_(None)).order_by(ListMember.id.desc())
    ).scalars().first()
    if m is None:
        m = ListMember(list_id=lst.id, user_id=user.id, added_by_id=inv.invited_by_id, expires_at=inv.member_until)
        db.session.add(m)
    else:  # already on the list: the invitation sets the place's end
        m.expires_at = inv.member_until
    db.session.flush()
    inv.accepted_at, inv.accepted_by_id, inv.member_id = now, user.id, m.id
    if user.email_verified_at is None:
        user.email_verified_at = now
    audit.record("list.member_added", "list", lst.id, actor_id=user.id,
                 data={"user_id": user.id, "org_id": None, "member_id": m.id, "invitation_id": inv.id,
                       "expires_at": m.expires_at.isoformat() if m.expires_at else None})
    audit.record("list.invitation_accepted", "list", lst.id, actor_id=user.id, data={"invitation_id": inv.id})
    if inv.invited_by_id:
        notify(inv.invited_by_id, "invitation.accepted",
               f"{user.display_name} accepted your invitation to the list “{lst.name}”.",
               url=url_for("lists.detail", list_id=lst.id) if has_request_context() else "", about=lst)
    db.session.commit()
    _forget(m)
    return inv


def decline_list_invitation(user, token: str) -> ListInvitation:
    """Decline with the link (see invitations.decline_mailed)."""
    from .invitations import decline_mailed

    inv = _locked_list_invitation(user, token)
    decline_mailed(inv, user, policy.can_decline_list_invitation_with_token,
                   ("list.invitation_declined", "list", inv.list_id),
                   f"An invitation to the list “{inv.list.name}” ({inv.masked_email}) was declined.",
                   url_for("lists.detail", list_id=inv.list_id) if has_request_context() else "", inv.list,
                   data={"invitation_id": inv.id})
    return inv


def revoke_list_invitation(actor: User, inv: ListInvitation) -> ListInvitation:
    """Withdraw a pending invitation, or end an accepted one: the person leaves the list."""
    if not policy.can(actor, "manage_members", inv.list):
        raise ServiceError("Only the curating organisation's owners and admins can revoke list invitations.", 403)
    lock_row(ListInvitation, inv.id)
    db.session.refresh(inv)
    if not policy.can(actor, "revoke", inv):
        state = policy.invitation_state(inv)
        db.session.rollback()
        raise ServiceError(f"This invitation is already {state}; there is nothing to revoke.", 409)
    was = policy.invitation_state(inv)
    now = utcnow()
    inv.revoked_at, inv.revoked_by_id = now, actor.id
    m = db.session.get(ListMember, inv.member_id) if inv.member_id else None
    if m is not None and m.removed_at is None:
        m.removed_at = now
        audit.record("list.member_removed", "list", inv.list_id, actor_id=actor.id,
                     data={"member_id": m.id, "user_id": m.user_id, "org_id": None, "invitation_id": inv.id})
    audit.record("list.invitation_revoked", "list", inv.list_id, actor_id=actor.id,
                 data={"invitation_id": inv.id, "was": was})
    db.session.commit()
    if m is not None:
        _forget(m)
    return inv


def list_invitations(lst: InvitationList, limit: int = 200) -> list[ListInvitation]:
    return list(db.session.execute(
        select(ListInvitation).where(ListInvitation.list_id == lst.id)
        .order_by(ListInvitation.created_at.desc(), ListInvitation.id.desc()).limit(limit)).scalars())


def list_invitations_for_user(user: User) -> list[ListInvitation]:
    """Invitations to lists addressed to the user's e-mail (through the policy's SQL filter)."""
    from .accounts import normalise_email

    return list(db.session.execute(
        policy.visible(user, ListInvitation).where(ListInvitation.email == normalise_email(user.email))
        .order_by(ListInvitation.created_at.desc(), ListInvitation.id.desc()).limit(200)).scalars())
