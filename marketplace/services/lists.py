"""Invitation-list writes: create/edit, members, sharing, attaching lists to items.

Access through a list is never copied anywhere: the policy reads ListMember and ItemList
rows on every request, so adding someone grants and removing (or expiry) revokes at once.
All changes stay inside InvitationList, ListMember, ListShare and ItemList rows, which
the search outbox watches. Each function checks the policy itself and records an audit
event in the same transaction.
"""
from __future__ import annotations

from datetime import datetime

from flask import has_request_context, url_for
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import audit, policy
from ..extensions import db
from ..models import (
    InvitationList,
    Item,
    ItemList,
    ListMember,
    ListShare,
    Membership,
    Organisation,
    OrgRole,
    User,
    Visibility,
    utcnow,
)
from ..notify import notify
from .common import ServiceError, lock_row

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
               expires_at: datetime | None = None) -> ListMember:
    """Add a person or a member organisation; if already on the list, set the new expiry."""
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
    db.session.add(s)
    try:
        db.session.flush()
    except IntegrityError:  # pragma: no cover - the row lock above prevents it
        db.session.rollback()
        raise ServiceError(f"The list is already shared with {org.name}.", 409, field="org")
    audit.record("list.shared", "list", lst.id, actor_id=actor.id, data={"org_id": org.id})
    admins = db.session.execute(
        select(Membership.user_id).where(Membership.org_id == org.id,
                                         Membership.role.in_([OrgRole.OWNER.value, OrgRole.ADMIN.value]))
    ).scalars().all()
    for uid in admins:
        notify(uid, "list.shared", f"{lst.organisation.name} shared its invitation list “{lst.name}” "
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
    db.session.add(a)
    try:
        db.session.flush()
    except IntegrityError:  # pragma: no cover - the row lock above prevents it
        db.session.rollback()
        raise ServiceError("This list is already attached.", 409, field="list_id")
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
