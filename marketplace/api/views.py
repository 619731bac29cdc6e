"""Organisations, challenges/failures/assets and challenge terms.

Lists start from policy.visible() (items through the same list query as the pages), objects
are loaded with the policy's 404-on-invisible loader, and writes call the services the pages
call, which ask the policy themselves.
"""
from __future__ import annotations

from flask import abort
from flask_login import current_user
from sqlalchemy import func, select

from .. import policy
from ..extensions import db
from ..items.queries import BadListArgs, ListArgs, item_list
from ..models import ChallengeTerms, Item, ItemKind, Membership, Organisation, User
from ..services import items as items_svc
from ..services import orgs as orgs_svc
from ..services.accounts import find_user
from ..services.common import ServiceError
from ..services.tokens import is_integration
from . import schemas as s
from .core import ApiError, PageQuery, operation, page_meta, paginate
from .serializers import item_json, org_json, terms_json

# --------------------------------------------------------------------------- loaders


def item_or_404(item_id: int, kind: str | None = None) -> Item:
    item = policy.get_visible_or_404(Item, item_id)
    if kind is not None and item.kind != kind:
        abort(404)
    return item


# --------------------------------------------------------------------------- items


def _list(q, kind: str | None):
    args = {k: v for k, v in q.model_dump().items() if v is not None and k != "per_page"}
    try:
        a = ListArgs.from_request(args, kind=kind)
    except BadListArgs as e:
        raise ApiError(400, str(e)) from None
    rows, total, _org = item_list(current_user, a, q.per_page)
    return {"items": [item_json(i, current_user) for i in rows], **page_meta(total, a.page, q.per_page)}


@operation("/v1/items", summary="List challenges, failures and assets", tag="Items", query=s.ItemQuery,
           response=s.ItemList, paginated=True)
def items(q):
    """The site's list filters (kind, tag, org, status, sort): what the caller may see."""
    return _list(q, None)


def _kind_list(kind: str):
    def view(q):
        return _list(q, kind)
    view.__name__ = f"{kind}s"
    view.__doc__ = f"The {kind}s the caller may see, with the site's filters."
    return operation(f"/v1/{kind}s", summary=f"List {kind}s", tag="Items", query=s.KindItemQuery,
                     response=s.ItemList, paginated=True)(view)


for _kind in ItemKind.values():
    _kind_list(_kind)


@operation("/v1/items/<int:item_id>", summary="Get a challenge, failure or asset", tag="Items",
           response=s.ItemDetail, errors=(404,))
def item(item_id: int):
    """404 for an item that does not exist or that the caller may not see."""
    return item_json(item_or_404(item_id), current_user, full=True)


def _item_data(body: s.ItemFields) -> dict:
    data = body.model_dump(exclude_unset=True, exclude={"kind", "visibility", "publish"})
    if "tags" in data and data["tags"] is not None:
        data["tags"] = list(data["tags"])
    return data


@operation("/v1/orgs/<slug>/items", "POST", summary="Create a challenge, failure or asset", tag="Items",
           scope="items:write", body=s.ItemCreate, response=s.ItemDetail, status=201, errors=(403, 404, 409))
def item_create(slug: str, body: s.ItemCreate):
    """Posted for the organisation in the path (its owners and admins); a draft unless
    `publish` is true (a challenge then needs a deadline and a terms sheet)."""
    org = policy.get_visible_org_or_404(slug)
    data = _item_data(body)
    data["visibility"] = body.visibility
    it = items_svc.create_item(current_user, org, body.kind, data, publish=body.publish)
    return item_json(it, current_user, full=True)


@operation("/v1/items/<int:item_id>", "PATCH", summary="Edit an item", tag="Items", scope="items:write",
           body=s.ItemUpdate, response=s.ItemDetail, errors=(403, 404, 409))
def item_update(item_id: int, body: s.ItemUpdate):
    """Only the fields sent change. Visibility and status have their own operations."""
    it = item_or_404(item_id)
    kind_fields = set(items_svc.KIND_FIELDS[it.kind])
    other = [f for f in body.model_fields_set if f in {f for fs in items_svc.KIND_FIELDS.values() for f in fs}
             and f not in kind_fields]
    if other:
        raise ApiError(422, f"Field {other[0]} is not a field of a {it.kind}.",
                       fields={f: f"Not a field of a {it.kind}." for f in other})
    it = items_svc.update_item(current_user, it, _item_data(body), publish=body.publish)
    return item_json(it, current_user, full=True)


@operation("/v1/items/<int:item_id>/visibility", "PUT", summary="Change an item's visibility", tag="Items",
           scope="items:write", body=s.VisibilityChange, response=s.ItemDetail, errors=(403, 404))
def item_visibility(item_id: int, body: s.VisibilityChange):
    it = item_or_404(item_id)
    items_svc.change_visibility(current_user, it, body.visibility, body.reason)
    return item_json(it, current_user, full=True)


@operation("/v1/items/<int:item_id>/status", "POST", summary="Publish, open, close or archive an item",
           tag="Items", scope="items:write", body=s.StatusChange, response=s.ItemDetail, errors=(403, 404, 409))
def item_status(item_id: int, body: s.StatusChange):
    """`open` publishes a draft (or reopens a closed item); `closed`; `archived`. Moves the
    site does not allow are 409."""
    it = item_or_404(item_id)
    items_svc.change_status(current_user, it, body.status)
    return item_json(it, current_user, full=True)


# --------------------------------------------------------------------------- terms


@operation("/v1/challenges/<int:item_id>/terms", summary="A challenge's terms versions and current digest",
           tag="Terms", response=s.TermsList, errors=(404,))
def terms(item_id: int):
    """Ideas are submitted against `current_digest` (send it as `accept_terms_digest`)."""
    ch = item_or_404(item_id, ItemKind.CHALLENGE.value)
    rows = db.session.execute(select(ChallengeTerms).where(ChallengeTerms.challenge_id == ch.id)
                              .order_by(ChallengeTerms.version.desc())).scalars().all()
    rows = [t for t in rows if policy.can(current_user, "view", t)]
    current = policy.current_terms(ch.id)
    if current is not None and not policy.can(current_user, "view", current):
        current = None
    return {"challenge_id": ch.id, "current_digest": current.digest if current else None,
            "current_version": current.version if current else None, "versions": [terms_json(t) for t in rows]}


# --------------------------------------------------------------------------- organisations


@operation("/v1/orgs", summary="List organisations", tag="Organisations", query=PageQuery, response=s.OrgList,
           paginated=True)
def orgs(q):
    stmt = policy.visible(current_user, Organisation).order_by(func.lower(Organisation.name), Organisation.id)
    rows, meta = paginate(stmt, q)
    return {"orgs": [org_json(o) for o in rows], **meta}


@operation("/v1/orgs", "POST", summary="Create an organisation", tag="Organisations", scope="orgs:write",
           body=s.OrgCreate, response=s.OrgOut, status=201, errors=(403, 409))
def org_create(body: s.OrgCreate):
    """The caller becomes its owner."""
    if is_integration(current_user):
        raise ApiError(403, "Integration accounts cannot own organisations.")
    o = orgs_svc.create_org(current_user, body.name, body.kind, body.description, body.website)
    return org_json(o)


@operation("/v1/orgs/<slug>", summary="Get an organisation and its items", tag="Organisations",
           response=s.OrgDetail, errors=(404,))
def org(slug: str):
    o = policy.get_visible_org_or_404(slug)
    q = policy.visible(current_user, Item).where(Item.org_id == o.id).order_by(Item.created_at.desc()).limit(200)
    return {"slug": o.slug, "name": o.name, "kind": o.kind, "description_html": o.description_html,
            "website": o.website, "items": [item_json(i, current_user) for i in db.session.execute(q).scalars()]}


def _members_org(slug: str) -> Organisation:
    o = policy.get_visible_org_or_404(slug)
    if not policy.can(current_user, "manage_members", o):
        raise ApiError(403, "Only the organisation's owners and admins see and manage its members.")
    return o


def _member_json(m: Membership) -> dict:
    return {"user_id": m.user_id, "display_name": m.user.display_name, "role": m.role,
            "integration": is_integration(m.user)}


@operation("/v1/orgs/<slug>/members", summary="List an organisation's members", tag="Organisations",
           query=PageQuery, response=s.MemberList, errors=(403, 404), paginated=True, auth=True)
def org_members(slug: str, q):
    o = _members_org(slug)
    stmt = select(Membership).where(Membership.org_id == o.id).order_by(Membership.role, Membership.id)
    rows, meta = paginate(stmt, q)
    return {"members": [_member_json(m) for m in rows], **meta}


@operation("/v1/orgs/<slug>/members", "POST", summary="Add a member", tag="Organisations", scope="orgs:write",
           body=s.MemberAdd, response=s.MemberOut, status=201, errors=(403, 404, 409))
def org_member_add(slug: str, body: s.MemberAdd):
    """Only owners make owners."""
    o = _members_org(slug)
    user = find_user(body.email)
    if user is None:
        raise ServiceError("No account has this e-mail address. Ask them to register first.", 422, field="email")
    m = orgs_svc.add_member(current_user, o, user, body.role)
    return _member_json(m)


def _membership(o: Organisation, user_id: int) -> Membership:
    m = db.session.execute(select(Membership).where(Membership.org_id == o.id,
                                                    Membership.user_id == user_id)).scalar()
    if m is None:
        abort(404)
    return m


@operation("/v1/orgs/<slug>/members/<int:user_id>", "PATCH", summary="Change a member's role",
           tag="Organisations", scope="orgs:write", body=s.MemberRole, response=s.MemberOut,
           errors=(403, 404, 409))
def org_member_role(slug: str, user_id: int, body: s.MemberRole):
    o = _members_org(slug)
    m = _membership(o, user_id)
    orgs_svc.change_role(current_user, m, body.role)
    return _member_json(m)


@operation("/v1/orgs/<slug>/members/<int:user_id>", "DELETE", summary="Remove a member (or leave)",
           tag="Organisations", scope="orgs:write", status=204, errors=(403, 404, 409))
def org_member_remove(slug: str, user_id: int):
    o = policy.get_visible_org_or_404(slug)
    if user_id != current_user.id and not policy.can(current_user, "manage_members", o):
        raise ApiError(403, "Only the organisation's owners and admins remove members.")
    orgs_svc.remove_member(current_user, _membership(o, user_id))
    return None


__all__ = ["item_or_404", "User"]
