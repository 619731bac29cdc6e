"""A challenge's decision log, read from the audit chain (AuditEvent rows whose item_id is
the challenge), as entries "what was decided, by whom, when, why".

Only events with a formatter are shown, so a new kind of audit event stays private until
someone decides how to present it. Formatters get the viewer: an idea's title is shown only
to those who may see the idea (sealed ideas stay sealed); otherwise it is "idea #ID".
Features may add formatters with ``register_decision(action, fn)``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from sqlalchemy import select

from .. import policy
from ..extensions import db
from ..models import AuditEvent, ChallengeTerms, Item, User
from ..models.moderation import ActionKind
from ..timezones import format_dt
from . import registry


@dataclass
class Decision:
    id: int
    when: datetime
    who: str
    category: str
    what: str
    why: str | None = None
    detail: str | None = None


Formatter = Callable[[AuditEvent, dict, Any], "Decision | None"]
FORMATTERS: dict[str, Formatter] = {}
PREFIX_FORMATTERS: list[tuple[str, Formatter]] = []


def register_decision(action: str, fn: Formatter) -> Formatter:
    """Show audit events with this action (or, ending in ".", this prefix) in decision logs."""
    if action.endswith("."):
        PREFIX_FORMATTERS.append((action, fn))
    else:
        FORMATTERS[action] = fn
    return fn


def decision(action: str):
    def deco(fn: Formatter) -> Formatter:
        return register_decision(action, fn)
    return deco


def _formatter(action: str) -> Formatter | None:
    fn = FORMATTERS.get(action)
    if fn is not None:
        return fn
    for prefix, f in PREFIX_FORMATTERS:
        if action.startswith(prefix):
            return f
    return None


def _d(ev: AuditEvent, category: str, what: str, why: str | None = None, detail: str | None = None) -> Decision:
    return Decision(ev.id, ev.created_at, "", category, what, why or None, detail or None)


def subject_label(type_name: str, obj_id: int | None, user: Any, fallback: str | None = None) -> str:
    """How to name a subject to this viewer without revealing what they may not see."""
    entry, obj = registry.load(type_name, obj_id) if obj_id is not None else (registry.get(type_name), None)
    label = entry.label.lower() if entry else type_name.replace("_", " ")
    if obj is None:
        return f"{label} #{obj_id}" if obj_id is not None else label
    try:
        visible = policy.can(user, "view", obj)
    except policy.PolicyError:
        visible = False
    title = getattr(obj, "title", None)
    if visible and title:
        return f"{label} “{title}”"
    return f"{label} #{obj_id}"


def _fmt_dt(value: Any) -> str:
    if not value:
        return "none"
    try:
        return format_dt(datetime.fromisoformat(str(value)))
    except ValueError:
        return str(value)


# --------------------------------------------------------------------------- core item events


@decision("item.created")
def _created(ev, data, user):
    return _d(ev, "status", f"Posted ({data.get('status', 'draft')}, visibility {data.get('visibility', '?')})")


@decision("challenge.deadline_changed")
def _deadline(ev, data, user):
    return _d(ev, "deadline", f"Deadline changed from {_fmt_dt(data.get('from'))} to {_fmt_dt(data.get('to'))}",
              data.get("reason"))


# --------------------------------------------------------------------------- moderation events

_MOD_VERB = {
    ActionKind.HIDE.value: "Hidden by moderators",
    ActionKind.RESTORE.value: "Restored by moderators",
    ActionKind.REQUEST_EDIT.value: "Moderators asked the author to edit",
    ActionKind.LOCK.value: "Discussion locked",
    ActionKind.UNLOCK.value: "Discussion unlocked",
    ActionKind.DISQUALIFY.value: "Disqualified",
    ActionKind.REQUALIFY.value: "Disqualification lifted",
}


def _moderation(ev, data, user):
    kind = ev.action.split(".", 1)[1]
    verb = _MOD_VERB.get(kind)
    if verb is None:  # dismissals change nothing and would only reveal that someone reported
        return None
    subject = subject_label(ev.subject_type, ev.subject_id, user)
    detail = f"Rule broken: {data['rule']}" if data.get("rule") else None
    if data.get("appeal_id"):
        detail = f"{detail}; decided on appeal" if detail else "Decided on appeal"
    category = "disqualification" if kind in (ActionKind.DISQUALIFY.value, ActionKind.REQUALIFY.value) \
        else "moderation"
    return _d(ev, category, f"{verb}: {subject}", data.get("reason"), detail)


for _k in _MOD_VERB:
    register_decision(f"moderation.{_k}", _moderation)


@decision("moderation.appeal_decided")
def _appeal(ev, data, user):
    outcome = "upheld" if data.get("outcome") == "upheld" else "overturned"
    subject = subject_label(ev.subject_type, ev.subject_id, user)
    return _d(ev, "appeal", f"Appeal about {subject} {outcome}", data.get("reason"))


# --------------------------------------------------------------------------- ideas, terms, review (issue 3)
# Submissions, revisions, withdrawals, declines and acceptances are personal to their
# authors and are not decisions on the challenge: they are not shown.


def _previous(ev: AuditEvent, action: str) -> AuditEvent | None:
    return db.session.execute(
        select(AuditEvent).where(AuditEvent.item_id == ev.item_id, AuditEvent.action == action,
                                 AuditEvent.id < ev.id).order_by(AuditEvent.id.desc()).limit(1)
    ).scalar()


def _changed_keys(before: dict, after: dict, skip: tuple = ()) -> list[str]:
    keys = sorted((set(before) | set(after)) - set(skip))
    return [k.replace("_", " ") for k in keys if before.get(k) != after.get(k)]


@decision("terms.version_created")
def _terms(ev, data, user):
    what = f"Terms version {data.get('version')} published (IP: {data.get('ip_model')}, " \
           f"confidentiality: {data.get('confidentiality')})"
    detail = None
    if data.get("supersedes"):
        rows = {t.version: t for t in db.session.execute(
            select(ChallengeTerms).where(ChallengeTerms.challenge_id == ev.item_id,
                                         ChallengeTerms.version.in_([data["version"], data["supersedes"]]))
        ).scalars()}
        new, old = rows.get(data["version"]), rows.get(data["supersedes"])
        if new is not None and old is not None:
            changed = _changed_keys(json.loads(old.canonical), json.loads(new.canonical),
                                    skip=("version", "challenge_id"))
            detail = f"Replaces version {data['supersedes']}; changed: {', '.join(changed) or 'nothing'}"
        detail = detail or f"Replaces version {data['supersedes']}"
    return _d(ev, "terms", what, None, detail)


@decision("challenge.rules_set")
def _rules(ev, data, user):
    prev = _previous(ev, "challenge.rules_set")
    if prev is None:
        return _d(ev, "rules", "Participation rules set",
                  None, f"Up to {data.get('max_ideas_per_contributor')} idea(s) per contributor; "
                        f"who may submit: {data.get('who_may_submit')}")
    changed = _changed_keys(json.loads(prev.data or "{}"), data, skip=("defaults",))
    return _d(ev, "rules", "Participation rules changed", None, f"Changed: {', '.join(changed) or 'nothing'}")


def _reviewer_name(data: dict, user: Any, ev: AuditEvent) -> str:
    """Reviewers are named to the challenge's organisation and moderators only."""
    item = db.session.get(Item, ev.item_id)
    if data.get("user_id") and item is not None and policy.can(user, "view_reviewer_names", item):
        u = db.session.get(User, data["user_id"])
        if u is not None:
            return u.display_name
    return "a reviewer"


@decision("reviewer.appointed")
def _reviewer(ev, data, user):
    kind = "outside judge" if data.get("kind") == "judge" else "member reviewer"
    return _d(ev, "review", f"Appointed {_reviewer_name(data, user, ev)} ({kind})")


@decision("reviewer.revoked")
def _reviewer_revoked(ev, data, user):
    return _d(ev, "review", f"Revoked the appointment of {_reviewer_name(data, user, ev)}")


@decision("idea.awarded")
def _awarded(ev, data, user):
    inc = data.get("incentive") or {}
    what = inc.get("kind", "") if isinstance(inc, dict) else ""
    return _d(ev, "award", f"Awarded: {subject_label('idea', ev.subject_id, user)}",
              None, f"Incentive: {what.replace('-', ' ')}" if what else None)


@decision("award.paid")
def _paid(ev, data, user):
    return _d(ev, "award", f"Award paid for {subject_label('idea', data.get('idea_id'), user)}")


# --------------------------------------------------------------------------- one-line decisions
# action: (category, what, whether the event's reason is shown). `what` is filled from the
# event's data ("None" where a key is missing); {idea} names the event's idea as far as the
# viewer may see it.

_ONE_LINERS = {
    "item.status_changed": ("status", "Status changed from {from} to {to}", False),
    "item.visibility_changed": ("visibility", "Visibility changed from {from} to {to}", True),
    "review.criterion_added": ("review", "Review criterion added: {name} (weight {weight})", False),
    "review.criterion_removed": ("review", "Review criterion removed: {name}", False),
    "idea.shortlisted": ("shortlist", "Shortlisted: {idea}", False),
    "ip.transferred": ("award", "IP of {idea} passed to the organisation (assignment on award)", False),
    "idea.disqualified": ("disqualification", "Disqualified: {idea}", True),
    "discussion.closed": ("discussion", "Discussion closed by the organisation", True),
    "discussion.reopened": ("discussion", "Discussion reopened by the organisation", True),
}


class _Fields(dict):
    """The event's data as template fields: a missing key reads None, {idea} is the label."""

    def __init__(self, ev: AuditEvent, data: dict, user: Any):
        super().__init__(data)
        self.ev, self.user = ev, user

    def __getitem__(self, key: str) -> Any:
        if key == "idea":
            return subject_label("idea", self.ev.subject_id, self.user)
        return self.get(key)


def _one_liner(category: str, what: str, with_reason: bool) -> Formatter:
    def fmt(ev, data, user):
        return _d(ev, category, what.format_map(_Fields(ev, data, user)), data.get("reason") if with_reason else None)
    return fmt


for _action, _spec in _ONE_LINERS.items():
    register_decision(_action, _one_liner(*_spec))


# --------------------------------------------------------------------------- the log


def _actor_name(actor_id: int | None, names: dict[int, str]) -> str:
    if actor_id is None:
        return "System"
    return names.get(actor_id, "A former account")


def decision_log(user: Any, challenge: Item, limit: int = 1000) -> list[Decision]:
    """The decisions on this challenge the viewer may read, oldest first. The caller has
    already checked the viewer may see the challenge."""
    rows = db.session.execute(
        select(AuditEvent).where(AuditEvent.item_id == challenge.id).order_by(AuditEvent.id).limit(limit)
    ).scalars().all()
    actor_ids = {r.actor_id for r in rows if r.actor_id}
    names = {u.id: u.display_name for u in db.session.execute(
        select(User).where(User.id.in_(actor_ids))).scalars()} if actor_ids else {}
    out = []
    for row in rows:
        fn = _formatter(row.action)
        if fn is None:
            continue
        entry = fn(row, json.loads(row.data or "{}"), user)
        if entry is None:
            continue
        entry.who = _actor_name(row.actor_id, names)
        out.append(entry)
    return out


# --------------------------------------------------------------------------- an organisation's governance events
# The organisation's owners and admins also read these on their governance page
# (/orgs/<slug>/governance), never on the public decision log: they concern the item's
# audience and the organisation's own learning loop. People granted access are not named.

GOVERNANCE_FORMATTERS: dict[str, Formatter] = {}


def _grantee(data: dict) -> str:
    return "an organisation" if data.get("org_id") else "a person"


GOVERNANCE_FORMATTERS.update({
    "access.granted": lambda ev, data, user: _d(ev, "access", f"Access granted to {_grantee(data)}"),
    "access.revoked": lambda ev, data, user: _d(ev, "access", f"Access of {_grantee(data)} revoked"),
    "access.expiry_changed": lambda ev, data, user: _d(
        ev, "access", f"Access expiry of {_grantee(data)} changed from {_fmt_dt(data.get('from'))} "
                      f"to {_fmt_dt(data.get('to'))}"),
    "list.attached": lambda ev, data, user: _d(ev, "access", "Invitation list attached"),
    "list.detached": lambda ev, data, user: _d(ev, "access", "Invitation list detached"),
    "challenge.review_submitted": lambda ev, data, user: _d(ev, "learning", "After-action review written"),
    "challenge.review_revised": lambda ev, data, user: _d(ev, "learning", "After-action review revised"),
    "challenge.review_published": lambda ev, data, user: _d(
        ev, "learning", f"After-action review published as a lesson (visibility {data.get('visibility')})"),
    "challenge.started_from": lambda ev, data, user: _d(
        ev, "learning", f"Started from {subject_label('challenge', data.get('source_id'), user)}"),
})


def shown_actions() -> set[str]:
    """The event kinds an organisation's governance page lists."""
    return set(FORMATTERS) | set(GOVERNANCE_FORMATTERS)


def format_events(user: Any, rows: list[AuditEvent]) -> list[Decision]:
    """Audit rows as entries for this viewer (rows the caller may show: the policy's
    org_governance_clause selected them); kinds without a formatter are left out."""
    actor_ids = {r.actor_id for r in rows if r.actor_id}
    names = {u.id: u.display_name for u in db.session.execute(
        select(User).where(User.id.in_(actor_ids))).scalars()} if actor_ids else {}
    out = []
    for row in rows:
        fn = GOVERNANCE_FORMATTERS.get(row.action) or _formatter(row.action)
        entry = fn(row, json.loads(row.data or "{}"), user) if fn else None
        if entry is None:
            continue
        entry.who = _actor_name(row.actor_id, names)
        entry.action = row.action
        entry.item_id = row.item_id
        out.append(entry)
    return out
