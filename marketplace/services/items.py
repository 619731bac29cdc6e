"""Writes for challenges, failures and assets: create, edit, visibility, status, delete,
access grants. Each function checks the policy itself, so every surface (pages, API, CLI)
gets the same rules."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from sqlalchemy import select

from .. import audit, policy
from ..extensions import db
from ..models import (
    MODEL_BY_KIND,
    AccessGrant,
    Item,
    ItemKind,
    ItemTag,
    Organisation,
    Status,
    User,
    Visibility,
    utcnow,
)
from ..sanitize import render_markdown
from .common import ServiceError, parse_tags

# Feature modules add checks that must pass before an item opens (e.g. a challenge needs
# a terms sheet): fn(item) -> error message or None.
OPEN_CHECKS: list[Callable[[Item], str | None]] = []
# Called (in the same transaction) when an item is published for the first time, e.g. to
# tell the followers of its organisation and tags.
PUBLISHED_HOOKS: list[Callable[[Item], None]] = []


def _published(item: Item) -> None:
    db.session.flush()
    for hook in PUBLISHED_HOOKS:
        hook(item)

# Called (in the same transaction) after an item's status changed: fn(item, old, new), e.g.
# to ask a closed challenge's admins for an after-action review.
STATUS_HOOKS: list[Callable[[Item, str, str], None]] = []

# Allowed status moves; anything else is refused.
TRANSITIONS = {
    Status.DRAFT.value: {Status.OPEN.value},
    Status.OPEN.value: {Status.CLOSED.value, Status.ARCHIVED.value},
    Status.CLOSED.value: {Status.OPEN.value, Status.ARCHIVED.value},
    Status.ARCHIVED.value: set(),
}

COMMON_FIELDS = ("title", "summary", "body")
KIND_FIELDS = {
    ItemKind.CHALLENGE.value: ("context", "expected_outcome", "opens_at", "deadline", "incentive_summary"),
    ItemKind.FAILURE.value: ("went_wrong", "lessons"),
    ItemKind.ASSET.value: ("asset_kind", "availability", "licensing_note"),
}


def _render(item: Item) -> None:
    for f in item.MARKDOWN_FIELDS:
        setattr(item, f + "_html", render_markdown(getattr(item, f) or ""))


def _set_tags(item: Item, tags: list[str]) -> None:
    current = {t.tag: t for t in item.tag_rows}
    for t in list(current):
        if t not in tags:
            item.tag_rows.remove(current[t])
    for t in tags:
        if t not in current:
            item.tag_rows.append(ItemTag(tag=t))


def _validate_schedule(item: Item, now: datetime) -> None:
    if item.kind != ItemKind.CHALLENGE.value:
        return
    if item.opens_at and item.deadline and item.opens_at >= item.deadline:
        raise ServiceError("The deadline must be after the opening time.", field="deadline")


def _check_can_open(item: Item, now: datetime) -> None:
    if item.kind == ItemKind.CHALLENGE.value:
        if item.deadline is None:
            raise ServiceError("A challenge needs a deadline before it can open.", field="deadline")
        if item.deadline <= now:
            raise ServiceError("The deadline is in the past; set a future deadline to open the challenge.",
                               field="deadline")
    for check in OPEN_CHECKS:
        msg = check(item)
        if msg:
            raise ServiceError(msg, field="status")


def create_item(user: User, org: Organisation, kind: str, data: dict[str, Any], publish: bool = False,
                commit: bool = True) -> Item:
    """Post an item (a draft unless ``publish``). ``commit=False``: the caller finishes the
    transaction (a challenge copied from a past one commits once all its parts are copied)."""
    if kind not in MODEL_BY_KIND:
        raise ServiceError(f"Unknown kind {kind!r}.", 404)
    if not policy.can(user, "create_item", org):
        raise ServiceError("Only the organisation's owners and admins can post for it.", 403)
    visibility = data.get("visibility", Visibility.ORGANISATION.value)
    if visibility not in Visibility.values():
        raise ServiceError(f"Unknown visibility {visibility!r}.", field="visibility")
    now = utcnow()
    if kind == ItemKind.CHALLENGE.value and data.get("deadline") and data["deadline"] <= now:
        raise ServiceError("The deadline must be in the future.", field="deadline")
    item = MODEL_BY_KIND[kind](org_id=org.id, created_by_id=user.id, visibility=visibility,
                               status=Status.DRAFT.value)
    for f in COMMON_FIELDS + KIND_FIELDS[kind]:
        if f in data:
            setattr(item, f, data[f])
    _validate_schedule(item, now)
    item.organisation = org
    if publish:
        _check_can_open(item, now)
        item.status = Status.OPEN.value
        item.published_at = now
    _render(item)
    _set_tags(item, parse_tags(data.get("tags")))
    db.session.add(item)
    db.session.flush()
    audit.record("item.created", item.kind, item.id, actor_id=user.id, item_id=item.id,
                 data={"visibility": item.visibility, "status": item.status, "org_id": org.id})
    if publish:
        _published(item)
    if commit:
        db.session.commit()
    return item


def _same_minute(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and b is not None and \
        a.replace(second=0, microsecond=0) == b.replace(second=0, microsecond=0)


def update_item(user: User, item: Item, data: dict[str, Any], publish: bool = False) -> Item:
    """Edit an item; with ``publish`` a draft also opens, in the same transaction, so a
    refused publication saves nothing (no half-applied edit)."""
    if not policy.can(user, "edit", item):
        raise ServiceError("You may not edit this item.", 403)
    if publish and item.status == Status.DRAFT.value and not policy.can(user, "change_status", item):
        raise ServiceError("Only the organisation's owners and admins can publish.", 403)
    data = dict(data)
    # Forms send times to the minute: a value equal to the stored one to the minute is
    # unchanged (otherwise every edit would look like a deadline change).
    for f in ("opens_at", "deadline"):
        if f in data and _same_minute(data[f], getattr(item, f)):
            data[f] = getattr(item, f)
    now = utcnow()
    old_deadline = item.deadline
    old_status = item.status
    first = item.published_at is None
    try:
        if item.kind == ItemKind.CHALLENGE.value and "deadline" in data and data["deadline"] != old_deadline:
            if data["deadline"] is not None and data["deadline"] <= now:
                raise ServiceError("The deadline must be in the future.", field="deadline")
            if data["deadline"] is None and item.status != Status.DRAFT.value:
                raise ServiceError("A published challenge needs a deadline.", field="deadline")
        for f in COMMON_FIELDS + KIND_FIELDS[item.kind]:
            if f in data:
                setattr(item, f, data[f])
        _validate_schedule(item, now)
        _render(item)
        if "tags" in data:
            _set_tags(item, parse_tags(data["tags"]))
        if publish and old_status == Status.DRAFT.value:
            _check_can_open(item, now)
            item.status = Status.OPEN.value
            item.published_at = item.published_at or now
        if item.kind == ItemKind.CHALLENGE.value and item.deadline != old_deadline:
            audit.record("challenge.deadline_changed", item.kind, item.id, actor_id=user.id, item_id=item.id,
                         data={"from": old_deadline.isoformat() if old_deadline else None,
                               "to": item.deadline.isoformat() if item.deadline else None})
        if item.status != old_status:
            audit.record("item.status_changed", item.kind, item.id, actor_id=user.id, item_id=item.id,
                         data={"from": old_status, "to": item.status})
        if first and item.published_at is not None:
            _published(item)
    except ServiceError:
        db.session.rollback()  # the item was changed in memory: leave nothing behind
        raise
    db.session.commit()
    return item


def _is_change(user: User, item: Item, field: str, value: str, known: list[str], refusal: str) -> bool:
    """Check a wanted change of the item's `field` (its policy action is "change_<field>"):
    an unknown value is refused (400), so is a user the policy does not allow (403). False
    when the item already has that value (nothing to do)."""
    if value not in known:
        raise ServiceError(f"Unknown {field} {value!r}.", field=field)
    if not policy.can(user, f"change_{field}", item):
        raise ServiceError(refusal, 403)
    return value != getattr(item, field)


def change_visibility(user: User, item: Item, visibility: str, reason: str = "") -> None:
    if not _is_change(user, item, "visibility", visibility, Visibility.values(),
                      "Only the organisation's owners and admins can change visibility."):
        return
    old = item.visibility
    item.visibility = visibility
    audit.record("item.visibility_changed", item.kind, item.id, actor_id=user.id, item_id=item.id,
                 data={"from": old, "to": visibility, "reason": reason})
    db.session.commit()


def change_status(user: User, item: Item, status: str) -> None:
    if not _is_change(user, item, "status", status, Status.values(),
                      "Only the organisation's owners and admins can change the status."):
        return
    if status not in TRANSITIONS[item.status]:
        raise ServiceError(f"An item that is {item.status} cannot become {status}.", 409, field="status")
    now = utcnow()
    first = item.published_at is None
    if status == Status.OPEN.value:
        _check_can_open(item, now)
        item.published_at = item.published_at or now
    old = item.status
    item.status = status
    audit.record("item.status_changed", item.kind, item.id, actor_id=user.id, item_id=item.id,
                 data={"from": old, "to": status})
    if first and item.published_at is not None:
        _published(item)
    for hook in STATUS_HOOKS:
        hook(item, old, status)
    db.session.commit()


def delete_item(user: User, item: Item) -> None:
    """Only drafts are deleted outright; published items are archived to keep the record."""
    if not policy.can(user, "delete", item):
        raise ServiceError("Only the organisation's owners and admins can delete.", 403)
    if item.status != Status.DRAFT.value:
        raise ServiceError("Published items cannot be deleted; archive them instead.", 409)
    audit.record("item.deleted", item.kind, item.id, actor_id=user.id, item_id=item.id,
                 data={"title": item.title})
    db.session.delete(item)
    db.session.commit()


# ---------------------------------------------------------------------------- grants


def grant_access(actor: User, item: Item, *, user: User | None = None, org: Organisation | None = None,
                 expires_at: datetime | None = None, reason: str = "manual") -> AccessGrant:
    if not policy.can(actor, "manage_access", item):
        raise ServiceError("Only the organisation's owners and admins can grant access.", 403)
    if (user is None) == (org is None):
        raise ServiceError("Grant access to exactly one person or one organisation.")
    if expires_at is not None and expires_at <= utcnow():
        raise ServiceError("The expiry must be in the future.", field="expires_at")
    existing = db.session.execute(
        select(AccessGrant).where(
            AccessGrant.item_id == item.id,
            (AccessGrant.user_id == user.id) if user else (AccessGrant.org_id == org.id),
            AccessGrant.revoked_at.is_(None),
        )
    ).scalars().all()
    for g in existing:
        if g.is_active():
            if g.expires_at != expires_at:
                old = g.expires_at
                g.expires_at = expires_at
                audit.record("access.expiry_changed", "grant", g.id, actor_id=actor.id, item_id=item.id,
                             data={"user_id": g.user_id, "org_id": g.org_id,
                                   "from": old.isoformat() if old else None,
                                   "to": expires_at.isoformat() if expires_at else None})
                db.session.commit()
            return g
    grant = AccessGrant(item_id=item.id, user_id=user.id if user else None, org_id=org.id if org else None,
                        granted_by_id=actor.id, expires_at=expires_at, reason=reason)
    db.session.add(grant)
    db.session.flush()
    audit.record("access.granted", "grant", grant.id, actor_id=actor.id, item_id=item.id,
                 data={"user_id": grant.user_id, "org_id": grant.org_id,
                       "expires_at": expires_at.isoformat() if expires_at else None})
    db.session.commit()
    return grant


def revoke_grant(actor: User, grant: AccessGrant) -> None:
    if not policy.can(actor, "manage_access", grant.item):
        raise ServiceError("Only the organisation's owners and admins can revoke access.", 403)
    if grant.revoked_at is not None:
        return
    grant.revoked_at = utcnow()
    audit.record("access.revoked", "grant", grant.id, actor_id=actor.id, item_id=grant.item_id,
                 data={"user_id": grant.user_id, "org_id": grant.org_id})
    db.session.commit()
