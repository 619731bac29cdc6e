"""Views: load with the policy (404 hides existence), check the action (403), validate,
call the service (services/agreements.py, services/phaseout.py), redirect."""
from __future__ import annotations

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from .. import policy
from ..extensions import db, limiter
from ..downloads import private_download
from ..formtools import attach_service_error
from ..models import ChallengeTerms, Item, Organisation, TermsAcceptance
from ..models.agreements import AssetFile, DataAgreement
from ..params import parse_int
from ..policy import get_visible_or_404, require
from ..ratelimit import account_or_address, limit_for
from ..services import agreements as svc
from ..services import phaseout
from ..services.common import ServiceError
from ..services.terms_diff import diff_sheets, diff_terms
from . import bp
from .forms import FilesForm, SheetForm

SHEET_FIELDS = ("purpose", "allowed_uses", "access_roles", "duration_days", "onward_sharing", "end_of_term",
                "end_of_term_days", "confidentiality_days", "surviving_terms", "publication_rules", "personal_data",
                "governing_law")


def _refused(e: ServiceError):
    db.session.rollback()
    if e.status == 404:
        abort(404)
    abort(e.status, e.message)


def _asset(item_id: int) -> Item:
    item = get_visible_or_404(Item, item_id)
    if item.kind != "asset":
        abort(404)
    return item


# --------------------------------------------------------------------------- panels and diffs


@bp.app_template_global("sharing_panel")
def sharing_panel(item: Item) -> dict:
    """Data for the asset page's data-sharing panel."""
    sheet = svc.current_sheet(item.id)
    return {"sheet": sheet, "manage": policy.can(current_user, "manage_sharing", item),
            "files": svc.asset_files(current_user, item) if current_user.is_authenticated else []}


@bp.app_template_global("terms_changes_since_accepted")
def terms_changes_since_accepted(challenge: Item):
    """(earlier version, changes) when the viewer accepted an earlier version of the
    challenge's terms than the current one; None otherwise."""
    if not current_user.is_authenticated:
        return None
    current = policy.current_terms(challenge.id)
    if current is None:
        return None
    last = db.session.execute(
        select(TermsAcceptance.terms_id).where(TermsAcceptance.user_id == current_user.id,
                                               TermsAcceptance.challenge_id == challenge.id)
        .order_by(TermsAcceptance.terms_version.desc()).limit(1)).scalar()
    if last is None or last == current.id:
        return None
    old = db.session.get(ChallengeTerms, last)
    if old is None or old.version >= current.version:
        return None
    return old, diff_terms(old, current)


@bp.app_template_global("terms_diff_between")
def terms_diff_between(challenge: Item, versions: list):
    """The diff the public terms page shows: ?from=&to= (default: previous -> current)."""
    if len(versions) < 2:
        return None
    by_version = {t.version: t for t in versions}
    new = by_version.get(parse_int(request.args.get("to"), 1, 2**31 - 1) or versions[0].version) or versions[0]
    old = by_version.get(parse_int(request.args.get("from"), 1, 2**31 - 1) or 0)
    if old is None or old.version == new.version:
        old = next((t for t in versions if t.version < new.version), None)
    if old is None:
        return None
    return old, new, diff_terms(old, new)


# --------------------------------------------------------------------------- sheets and files


def _sharing_form(item: Item, form_class, what: str):
    """Whether the viewer manages the asset's sharing, and the form for it (None for the
    others, who get a 403 naming who may ``what`` if they post)."""
    manage = policy.can(current_user, "manage_sharing", item)
    if request.method == "POST" and not manage:
        abort(403, f"Only the organisation's owners and admins {what}.")
    return manage, (form_class() if manage else None)


def _saved(form, call, failed=None):
    """A posted form's service call, once the form validates: (True, what it returned); else
    (False, ``failed``), with the refusal rolled back and shown on the form (a 403 or 404
    ends the request, as in _refused)."""
    if not form.validate_on_submit():
        return False, failed
    try:
        return True, call()
    except ServiceError as e:
        db.session.rollback()
        if e.status in (403, 404):
            _refused(e)
        attach_service_error(form, e)
        return False, failed


@bp.route("/engage/assets/<int:item_id>/sharing", methods=["GET", "POST"])
def sheet(item_id: int):
    item = _asset(item_id)
    versions = svc.sheet_versions(item.id)
    manage, form = _sharing_form(item, SheetForm, "set the data-sharing sheet")
    if request.method == "POST":
        ok, (s, created) = _saved(form, lambda: svc.publish_sheet(
            current_user, item, {k: getattr(form, k).data for k in SHEET_FIELDS}), (None, False))
        if ok:
            flash(f"Published version {s.version}." if created else "Nothing changed: the current version stands.",
                  "success")
            return redirect(url_for("agreements.sheet", item_id=item.id))
    elif manage and versions:
        cur = versions[0]
        for k in SHEET_FIELDS:
            val = getattr(cur, k)
            getattr(form, k).data = "\n".join(cur.roles) if k == "access_roles" else (
                str(val) if isinstance(val, int) and not isinstance(val, bool) else val)
    diff = None
    if len(versions) >= 2:
        by_v = {s.version: s for s in versions}
        new = by_v.get(parse_int(request.args.get("to"), 1, 2**31 - 1) or 0) or versions[0]
        old = by_v.get(parse_int(request.args.get("from"), 1, 2**31 - 1) or 0)
        if old is None or old.version == new.version:
            old = next((s for s in versions if s.version < new.version), None)
        if old is not None:
            diff = (old, new, diff_sheets(old, new))
    status = 400 if request.method == "POST" else 200  # a successful POST redirected above
    return render_template("agreements/sheet.html", item=item, versions=versions, form=form, diff=diff), status


@bp.route("/engage/assets/<int:item_id>/files", methods=["GET", "POST"])
@login_required
def files(item_id: int):
    item = _asset(item_id)
    manage, form = _sharing_form(item, FilesForm, "add files to the asset")
    if request.method == "POST":
        ok, rows = _saved(form, lambda: svc.add_files(current_user, item, request.files.getlist(form.files.name)))
        if ok:
            flash(f"Added {len(rows)} file{'s' if len(rows) != 1 else ''}.", "success")
            return redirect(url_for("agreements.files", item_id=item.id))
    rows = svc.asset_files(current_user, item)
    status = 400 if request.method == "POST" else 200
    return render_template("agreements/files.html", item=item, files=rows, form=form, manage=manage), status


@bp.route("/engage/assets/<int:item_id>/files/remove", methods=["POST"])
@login_required
def remove_file(item_id: int):
    item = _asset(item_id)
    file_id = parse_int(request.form.get("file_id"), 1, 2**63 - 1)
    f = db.session.get(AssetFile, file_id) if file_id else None
    if f is None or f.item_id != item.id or not policy.can(current_user, "view", f):
        abort(404)
    try:
        svc.remove_file(current_user, f)
    except ServiceError as e:
        _refused(e)
    flash("File removed: nobody can download it any more.", "success")
    return redirect(url_for("agreements.files", item_id=item.id))


@bp.route("/agreements/files/<int:file_id>")
@login_required
@limiter.limit(limit_for("posts_per_account"), key_func=account_or_address)
def download(file_id: int):
    """Served only through the policy; an access under an agreement is logged."""
    f = get_visible_or_404(AssetFile, file_id)
    try:
        fh, _agreement = svc.open_file(current_user, f)
    except ServiceError as e:
        _refused(e)
    return private_download(fh, f.content_type, f.filename)


# --------------------------------------------------------------------------- agreements


@bp.route("/agreements/")
@login_required
def mine():
    page = parse_int(request.args.get("page"), 1, 10_000) or 1
    rows = svc.agreements_for(current_user, 50, page)
    return render_template("agreements/list.html", agreements=rows, page=page, state=policy.agreement_state)


@bp.route("/agreements/<int:agreement_id>")
@login_required
def detail(agreement_id: int):
    a = get_visible_or_404(DataAgreement, agreement_id)
    v = policy.viewer_for(current_user)
    state = policy.agreement_state(a)
    can_accept = policy.can(current_user, "accept", a)
    members = []
    if can_accept:
        from ..models import Membership, User

        members = db.session.execute(select(User).join(Membership, Membership.user_id == User.id)
                                     .where(Membership.org_id == a.partner_org_id).order_by(User.display_name)
                                     .limit(200)).scalars().all()
    previous = svc.previous_sheet_for(a) if can_accept else None
    files_ = svc.asset_files(current_user, a.item) if state == "active" else []
    return render_template(
        "agreements/detail.html", a=a, state=state, owner_side=policy.is_agreement_owner_side(v, a),
        partner_side=policy.is_agreement_partner_side(v, a), can_accept=can_accept, members=members,
        can_end=policy.can(current_user, "end", a), usage=svc.usage(a) if policy.can(current_user, "view_usage", a)
        else None, can_export=policy.can(current_user, "export_usage", a), files=files_,
        previous=previous, changes=diff_sheets(previous, a.sheet) if previous else None,
        item_visible=policy.can(current_user, "view", a.item), duties=phaseout.agreement_duties(a))


@bp.route("/agreements/<int:agreement_id>/<any(accept, decline, end):action>", methods=["POST"])
@login_required
@limiter.limit(limit_for("posts_per_account"), key_func=account_or_address)
def act(agreement_id: int, action: str):
    a = get_visible_or_404(DataAgreement, agreement_id)
    try:
        if action == "accept":
            if not request.form.get("accept"):
                abort(400, "Tick the box to accept the sheet.")
            people = list(zip(request.form.getlist("person"), request.form.getlist("role")))
            svc.accept_agreement(current_user, a, people, request.form.get("sheet_version"),
                                 request.form.get("sheet_digest"))
            msg = "Agreement accepted; the people you named have access until the end date."
        elif action == "decline":
            svc.decline_agreement(current_user, a, request.form.get("reason"))
            msg = "Agreement declined."
        else:
            svc.end_agreement(current_user, a, request.form.get("reason"))
            msg = "Agreement ended: access stopped now."
    except ServiceError as e:
        _refused(e)
    flash(msg, "success")
    return redirect(url_for("agreements.detail", agreement_id=a.id))


@bp.route("/agreements/<int:agreement_id>/receipt.json")
@login_required
def receipt(agreement_id: int):
    a = get_visible_or_404(DataAgreement, agreement_id)
    try:
        body = svc.receipt_json(a)
    except ServiceError as e:
        _refused(e)
    return Response(body, mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="agreement-{a.id}-receipt.json"',
                             "Cache-Control": "private, no-store"})


@bp.route("/agreements/<int:agreement_id>/usage.csv")
@login_required
def usage_csv(agreement_id: int):
    a = get_visible_or_404(DataAgreement, agreement_id)
    require("export_usage", a)
    try:
        body = svc.usage_csv(current_user, a)
    except ServiceError as e:
        _refused(e)
    return Response(body, mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="agreement-{a.id}-usage.csv"',
                             "Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"})


# --------------------------------------------------------------------------- partners


@bp.route("/orgs/<slug>/partners")
@login_required
def partners(slug: str):
    org = policy.get_visible_org_or_404(slug)
    require("phase_out", org)
    partner_id = parse_int(request.args.get("partner"), 1, 2**63 - 1)
    if partner_id:
        partner = db.session.get(Organisation, partner_id)
        if partner is None or partner.id == org.id:
            abort(404)
        return render_template("agreements/partner.html", org=org, partner=partner,
                               p=phaseout.participation(org, partner), state=policy.agreement_state)
    return render_template("agreements/partners.html", org=org, rows=phaseout.partners(org))


@bp.route("/orgs/<slug>/partners/phase-out", methods=["POST"])
@login_required
@limiter.limit(limit_for("posts_per_account"), key_func=account_or_address)
def phase_out(slug: str):
    org = policy.get_visible_org_or_404(slug)
    require("phase_out", org)
    partner_id = parse_int(request.form.get("partner"), 1, 2**63 - 1)
    partner = db.session.get(Organisation, partner_id) if partner_id else None
    if partner is None:
        abort(404)
    try:
        p = phaseout.phase_out(current_user, org, partner, request.form.get("reason"))
    except ServiceError as e:
        _refused(e)
    flash(f"{partner.name} phased out: {len(p.grants)} grants, {len(p.list_members)} list memberships, "
          f"{len(p.reviewers)} reviewer appointments and {len(p.agreements)} agreements ended.", "success")
    return redirect(url_for("agreements.remains", slug=org.slug))


@bp.route("/orgs/<slug>/remains")
@login_required
def remains(slug: str):
    org = policy.get_visible_org_or_404(slug)
    require("phase_out", org)
    return render_template("agreements/remains.html", org=org, duties=phaseout.duties(org))
