"""Moderation writes: reports, moderator actions, appeals, moderator scopes, blocked
domains, automatic-flag decisions and the daily digest.

Every function checks the policy itself (views check it too), writes, records a
hash-chained audit event for each decision, notifies the people concerned and commits;
a refusal raises ServiceError before anything is written.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import audit, policy
from ..extensions import db
from ..models import Item, Membership, OrgRole, OutgoingMail, SiteRole, User, utcnow
from ..models.moderation import (
    APPEALABLE,
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
from ..moderation import registry
from ..moderation.registry import path_for
from ..notify import notify, send_mail
from ..timezones import format_dt
from ..urls import external_url
from . import sessions
from .common import ServiceError, add_unique, lock_row

# Settings (override in the app config or the environment; see moderation/__init__.py).
DEFAULTS: dict[str, Any] = {
    "MODERATION_RESPONSE_HOURS": 24,     # target time to first response on a report
    "MODERATION_REPORTS_PER_HOUR": 10,   # per reporter, held in the database across processes
    "MODERATION_APPEAL_DAYS": 30,        # how long an author has to appeal a decision
    "MODERATION_MAX_SUSPEND_DAYS": 365,
    "MODERATION_DUPLICATE_THRESHOLD": 0.8,
    "MODERATION_FREEMAIL_DOMAINS": (
        "gmail.com googlemail.com outlook.com hotmail.com live.com msn.com yahoo.com icloud.com me.com "
        "aol.com gmx.de gmx.net web.de mail.com proton.me protonmail.com yandex.ru zoho.com"
    ),
}
NOT_FOUND = "There is nothing here, or you may not see it."
MAX_NOTE = 2000
MAX_REASON = 2000
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def setting(name: str) -> Any:
    return current_app.config.get(name, DEFAULTS[name])


def response_window() -> timedelta:
    return timedelta(hours=float(setting("MODERATION_RESPONSE_HOURS")))


# --------------------------------------------------------------------------- helpers


def _may(user: Any, action: str, obj: Any) -> bool:
    """policy.can, with unknown states (PolicyError) refused rather than crashing a request."""
    try:
        return policy.can(user, action, obj)
    except policy.PolicyError:
        return False


def load_target(type_name: str, target_id: Any) -> tuple[registry.Reportable, Any]:
    entry, target = registry.load(type_name, target_id)
    if entry is None or target is None:
        raise ServiceError(NOT_FOUND, 404)
    return entry, target


def load_visible_target(user: Any, type_name: str, target_id: Any) -> tuple[registry.Reportable, Any]:
    """The target if the user may see it; missing and invisible answer the same 404."""
    entry, target = load_target(type_name, target_id)
    if not _may(user, "view", target):
        raise ServiceError(NOT_FOUND, 404)
    return entry, target


def _clean(text: str | None, limit: int, what: str, field_name: str, required: bool = True) -> str:
    text = (text or "").strip()
    if required and not text:
        raise ServiceError(f"Give {what}.", field=field_name)
    if len(text) > limit:
        raise ServiceError(f"At most {limit:,} characters.", field=field_name)
    return text


def _site_moderators() -> list[User]:
    return list(db.session.execute(
        select(User).where(User.site_role.in_([SiteRole.MODERATOR.value, SiteRole.ADMIN.value]),
                           User.banned.is_(False)).order_by(User.id)
    ).scalars())


def moderators_for(p: registry.Placement) -> list[User]:
    """Everyone who moderates a placement (candidates; notify() re-checks with the policy)."""
    users = {u.id: u for u in _site_moderators()}
    if p.org_id is not None and p.target_type not in policy.MODERATION_SITE_ONLY_TYPES:
        if p.context_kind == "challenge":
            for u in db.session.execute(
                select(User).join(ModeratorScope, ModeratorScope.user_id == User.id)
                .where(ModeratorScope.org_id == p.org_id)
            ).scalars():
                users[u.id] = u
        if p.is_discussion:
            for u in db.session.execute(
                select(User).join(Membership, Membership.user_id == User.id).where(
                    Membership.org_id == p.org_id,
                    Membership.role.in_([OrgRole.OWNER.value, OrgRole.ADMIN.value]))
            ).scalars():
                users[u.id] = u
    return [users[k] for k in sorted(users)]


def _place(row: Any, p: registry.Placement) -> None:
    row.target_type = p.target_type
    row.org_id = p.org_id
    row.context_item_id = p.context_item_id
    row.context_kind = p.context_kind
    row.is_discussion = p.is_discussion


def case_url(type_name: str, target_id: int) -> str:
    return path_for("moderation.case", target_type=type_name, target_id=target_id)


def action_url(action: ModerationAction, external: bool = False) -> str:
    return path_for("moderation.action_detail", action_id=action.id, _external=external)


# --------------------------------------------------------------------------- reports


def reports_in_last_hour(user_id: int) -> int:
    since = utcnow() - timedelta(hours=1)
    return db.session.execute(
        select(func.count(Report.id)).where(Report.reporter_id == user_id, Report.created_at > since)
    ).scalar_one()


def file_report(user: User, type_name: str, target_id: Any, category: str, note: str) -> Report:
    """Report something the user may see. Nothing about the target is revealed on refusal:
    a missing and an invisible target give the same 404."""
    entry, target = load_visible_target(user, type_name, target_id)
    if not _may(user, "report", target):
        raise ServiceError("You cannot report this.", 403)
    if category not in ReportCategory.values():
        raise ServiceError("Choose one of the report categories.", field="category")
    note = _clean(note, MAX_NOTE, "a note", "note", required=category == ReportCategory.OTHER.value)
    # Serialise this reporter's reports so the hourly limit holds across processes.
    lock_row(User, user.id)
    limit = int(setting("MODERATION_REPORTS_PER_HOUR"))
    if reports_in_last_hour(user.id) >= limit:
        raise ServiceError(f"You have sent {limit} reports in the last hour, the most we accept; "
                           "please try again later.", 429)
    dup = db.session.execute(
        select(Report.id).where(Report.reporter_id == user.id, Report.target_type == entry.type,
                                Report.target_id == target.id, Report.status == ReportStatus.OPEN.value)
    ).first()
    if dup:
        raise ServiceError("You have already reported this; moderators will look at it.", 409)
    p = entry.placement(target)
    report = Report(target_id=target.id, reporter_id=user.id, category=category, note=note,
                    status=ReportStatus.OPEN.value, created_at=utcnow())
    _place(report, p)
    report.author_rows = [ReportAuthor(user_id=uid) for uid in entry.author_ids(target)]
    db.session.add(report)
    db.session.flush()
    desc = entry.describe(target)
    for mod in moderators_for(p):
        if mod.id != user.id:
            notify(mod, "moderation.report",
                   f"New report ({report.category_label}) on {entry.label.lower()} “{desc['title']}”.",
                   case_url(entry.type, target.id) + f"#report-{report.id}", about=report)
    db.session.commit()
    return report


# --------------------------------------------------------------------------- actions


@dataclass
class _Act:
    """One decision being taken: what it applies to and what it changed."""

    kind: str
    entry: registry.Reportable          # of the object acted on
    obj: Any                            # the object acted on (target, its item, or its author)
    affected: list[int] = field(default_factory=list)
    data: dict = field(default_factory=dict)
    until: Any = None
    rule: str | None = None


def _refuse(msg: str = "You do not moderate this.", status: int = 403):
    raise ServiceError(msg, status)


def _lock_and_refresh(obj: Any) -> None:
    lock_row(type(obj), obj.id)
    db.session.refresh(obj)


def _item_moderation(item: Item, create: bool = False) -> ItemModeration | None:
    row = db.session.execute(select(ItemModeration).where(ItemModeration.item_id == item.id)).scalar()
    if row is None and create:
        row = ItemModeration(item_id=item.id)
        db.session.add(row)
    return row


def _subject_user(entry: registry.Reportable, target: Any, user_id: Any) -> User:
    if isinstance(target, User):
        return target
    try:
        uid = int(user_id)
    except (TypeError, ValueError):
        raise ServiceError("Choose which author's account this applies to.", field="user_id")
    if uid not in entry.author_ids(target):
        raise ServiceError("Choose one of the authors of the reported content.", field="user_id")
    user = db.session.get(User, uid)
    if user is None:
        raise ServiceError("That account no longer exists.", 404, field="user_id")
    return user


def _prepare(mod: User, kind: str, entry: registry.Reportable, target: Any, reason: str, *,
             rule: str | None, days: Any, user_id: Any) -> _Act:
    """Check the policy and the target's state, and apply the change (not yet committed)."""
    now = utcnow()
    if kind in (ActionKind.DISMISS.value, ActionKind.HIDE.value, ActionKind.RESTORE.value,
                ActionKind.REQUEST_EDIT.value, ActionKind.DISQUALIFY.value, ActionKind.REQUALIFY.value):
        if not _may(mod, "moderate", target):
            _refuse()
    if kind == ActionKind.DISMISS.value:
        return _Act(kind, entry, target)
    if kind in (ActionKind.HIDE.value, ActionKind.RESTORE.value):
        if not entry.can_hide:
            raise ServiceError(f"{entry.label} cannot be hidden; suspend the account or ask for an edit.", 400)
        _lock_and_refresh(target)
        hidden = entry.is_hidden(target)
        if kind == ActionKind.HIDE.value:
            if hidden:
                raise ServiceError("This is already hidden.", 409)
            entry.hide(target, reason)
        else:
            if not hidden:
                raise ServiceError("This is not hidden.", 409)
            entry.restore(target)
        return _Act(kind, entry, target, entry.author_ids(target))
    if kind == ActionKind.REQUEST_EDIT.value:
        authors = entry.author_ids(target)
        if not authors:
            raise ServiceError("This has no author to ask.", 400)
        return _Act(kind, entry, target, authors)
    if kind in (ActionKind.LOCK.value, ActionKind.UNLOCK.value):
        item = entry.context_item(target)
        if item is None:
            raise ServiceError("This has no discussion to lock.", 400)
        if not _may(mod, "lock_discussion", item):
            _refuse("You do not moderate this discussion.")
        _lock_and_refresh(item)
        row = _item_moderation(item, create=kind == ActionKind.LOCK.value)
        locked = row is not None and row.discussion_locked_at is not None
        if kind == ActionKind.LOCK.value:
            if locked:
                raise ServiceError("The discussion is already locked.", 409)
            row.discussion_locked_at, row.discussion_locked_by_id, row.discussion_lock_reason = now, mod.id, reason
        else:
            if not locked:
                raise ServiceError("The discussion is not locked.", 409)
            row.discussion_locked_at = row.discussion_locked_by_id = row.discussion_lock_reason = None
        item_entry = registry.entry_for(item)
        return _Act(kind, item_entry, item, item_entry.author_ids(item))
    if kind in (ActionKind.DISQUALIFY.value, ActionKind.REQUALIFY.value):
        if entry.disqualify_status is None:
            raise ServiceError("Only ideas can be disqualified.", 400)
        _lock_and_refresh(target)
        if kind == ActionKind.DISQUALIFY.value:
            rule = _clean(rule, 300, "the participation rule that was broken", "rule")
            if target.status == entry.disqualify_status:
                raise ServiceError("This idea is already disqualified.", 409)
            if not _may(mod, "disqualify", target):
                raise ServiceError(f"An idea that is {target.status} cannot be disqualified.", 409)
            data = {"previous_status": target.status}
            target.status = entry.disqualify_status
        else:
            if target.status != entry.disqualify_status:
                raise ServiceError("This idea is not disqualified.", 409)
            data = {"previous_status": target.status}
            target.status = _previous_idea_status(entry, target)
        target.decided_at = now
        target.decision_reason = reason if kind == ActionKind.DISQUALIFY.value else None
        return _Act(kind, entry, target, entry.author_ids(target), data=data, rule=rule)
    if kind in (ActionKind.SUSPEND.value, ActionKind.BAN.value, ActionKind.REINSTATE.value):
        subject = _subject_user(entry, target, user_id)
        if not _may(mod, "suspend", subject):
            _refuse("Only site moderators suspend or ban accounts, and not their own or staff accounts.")
        _lock_and_refresh(subject)
        user_entry = registry.get("user")
        data = {"previous_until": subject.suspended_until.isoformat() if subject.suspended_until else None,
                "previous_banned": bool(subject.banned)}
        until = None
        if kind == ActionKind.REINSTATE.value:
            if not subject.is_blocked:
                raise ServiceError("This account is neither suspended nor banned.", 409)
            subject.banned = False
            subject.suspended_until = None
        elif kind == ActionKind.BAN.value:
            if subject.banned:
                raise ServiceError("This account is already banned.", 409)
            subject.banned = True
        else:
            max_days = int(setting("MODERATION_MAX_SUSPEND_DAYS"))
            try:
                n = int(days)
            except (TypeError, ValueError):
                raise ServiceError(f"Give the suspension in days (1 to {max_days}).", field="days")
            if not 1 <= n <= max_days:
                raise ServiceError(f"A suspension lasts 1 to {max_days} days.", field="days")
            if subject.banned:
                raise ServiceError("This account is banned; a suspension would change nothing.", 409)
            until = now + timedelta(days=n)
            subject.suspended_until = until
        if kind != ActionKind.REINSTATE.value:
            # End every session of the account at once.
            sessions.end_all(subject, "suspended" if kind == ActionKind.SUSPEND.value else "banned")
        return _Act(kind, user_entry, subject, [subject.id], data=data, until=until)
    raise ServiceError("Choose one of the moderation actions.", field="action")


def _previous_idea_status(entry: registry.Reportable, idea: Any) -> str:
    last = db.session.execute(
        select(ModerationAction).where(ModerationAction.target_type == entry.type,
                                       ModerationAction.target_id == idea.id,
                                       ModerationAction.action == ActionKind.DISQUALIFY.value)
        .order_by(ModerationAction.id.desc()).limit(1)
    ).scalar()
    prev = last.payload.get("previous_status") if last else None
    return prev or "submitted"


def _record(mod: User, act: _Act, reason: str, *, reverses: ModerationAction | None = None,
            extra: dict | None = None) -> ModerationAction:
    p = policy.decision_placement(act.kind, act.obj)
    desc = act.entry.describe(act.obj)
    action = ModerationAction(moderator_id=mod.id, action=act.kind, target_id=act.obj.id,
                              target_label=str(desc["title"])[:200], reason=reason, rule=act.rule,
                              until=act.until, data=json.dumps(act.data, sort_keys=True),
                              reverses_id=reverses.id if reverses else None, created_at=utcnow())
    _place(action, p)
    # The decider is never "affected" by their own decision (no appealing one's own lock).
    action.affected_rows = [ModerationActionUser(user_id=u) for u in sorted(set(act.affected) - {mod.id})]
    db.session.add(action)
    db.session.flush()
    # Account decisions stay out of challenge decision logs (item_id None): they are personal.
    data = {"action_id": action.id, "reason": reason, "target_label": action.target_label}
    if act.rule:
        data["rule"] = act.rule
    if act.until:
        data["until"] = act.until.isoformat()
    if reverses is not None:
        data["reverses"] = reverses.id
    data.update(extra or {})
    audit.record(f"moderation.{act.kind}", p.target_type, act.obj.id, actor_id=mod.id,
                 item_id=p.context_item_id, data=data)
    return action


def _resolve_reports(mod: User, type_name: str, target_id: int, action: ModerationAction) -> list[Report]:
    reports = list(db.session.execute(
        select(Report).where(Report.target_type == type_name, Report.target_id == target_id,
                             Report.status == ReportStatus.OPEN.value)
    ).scalars())
    dismissed = action.action in (ActionKind.DISMISS.value, ActionKind.RESTORE.value,
                                  ActionKind.UNLOCK.value, ActionKind.REQUALIFY.value,
                                  ActionKind.REINSTATE.value)
    now = utcnow()
    for r in reports:
        r.status = ReportStatus.DISMISSED.value if dismissed else ReportStatus.ACTIONED.value
        r.resolved_at, r.resolved_by_id, r.action_id = now, mod.id, action.id
    return reports


def _tell_affected(action: ModerationAction, what: str, reason: str, token_mail: bool = False) -> None:
    kind = ActionKind(action.action)
    appeal = " You may appeal this decision once." if action.action in APPEALABLE else ""
    rule = f" Rule: {action.rule}." if action.rule else ""
    msg = f"Moderators took a decision on {what}: {kind.past}. Reason: {reason}.{rule}{appeal}"
    for uid in action.affected_ids:
        user = db.session.get(User, uid)
        if user is None:
            continue
        notify(user, "moderation.decision", msg, action_url(action), about=action, mail=not token_mail)
        if token_mail:
            link = path_for("moderation.appeal_by_token", token=appeal_token(action, user), _external=True)
            body = f"{msg}\n\nIf you believe this is wrong, appeal here (once, within " \
                   f"{setting('MODERATION_APPEAL_DAYS')} days):\n{link}\n"
            if kind == ActionKind.SUSPEND and action.until:
                body = f"Your account is suspended until {format_dt(action.until, user.timezone)}.\n\n" + body
            send_mail(user.email, f"Moderation decision: {kind.past}", body, about=action, secret=True,
                      kind="moderation.decision")


def _tell_reporters(reports: list[Report], action: ModerationAction, title: str, reason: str) -> None:
    seen: set[int] = set()
    for r in reports:
        if r.reporter_id is None or r.reporter_id in seen or r.reporter_id == action.moderator_id:
            continue
        seen.add(r.reporter_id)
        if action.action == ActionKind.DISMISS.value:
            msg = f"Moderators reviewed your report about “{title}” and took no action. Note: {reason}"
        else:
            msg = f"Moderators reviewed your report about “{title}”: {ActionKind(action.action).past}. Thank you."
        notify(r.reporter_id, "moderation.report_outcome", msg)


def take_action(mod: User, type_name: str, target_id: Any, kind: str, reason: str, *, rule: str | None = None,
                days: Any = None, user_id: Any = None) -> ModerationAction:
    """Take one moderation decision on a reported (or any moderated) target.

    ``kind`` is an ActionKind value. Lock/unlock apply to the target's item; suspend, ban and
    reinstate to the target account or one of the target's authors (``user_id``). Open
    reports on the target are resolved by the decision.
    """
    if kind not in ActionKind.values():
        raise ServiceError("Choose one of the moderation actions.", field="action")
    entry, target = load_visible_target(mod, type_name, target_id)  # unseen: 404, like a missing one
    item = entry.context_item(target)
    if not (_may(mod, "moderate", target) or (item is not None and _may(mod, "lock_discussion", item))):
        _refuse()
    reason = _clean(reason, MAX_REASON, "a reason (the author will see it)", "reason")
    if kind == ActionKind.DISMISS.value:
        has_open = db.session.execute(
            select(Report.id).where(Report.target_type == entry.type, Report.target_id == target.id,
                                    Report.status == ReportStatus.OPEN.value).limit(1)).first()
        if not has_open:
            raise ServiceError("There are no open reports to dismiss.", 409)
    title = entry.describe(target)["title"]
    act = _prepare(mod, kind, entry, target, reason, rule=rule, days=days, user_id=user_id)
    action = _record(mod, act, reason)
    reports = _resolve_reports(mod, entry.type, target.id, action)
    blocked = kind in (ActionKind.SUSPEND.value, ActionKind.BAN.value)
    if kind != ActionKind.DISMISS.value:
        _tell_affected(action, f"{act.entry.label.lower()} “{act.entry.describe(act.obj)['title']}”", reason,
                       token_mail=blocked)
    _tell_reporters(reports, action, title, reason)
    db.session.commit()
    return action


# --------------------------------------------------------------------------- appeals


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="moderation-appeal")


def appeal_token(action: ModerationAction, user: User) -> str:
    """A mailed link that lets a suspended or banned author appeal without signing in."""
    return _serializer().dumps({"a": action.id, "u": user.id})


def read_appeal_token(token: str) -> tuple[ModerationAction, User]:
    max_age = int(setting("MODERATION_APPEAL_DAYS")) * 86400
    try:
        data = _serializer().loads(token, max_age=max_age)
    except SignatureExpired:
        raise ServiceError("This appeal link has expired.", 410)
    except BadSignature:
        raise ServiceError(NOT_FOUND, 404)
    action = db.session.get(ModerationAction, data.get("a"))
    user = db.session.get(User, data.get("u"))
    if action is None or user is None or user.id not in action.affected_ids:
        raise ServiceError(NOT_FOUND, 404)
    return action, user


def file_appeal(user: User, action: ModerationAction, statement: str, *, via_token: bool = False) -> Appeal:
    """The affected author appeals once. Signed-in authors pass the policy; suspended or
    banned authors come through their mailed link (``via_token``), which proves who they are."""
    msg = policy.appeal_refusal(user.id, action)
    if msg is None and not via_token and not _may(user, "appeal", action):
        msg = "You cannot appeal this decision."
    if msg:
        raise ServiceError(msg, 409 if "already" in msg else 403)
    if action.created_at + timedelta(days=int(setting("MODERATION_APPEAL_DAYS"))) < utcnow():
        raise ServiceError(f"Appeals are accepted for {setting('MODERATION_APPEAL_DAYS')} days after a decision.",
                           409)
    statement = _clean(statement, 4000, "your reasons for appealing", "statement")
    appeal = Appeal(action_id=action.id, appellant_id=user.id, statement=statement,
                    status=AppealStatus.PENDING.value, created_at=utcnow())
    try:
        with db.session.begin_nested():
            db.session.add(appeal)
    except IntegrityError:
        raise ServiceError("This decision has already been appealed; each decision can be appealed once.", 409)
    audit.record("moderation.appeal_filed", action.target_type, action.target_id, actor_id=user.id,
                 item_id=action.context_item_id, data={"action_id": action.id, "appeal_id": appeal.id})
    p = registry.Placement(action.target_type, action.org_id, action.context_item_id, action.context_kind,
                           action.is_discussion)
    for mod in moderators_for(p):
        if mod.id not in (action.moderator_id, user.id):
            notify(mod, "moderation.appeal", f"Appeal against “{action.target_label}” "
                   f"({ActionKind(action.action).past}) waits for a moderator who did not take the decision.",
                   path_for("moderation.appeals"), about=appeal)
    db.session.commit()
    return appeal


REVERSAL = {
    ActionKind.HIDE.value: ActionKind.RESTORE.value,
    ActionKind.LOCK.value: ActionKind.UNLOCK.value,
    ActionKind.DISQUALIFY.value: ActionKind.REQUALIFY.value,
    ActionKind.SUSPEND.value: ActionKind.REINSTATE.value,
    ActionKind.BAN.value: ActionKind.REINSTATE.value,
}


def _reverse(mod: User, action: ModerationAction, reason: str, appeal: Appeal) -> ModerationAction | None:
    """Undo an overturned decision, if its effect is still in place; returns the new action."""
    kind = REVERSAL.get(action.action)
    if kind is None:
        return None
    entry, obj = registry.load(action.target_type, action.target_id)
    if obj is None:
        return None
    data: dict = {}
    if kind == ActionKind.RESTORE.value:
        if not entry.is_hidden(obj):
            return None
        entry.restore(obj)
    elif kind == ActionKind.UNLOCK.value:
        row = _item_moderation(obj)
        if row is None or row.discussion_locked_at is None:
            return None
        row.discussion_locked_at = row.discussion_locked_by_id = row.discussion_lock_reason = None
    elif kind == ActionKind.REQUALIFY.value:
        if obj.status != entry.disqualify_status:
            return None
        data = {"previous_status": obj.status}
        obj.status = action.payload.get("previous_status") or "submitted"
        obj.decision_reason = None
    elif kind == ActionKind.REINSTATE.value:
        if not obj.is_blocked:
            return None
        obj.banned = False
        obj.suspended_until = None
    act = _Act(kind, entry, obj, action.affected_ids, data=data)
    return _record(mod, act, reason, reverses=action, extra={"appeal_id": appeal.id})


def decide_appeal(mod: User, appeal: Appeal, outcome: str, reason: str) -> Appeal:
    """Uphold or overturn; only a moderator in scope who did not take the decision."""
    action = appeal.action
    if outcome not in ("uphold", "overturn"):
        raise ServiceError("Choose to uphold or overturn the decision.", field="outcome")
    if mod.id == action.moderator_id:
        raise ServiceError("A different moderator must decide this appeal: you took the original decision.", 403)
    if not _may(mod, "decide", appeal):
        if not appeal.is_pending:
            raise ServiceError("This appeal has already been decided.", 409)
        raise ServiceError("You may not decide this appeal.", 403)
    reason = _clean(reason, MAX_REASON, "a reason (the author will see it)", "reason")
    lock_row(Appeal, appeal.id)
    db.session.refresh(appeal)
    if not appeal.is_pending:
        raise ServiceError("This appeal has already been decided.", 409)
    appeal.status = AppealStatus.UPHELD.value if outcome == "uphold" else AppealStatus.OVERTURNED.value
    appeal.decided_by_id, appeal.decided_at, appeal.decision_reason = mod.id, utcnow(), reason
    if outcome == "overturn":
        _reverse(mod, action, reason, appeal)
    audit.record("moderation.appeal_decided", action.target_type, action.target_id, actor_id=mod.id,
                 item_id=action.context_item_id,
                 data={"action_id": action.id, "appeal_id": appeal.id, "outcome": appeal.status, "reason": reason})
    verdict = "upheld" if outcome == "uphold" else "overturned"
    msg = f"Your appeal against “{action.target_label}” ({ActionKind(action.action).past}) was {verdict}. " \
          f"Reason: {reason}"
    for uid in action.affected_ids:
        user = db.session.get(User, uid)
        if user is None:
            continue
        mailed = action.action in (ActionKind.SUSPEND.value, ActionKind.BAN.value)
        notify(user, "moderation.appeal_decided", msg, action_url(action), about=action, mail=not mailed)
        if mailed:
            send_mail(user.email, f"Your appeal was {verdict}", msg, about=action, kind="moderation.appeal")
    db.session.commit()
    return appeal


# --------------------------------------------------------------------------- scopes and domains


def grant_scope(admin: User, user: User, org: Any) -> ModeratorScope:
    if not _may(admin, "manage_moderator_scopes", None):
        raise ServiceError("Only site admins appoint moderators.", 403)
    if db.session.execute(select(ModeratorScope.id).where(ModeratorScope.user_id == user.id,
                                                          ModeratorScope.org_id == org.id)).first():
        raise ServiceError(f"{user.display_name} already moderates {org.name}'s challenges.", 409, field="email")
    scope = ModeratorScope(user_id=user.id, org_id=org.id, created_by_id=admin.id)
    add_unique(scope, f"{user.display_name} already moderates {org.name}'s challenges.", "email")
    audit.record("role.moderator_scope_granted", "user", user.id, actor_id=admin.id,
                 data={"org_id": org.id, "scope_id": scope.id})
    notify(user, "moderation.scope", f"You now moderate the challenges of {org.name}.",
           path_for("moderation.queue"))
    db.session.commit()
    policy.forget_moderator_scopes(user.id)
    return scope


def revoke_scope(admin: User, scope: ModeratorScope) -> None:
    if not _may(admin, "manage_moderator_scopes", None):
        raise ServiceError("Only site admins appoint moderators.", 403)
    audit.record("role.moderator_scope_revoked", "user", scope.user_id, actor_id=admin.id,
                 data={"org_id": scope.org_id, "scope_id": scope.id})
    uid = scope.user_id
    db.session.delete(scope)
    db.session.commit()
    policy.forget_moderator_scopes(uid)


def normalise_domain(domain: str) -> str:
    d = (domain or "").strip().lower().lstrip("@").rstrip(".")
    if not DOMAIN_RE.match(d):
        raise ServiceError("Give a domain name such as example.com.", field="domain")
    return d


def block_domain(mod: User, domain: str, reason: str) -> BlockedDomain:
    if not _may(mod, "manage_blocked_domains", None):
        raise ServiceError("Only site moderators manage blocked domains.", 403)
    d = normalise_domain(domain)
    reason = _clean(reason, 500, "a reason", "reason")
    if db.session.execute(select(BlockedDomain.id).where(BlockedDomain.domain == d)).first():
        raise ServiceError(f"{d} is already blocked.", 409, field="domain")
    row = BlockedDomain(domain=d, reason=reason, created_by_id=mod.id)
    add_unique(row, f"{d} is already blocked.", "domain")
    audit.record("moderation.domain_blocked", "domain", row.id, actor_id=mod.id, data={"domain": d, "reason": reason})
    db.session.commit()
    return row


def unblock_domain(mod: User, row: BlockedDomain) -> None:
    if not _may(mod, "manage_blocked_domains", None):
        raise ServiceError("Only site moderators manage blocked domains.", 403)
    audit.record("moderation.domain_unblocked", "domain", row.id, actor_id=mod.id, data={"domain": row.domain})
    db.session.delete(row)
    db.session.commit()


# --------------------------------------------------------------------------- flags


def resolve_flag(mod: User, flag: ModerationFlag, outcome: str, note: str) -> ModerationFlag:
    """Confirm or dismiss an automatic flag (confirming does not sanction by itself: the
    moderator then disqualifies, hides or suspends as the case needs)."""
    if outcome not in ("confirm", "dismiss"):
        raise ServiceError("Choose to confirm or dismiss the flag.", field="outcome")
    if not _may(mod, "resolve", flag):
        if flag.status != FlagStatus.OPEN.value and _may(mod, "view", flag):
            raise ServiceError("This flag has already been resolved.", 409)
        raise ServiceError("You do not moderate this.", 403)
    note = _clean(note, MAX_REASON, "a note on your decision", "note")
    lock_row(ModerationFlag, flag.id)
    db.session.refresh(flag)
    if flag.status != FlagStatus.OPEN.value:
        raise ServiceError("This flag has already been resolved.", 409)
    flag.status = FlagStatus.CONFIRMED.value if outcome == "confirm" else FlagStatus.DISMISSED.value
    flag.resolved_by_id, flag.resolved_at, flag.resolution_note = mod.id, utcnow(), note
    audit.record(f"moderation.flag_{'confirmed' if outcome == 'confirm' else 'dismissed'}", flag.target_type,
                 flag.target_id, actor_id=mod.id, item_id=flag.context_item_id,
                 data={"flag_id": flag.id, "kind": flag.kind, "note": note})
    db.session.commit()
    return flag


# --------------------------------------------------------------------------- queue and digest


def open_reports_for(user: Any):
    """SELECT of the open reports this user moderates (the queue starts from it)."""
    return policy.visible(user, Report).where(Report.status == ReportStatus.OPEN.value)


def digest_recipients() -> list[User]:
    users = {u.id: u for u in _site_moderators()}
    for u in db.session.execute(select(User).join(ModeratorScope, ModeratorScope.user_id == User.id)).scalars():
        users[u.id] = u
    discussion_orgs = select(Report.org_id).where(Report.status == ReportStatus.OPEN.value,
                                                  Report.is_discussion.is_(True))
    for u in db.session.execute(
        select(User).join(Membership, Membership.user_id == User.id).where(
            Membership.org_id.in_(discussion_orgs), Membership.role.in_([OrgRole.OWNER.value, OrgRole.ADMIN.value]))
    ).scalars():
        users[u.id] = u
    return [users[k] for k in sorted(users) if not users[k].is_blocked]


def digest_key(user: User, now: datetime) -> str:
    return f"moderation-digest:{user.id}:{now:%Y-%m-%d}"


def send_digest(now: datetime | None = None) -> tuple[int, int]:
    """Mail each moderator a summary of the open reports, flags and appeals they can act
    on; nobody is mailed about an empty queue, and nobody twice on one (UTC) day, however
    often this runs. Links use the configured public address (marketplace/urls.py).
    Returns (mails queued now, moderators who already had today's digest)."""
    now = now or utcnow()
    overdue_before = now - response_window()
    sent = already = 0
    queue = external_url("moderation.queue")
    for user in digest_recipients():
        key = digest_key(user, now)
        if db.session.execute(select(OutgoingMail.id).where(OutgoingMail.dedupe_key == key)).first():
            already += 1
            continue
        reports = db.session.execute(
            open_reports_for(user).order_by(Report.created_at.asc(), Report.id.asc())
        ).scalars().all()
        flags = db.session.execute(
            policy.visible(user, ModerationFlag).where(ModerationFlag.status == FlagStatus.OPEN.value)
        ).scalars().all()
        appeals = [a for a in db.session.execute(
            policy.visible(user, Appeal).where(Appeal.status == AppealStatus.PENDING.value)
        ).scalars() if _may(user, "decide", a)]
        if not (reports or flags or appeals):
            continue
        overdue = sum(1 for r in reports if r.created_at < overdue_before)
        lines = [f"Moderation queue on {now:%Y-%m-%d}:", "",
                 f"  {len(reports)} open report(s), {overdue} past the {setting('MODERATION_RESPONSE_HOURS')} h "
                 "response target",
                 f"  {len(flags)} automatic flag(s) to confirm or dismiss",
                 f"  {len(appeals)} appeal(s) waiting for a moderator who did not take the decision", ""]
        for r in reports[:25]:
            age_h = int((now - r.created_at).total_seconds() // 3600)
            mark = "OVERDUE " if r.created_at < overdue_before else ""
            lines.append(f"  - {mark}#{r.id} {r.category_label} on {r.target_type} {r.target_id} ({age_h} h old)")
        if len(reports) > 25:
            lines.append(f"  ... and {len(reports) - 25} more")
        lines += ["", f"Open the queue: {queue}"]
        if send_mail(user.email, f"Moderation digest: {len(reports)} report(s) waiting", "\n".join(lines),
                     dedupe_key=key, kind="moderation.digest") is None:
            already += 1  # a concurrent run queued it first
        else:
            sent += 1
    db.session.commit()
    return sent, already
