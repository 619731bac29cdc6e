"""Views: load, check with the policy, validate, call a service, redirect."""
from __future__ import annotations

import math

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from .. import policy
from ..formtools import attach_service_error, unconfirmed, zone_meta
from ..extensions import db
from ..models import (
    MODEL_BY_KIND,
    AccessGrant,
    Membership,
    Organisation,
    Status,
)
from ..params import id_arg
from ..policy import get_visible_or_404, require
from ..services import items as svc
from ..services.accounts import find_user
from ..services.orgs import ORG_NOT_FOUND, find_org
from ..services.common import ServiceError
from . import bp
from .forms import FORM_BY_KIND, GrantForm, VisibilityForm
from .queries import BadListArgs, ListArgs, item_list

PLURAL = {"challenge": "challenges", "failure": "failures", "asset": "assets"}
# Status changes that ask first (the dialog's text is the button's data-confirm in the page).
CONFIRMED_STATUSES = {
    Status.CLOSED.value: "Close the {kind} “{title}”? It stops taking part (no new ideas, questions or "
                         "requests); you can reopen it.",
    Status.ARCHIVED.value: "Archive the {kind} “{title}” for good? Archived items leave the lists and "
                           "cannot be reopened.",
}
# Feature panels shown on a detail page: (template, predicate(item) -> bool).
ITEM_PANELS: list[tuple[str, object]] = []


def _route(rule: str, endpoint: str, **opts):
    """Register one view under /challenges, /failures and /assets with kind as a default."""

    def deco(fn):
        for kind, plural in PLURAL.items():
            bp.add_url_rule(f"/{plural}{rule}", endpoint, fn, defaults={"kind": kind}, **opts)
        return fn

    return deco


def _load(kind: str, item_id: int):
    item = get_visible_or_404(MODEL_BY_KIND[kind], item_id)
    return item


@_route("/", "list_kind")
def list_kind(kind: str):
    try:
        a = ListArgs.from_request(request.args, kind=kind)
    except BadListArgs as e:
        abort(400, str(e))
    size = current_app.config["PAGE_SIZE"]
    rows, total, org = item_list(current_user, a, size, hide_archived=True)
    pages = max(1, math.ceil(total / size))
    my_orgs = []
    if current_user.is_authenticated:
        my_orgs = [o for o in current_user_orgs() if policy.can(current_user, "create_item", o)]
    args = {k: v for k, v in {"tag": a.tag, "org": a.org, "status": a.status, "sort": a.sort}.items() if v}
    statuses = [s for s in Status.values()
                if s != Status.DRAFT.value or policy.can(current_user, "list_drafts")]
    return render_template("items/list.html", kind=kind, items=rows, total=total, page=a.page, pages=pages,
                           args=args, statuses=statuses, my_orgs=my_orgs, org=org)


def current_user_orgs() -> list[Organisation]:
    return db.session.execute(
        select(Organisation).join(Membership).where(Membership.user_id == current_user.id)
        .order_by(Organisation.name)
    ).scalars().all()


@_route("/<int:item_id>", "detail")
def detail(kind: str, item_id: int):
    item = _load(kind, item_id)
    panels = [tpl for tpl, pred in ITEM_PANELS if pred(item)]
    vis_form = VisibilityForm(visibility=item.visibility) if policy.can(current_user, "change_visibility", item) else None
    return render_template("items/detail.html", item=item, kind=kind, panels=panels, vis_form=vis_form,
                           confirm_statuses=CONFIRMED_STATUSES)


def _form_for(kind: str, org, obj=None):
    """The item form; its times are typed in the organisation's time zone."""
    return FORM_BY_KIND[kind](obj=obj, meta=zone_meta(org))


@_route("/new", "new", methods=["GET", "POST"])
@login_required
def new(kind: str):
    orgs = [o for o in current_user_orgs() if policy.can(current_user, "create_item", o)]
    if not orgs:
        abort(403, "You need to be an owner or admin of an organisation to post. Create one first.")
    org_id = id_arg("org") or orgs[0].id
    org = next((o for o in orgs if o.id == org_id), None)
    if org is None:
        abort(403, "You cannot post for that organisation.")
    form = _form_for(kind, org)
    if form.validate_on_submit():
        try:
            item = svc.create_item(current_user, org, kind, form.data_for_service(), publish=bool(form.publish.data))
        except ServiceError as e:
            attach_service_error(form, e)
        else:
            flash(f"{item.kind_label} {'published' if item.status == 'open' else 'saved as a draft'}.", "success")
            return redirect(url_for("items.detail", kind=kind, item_id=item.id))
    return render_template("items/form.html", form=form, kind=kind, org=org, orgs=orgs, item=None), \
        (400 if form.errors else 200)



@_route("/<int:item_id>/edit", "edit", methods=["GET", "POST"])
@login_required
def edit(kind: str, item_id: int):
    item = _load(kind, item_id)
    require("edit", item)
    form = _form_for(kind, item.organisation, obj=item)
    if request.method == "GET":
        form.tags.data = ", ".join(item.tags)
    if form.validate_on_submit():
        data = form.data_for_service()
        data.pop("visibility", None)  # visibility has its own audited action
        try:
            # One transaction: a refused publication must not leave the edit half-saved.
            svc.update_item(current_user, item, data,
                            publish=bool(form.publish.data) and item.status == Status.DRAFT.value)
        except ServiceError as e:
            db.session.rollback()
            attach_service_error(form, e)
        else:
            flash("Saved.", "success")
            return redirect(url_for("items.detail", kind=kind, item_id=item.id))
    return render_template("items/form.html", form=form, kind=kind, org=item.organisation, orgs=None, item=item), \
        (400 if form.errors else 200)


@_route("/<int:item_id>/visibility", "visibility", methods=["POST"])
@login_required
def visibility(kind: str, item_id: int):
    item = _load(kind, item_id)
    require("change_visibility", item)
    form = VisibilityForm()
    if not form.validate_on_submit():
        abort(400, "Choose one of the visibility levels.")
    try:
        svc.change_visibility(current_user, item, form.visibility.data)
    except ServiceError as e:
        abort(e.status, e.message)
    flash(f"Visibility is now {item.visibility}.", "success")
    return redirect(url_for("items.detail", kind=kind, item_id=item.id))


@_route("/<int:item_id>/status", "status", methods=["POST"])
@login_required
def status(kind: str, item_id: int):
    item = _load(kind, item_id)
    require("change_status", item)
    new_status = request.form.get("status", "")
    if new_status not in Status.values():
        abort(400, f"Unknown status; use one of {', '.join(Status.values())}.")
    if new_status in CONFIRMED_STATUSES and new_status != item.status:
        page = unconfirmed(CONFIRMED_STATUSES[new_status].format(kind=item.kind_label.lower(), title=item.title),
                           f"{'Close' if new_status == Status.CLOSED.value else 'Archive'} the {item.kind_label.lower()}",
                           url_for("items.detail", kind=kind, item_id=item.id), danger=True)
        if page is not None:
            return page
    try:
        svc.change_status(current_user, item, new_status)
    except ServiceError as e:
        db.session.rollback()
        flash(e.message, "error")
        return redirect(url_for("items.detail", kind=kind, item_id=item.id)), 303
    flash(f"Status is now {item.status}.", "success")
    return redirect(url_for("items.detail", kind=kind, item_id=item.id))


@_route("/<int:item_id>/delete", "delete", methods=["POST"])
@login_required
def delete(kind: str, item_id: int):
    item = _load(kind, item_id)
    require("delete", item)
    try:
        svc.delete_item(current_user, item)
    except ServiceError as e:
        abort(e.status, e.message)
    flash("Draft deleted.", "success")
    return redirect(url_for("items.list_kind", kind=kind))


@_route("/<int:item_id>/access", "access", methods=["GET", "POST"])
@login_required
def access(kind: str, item_id: int):
    item = _load(kind, item_id)
    require("manage_access", item)
    form = GrantForm(meta=zone_meta(item.organisation))
    if form.validate_on_submit():
        user = org = None
        if form.email.data:
            user = find_user(form.email.data)
            if user is None:
                form.email.errors.append("No account has this e-mail address; send an invitation instead.")
        else:
            org = find_org(form.org.data)
            if org is None:
                form.org.errors.append(ORG_NOT_FOUND)
        if user or org:
            try:
                svc.grant_access(current_user, item, user=user, org=org, expires_at=form.expires_at.data)
            except ServiceError as e:
                attach_service_error(form, e)
            else:
                flash("Access granted.", "success")
                return redirect(url_for("items.access", kind=kind, item_id=item.id))
    grants = db.session.execute(
        select(AccessGrant).where(AccessGrant.item_id == item.id).order_by(AccessGrant.created_at.desc())
    ).scalars().all()
    return render_template("items/access.html", item=item, kind=kind, form=form, grants=grants), \
        (400 if form.errors else 200)


@_route("/<int:item_id>/access/<int:grant_id>/revoke", "revoke", methods=["POST"])
@login_required
def revoke(kind: str, item_id: int, grant_id: int):
    item = _load(kind, item_id)
    require("manage_access", item)
    grant = db.session.get(AccessGrant, grant_id)
    if grant is None or grant.item_id != item.id:
        abort(404)
    svc.revoke_grant(current_user, grant)
    flash("Access revoked.", "success")
    return redirect(url_for("items.access", kind=kind, item_id=item.id))
