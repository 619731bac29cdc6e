"""Moderation views: load (404 hides existence), check with the policy (403), validate,
call marketplace.services.moderation, redirect."""
from __future__ import annotations

import math
from datetime import timedelta

from flask import abort, current_app, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import and_, func, or_, select

from .. import audit, policy
from ..formtools import attach_service_error
from ..extensions import db, limiter
from ..models import AuditEvent, Challenge, Item, Organisation, User, utcnow
from ..models.moderation import (
    ActionKind,
    Appeal,
    AppealStatus,
    BlockedDomain,
    FlagStatus,
    ItemModeration,
    ModerationAction,
    ModerationActionUser,
    ModerationFlag,
    ModeratorScope,
    Report,
    ReportAuthor,
    ReportCategory,
    ReportStatus,
)
from ..params import int_arg
from ..ratelimit import account_or_address, client_address, limit_for
from ..policy import get_visible_or_404
from ..services import moderation as svc
from ..services.accounts import find_user
from ..services.orgs import ORG_NOT_FOUND, find_org
from ..services.common import ServiceError
from . import bp, decisions, registry
from .forms import (
    ActionForm,
    AppealForm,
    BlockedDomainForm,
    DecideAppealForm,
    FlagForm,
    ReasonForm,
    ReportForm,
    ScopeForm,
)

AGES = {"": "Any age", "new": "Within the response time", "overdue": "Past the response time",
        "week": "Older than a week"}
STATUSES = {"open": "Open", "closed": "Resolved", "all": "All"}


# --------------------------------------------------------------------------- helpers


def _may(action: str, obj=None) -> bool:
    try:
        return policy.can(current_user, action, obj)
    except policy.PolicyError:
        return False



def discussion_lock(item: Item) -> ItemModeration | None:
    """Jinja global: the item's discussion lock, or None."""
    if item is None or item.id is None:
        return None
    return db.session.execute(
        select(ItemModeration).where(ItemModeration.item_id == item.id,
                                     ItemModeration.discussion_locked_at.is_not(None))
    ).scalar()


def shows_moderation_link(user) -> bool:
    """Nav link: site and scoped moderators always; organisation admins when something of
    theirs waits (memoised per request)."""
    if not getattr(user, "is_authenticated", False):
        return False
    memo = g.setdefault("_mod_nav", {})
    if user.id not in memo:
        v = policy.viewer_for(user)
        if v.is_moderator or policy.moderator_scope_org_ids(v):
            memo[user.id] = True
        elif v.admin_org_ids:
            memo[user.id] = db.session.execute(
                svc.open_reports_for(user).with_only_columns(Report.id).limit(1)).first() is not None
        else:
            memo[user.id] = False
    return memo[user.id]


def _report_limit() -> str:
    return f"{current_app.config.get('MODERATION_REPORTS_PER_HOUR', 10)}/hour"


def _case_access(type_name: str, target_id: int):
    """The target of a case, if the viewer may see it (the policy decides: a moderator sees
    what is in a case of their place) and moderates it or its discussion; else 404."""
    entry, target = registry.load(type_name, target_id)
    if entry is None or target is None or not _may("view", target):
        abort(404)
    item = entry.context_item(target)
    if not (_may("moderate", target) or (item is not None and _may("lock_discussion", item))):
        abort(404)
    return entry, target


def available_actions(entry: registry.Reportable, target) -> tuple[list[tuple[str, str]], list[User]]:
    """The decisions this moderator may take on this target, and the accounts suspendable."""
    mod = _may("moderate", target)
    acts: list[str] = []
    if mod and db.session.execute(
        select(Report.id).where(Report.target_type == entry.type, Report.target_id == target.id,
                                Report.status == ReportStatus.OPEN.value).limit(1)
    ).first():
        acts.append(ActionKind.DISMISS.value)
    if mod and entry.can_hide:
        acts.append(ActionKind.RESTORE.value if entry.is_hidden(target) else ActionKind.HIDE.value)
    if mod and entry.author_ids(target):
        acts.append(ActionKind.REQUEST_EDIT.value)
    item = entry.context_item(target)
    if item is not None and _may("lock_discussion", item):
        acts.append(ActionKind.UNLOCK.value if discussion_lock(item) else ActionKind.LOCK.value)
    if entry.disqualify_status and mod:
        if target.status == entry.disqualify_status:
            acts.append(ActionKind.REQUALIFY.value)
        elif _may("disqualify", target):
            acts.append(ActionKind.DISQUALIFY.value)
    subjects = [target] if isinstance(target, User) else [
        u for u in (db.session.get(User, uid) for uid in entry.author_ids(target)) if u is not None]
    suspendable = [u for u in subjects if _may("suspend", u)]
    if suspendable:
        acts += [ActionKind.SUSPEND.value, ActionKind.BAN.value, ActionKind.REINSTATE.value]
    return [(a, ActionKind(a).label) for a in acts], suspendable


def _action_form(entry, target) -> tuple[ActionForm, list[User]]:
    form = ActionForm()
    choices, suspendable = available_actions(entry, target)
    form.action.choices = choices
    form.user_id.choices = [(u.id, u.display_name) for u in suspendable]
    return form, suspendable


# --------------------------------------------------------------------------- reporting


@bp.route("/moderation/report/<target_type>/<int:target_id>", methods=["GET", "POST"])
@login_required
@limiter.limit(_report_limit, key_func=account_or_address, methods=["POST"],
               error_message="You have sent too many reports in a short time; please try again later.")
def report(target_type: str, target_id: int):
    entry, target = registry.load(target_type, target_id)
    if entry is None or target is None or not _may("view", target):
        abort(404)
    if not _may("report", target):
        abort(403, "You cannot report this.")
    form = ReportForm()
    desc = registry.describe_for(current_user, entry, target)
    if form.validate_on_submit():
        try:
            svc.file_report(current_user, entry.type, target.id, form.category.data, form.note.data)
        except ServiceError as e:
            db.session.rollback()
            if e.status in (404, 429, 409, 403):
                abort(e.status, e.message)
            attach_service_error(form, e)
        else:
            flash("Thank you. Moderators will look at your report.", "success")
            return redirect(desc["url"] or url_for("main.index"))
    return render_template("moderation/report.html", form=form, entry=entry, target=target, desc=desc), \
        (400 if form.errors else 200)


# --------------------------------------------------------------------------- queue


def _arg(name: str, allowed) -> str:
    value = request.args.get(name, "").strip()
    if value and value not in allowed:
        abort(400, f"Unknown {name} {value[:40]!r}; use one of {', '.join(a for a in allowed if a)}.")
    return value


@bp.route("/moderation/")
@login_required
def queue():
    policy.require("use_moderation")
    category = _arg("category", ReportCategory.values())
    type_name = _arg("type", list(registry.REGISTRY))
    age = _arg("age", AGES)
    status = _arg("status", STATUSES) or "open"
    page = int_arg("page", 1, maximum=10_000, label="The page number", source=request.args)
    org = int_arg("org", None, label="The organisation", source=request.args)
    q = policy.visible(current_user, Report)
    if status == "open":
        q = q.where(Report.status == ReportStatus.OPEN.value)
    elif status == "closed":
        q = q.where(Report.status != ReportStatus.OPEN.value)
    if category:
        q = q.where(Report.category == category)
    if type_name:
        q = q.where(Report.target_type == type_name)
    if org is not None:
        q = q.where(Report.org_id == org)
    now = utcnow()
    window = svc.response_window()
    if age == "new":
        q = q.where(Report.created_at >= now - window)
    elif age == "overdue":
        q = q.where(Report.created_at < now - window)
    elif age == "week":
        q = q.where(Report.created_at < now - timedelta(days=7))
    size = current_app.config["PAGE_SIZE"]
    total = db.session.execute(select(func.count()).select_from(q.order_by(None).subquery())).scalar_one()
    rows = db.session.execute(
        q.order_by(Report.created_at.asc(), Report.id.asc()).limit(size).offset((page - 1) * size)
    ).scalars().all()
    cases = []
    # The page's targets in one query per kind, and whether challenge briefs are under an
    # NDA asked of the policy once, not per report.
    loaded = registry.load_many((r.target_type, r.target_id) for r in rows)
    under_nda = policy.briefs_under_nda([t for _e, t in loaded.values() if isinstance(t, Item)])
    for r in rows:
        entry, target = loaded[(r.target_type, r.target_id)]
        desc = registry.describe_for(current_user, entry, target, under_nda) if target is not None else None
        cases.append({"report": r, "desc": desc, "entry": entry,
                      "overdue": r.is_open and r.created_at < now - window,
                      "due": r.created_at + window})
    org_ids = [o for o in db.session.execute(
        policy.visible(current_user, Report).with_only_columns(Report.org_id).distinct()).scalars() if o]
    orgs = db.session.execute(select(Organisation).where(Organisation.id.in_(org_ids))
                              .order_by(Organisation.name)).scalars().all() if org_ids else []
    open_flags = db.session.execute(
        select(func.count()).select_from(policy.visible(current_user, ModerationFlag)
                                         .where(ModerationFlag.status == FlagStatus.OPEN.value).subquery())
    ).scalar_one()
    pending_appeals = sum(1 for a in db.session.execute(
        policy.visible(current_user, Appeal).where(Appeal.status == AppealStatus.PENDING.value)).scalars()
        if _may("decide", a))
    args = {k: v for k, v in {"category": category, "type": type_name, "age": age, "status": status,
                              "org": str(org) if org is not None else ""}.items() if v}
    return render_template(
        "moderation/queue.html", cases=cases, total=total, page=page, pages=max(1, math.ceil(total / size)),
        args=args, categories=ReportCategory, types=registry.REGISTRY, ages=AGES, statuses=STATUSES, orgs=orgs,
        response_hours=current_app.config.get("MODERATION_RESPONSE_HOURS"), open_flags=open_flags,
        pending_appeals=pending_appeals)


# --------------------------------------------------------------------------- a case: one target


@bp.route("/moderation/case/<target_type>/<int:target_id>")
@login_required
def case(target_type: str, target_id: int):
    entry, target = _case_access(target_type, target_id)
    form, _ = _action_form(entry, target)
    return _render_case(entry, target, form)


def _render_case(entry, target, form, status: int = 200):
    desc = registry.describe_for(current_user, entry, target)
    reports = db.session.execute(
        policy.visible(current_user, Report).where(Report.target_type == entry.type, Report.target_id == target.id)
        .order_by(Report.created_at.desc())
    ).scalars().all()
    authors = entry.author_ids(target)
    earlier = []
    if authors:
        earlier = db.session.execute(
            policy.visible(current_user, Report).where(
                Report.id.in_(select(ReportAuthor.report_id).where(ReportAuthor.user_id.in_(authors))),
                or_(Report.target_type != entry.type, Report.target_id != target.id))
            .order_by(Report.created_at.desc()).limit(50)
        ).scalars().all()
    # Decisions on this target, on anything in it (for an item), and on its authors.
    about = [and_(ModerationAction.target_type == entry.type, ModerationAction.target_id == target.id)]
    if isinstance(target, Item):
        about.append(ModerationAction.context_item_id == target.id)
    if authors:
        about.append(ModerationAction.id.in_(select(ModerationActionUser.action_id).where(
            ModerationActionUser.user_id.in_(authors))))
    actions = db.session.execute(
        policy.visible(current_user, ModerationAction).where(or_(*about))
        .order_by(ModerationAction.id.desc()).limit(50)
    ).scalars().all()
    flags = db.session.execute(
        policy.visible(current_user, ModerationFlag).where(ModerationFlag.target_type == entry.type,
                                                           ModerationFlag.target_id == target.id)
    ).scalars().all()
    author_users = [u for u in (db.session.get(User, a) for a in authors) if u is not None]
    item = entry.context_item(target)
    return render_template(
        "moderation/case.html", entry=entry, target=target, desc=desc, reports=reports, earlier=earlier,
        actions=actions, flags=flags, form=form, authors=author_users, item=item,
        lock=discussion_lock(item) if item is not None else None, window=svc.response_window(), now=utcnow(),
    ), status


@bp.route("/moderation/case/<target_type>/<int:target_id>/act", methods=["POST"])
@login_required
def act(target_type: str, target_id: int):
    entry, target = _case_access(target_type, target_id)
    form, _ = _action_form(entry, target)
    if not form.action.choices:
        abort(403, "You cannot take a decision on this.")
    if form.validate_on_submit():
        try:
            action = svc.take_action(current_user, entry.type, target.id, form.action.data, form.reason.data,
                                     rule=form.rule.data, days=form.days.data, user_id=form.user_id.data)
        except ServiceError as e:
            db.session.rollback()
            if e.status in (403, 404):
                abort(e.status, e.message)
            attach_service_error(form, e)
            target = entry.load(target.id)
        else:
            flash(f"Decision recorded: {ActionKind(action.action).past}.", "success")
            return redirect(url_for("moderation.case", target_type=entry.type, target_id=target.id))
    return _render_case(entry, target, form, 400 if form.errors else 409)


# --------------------------------------------------------------------------- decisions and appeals


def _action_or_404(action_id: int) -> ModerationAction:
    return get_visible_or_404(ModerationAction, action_id)


@bp.route("/moderation/actions/<int:action_id>")
@login_required
def action_detail(action_id: int):
    action = _action_or_404(action_id)
    form = AppealForm() if _may("appeal", action) else None
    return _render_action(action, form)


def _render_action(action, form, status: int = 200, token: str | None = None):
    appeal = db.session.execute(select(Appeal).where(Appeal.action_id == action.id)).scalar()
    reversed_by = db.session.execute(
        select(ModerationAction).where(ModerationAction.reverses_id == action.id)).scalar()
    return render_template("moderation/action.html", action=action, appeal=appeal, form=form,
                           reversed_by=reversed_by, token=token,
                           appeal_days=current_app.config.get("MODERATION_APPEAL_DAYS")), status


@bp.route("/moderation/actions/<int:action_id>/appeal", methods=["POST"])
@login_required
def appeal(action_id: int):
    action = _action_or_404(action_id)
    msg = policy.appeal_refusal(current_user.id, action)
    if msg:
        abort(409 if "already" in msg else 403, msg)
    form = AppealForm()
    if form.validate_on_submit():
        try:
            svc.file_appeal(current_user, action, form.statement.data)
        except ServiceError as e:
            db.session.rollback()
            if e.status in (403, 409):
                abort(e.status, e.message)
            attach_service_error(form, e)
        else:
            flash("Your appeal was sent. A different moderator will decide it.", "success")
            return redirect(url_for("moderation.action_detail", action_id=action.id))
    return _render_action(action, form, 400)


@bp.route("/moderation/appeal/<token>", methods=["GET", "POST"])
@limiter.limit(limit_for("appeals_per_address"), key_func=client_address, methods=["POST"])
def appeal_by_token(token: str):
    """Suspended and banned accounts cannot sign in: their mailed link lets them appeal."""
    try:
        action, user = svc.read_appeal_token(token)
    except ServiceError as e:
        abort(e.status, e.message)
    form = AppealForm()
    if request.method == "POST":
        msg = policy.appeal_refusal(user.id, action)
        if msg:
            abort(409 if "already" in msg else 403, msg)
        if form.validate_on_submit():
            try:
                svc.file_appeal(user, action, form.statement.data, via_token=True)
            except ServiceError as e:
                db.session.rollback()
                if e.status in (403, 409):
                    abort(e.status, e.message)
                attach_service_error(form, e)
            else:
                return render_template("moderation/appeal_sent.html", action=action)
        return _render_action(action, form, 400, token=token)
    if policy.appeal_refusal(user.id, action):
        form = None
    return _render_action(action, form, token=token)


@bp.route("/moderation/appeals")
@login_required
def appeals():
    policy.require("use_moderation")
    show = _arg("status", {"pending": 1, "decided": 1}) or "pending"
    q = policy.visible(current_user, Appeal)
    q = q.where(Appeal.status == AppealStatus.PENDING.value) if show == "pending" else \
        q.where(Appeal.status != AppealStatus.PENDING.value)
    rows = db.session.execute(q.order_by(Appeal.created_at.asc()).limit(200)).scalars().all()
    return render_template("moderation/appeals.html", rows=rows, show=show, form=DecideAppealForm())


@bp.route("/moderation/appeals/<int:appeal_id>/decide", methods=["POST"])
@login_required
def decide_appeal(appeal_id: int):
    appeal = get_visible_or_404(Appeal, appeal_id)
    if appeal.action.moderator_id == current_user.id:
        abort(403, "A different moderator must decide this appeal: you took the original decision.")
    policy.require("decide", appeal)
    form = DecideAppealForm()
    if not form.validate_on_submit():
        abort(400, "; ".join(e for errs in form.errors.values() for e in errs) or "Complete the form.")
    try:
        svc.decide_appeal(current_user, appeal, form.outcome.data, form.reason.data)
    except ServiceError as e:
        db.session.rollback()
        abort(e.status, e.message)
    flash(f"Appeal {appeal.status}.", "success")
    return redirect(url_for("moderation.appeals"))


# --------------------------------------------------------------------------- automatic flags


@bp.route("/moderation/flags")
@login_required
def flags():
    policy.require("use_moderation")
    show = _arg("status", {"open": 1, "resolved": 1}) or "open"
    q = policy.visible(current_user, ModerationFlag)
    q = q.where(ModerationFlag.status == FlagStatus.OPEN.value) if show == "open" else \
        q.where(ModerationFlag.status != FlagStatus.OPEN.value)
    rows = db.session.execute(q.order_by(ModerationFlag.created_at.asc()).limit(200)).scalars().all()
    return render_template("moderation/flags.html", rows=rows, show=show, form=FlagForm(),
                           label=lambda t, i: decisions.subject_label(t, i, current_user))


@bp.route("/moderation/flags/<int:flag_id>/resolve", methods=["POST"])
@login_required
def resolve_flag(flag_id: int):
    flag = get_visible_or_404(ModerationFlag, flag_id)
    form = FlagForm()
    if not form.validate_on_submit():
        abort(400, "; ".join(e for errs in form.errors.values() for e in errs) or "Complete the form.")
    try:
        svc.resolve_flag(current_user, flag, form.outcome.data, form.note.data)
    except ServiceError as e:
        db.session.rollback()
        abort(e.status, e.message)
    flash(f"Flag {flag.status}.", "success")
    if flag.status == FlagStatus.CONFIRMED.value:
        return redirect(url_for("moderation.case", target_type=flag.target_type, target_id=flag.target_id))
    return redirect(url_for("moderation.flags"))


# --------------------------------------------------------------------------- scopes and domains


@bp.route("/moderation/scopes", methods=["GET", "POST"])
@login_required
def scopes():
    policy.require("manage_moderator_scopes")
    form = ScopeForm()
    if form.validate_on_submit():
        user = find_user(form.email.data)
        org = find_org(form.org.data)
        if user is None:
            form.email.errors.append("No account has this e-mail address.")
        if org is None:
            form.org.errors.append(ORG_NOT_FOUND)
        if user is not None and org is not None:
            try:
                svc.grant_scope(current_user, user, org)
            except ServiceError as e:
                attach_service_error(form, e)
            else:
                flash(f"{user.display_name} now moderates {org.name}'s challenges.", "success")
                return redirect(url_for("moderation.scopes"))
    rows = db.session.execute(select(ModeratorScope).order_by(ModeratorScope.org_id, ModeratorScope.id)).scalars().all()
    return render_template("moderation/scopes.html", form=form, rows=rows, confirm=ReasonForm()), \
        (400 if form.errors else 200)


def _confirmed_setting(site_action: str, model: type, row_id: int):
    """A site moderation setting (scope, blocked domain) to remove: the permission (403),
    the row (404), a confirmation form that is still valid (400)."""
    policy.require(site_action)
    row = db.session.get(model, row_id)
    if row is None:
        abort(404)
    if not ReasonForm().validate_on_submit():
        abort(400, "Your form expired; reload the page and try again.")
    return row


@bp.route("/moderation/scopes/<int:scope_id>/revoke", methods=["POST"])
@login_required
def revoke_scope(scope_id: int):
    scope = _confirmed_setting("manage_moderator_scopes", ModeratorScope, scope_id)
    svc.revoke_scope(current_user, scope)
    flash("Moderator scope revoked.", "success")
    return redirect(url_for("moderation.scopes"))


@bp.route("/moderation/blocked-domains", methods=["GET", "POST"])
@login_required
def blocked_domains():
    policy.require("manage_blocked_domains")
    form = BlockedDomainForm()
    if form.validate_on_submit():
        try:
            row = svc.block_domain(current_user, form.domain.data, form.reason.data)
        except ServiceError as e:
            attach_service_error(form, e)
        else:
            flash(f"{row.domain} is blocked; new submissions from it are flagged.", "success")
            return redirect(url_for("moderation.blocked_domains"))
    rows = db.session.execute(select(BlockedDomain).order_by(BlockedDomain.domain)).scalars().all()
    return render_template("moderation/blocked_domains.html", form=form, rows=rows, confirm=ReasonForm()), \
        (400 if form.errors else 200)


@bp.route("/moderation/blocked-domains/<int:domain_id>/remove", methods=["POST"])
@login_required
def unblock_domain(domain_id: int):
    row = _confirmed_setting("manage_blocked_domains", BlockedDomain, domain_id)
    svc.unblock_domain(current_user, row)
    flash("Domain unblocked.", "success")
    return redirect(url_for("moderation.blocked_domains"))


# --------------------------------------------------------------------------- decision log and audit


@bp.route("/challenges/<int:item_id>/decisions")
def decision_log(item_id: int):
    """Seen by everyone who may see the challenge; 404 for everyone else."""
    challenge = get_visible_or_404(Challenge, item_id)
    entries = decisions.decision_log(current_user, challenge)
    return render_template("moderation/decision_log.html", item=challenge, entries=entries)


def _head() -> dict:
    last = audit.head()
    count = db.session.execute(select(func.count(AuditEvent.id))).scalar_one()
    return {"hash": last.hash if last else audit.GENESIS, "row_id": last.id if last else 0, "rows": count,
            "at": last.created_at.isoformat() if last else None, "algorithm": "sha256"}


@bp.route("/audit")
def audit_head():
    """The chain head, public, so anyone can pin it and later check nothing before it changed."""
    return render_template("moderation/audit.html", head=_head())


@bp.route("/audit.json")
def audit_head_json():
    return jsonify(_head())
