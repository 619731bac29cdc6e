from __future__ import annotations

import math

from flask import abort, jsonify, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from .. import policy
from ..extensions import db
from ..items.queries import BadListArgs, ListArgs, item_list
from ..models import Item, Organisation
from ..params import int_arg
from . import bp

def _iso(dt):
    return dt.isoformat().replace("+00:00", "Z") if dt else None


def item_json(item: Item, full: bool = False) -> dict:
    out = {
        "id": item.id,
        "kind": item.kind,
        "title": item.title,
        "summary": item.summary,
        "visibility": item.visibility,
        "status": item.status,
        "hidden": item.hidden_at is not None,
        "tags": item.tags,
        "organisation": {"slug": item.organisation.slug, "name": item.organisation.name},
        "created_at": _iso(item.created_at),
        "published_at": _iso(item.published_at),
        "url": url_for("items.detail", kind=item.kind, item_id=item.id, _external=True),
    }
    if item.kind == "challenge":
        out.update(opens_at=_iso(item.opens_at), deadline=_iso(item.deadline),
                   incentive_summary=item.incentive_summary)
    if item.kind == "asset":
        out["asset_kind"] = item.asset_kind
    if full:
        if policy.can(current_user, "view_brief", item):
            out["html"] = {f: getattr(item, f + "_html") or "" for f in item.MARKDOWN_FIELDS}
        else:  # the full brief is under an NDA this viewer has not accepted
            out["html"] = None
            out["brief_under_nda"] = True
    return out


def _list(kind: str | None):
    try:
        a = ListArgs.from_request(request.args, kind=kind)
    except BadListArgs as e:
        abort(400, str(e))
    size = int_arg("per_page", 20, minimum=1, maximum=100, source=request.args)
    rows, total, _org = item_list(current_user, a, size)
    return jsonify(items=[item_json(i) for i in rows], total=total, page=a.page, per_page=size,
                   pages=max(1, math.ceil(total / size)))


@bp.route("/v1/items")
def items():
    return _list(None)


@bp.route("/v1/<any(challenges, failures, assets):plural>")
def items_of_kind(plural: str):
    return _list(plural[:-1])


@bp.route("/v1/items/<int:item_id>")
def item(item_id: int):
    return jsonify(item_json(policy.get_visible_or_404(Item, item_id), full=True))


@bp.route("/v1/orgs")
def orgs():
    rows = db.session.execute(policy.visible(current_user, Organisation).order_by(func.lower(Organisation.name))
                              .limit(1000)).scalars().all()
    return jsonify(orgs=[{"slug": o.slug, "name": o.name, "kind": o.kind,
                          "url": url_for("orgs.detail", slug=o.slug, _external=True)} for o in rows])


@bp.route("/v1/orgs/<slug>")
def org(slug: str):
    o = db.session.execute(select(Organisation).where(Organisation.slug == slug[:140])).scalar()
    if o is None or not policy.can(current_user, "view", o):
        abort(404)
    q = policy.visible(current_user, Item).where(Item.org_id == o.id).order_by(Item.created_at.desc()).limit(200)
    return jsonify(slug=o.slug, name=o.name, kind=o.kind, description_html=o.description_html,
                   website=o.website, items=[item_json(i) for i in db.session.execute(q).scalars()])


@bp.route("/v1/me")
def me():
    if not current_user.is_authenticated:
        return jsonify(authenticated=False)
    v = policy.viewer_for(current_user)
    return jsonify(authenticated=True, id=current_user.id, display_name=current_user.display_name,
                   site_role=current_user.site_role,
                   organisations=[{"id": o, "role": r} for o, r in sorted(v.org_roles.items())])
