"""Views: load with the policy (404), check the action (403), validate, call the service."""
from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from .. import policy
from ..extensions import db
from ..formtools import attach_service_error, zone_meta
from ..models import (
    InvitationList,
    Item,
    ItemList,
    ListInvitation,
    ListMember,
    ListShare,
    Membership,
    Organisation,
    OrgKind,
    utcnow,
)
from ..params import id_arg
from ..policy import get_child_or_404, get_visible_or_404, require
from ..services import list_csv
from ..services import lists as svc
from ..services.orgs import ORG_NOT_FOUND, find_org
from ..services.common import ServiceError
from ..timezones import format_dt
from . import bp
from .forms import AttachForm, ConfirmForm, ImportForm, ListForm, MemberForm, ShareForm


def _curatable_orgs() -> list[Organisation]:
    orgs = db.session.execute(
        select(Organisation).join(Membership).where(Membership.user_id == current_user.id,
                                                    Organisation.kind == OrgKind.CLUSTER.value)
        .order_by(Organisation.name)
    ).scalars().all()
    return [o for o in orgs if policy.can(current_user, "curate_lists", o)]


def _confirmed(service, *args):
    """A confirm-button POST: the form must be fresh (400), and a refusal of the service
    ends the request with its status and message."""
    if not ConfirmForm().validate_on_submit():
        abort(400, "Your form expired. Reload the page and try again.")
    try:
        return service(current_user, *args)
    except ServiceError as e:
        abort(e.status, e.message)


def _org_by_slug(slug: str) -> Organisation | None:
    return db.session.execute(
        select(Organisation).where(Organisation.slug == (slug or "").strip().lower()[:140])
    ).scalar()


@bp.route("/")
@login_required
def index():
    q = policy.visible(current_user, InvitationList).order_by(func.lower(InvitationList.name), InvitationList.id)
    org = None
    if request.args.get("org"):
        org = _org_by_slug(request.args["org"])
        if org is None:
            abort(404)
        q = q.where(InvitationList.org_id == org.id)
    lists = db.session.execute(q.limit(500)).scalars().all()
    v = policy.viewer_for(current_user)
    own = [lst for lst in lists if v.is_member(lst.org_id)]
    shared = [lst for lst in lists if not v.is_member(lst.org_id)]
    # How many items each list the viewer curates is attached to (one query for all).
    curated = [lst.id for lst in own if policy.can(current_user, "see_uses", lst)]
    uses = dict(db.session.execute(
        select(ItemList.list_id, func.count()).where(ItemList.list_id.in_(curated)).group_by(ItemList.list_id)
    ).all()) if curated else {}
    return render_template("lists/index.html", own=own, shared=shared, org=org, curatable=_curatable_orgs(),
                           uses=uses, curated=set(curated))


def _saved(form, call) -> tuple[bool, object]:
    """A service call for a posted form: (True, what it returned), or (False, None) with the
    refusal rolled back and shown on the form."""
    try:
        return True, call()
    except ServiceError as e:
        db.session.rollback()
        attach_service_error(form, e)
        return False, None


def _named_org(form):
    """The organisation the form's ``org`` field names, or None with the error on the field."""
    org = find_org(form.org.data)
    if org is None:
        form.org.errors.append(ORG_NOT_FOUND)
    return org


def _to_detail(lst: InvitationList, message: str):
    flash(message, "success")
    return redirect(url_for("lists.detail", list_id=lst.id))


@bp.route("/new", methods=["GET", "POST"])
@login_required
def new():
    orgs = _curatable_orgs()
    if not orgs:
        abort(403, "Invitation lists are curated by cluster organisations: you need to be an owner or "
                   "admin of one.")
    org_id = id_arg("org") or orgs[0].id
    org = next((o for o in orgs if o.id == org_id), None)
    if org is None:
        abort(403, "You cannot curate lists for that organisation.")
    form = ListForm()
    if form.validate_on_submit():
        ok, lst = _saved(form, lambda: svc.create_list(current_user, org, form.name.data, form.description.data or ""))
        if ok:
            return _to_detail(lst, f"List “{lst.name}” created. Add people and organisations to it.")
    return render_template("lists/form.html", form=form, org=org, orgs=orgs, lst=None), \
        (400 if form.errors else 200)


def _render_detail(lst: InvitationList, member_form=None, share_form=None, status: int = 200):
    now = utcnow()
    members = db.session.execute(
        select(ListMember).where(ListMember.list_id == lst.id, ListMember.removed_at.is_(None))
        .order_by(ListMember.created_at, ListMember.id)
    ).scalars().all()
    shares = []
    if policy.can(current_user, "share", lst):
        shares = db.session.execute(
            select(ListShare, Organisation).join(Organisation, Organisation.id == ListShare.org_id)
            .where(ListShare.list_id == lst.id).order_by(Organisation.name)
        ).all()
    if policy.can(current_user, "see_uses", lst):
        # Its curators see every use; each item itself only where they may see it.
        rows = db.session.execute(
            select(ItemList).options(joinedload(ItemList.item)).where(ItemList.list_id == lst.id)
            .order_by(ItemList.created_at.desc(), ItemList.id.desc()).limit(500)
        ).scalars().all()
        shown = policy.list_uses_revealing_items(policy.viewer_for(current_user), lst, rows)
        attachments = [(a, a.id in shown) for a in rows]
    else:
        attachments = [(a, True) for a in db.session.execute(
            policy.visible(current_user, ItemList).where(ItemList.list_id == lst.id)
            .order_by(ItemList.created_at.desc(), ItemList.id.desc()).limit(500)
        ).scalars().all()]
    curator = policy.can(current_user, "manage_members", lst)
    # Invitations carry people's addresses: only those the rule book lets see them.
    invitations = [i for i in svc.list_invitations(lst) if policy.can(current_user, "view", i)] if curator else []
    return render_template(
        "lists/detail.html", lst=lst, members=members, invitations=invitations,
        invitation_states={i.id: policy.invitation_state(i, now) for i in invitations}, shares=shares, attachments=attachments, curator=curator,
        member_form=member_form or MemberForm(formdata=None, meta=zone_meta(lst.organisation)), share_form=share_form or ShareForm(formdata=None),
        confirm=ConfirmForm(formdata=None), at=now), status


@bp.route("/<int:list_id>")
@login_required
def detail(list_id: int):
    lst = get_visible_or_404(InvitationList, list_id)
    return _render_detail(lst)


@bp.route("/<int:list_id>/edit", methods=["GET", "POST"])
@login_required
def edit(list_id: int):
    lst = get_visible_or_404(InvitationList, list_id)
    require("edit", lst)
    form = ListForm(obj=lst)
    if form.validate_on_submit() and \
            _saved(form, lambda: svc.update_list(current_user, lst, form.name.data, form.description.data or ""))[0]:
        return _to_detail(lst, "Saved.")
    return render_template("lists/form.html", form=form, org=lst.organisation, orgs=None, lst=lst), \
        (400 if form.errors else 200)


@bp.route("/<int:list_id>/members", methods=["POST"])
@login_required
def add_member(list_id: int):
    lst = get_visible_or_404(InvitationList, list_id)
    require("manage_members", lst)
    form = MemberForm(meta=zone_meta(lst.organisation))
    if form.validate_on_submit():
        if form.email.data:
            # A person is always invited by a mailed link, account or not: the answer never
            # tells the curator whether the address has an account.
            ok, inv = _saved(form, lambda: svc.invite_to_list(current_user, lst, form.email.data,
                                                              member_until=form.expires_at.data))
            if ok:
                return _to_detail(lst, f"Invitation mailed to {inv.email}: they join the list when they accept "
                                       f"from the link (expires {format_dt(inv.expires_at)}).")
        elif (org := _named_org(form)) is not None:
            ok, m = _saved(form, lambda: svc.add_member(current_user, lst, org=org, expires_at=form.expires_at.data))
            if ok:
                until = f" until {format_dt(m.expires_at)}" if m.expires_at else ""
                return _to_detail(lst, f"{m.member_org.name} is on the list{until}.")
    return _render_detail(lst, member_form=form, status=400)


@bp.route("/<int:list_id>/invitations/<int:inv_id>/revoke", methods=["POST"])
@login_required
def revoke_invitation(list_id: int, inv_id: int):
    lst = get_visible_or_404(InvitationList, list_id)
    inv = get_child_or_404(ListInvitation, inv_id, list_id=lst.id)
    require("manage_members", lst)
    _confirmed(svc.revoke_list_invitation, inv)
    flash("Invitation revoked; the link no longer works.", "success")
    return redirect(url_for("lists.detail", list_id=lst.id))


@bp.route("/<int:list_id>/members/<int:member_id>/remove", methods=["POST"])
@login_required
def remove_member(list_id: int, member_id: int):
    lst = get_visible_or_404(InvitationList, list_id)
    m = get_child_or_404(ListMember, member_id, check_view=False, list_id=lst.id)
    require("remove", m)
    _confirmed(svc.remove_member, m)
    flash("Removed from the list; their access through it has ended.", "success")
    return redirect(url_for("lists.detail", list_id=lst.id))


@bp.route("/<int:list_id>/shares", methods=["POST"])
@login_required
def share(list_id: int):
    lst = get_visible_or_404(InvitationList, list_id)
    require("share", lst)
    form = ShareForm()
    if form.validate_on_submit() and (org := _named_org(form)) is not None and \
            _saved(form, lambda: svc.share(current_user, lst, org))[0]:
        return _to_detail(lst, f"Shared with {org.name}: its owners and admins can attach the list to their items.")
    return _render_detail(lst, share_form=form, status=400)


@bp.route("/<int:list_id>/shares/<int:share_id>/remove", methods=["POST"])
@login_required
def unshare(list_id: int, share_id: int):
    lst = get_visible_or_404(InvitationList, list_id)
    s = get_child_or_404(ListShare, share_id, check_view=False, list_id=lst.id)
    require("delete", s)
    n = _confirmed(svc.unshare, s)
    flash(f"No longer shared{f'; detached from {n} of their items' if n else ''}.", "success")
    return redirect(url_for("lists.detail", list_id=lst.id))


# ----------------------------------------------------------------------------- CSV


@bp.route("/<int:list_id>/export.csv", methods=["POST"])
@login_required
def export_csv(list_id: int):
    """The list as a spreadsheet-safe CSV file (its curators only). A POST: each export of
    the addresses is recorded in the audit trail, and a GET changes nothing."""
    lst = get_visible_or_404(InvitationList, list_id)
    require("export_members", lst)
    text = _confirmed(list_csv.export_csv, lst)
    # A BOM so spreadsheets read the file as UTF-8; it carries addresses: never cached.
    resp = Response("\ufeff" + text, mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="list-{lst.id}.csv"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/<int:list_id>/import", methods=["GET", "POST"])
@login_required
def import_csv(list_id: int):
    """Upload a CSV file: every row is checked first; nothing is added if one is wrong."""
    lst = get_visible_or_404(InvitationList, list_id)
    require("import_members", lst)
    form = ImportForm()
    problems = []
    if form.validate_on_submit():
        raw = form.file.data.read(list_csv.IMPORT_MAX_BYTES + 1)
        try:
            result = list_csv.import_csv(current_user, lst, raw)
        except list_csv.ImportRefused as e:
            form.file.errors.append(e.message)
            problems = e.problems
        except ServiceError as e:
            db.session.rollback()
            attach_service_error(form, e)
        else:
            parts = [f"{result.invited} invitation{'s' if result.invited != 1 else ''} mailed",
                     f"{result.organisations} organisation{'s' if result.organisations != 1 else ''} added"]
            if result.skipped:
                parts.append(f"{result.skipped} address{'es' if result.skipped != 1 else ''} already invited "
                             "(left as they were)")
            flash("Imported: " + ", ".join(parts) + ".", "success")
            return redirect(url_for("lists.detail", list_id=lst.id))
    return render_template("lists/import.html", lst=lst, form=form, problems=problems,
                           header=list_csv.HEADER, max_rows=list_csv.IMPORT_MAX_ROWS,
                           max_kb=list_csv.IMPORT_MAX_BYTES // 1024), (400 if form.errors else 200)


# ----------------------------------------------------------------------------- items


@bp.route("/attach/<int:item_id>", methods=["POST"])
@login_required
def attach(item_id: int):
    item = get_visible_or_404(Item, item_id)
    require("attach_list", item)
    form = AttachForm()
    if not form.validate_on_submit():
        abort(400, "Choose a list to attach.")
    lst = db.session.get(InvitationList, form.list_id.data)
    if lst is None or not policy.can(current_user, "view", lst):
        abort(404)
    try:
        svc.attach(current_user, item, lst)
    except ServiceError as e:
        abort(e.status, e.message)
    flash(f"List “{lst.name}” attached: its members can see this {item.kind_label.lower()} while on the list.",
          "success")
    return redirect(url_for("items.detail", kind=item.kind, item_id=item.id))


@bp.route("/attachments/<int:attachment_id>/detach", methods=["POST"])
@login_required
def detach(attachment_id: int):
    a = get_visible_or_404(ItemList, attachment_id)
    require("detach", a)
    item = a.item
    _confirmed(svc.detach, a)
    flash("List detached; its members no longer see this item through it.", "success")
    return redirect(url_for("items.detail", kind=item.kind, item_id=item.id))


@bp.app_template_global("list_panel")
def list_panel(item: Item) -> dict:
    """Data for the item page's list panel: attached lists the viewer may see, usable lists."""
    attached = db.session.execute(
        policy.visible(current_user, ItemList).where(ItemList.item_id == item.id)
        .order_by(ItemList.created_at, ItemList.id)
    ).scalars().all()
    usable = svc.usable_lists(current_user, item) if policy.can(current_user, "attach_list", item) else []
    return {"attached": attached, "usable": usable, "form": AttachForm(formdata=None),
            "confirm": ConfirmForm(formdata=None)}
