"""Pages: organisation dashboard and participation, governance events, the audit chain's
verification, the transparency page, after-action reviews and "start from a past
challenge". Each loads, asks the policy, then reads figures or calls a service."""
from __future__ import annotations

import json

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import func, select

from .. import audit, policy
from ..extensions import db
from ..formtools import attach_service_error
from ..models import AuditEvent, Challenge, ChallengeReview, IdeaFate, Item
from ..moderation import decisions
from ..params import id_arg, int_arg
from ..policy import get_visible_or_404, require
from ..services import insights as figures
from ..services import reviews as svc
from ..services.common import ServiceError
from . import bp
from .forms import PublishForm, ReviewForm, StartFromForm

PER_PAGE = 50


# --------------------------------------------------------------------------- dashboards


def _org_item_arg(name: str, model: type, org) -> Item | None:
    """The item the query argument ``name`` picks, which must be one of ``org``'s and visible
    (404 otherwise, as for any item); None without the argument."""
    item_id = id_arg(name)
    if item_id is None:
        return None
    item = get_visible_or_404(model, item_id)
    if item.org_id != org.id:
        abort(404)
    return item


@bp.route("/orgs/<slug>/dashboard")
@login_required
def dashboard(slug: str):
    """The organisation's figures (owners and admins); ``?challenge=ID`` for one challenge."""
    org = policy.get_visible_org_or_404(slug)
    require("view_dashboard", org)
    challenge = _org_item_arg("challenge", Challenge, org)
    d = figures.dashboard(current_user, org, challenge)
    return render_template("insights/dashboard.html", org=org, d=d)


@bp.route("/orgs/<slug>/participation")
@login_required
def participation(slug: str):
    """A cluster's lists and member organisations (its owners and admins)."""
    org = policy.get_visible_org_or_404(slug)
    require("view_participation", org)
    return render_template("insights/participation.html", org=org, p=figures.participation(current_user, org))


@bp.route("/orgs/<slug>/governance")
@login_required
def governance(slug: str):
    """The governance events of the organisation's own items, newest first; filtered by
    ``item`` (one of its items) and ``kind`` (an event kind); paginated."""
    org = policy.get_visible_org_or_404(slug)
    require("browse_governance", org)
    where = [policy.org_governance_clause(policy.viewer_for(current_user), org.id)]
    item = _org_item_arg("item", Item, org)
    if item is not None:
        where.append(AuditEvent.item_id == item.id)
    kinds = decisions.shown_actions()
    kind = (request.args.get("kind") or "").strip()
    if kind:
        if kind not in kinds:
            abort(400, "Unknown kind of event: choose one from the list.")
        where.append(AuditEvent.action == kind)
    else:
        where.append(AuditEvent.action.in_(kinds))
    total = db.session.execute(select(func.count(AuditEvent.id)).where(*where)).scalar_one()
    pages = max(1, -(-total // PER_PAGE))
    page = int_arg("page", 1, maximum=pages, label="The page")
    rows = db.session.execute(
        select(AuditEvent).where(*where).order_by(AuditEvent.id.desc())
        .offset((page - 1) * PER_PAGE).limit(PER_PAGE)).scalars().all()
    entries = decisions.format_events(current_user, rows)
    seen = policy.visible_clause(current_user, Item)
    titles = dict(db.session.execute(
        select(Item.id, Item.title).where(Item.id.in_({r.item_id for r in rows if r.item_id}), seen)).all()) \
        if rows else {}
    items = db.session.execute(
        select(Item.id, Item.title).where(Item.org_id == org.id, seen).order_by(Item.title).limit(500)).all()
    args = {"slug": org.slug, **({"item": item.id} if item else {}), **({"kind": kind} if kind else {})}
    return render_template("insights/governance.html", org=org, entries=entries, titles=titles, items=items,
                           item=item, kind=kind, kinds=sorted(kinds), page=page, pages=pages, total=total,
                           args=args)


@bp.route("/admin/audit")
@login_required
def audit_verify():
    """Re-hash the whole audit chain (as `flask audit verify`): site admins only."""
    require("verify_audit")
    result = audit.verify_chain()
    return render_template("insights/audit_verify.html", result=result)


@bp.route("/transparency")
def transparency():
    """Public figures; ``?year=YYYY`` for one calendar year."""
    years = figures.transparency_years()
    year = int_arg("year", None, minimum=2000, maximum=9999, label="The year")
    if year is not None and year not in years:
        abort(400, f"Choose a year from {years[-1]} to {years[0]}.")
    return render_template("insights/transparency.html", t=figures.transparency(year), years=years)


# --------------------------------------------------------------------------- the learning loop


def _review_page(challenge: Challenge, form: ReviewForm, review: ChallengeReview | None,
                 posted: dict | None = None, errors: dict | None = None, status: int = 200):
    ideas = svc.awarded_ideas(current_user, challenge)
    current = {o.idea_id: o for o in review.outcomes} if review else {}
    rows = []
    for idea in ideas:
        fate = (posted or {}).get(f"fate-{idea.id}") or (current[idea.id].fate if idea.id in current else "undecided")
        note = (posted or {}).get(f"note-{idea.id}") if posted is not None else \
            (current[idea.id].note if idea.id in current else "")
        rows.append({"idea": idea, "fate": fate, "note": note or ""})
    publish = PublishForm(formdata=None, title=f"Lessons from {challenge.title}"[:200]) \
        if review is not None and policy.can(current_user, "publish", review) else None
    return render_template("insights/review.html", item=challenge, form=form, review=review, rows=rows,
                           fates=svc.FATE_LABELS, errors=errors or {}, publish=publish,
                           summary=svc.fate_summary(review) if review else []), status


@bp.route("/challenges/<int:challenge_id>/after-action", methods=["GET", "POST"])
@login_required
def review(challenge_id: int):
    """The challenge's after-action review: its owners and admins read and write it."""
    challenge = get_visible_or_404(Challenge, challenge_id)
    existing = svc.review_of(challenge)
    may_write = policy.can(current_user, "write_review", challenge)
    if existing is not None:
        require("view", existing)
    elif not may_write:
        abort(403, "Only the organisation's owners and admins review a challenge, once it has closed.")
    form = ReviewForm(obj=existing if request.method == "GET" else None)
    if request.method == "POST":
        if not may_write:
            abort(403, "Only the organisation's owners and admins review a challenge, once it has closed.")
        if not form.validate_on_submit():
            return _review_page(challenge, form, existing, request.form.to_dict(), None, 400)
        try:
            svc.save_review(current_user, challenge, request.form.to_dict())
        except ServiceError as e:
            errors = {}
            for name, message in getattr(e, "errors", None) or [(e.field, e.message)]:
                if name and name.split("-", 1)[0] in ("fate", "note"):
                    errors[name] = message
                else:
                    attach_service_error(form, ServiceError(message, field=name))
            return _review_page(challenge, form, existing, request.form.to_dict(), errors, 400)
        flash("Review saved.", "success")
        return redirect(url_for("insights.review", challenge_id=challenge.id))
    return _review_page(challenge, form, existing)


@bp.route("/challenges/<int:challenge_id>/after-action/publish", methods=["POST"])
@login_required
def publish(challenge_id: int):
    """Publish the review as a lesson (a failure item) at the chosen visibility."""
    challenge = get_visible_or_404(Challenge, challenge_id)
    existing = svc.review_of(challenge)
    if existing is None or not policy.can(current_user, "view", existing):
        abort(404)
    form = PublishForm()
    if not form.validate_on_submit():
        problems = "; ".join(m for errs in form.errors.values() for m in errs)
        abort(400, problems or "Check the form.")
    lesson = svc.publish_review(current_user, existing, request.form.to_dict())  # refusals: app-wide handler
    flash("The lesson is published.", "success")
    return redirect(url_for("items.detail", kind="failure", item_id=lesson.id))


@bp.route("/challenges/<int:challenge_id>/start-from", methods=["GET", "POST"])
@login_required
def start_from(challenge_id: int):
    """A new draft challenge copied from this one (brief, rules, terms as a new version);
    shows what this challenge's after-action review said."""
    source = get_visible_or_404(Challenge, challenge_id)
    require("start_from", source)
    form = StartFromForm(visibility=source.visibility)
    if request.method == "GET":
        form.title.data = source.title
    if form.validate_on_submit():
        try:
            new = svc.start_from(current_user, source, {"title": form.title.data, "visibility": form.visibility.data})
        except ServiceError as e:
            attach_service_error(form, e)
        else:
            flash("A new draft challenge was made from the earlier one: set its dates, then publish it.", "success")
            return redirect(url_for("items.detail", kind="challenge", item_id=new.id))
    earlier = svc.review_of(source)
    if earlier is not None and not policy.can(current_user, "view", earlier):
        earlier = None
    return render_template("insights/start_from.html", item=source, form=form, earlier=earlier,
                           steps=[n for n, _s in svc.COPY_STEPS],
                           summary=svc.fate_summary(earlier) if earlier else []), (400 if form.errors else 200)


# --------------------------------------------------------------------------- page panels


def item_panel(item: Item) -> dict:
    """What the challenge/failure page shows about the learning loop to this viewer."""
    out: dict = {}
    if item.kind == "challenge":
        review_row = svc.review_of(item)
        if review_row is not None and policy.can(current_user, "view", review_row):
            out["review"] = review_row
            lesson = review_row.lesson
            if lesson is not None and policy.can(current_user, "view", lesson):
                out["lesson"] = lesson
        out["write"] = policy.can(current_user, "write_review", item)
        out["start_from"] = policy.can(current_user, "start_from", item)
        source = svc.started_from(item) if out["start_from"] else None
        if source is not None and policy.can(current_user, "view", source):
            out["source"] = source
            earlier = svc.review_of(source)
            if earlier is not None and policy.can(current_user, "view", earlier):
                out["earlier"] = earlier
                out["earlier_summary"] = svc.fate_summary(earlier)
    else:
        source = svc.lesson_source(item)
        if source is not None and policy.can(current_user, "view", source):
            out["source"] = source
    return out


@bp.app_context_processor
def _panel_helpers():
    return {"insights_panel": item_panel, "review_fates": svc.FATE_LABELS}
