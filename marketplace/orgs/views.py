from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from .. import policy
from ..extensions import db
from ..models import Item, Membership, Organisation, OrgKind
from ..policy import require
from ..services import orgs as svc
from ..services.accounts import find_user
from ..services.common import ServiceError
from . import bp
from .forms import MemberForm, OrgEditForm, OrgForm, RoleForm


@bp.route("/")
def index():
    kind = request.args.get("kind", "")
    q = policy.visible(current_user, Organisation).order_by(func.lower(Organisation.name))
    if kind:
        if kind not in OrgKind.values():
            abort(400, f"Unknown kind; use one of {', '.join(OrgKind.values())}.")
        q = q.where(Organisation.kind == kind)
    orgs = db.session.execute(q).scalars().all()
    return render_template("orgs/index.html", orgs=orgs, kind=kind, kinds=OrgKind.values())


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    form = OrgForm()
    form.set_zone_choices(current_user.timezone)
    if form.validate_on_submit():
        try:
            org = svc.create_org(current_user, form.name.data, form.kind.data, form.description.data or "",
                                 form.website.data or "", timezone=form.timezone.data)
        except ServiceError as e:
            form.name.errors.append(e.message)
        else:
            flash(f"{org.name} created; you are its owner.", "success")
            return redirect(url_for("orgs.detail", slug=org.slug))
    return render_template("orgs/form.html", form=form, org=None), (400 if form.errors else 200)


@bp.route("/<slug>")
def detail(slug: str):
    org = policy.get_visible_org_or_404(slug)
    q = policy.visible(current_user, Item).where(Item.org_id == org.id).order_by(Item.created_at.desc(), Item.id.desc())
    items = db.session.execute(q.limit(200)).scalars().all()
    by_kind = {k: [i for i in items if i.kind == k] for k in ("challenge", "failure", "asset")}
    members = None
    if policy.viewer_for(current_user).is_member(org.id):
        members = db.session.execute(
            select(Membership).where(Membership.org_id == org.id).order_by(Membership.role, Membership.id)
        ).scalars().all()
    return render_template("orgs/detail.html", org=org, by_kind=by_kind, members=members)


@bp.route("/<slug>/edit", methods=["GET", "POST"])
@login_required
def edit(slug: str):
    org = policy.get_visible_org_or_404(slug)
    require("edit", org)
    form = OrgEditForm(obj=org)
    form.set_zone_choices(org.timezone)
    if form.validate_on_submit():
        svc.update_org(current_user, org, form.description.data or "", form.website.data or "",
                       timezone=form.timezone.data)
        flash("Saved.", "success")
        return redirect(url_for("orgs.detail", slug=org.slug))
    return render_template("orgs/form.html", form=form, org=org), (400 if form.errors else 200)


@bp.route("/<slug>/members", methods=["GET", "POST"])
@login_required
def members(slug: str):
    org = policy.get_visible_org_or_404(slug)
    require("manage_members", org)
    form = MemberForm()
    if form.validate_on_submit():
        user = find_user(form.email.data)
        if user is None:
            form.email.errors.append("No account has this e-mail address. Ask them to register first.")
        else:
            try:
                svc.add_member(current_user, org, user, form.role.data)
            except ServiceError as e:
                (form.role.errors if e.field == "role" else form.email.errors).append(e.message)
            else:
                flash(f"{user.display_name} added as {form.role.data}.", "success")
                return redirect(url_for("orgs.members", slug=org.slug))
    rows = db.session.execute(
        select(Membership).where(Membership.org_id == org.id).order_by(Membership.role, Membership.id)
    ).scalars().all()
    return render_template("orgs/members.html", org=org, form=form, rows=rows, role_form=RoleForm()), \
        (400 if form.errors else 200)


@bp.route("/<slug>/members/<int:member_id>/role", methods=["POST"])
@login_required
def member_role(slug: str, member_id: int):
    org = policy.get_visible_org_or_404(slug)
    require("manage_members", org)
    m = policy.get_child_or_404(Membership, member_id, check_view=False, org_id=org.id)
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400, "Choose one of the roles: owner, admin, member.")
    svc.change_role(current_user, m, form.role.data)  # refusals: the app-wide ServiceError handler
    flash("Role changed.", "success")
    return redirect(url_for("orgs.members", slug=org.slug))


@bp.route("/<slug>/members/<int:member_id>/remove", methods=["POST"])
@login_required
def member_remove(slug: str, member_id: int):
    org = policy.get_visible_org_or_404(slug)
    m = policy.get_child_or_404(Membership, member_id, check_view=False, org_id=org.id)
    if m.user_id != current_user.id:
        require("manage_members", org)
    svc.remove_member(current_user, m)  # refusals: the app-wide ServiceError handler
    flash("Member removed.", "success")
    if policy.viewer_for(current_user).is_member(org.id) and policy.can(current_user, "manage_members", org):
        return redirect(url_for("orgs.members", slug=org.slug))
    return redirect(url_for("orgs.detail", slug=org.slug))
