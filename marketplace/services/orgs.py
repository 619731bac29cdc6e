"""Organisation writes: create, edit, members and their roles."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import audit, policy, timezones
from ..extensions import db
from ..models import Membership, Organisation, OrgKind, OrgRole, User
from ..sanitize import render_markdown
from .common import ServiceError, slugify


ORG_NOT_FOUND = "No organisation has this name. Choose one from the list as you type."
MAX_NAME_CHOICES = 500


def find_org(text: str | None) -> Organisation | None:
    """The organisation people mean by `text`: its name (any case), or its short name (the
    slug in its address). Organisations are public, so this reveals nothing."""
    text = (text or "").strip()[:140]
    if not text:
        return None
    org = db.session.execute(select(Organisation).where(func.lower(Organisation.name) == text.lower())).scalar()
    if org is None:
        org = db.session.execute(select(Organisation).where(Organisation.slug == text.lower())).scalar()
    return org


def organisation_names(limit: int = MAX_NAME_CHOICES) -> list[str]:
    """Names to offer as people type (a datalist), alphabetical, at most `limit`."""
    return list(db.session.execute(select(Organisation.name).order_by(func.lower(Organisation.name))
                                   .limit(limit)).scalars())


def create_org(owner: User, name: str, kind: str, description: str = "", website: str = "",
               timezone: str | None = None) -> Organisation:
    """A new organisation owned by `owner`; its time zone defaults to the owner's."""
    name = (name or "").strip()
    timezone = _zone(timezone if timezone is not None else (owner.timezone or timezones.UTC_NAME))
    if kind not in OrgKind.values():
        raise ServiceError(f"Unknown kind {kind!r}; use one of {', '.join(OrgKind.values())}.", field="kind")
    if not name:
        raise ServiceError("Give the organisation a name.", field="name")
    if not 2 <= len(name) <= 120:
        raise ServiceError("The name needs 2 to 120 characters.", field="name")
    if db.session.execute(select(Organisation.id).where(func.lower(Organisation.name) == name.lower())).first():
        raise ServiceError("An organisation with this name already exists.", 409, field="name")
    base = slugify(name)
    slug, n = base, 1
    while db.session.execute(select(Organisation.id).where(Organisation.slug == slug)).first():
        n += 1
        slug = f"{base}-{n}"
    org = Organisation(name=name, slug=slug, kind=kind, description=description or "",
                       description_html=render_markdown(description), website=website or "", timezone=timezone)
    db.session.add(org)
    try:
        db.session.flush()
        db.session.add(Membership(org_id=org.id, user_id=owner.id, role=OrgRole.OWNER.value))
        audit.record("org.created", "organisation", org.id, actor_id=owner.id, data={"name": name, "kind": kind})
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ServiceError("An organisation with this name already exists.", 409, field="name")
    policy.forget_viewer(owner.id)
    return org


def _zone(name: str) -> str:
    if not timezones.is_valid_zone(name):
        raise ServiceError("Choose a time zone from the list (an IANA name such as Europe/Paris).", field="timezone")
    return name


def update_org(actor: User, org: Organisation, description: str, website: str, timezone: str | None = None) -> None:
    """Edit the profile; a new time zone applies to times entered from now on (stored times
    are UTC instants and do not move)."""
    if not policy.can(actor, "edit", org):
        raise ServiceError("Only the organisation's owners and admins can edit it.", 403)
    if timezone is not None and timezone != org.timezone:
        old = org.timezone
        org.timezone = _zone(timezone)
        audit.record("org.timezone_changed", "organisation", org.id, actor_id=actor.id,
                     data={"from": old, "to": org.timezone})
    org.description = description or ""
    org.description_html = render_markdown(description)
    org.website = website or ""
    db.session.commit()


def _owners(org: Organisation) -> int:
    return db.session.execute(
        select(func.count()).where(Membership.org_id == org.id, Membership.role == OrgRole.OWNER.value)
    ).scalar_one()


def add_member(actor: User, org: Organisation, user: User, role: str) -> Membership:
    if role not in OrgRole.values():
        raise ServiceError(f"Unknown role {role!r}.", field="role")
    if not policy.can(actor, "manage_members", org):
        raise ServiceError("Only the organisation's owners and admins can add members.", 403)
    if not policy.may_set_member_role(policy.viewer_for(actor), org.id, None, role):
        raise ServiceError("Only owners can make someone an owner.", 403, field="role")
    existing = db.session.execute(
        select(Membership).where(Membership.org_id == org.id, Membership.user_id == user.id)
    ).scalar()
    if existing:
        raise ServiceError(f"{user.display_name} is already a member.", 409, field="email")
    m = Membership(org_id=org.id, user_id=user.id, role=role)
    db.session.add(m)
    try:
        db.session.flush()
        audit.record("org.member_added", "organisation", org.id, actor_id=actor.id,
                     data={"user_id": user.id, "role": role})
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ServiceError(f"{user.display_name} is already a member.", 409, field="email")
    policy.forget_viewer(user.id)
    return m


def change_role(actor: User, m: Membership, role: str) -> None:
    if role not in OrgRole.values():
        raise ServiceError(f"Unknown role {role!r}.", field="role")
    org = m.organisation
    v = policy.viewer_for(actor)
    if not policy.can(actor, "manage_members", org):
        raise ServiceError("Only the organisation's owners and admins can change roles.", 403)
    if not policy.may_set_member_role(v, org.id, m.role, role):
        raise ServiceError("Only owners can make or unmake owners.", 403)
    if m.role == OrgRole.OWNER.value and role != OrgRole.OWNER.value and _owners(org) <= 1:
        raise ServiceError("An organisation needs at least one owner.", 409)
    old = m.role
    m.role = role
    audit.record("org.role_changed", "organisation", org.id, actor_id=actor.id,
                 data={"user_id": m.user_id, "from": old, "to": role})
    db.session.commit()
    policy.forget_viewer(m.user_id)


def remove_member(actor: User, m: Membership) -> None:
    org = m.organisation
    v = policy.viewer_for(actor)
    self_leave = m.user_id == actor.id
    if not self_leave and not policy.can(actor, "manage_members", org):
        raise ServiceError("Only the organisation's owners and admins can remove members.", 403)
    if not policy.may_set_member_role(v, org.id, m.role, None, self_leave=self_leave):
        raise ServiceError("Only owners can remove an owner.", 403)
    if m.role == OrgRole.OWNER.value and _owners(org) <= 1:
        raise ServiceError("An organisation needs at least one owner.", 409)
    audit.record("org.member_removed", "organisation", org.id, actor_id=actor.id,
                 data={"user_id": m.user_id, "role": m.role})
    db.session.delete(m)
    db.session.commit()
    policy.forget_viewer(m.user_id)
