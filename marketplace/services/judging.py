"""Writes and figures for judging rounds (issue 11): set up rounds (criteria, weights,
panel, dates, how many go through), assign ideas to judges by hand or balanced, conflicts of
interest, scores per round, judge and criterion, the private panel discussion, bulk
advance/decline, per-judge score normalisation, the panel's progress, and `copy_rounds`.

Every function asks the policy (marketplace/policy/judging.py) itself, validates all its
input before writing anything, records governance events in the audit chain with
``item_id=challenge.id`` and commits once: a refused request leaves nothing behind.
"""
from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from .. import audit, policy
from ..extensions import db
from ..models import (
    ConflictDeclaration,
    Idea,
    IdeaStatus,
    Item,
    ItemKind,
    JudgingRound,
    PanelComment,
    ReviewerAppointment,
    RoundAssignment,
    RoundCriterion,
    RoundEntry,
    RoundPanelist,
    RoundScore,
    User,
    utcnow,
)
from ..policy.judging import (
    CONFLICT_SCOPES,
    assignment_refusal,
    conflict_snapshot,
    current_round,
    judge_conflicted,
    rounds_of,
)
from .common import FieldErrors, ServiceError, lock_row
from .ideas import check_decline_reason, mark_declined, mark_shortlisted

MAX_ROUNDS = 10
MAX_CRITERIA = 20
SCORE_MIN, SCORE_MAX = 0, 10
NORMALISATION_METHOD = ("z-score per judge within the round: (judge's weighted total for the idea − that "
                        "judge's mean total over the ideas they scored in the round) ÷ that judge's population "
                        "standard deviation; 0 when a judge scored one idea or gave every idea the same total")
_CRIT_LINE = re.compile(r"^(?P<name>.+?)\s*[:=]\s*(?P<weight>-?\d+(?:\.\d+)?)\s*$")


def _challenge(challenge: Item | None) -> Item:
    if challenge is None or challenge.kind != ItemKind.CHALLENGE.value:
        raise ServiceError("There is no such challenge.", 404)
    return challenge


def _require(user: Any, action: str, obj: Any, message: str, status: int = 403) -> None:
    if not policy.can(user, "view", obj):
        raise ServiceError("There is no such challenge or idea, or you may not see it.", 404)
    if not policy.can(user, action, obj):
        raise ServiceError(message, status)


# --------------------------------------------------------------------------- round set-up


def parse_criteria(raw: str | Iterable | None) -> list[tuple[str, int]]:
    """"Name: weight" lines (or (name, weight) pairs) -> [(name, weight)], validated."""
    if isinstance(raw, str) or raw is None:
        pairs = []
        for line in (raw or "").splitlines():
            line = line.strip()
            if not line:
                continue
            m = _CRIT_LINE.match(line)
            if not m:
                raise ServiceError(f"“{line[:60]}”: write each criterion as “Name: weight”.", field="criteria")
            pairs.append((m.group("name"), m.group("weight")))
    else:
        pairs = list(raw)
    out: list[tuple[str, int]] = []
    for name, weight in pairs:
        name = str(name or "").strip()
        if not name or len(name) > 120:
            raise ServiceError("Name each criterion (at most 120 characters).", field="criteria")
        try:
            w = float(weight)
        except (TypeError, ValueError):
            raise ServiceError(f"The weight of “{name}” is a whole number.", field="criteria") from None
        if not math.isfinite(w) or w <= 0:
            raise ServiceError(f"The weight of “{name}” must be positive.", field="criteria")
        if w != int(w) or w > 100:
            raise ServiceError(f"The weight of “{name}” is a whole number from 1 to 100.", field="criteria")
        if any(n.lower() == name.lower() for n, _ in out):
            raise ServiceError(f"Two criteria are called “{name}”.", field="criteria")
        out.append((name, int(w)))
    if not out:
        raise ServiceError("A round needs at least one criterion.", field="criteria")
    if len(out) > MAX_CRITERIA:
        raise ServiceError(f"At most {MAX_CRITERIA} criteria per round.", field="criteria")
    return out


def eligible_panel(challenge: Item) -> list[ReviewerAppointment]:
    """The challenge's appointed reviewers (not revoked): who may sit on a round's panel."""
    return db.session.execute(select(ReviewerAppointment).where(
        ReviewerAppointment.challenge_id == challenge.id, ReviewerAppointment.revoked_at.is_(None))
        .order_by(ReviewerAppointment.user_id)).scalars().all()


def _overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start < b_end and b_start < a_end


def _round_in_use(rnd: JudgingRound) -> bool:
    for model in (RoundAssignment, RoundEntry, RoundScore, PanelComment):
        if db.session.execute(select(model.id).where(model.round_id == rnd.id).limit(1)).first():
            return True
    return False


def _check_round(challenge: Item, data: dict, others: list[JudgingRound]) -> dict:
    """Every problem with a round set-up at once (FieldErrors), or the clean values."""
    errors: list[tuple[str | None, str]] = []
    name = (data.get("name") or "").strip()
    if not name or len(name) > 80:
        errors.append(("name", "Name the round (at most 80 characters)."))
    starts, ends = data.get("starts_at"), data.get("ends_at")
    if not isinstance(starts, datetime):
        errors.append(("starts_at", "Give the date the round starts."))
    if not isinstance(ends, datetime):
        errors.append(("ends_at", "Give the date the round ends."))
    if isinstance(starts, datetime) and isinstance(ends, datetime):
        if ends <= starts:
            errors.append(("ends_at", "A round ends after it starts."))
        for o in others:
            if _overlaps(starts, ends, o.starts_at, o.ends_at):
                errors.append(("starts_at", f"These dates overlap round “{o.name}” "
                                            f"({o.starts_at:%Y-%m-%d %H:%M} to {o.ends_at:%Y-%m-%d %H:%M} UTC)."))
            elif starts < o.starts_at and _round_in_use(o):
                errors.append(("starts_at", f"Round “{o.name}” is already under way; a new round comes after it."))
    try:
        advance = int(data.get("advance_count"))
        if not 1 <= advance <= 10_000:
            raise ValueError
    except (TypeError, ValueError):
        advance = None
        errors.append(("advance_count", "How many ideas go through: a whole number from 1."))
    criteria: list[tuple[str, int]] = []
    try:
        criteria = parse_criteria(data.get("criteria"))
    except ServiceError as e:
        errors.append(("criteria", e.message))
    eligible = {a.user_id for a in eligible_panel(challenge)}
    try:
        panel = sorted({int(u) for u in (data.get("panel") or [])})
    except (TypeError, ValueError):
        panel = []
        errors.append(("panel", "Choose the panel from the challenge's reviewers."))
    if not panel and not any(f == "panel" for f, _ in errors):
        errors.append(("panel", "Choose at least one judge for the panel."))
    if set(panel) - eligible:
        errors.append(("panel", "The panel is chosen from the challenge's appointed reviewers."))
    if len(others) >= MAX_ROUNDS:
        errors.append(("name", f"At most {MAX_ROUNDS} rounds per challenge."))
    if errors:
        raise FieldErrors(errors)
    return {"name": name, "starts_at": starts, "ends_at": ends, "advance_count": advance,
            "criteria": criteria, "panel": panel}


def _renumber(challenge_id: int) -> None:
    rounds = db.session.execute(select(JudgingRound).where(JudgingRound.challenge_id == challenge_id)).scalars().all()
    # Two steps, so the unique (challenge, position) never sees two rows at one position.
    for i, r in enumerate(rounds):
        r.position = -(i + 1)
    db.session.flush()
    for i, r in enumerate(sorted(rounds, key=lambda r: (r.starts_at, r.id))):
        r.position = i + 1
    db.session.flush()


def create_round(actor: User, challenge: Item | None, data: dict) -> JudgingRound:
    challenge = _challenge(challenge)
    _require(actor, "manage_rounds", challenge, "Only the organisation's owners and admins set up judging rounds.")
    lock_row(Item, challenge.id)
    clean = _check_round(challenge, data, rounds_of(challenge.id))
    rnd = JudgingRound(challenge_id=challenge.id, position=10_000, name=clean["name"], starts_at=clean["starts_at"],
                       ends_at=clean["ends_at"], advance_count=clean["advance_count"], created_by_id=actor.id)
    rnd.criteria = [RoundCriterion(name=n, weight=w) for n, w in clean["criteria"]]
    rnd.panel = [RoundPanelist(user_id=u) for u in clean["panel"]]
    db.session.add(rnd)
    db.session.flush()
    _renumber(challenge.id)
    audit.record("judging.round_created", "round", rnd.id, actor_id=actor.id, item_id=challenge.id,
                 data={"name": rnd.name, "starts_at": rnd.starts_at.isoformat(), "ends_at": rnd.ends_at.isoformat(),
                       "advance_count": rnd.advance_count, "criteria": [[n, w] for n, w in clean["criteria"]],
                       "panel_size": len(clean["panel"])})
    db.session.commit()
    return rnd


def remove_round(actor: User, rnd: JudgingRound) -> None:
    challenge = rnd.challenge
    _require(actor, "manage_rounds", challenge, "Only the organisation's owners and admins change judging rounds.")
    lock_row(Item, challenge.id)
    if _round_in_use(rnd):
        raise ServiceError(f"Round “{rnd.name}” already has assignments, scores or ideas; it cannot be removed.", 409)
    audit.record("judging.round_removed", "round", rnd.id, actor_id=actor.id, item_id=challenge.id,
                 data={"name": rnd.name})
    db.session.delete(rnd)
    db.session.flush()
    _renumber(challenge.id)
    db.session.commit()


def copy_rounds(source_challenge: Item, target_challenge: Item, actor: User | None = None) -> list[JudgingRound]:
    """Copy the source's rounds (names, criteria and weights, how many go through, and each
    round's length and the gaps between them) to a target challenge that has none yet.

    Dates: the first copied round starts at the target's deadline (or, without one, now),
    the others keep their offsets from the first. Panels are not copied: the target's
    reviewers are its own; the copied rounds start with the target's appointed reviewers
    who also sat on the source round, or, if none, with all of the target's reviewers
    (the admins choose afterwards). With ``actor`` the policy is asked (``manage_rounds`` on
    the target, ``view`` on the source's rounds); the caller commits.
    """
    _challenge(source_challenge)
    _challenge(target_challenge)
    if actor is not None:
        _require(actor, "manage_rounds", target_challenge, "Only the organisation's owners and admins set up rounds.")
        if not policy.can(actor, "manage_rounds", source_challenge) and not policy.can(actor, "view", source_challenge):
            raise ServiceError("There is no such challenge, or you may not see it.", 404)
    source = rounds_of(source_challenge.id)
    if not source:
        return []
    if rounds_of(target_challenge.id):
        raise ServiceError("The new challenge already has judging rounds.", 409)
    start = target_challenge.deadline or utcnow()
    base = source[0].starts_at
    reviewers = {a.user_id for a in eligible_panel(target_challenge)}
    out = []
    for r in source:
        panel = sorted(reviewers & set(r.panel_ids)) or sorted(reviewers)
        new = JudgingRound(challenge_id=target_challenge.id, position=r.position, name=r.name,
                           starts_at=start + (r.starts_at - base), ends_at=start + (r.ends_at - base),
                           advance_count=r.advance_count, created_by_id=actor.id if actor is not None else None)
        new.criteria = [RoundCriterion(name=c.name, weight=c.weight) for c in r.criteria]
        new.panel = [RoundPanelist(user_id=u) for u in panel]
        db.session.add(new)
        out.append(new)
    db.session.flush()
    for new, old in zip(out, source):
        audit.record("judging.round_created", "round", new.id, actor_id=actor.id if actor is not None else None,
                     item_id=target_challenge.id,
                     data={"name": new.name, "starts_at": new.starts_at.isoformat(),
                           "ends_at": new.ends_at.isoformat(), "advance_count": new.advance_count,
                           "criteria": [[c.name, c.weight] for c in new.criteria], "panel_size": len(new.panel),
                           "copied_from_round": old.id})
    return out


# --------------------------------------------------------------------------- ideas in rounds


def ideas_under_review(challenge: Item, user: Any) -> list[Idea]:
    """The challenge's ideas still under review that `user` may see (the flat review's list)."""
    return db.session.execute(policy.visible(user, Idea).where(
        Idea.challenge_id == challenge.id, Idea.hidden_at.is_(None),
        Idea.status.in_(policy.IDEA_REVIEWABLE_STATES)).order_by(Idea.id)).scalars().all()


def ideas_in_round(rnd: JudgingRound, user: Any = None) -> list[Idea]:
    """Ideas now in this round (still under review), as far as `user` may see them (all of
    them with no user: only for services that checked the policy on the challenge)."""
    q = select(Idea) if user is None else policy.visible(user, Idea)
    ideas = db.session.execute(q.where(Idea.challenge_id == rnd.challenge_id, Idea.hidden_at.is_(None),
                                       Idea.status.in_(policy.IDEA_REVIEWABLE_STATES))
                               .order_by(Idea.id)).scalars().all()
    where = current_rounds(rnd.challenge_id, ideas)
    return [i for i in ideas if where[i.id] is not None and where[i.id].id == rnd.id]


def current_rounds(challenge_id: int, ideas: list[Idea]) -> dict[int, JudgingRound | None]:
    """policy.judging.current_round for many ideas of one challenge in two queries."""
    rounds = rounds_of(challenge_id)
    if not rounds:
        return {i.id: None for i in ideas}
    entries: dict[int, set[int]] = defaultdict(set)
    if ideas:
        for rid, iid in db.session.execute(select(RoundEntry.round_id, RoundEntry.idea_id).where(
                RoundEntry.idea_id.in_([i.id for i in ideas]))).all():
            entries[iid].add(rid)
    out = {}
    for idea in ideas:
        now_in = rounds[0]
        for r in rounds:
            if r.id in entries[idea.id]:
                now_in = r
        out[idea.id] = now_in
    return out


def _active_assignments(rnd: JudgingRound) -> list[RoundAssignment]:
    return db.session.execute(select(RoundAssignment).options(joinedload(RoundAssignment.judge))
                              .where(RoundAssignment.round_id == rnd.id, RoundAssignment.removed_at.is_(None))
                              .order_by(RoundAssignment.idea_id, RoundAssignment.judge_id)).scalars().all()


def _id_or_none(raw: Any) -> int | None:
    """A row id as posted, or None when it is not one (no database stores ids beyond 64 bits)."""
    try:
        n = int(str(raw).strip())
    except (TypeError, ValueError):
        return None
    return n if 0 < n < 2**63 else None


def _manageable_round(actor: User, rnd: JudgingRound) -> Item:
    challenge = rnd.challenge
    _require(actor, "manage_rounds", challenge, "Only the organisation's owners and admins assign judges.")
    return challenge


def assign(actor: User, rnd: JudgingRound, idea: Idea | None, judge_id: Any) -> RoundAssignment:
    """Assign one judge to one idea in the round by hand."""
    challenge = _manageable_round(actor, rnd)
    if idea is None or idea.challenge_id != challenge.id or not policy.can(actor, "view", idea):
        raise ServiceError("There is no such idea in this challenge.", 404, field="idea_id")
    judge_id = _id_or_none(judge_id)
    if judge_id is None:
        raise ServiceError("Choose a judge from the round's panel.", field="judge_id")
    lock_row(Item, challenge.id)
    refusal = assignment_refusal(judge_id, rnd, idea)
    if refusal:
        raise ServiceError(refusal, 409, field="judge_id")
    if idea not in ideas_in_round(rnd):
        raise ServiceError("That idea is not in this round.", 409, field="idea_id")
    row = db.session.execute(select(RoundAssignment).where(
        RoundAssignment.round_id == rnd.id, RoundAssignment.idea_id == idea.id,
        RoundAssignment.judge_id == judge_id)).scalar()
    if row is not None and row.removed_at is None:
        raise ServiceError("That judge is already assigned this idea.", 409, field="judge_id")
    if row is None:
        row = RoundAssignment(round_id=rnd.id, idea_id=idea.id, judge_id=judge_id)
        db.session.add(row)
    row.assigned_by_id, row.created_at, row.removed_at, row.removed_reason = actor.id, utcnow(), None, None
    db.session.flush()
    audit.record("judging.assigned", "round", rnd.id, actor_id=actor.id, item_id=challenge.id,
                 data={"idea_id": idea.id, "judge_id": judge_id, "how": "by hand"})
    db.session.commit()
    return row


def unassign(actor: User, rnd: JudgingRound, idea: Idea | None, judge_id: Any, reason: str = "unassigned by an admin") -> None:
    challenge = _manageable_round(actor, rnd)
    judge_id = _id_or_none(judge_id)
    if judge_id is None:
        raise ServiceError("Choose an assignment.", field="judge_id")
    row = None if idea is None else db.session.execute(select(RoundAssignment).where(
        RoundAssignment.round_id == rnd.id, RoundAssignment.idea_id == idea.id,
        RoundAssignment.judge_id == judge_id, RoundAssignment.removed_at.is_(None))).scalar()
    if row is None:
        raise ServiceError("There is no such assignment.", 404)
    row.removed_at, row.removed_reason = utcnow(), reason[:200]
    audit.record("judging.unassigned", "round", rnd.id, actor_id=actor.id, item_id=challenge.id,
                 data={"idea_id": idea.id, "judge_id": judge_id, "reason": reason[:200]})
    db.session.commit()


def plan_balanced(ideas: list[Idea], judges: list[int], per_idea: int, existing: dict[int, set[int]],
                  eligible) -> tuple[list[tuple[int, int]], list[Idea]]:
    """The balanced plan: each idea gets `per_idea` judges (counting those it has), chosen
    among the eligible by lowest load, then lowest user id; ideas in id order. Returns the
    new (idea id, judge id) pairs and the ideas that cannot get enough judges."""
    load = {j: 0 for j in judges}
    for idea_id, js in existing.items():
        for j in js:
            if j in load:
                load[j] += 1
    pairs: list[tuple[int, int]] = []
    short: list[Idea] = []
    for idea in sorted(ideas, key=lambda i: i.id):
        have = existing.get(idea.id, set())
        need = per_idea - len(have)
        if need <= 0:
            continue
        cands = sorted((j for j in judges if j not in have and eligible(j, idea)), key=lambda j: (load[j], j))
        if len(cands) < need:
            short.append(idea)
            continue
        for j in cands[:need]:
            pairs.append((idea.id, j))
            load[j] += 1
    return pairs, short


def auto_assign(actor: User, rnd: JudgingRound, per_idea: Any) -> int:
    """Give every idea in the round `per_idea` judges from its panel, spreading the load
    evenly, never to an author or a judge with a conflict. All or nothing: if one idea
    cannot get enough judges, nothing is assigned and the message names it. Returns how
    many assignments were made."""
    challenge = _manageable_round(actor, rnd)
    try:
        per_idea = int(per_idea)
    except (TypeError, ValueError):
        raise ServiceError("Judges per idea: a whole number from 1.", field="per_idea") from None
    if not 1 <= per_idea <= len(rnd.panel_ids):
        raise ServiceError(f"Judges per idea: from 1 to the panel's size ({len(rnd.panel_ids)}).", field="per_idea")
    lock_row(Item, challenge.id)
    ideas = ideas_in_round(rnd)
    existing: dict[int, set[int]] = defaultdict(set)
    for a in _active_assignments(rnd):
        existing[a.idea_id].add(a.judge_id)
    pairs, short = plan_balanced(ideas, rnd.panel_ids, per_idea, existing,
                                 lambda j, idea: assignment_refusal(j, rnd, idea) is None)
    if short:
        names = ", ".join(f"#{i.id}" for i in short[:10])
        raise ServiceError(f"Not enough judges without a conflict for idea(s) {names}: lower the number of judges "
                           "per idea or add judges to the panel. Nothing was assigned.", 409, field="per_idea")
    prior = {(r.idea_id, r.judge_id): r for r in db.session.execute(select(RoundAssignment).where(
        RoundAssignment.round_id == rnd.id, RoundAssignment.removed_at.is_not(None))).scalars()}
    now = utcnow()
    for idea_id, judge_id in pairs:
        row = prior.get((idea_id, judge_id))
        if row is None:
            row = RoundAssignment(round_id=rnd.id, idea_id=idea_id, judge_id=judge_id)
            db.session.add(row)
        row.assigned_by_id, row.created_at, row.removed_at, row.removed_reason = None, now, None, None
    audit.record("judging.auto_assigned", "round", rnd.id, actor_id=actor.id, item_id=challenge.id,
                 data={"per_idea": per_idea, "pairs": [list(p) for p in pairs]})
    db.session.commit()
    return len(pairs)


# --------------------------------------------------------------------------- conflicts


def declare_conflict(judge: User, idea: Idea, scope: str, reason: str) -> ConflictDeclaration:
    """Record the declaration and unassign the judge from every idea it covers (recorded)."""
    if scope not in CONFLICT_SCOPES:
        raise ServiceError("Choose with whom the conflict is: this idea, its authors or their organisations.",
                           field="scope")
    reason = (reason or "").strip()
    if len(reason) > 2000:
        raise ServiceError("At most 2,000 characters.", field="reason")
    _require(judge, "declare_conflict", idea, "Only the challenge's reviewers declare conflicts, once per idea.", 409)
    lock_row(Idea, idea.id)
    authors, orgs = conflict_snapshot(idea, scope)
    decl = ConflictDeclaration(challenge_id=idea.challenge_id, idea_id=idea.id, judge_id=judge.id, scope=scope,
                               author_ids_json=json.dumps(authors), org_ids_json=json.dumps(orgs), reason=reason)
    db.session.add(decl)
    db.session.flush()
    removed = []
    rows = db.session.execute(select(RoundAssignment).join(JudgingRound, JudgingRound.id == RoundAssignment.round_id)
                              .where(JudgingRound.challenge_id == idea.challenge_id,
                                     RoundAssignment.judge_id == judge.id,
                                     RoundAssignment.removed_at.is_(None))).scalars().all()
    now = utcnow()
    for row in rows:
        if judge_conflicted(judge.id, row.idea):
            row.removed_at, row.removed_reason = now, "conflict of interest declared"
            removed.append(row.idea_id)
    audit.record("judging.conflict_declared", "idea", idea.id, actor_id=judge.id, item_id=idea.challenge_id,
                 data={"declaration_id": decl.id, "scope": scope, "unassigned_idea_ids": sorted(removed)})
    db.session.commit()
    return decl


def conflicts_of(challenge: Item) -> list[ConflictDeclaration]:
    return db.session.execute(select(ConflictDeclaration).where(ConflictDeclaration.challenge_id == challenge.id)
                              .order_by(ConflictDeclaration.id)).scalars().all()


# --------------------------------------------------------------------------- scores and discussion


def score_in_round(judge: User, idea: Idea, scores: dict[Any, Any]) -> JudgingRound:
    """Scores of one judge for one idea in its current round, every criterion 0-10."""
    _require(judge, "judge", idea, "Only judges assigned this idea in its current round score it.")
    rnd = current_round(idea)
    criteria = {c.id: c for c in rnd.criteria}
    clean: dict[int, int] = {}
    for k, val in scores.items():
        try:
            cid, s = int(k), int(str(val).strip())
        except (TypeError, ValueError):
            raise ServiceError(f"Scores are whole numbers from {SCORE_MIN} to {SCORE_MAX}.", field="scores") from None
        if cid not in criteria:
            raise ServiceError("Unknown criterion for this round.", field="scores")
        if not SCORE_MIN <= s <= SCORE_MAX:
            raise ServiceError(f"Scores are whole numbers from {SCORE_MIN} to {SCORE_MAX} "
                               f"(“{criteria[cid].name}” was {s}).", field="scores")
        clean[cid] = s
    if set(clean) != set(criteria):
        raise ServiceError("Score every criterion of the round.", field="scores")
    lock_row(Idea, idea.id)
    db.session.refresh(idea)
    if not policy.can(judge, "judge", idea) or current_round(idea).id != rnd.id:
        raise ServiceError("This idea can no longer be scored in this round.", 409)
    rows = {r.criterion_id: r for r in db.session.execute(select(RoundScore).where(
        RoundScore.round_id == rnd.id, RoundScore.idea_id == idea.id, RoundScore.judge_id == judge.id)).scalars()}
    for cid, s in clean.items():
        if cid in rows:
            rows[cid].score = s
        else:
            db.session.add(RoundScore(round_id=rnd.id, idea_id=idea.id, judge_id=judge.id, criterion_id=cid, score=s))
    if idea.status == IdeaStatus.SUBMITTED.value:
        idea.status = IdeaStatus.UNDER_REVIEW.value
        audit.record("idea.review_started", "idea", idea.id, actor_id=judge.id, item_id=idea.challenge_id)
    db.session.commit()
    return rnd


def my_round_scores(user: User, rnd: JudgingRound, idea: Idea) -> dict[int, int]:
    return {r.criterion_id: r.score for r in db.session.execute(select(RoundScore).where(
        RoundScore.round_id == rnd.id, RoundScore.idea_id == idea.id, RoundScore.judge_id == user.id)).scalars()}


def add_comment(user: User, idea: Idea, body: str) -> PanelComment:
    _require(user, "discuss", idea, "Only the round's panel and the challenge's admins discuss this idea.")
    body = (body or "").strip()
    if not body:
        raise ServiceError("Write the comment.", field="body")
    if len(body) > 10_000:
        raise ServiceError("At most 10,000 characters.", field="body")
    c = PanelComment(round_id=current_round(idea).id, idea_id=idea.id, author_id=user.id, body=body)
    db.session.add(c)
    db.session.commit()
    return c


def discussion(user: User, idea: Idea) -> list[PanelComment]:
    """The panel discussion of the idea's current round, as far as the user may read it."""
    rnd = current_round(idea)
    if rnd is None:
        return []
    rows = db.session.execute(select(PanelComment).where(PanelComment.round_id == rnd.id,
                                                         PanelComment.idea_id == idea.id)
                              .order_by(PanelComment.id)).scalars().all()
    return [c for c in rows if policy.can(user, "view", c)]


# --------------------------------------------------------------------------- decisions


def _decidable(user: User, challenge: Item, idea_ids: Iterable[Any], action: str) -> list[Idea]:
    got = {_id_or_none(i) for i in idea_ids}
    if None in got:
        raise ServiceError("Choose the ideas by their numbers.", field="ideas")
    ids = sorted(got)
    if not ids:
        raise ServiceError("Choose at least one idea.", field="ideas")
    if len(ids) > 500:
        raise ServiceError("At most 500 ideas at once.", field="ideas")
    lock_row(Item, challenge.id)
    ideas = db.session.execute(policy.visible(user, Idea).where(Idea.id.in_(ids), Idea.challenge_id == challenge.id)
                               .order_by(Idea.id)).scalars().all()
    if len(ideas) != len(ids):
        raise ServiceError("Some of the chosen ideas are not in this challenge, or you may not see them.", 404,
                           field="ideas")
    refused = [i for i in ideas if not policy.can(user, action, i)]
    if refused:
        raise ServiceError("You may not decide on idea(s) " + ", ".join(f"“{i.title}”" for i in refused[:10])
                           + " now (already decided, hidden, not in a round of your panel, or yours). "
                           "Nothing was changed.", 409, field="ideas")
    return ideas


def advance_ideas(user: User, challenge: Item, idea_ids: Iterable[Any], reason: str = "") -> int:
    """Move ideas on from their current round: to the next round, or from the last round to
    the shortlist. Each move is a decision in the audit chain. At most the round's number
    of ideas go through; all or nothing. A challenge without rounds has one implicit step:
    the ideas are shortlisted (the flat review's ``shortlist`` rule)."""
    challenge = _challenge(challenge)
    reason = (reason or "").strip()[:2000]
    rounds = rounds_of(challenge.id)
    if not rounds:
        ideas = _decidable(user, challenge, idea_ids, "shortlist")
        for idea in ideas:
            mark_shortlisted(user, idea, {"reason": reason} if reason else None)
        db.session.commit()
        return len(ideas)
    ideas = _decidable(user, challenge, idea_ids, "advance")
    by_round: dict[int, list[Idea]] = defaultdict(list)
    for idea in ideas:
        by_round[current_round(idea).id].append(idea)
    for r in rounds:
        batch = by_round.get(r.id)
        if not batch:
            continue
        gone = advanced_from(r)
        if gone + len(batch) > r.advance_count:
            raise ServiceError(f"Round “{r.name}” lets {r.advance_count} idea(s) through and {gone} already went; "
                               f"{len(batch)} more is too many. Nothing was changed.", 409, field="ideas")
    for i, r in enumerate(rounds):
        nxt = rounds[i + 1] if i + 1 < len(rounds) else None
        for idea in by_round.get(r.id, []):
            extra = {"round": r.name, "round_id": r.id, "reason": reason or None}
            if nxt is None:
                mark_shortlisted(user, idea, extra)
            else:
                db.session.add(RoundEntry(round_id=nxt.id, idea_id=idea.id, decided_by_id=user.id))
                if idea.status == IdeaStatus.SUBMITTED.value:
                    idea.status = IdeaStatus.UNDER_REVIEW.value
                audit.record("judging.advanced", "idea", idea.id, actor_id=user.id, item_id=challenge.id,
                             data={"from_round": r.name, "from_round_id": r.id, "to_round": nxt.name,
                                   "to_round_id": nxt.id, "reason": reason or None})
    db.session.commit()
    return len(ideas)


def advanced_from(rnd: JudgingRound) -> int:
    """How many ideas went through from this round so far."""
    rounds = rounds_of(rnd.challenge_id)
    idx = [r.id for r in rounds].index(rnd.id)
    if idx + 1 < len(rounds):
        return db.session.execute(select(func.count(RoundEntry.id)).where(
            RoundEntry.round_id == rounds[idx + 1].id)).scalar_one()
    return db.session.execute(select(func.count(Idea.id)).where(
        Idea.challenge_id == rnd.challenge_id,
        Idea.status.in_((IdeaStatus.SHORTLISTED.value, IdeaStatus.AWARDED.value)))).scalar_one()


def decline_ideas(user: User, challenge: Item, idea_ids: Iterable[Any], reason: str) -> int:
    """Decline several ideas with one reason (each author is told it); all or nothing."""
    challenge = _challenge(challenge)
    reason = check_decline_reason(reason)
    ideas = _decidable(user, challenge, idea_ids, "decline")
    for idea in ideas:
        rnd = current_round(idea)
        mark_declined(user, idea, reason, {"round": rnd.name, "round_id": rnd.id} if rnd is not None else None)
    db.session.commit()
    return len(ideas)


# --------------------------------------------------------------------------- figures


def weighted_total(scores: dict[int, int], weights: dict[int, int]) -> float | None:
    w = sum(weights[c] for c in scores if c in weights)
    if not w:
        return None
    return sum(weights[c] * s for c, s in scores.items() if c in weights) / w


def zscores(totals: dict[int, float]) -> dict[int, float]:
    """idea id -> z of one judge's totals (population SD; all 0 when the SD is 0)."""
    if not totals:
        return {}
    mean = sum(totals.values()) / len(totals)
    sd = math.sqrt(sum((x - mean) ** 2 for x in totals.values()) / len(totals))
    if sd == 0:
        return {k: 0.0 for k in totals}
    return {k: (x - mean) / sd for k, x in totals.items()}


@dataclass
class IdeaResult:
    idea: Idea
    per_judge: dict[int, float] = field(default_factory=dict)   # judge id -> raw weighted total
    z: dict[int, float] = field(default_factory=dict)           # judge id -> z
    raw_mean: float | None = None
    z_mean: float | None = None


def round_results(rnd: JudgingRound, ideas: list[Idea]) -> list[IdeaResult]:
    """Raw weighted totals per judge (complete score sets only) and their z-scores per judge
    within the round, for `ideas` (the caller passes only what the viewer may see; the
    normalisation itself uses every complete score of the round, so a judge's z does not
    depend on who looks)."""
    weights = {c.id: c.weight for c in rnd.criteria}
    by: dict[tuple[int, int], dict[int, int]] = defaultdict(dict)
    for s in db.session.execute(select(RoundScore).where(RoundScore.round_id == rnd.id)).scalars():
        by[(s.judge_id, s.idea_id)][s.criterion_id] = s.score
    totals: dict[int, dict[int, float]] = defaultdict(dict)
    for (judge, idea_id), scores in by.items():
        if set(weights) <= set(scores):
            totals[judge][idea_id] = weighted_total(scores, weights)
    zs = {j: zscores(t) for j, t in totals.items()}
    out = []
    for idea in ideas:
        r = IdeaResult(idea)
        for j, t in totals.items():
            if idea.id in t:
                r.per_judge[j] = t[idea.id]
                r.z[j] = zs[j][idea.id]
        if r.per_judge:
            r.raw_mean = sum(r.per_judge.values()) / len(r.per_judge)
            r.z_mean = sum(r.z.values()) / len(r.z)
        out.append(r)
    out.sort(key=lambda r: (r.z_mean is None, -(r.z_mean or 0), -(r.raw_mean or 0), r.idea.id))
    return out


def _scored_pairs(rnd: JudgingRound) -> set[tuple[int, int]]:
    """(judge, idea) pairs with every criterion of the round scored."""
    need = len(rnd.criteria)
    rows = db.session.execute(select(RoundScore.judge_id, RoundScore.idea_id, func.count(RoundScore.id))
                              .where(RoundScore.round_id == rnd.id)
                              .group_by(RoundScore.judge_id, RoundScore.idea_id)).all()
    return {(j, i) for j, i, n in rows if n >= need}


@dataclass
class JudgeProgress:
    judge: User
    assigned: int = 0
    scored: int = 0
    overdue: int = 0


def panel_progress(challenge: Item, now: datetime | None = None) -> list[tuple[JudgingRound, list[JudgeProgress]]]:
    """Per round, per panelist: ideas assigned, scored (every criterion) and overdue
    (assigned, not scored, round ended)."""
    now = now or utcnow()
    out = []
    for rnd in rounds_of(challenge.id):
        scored = _scored_pairs(rnd)
        rows = {p.user_id: JudgeProgress(p.user) for p in rnd.panel}
        for a in _active_assignments(rnd):
            jp = rows.setdefault(a.judge_id, JudgeProgress(a.judge))
            jp.assigned += 1
            if (a.judge_id, a.idea_id) in scored:
                jp.scored += 1
            elif rnd.ends_at <= now:
                jp.overdue += 1
        out.append((rnd, [rows[k] for k in sorted(rows)]))
    return out


@dataclass
class QueueEntry:
    rnd: JudgingRound
    idea: Idea | None
    idea_id: int
    scored: bool


def judge_queue(user: User, challenge: Item) -> list[tuple[JudgingRound, list[QueueEntry]]]:
    """The user's assignments per round (still active), whether each is scored; ideas the
    user may no longer open (e.g. hidden) are listed by number only."""
    out = []
    for rnd in rounds_of(challenge.id):
        if user.id not in rnd.panel_ids:
            continue
        scored = _scored_pairs(rnd)
        mine = db.session.execute(select(RoundAssignment).where(
            RoundAssignment.round_id == rnd.id, RoundAssignment.judge_id == user.id,
            RoundAssignment.removed_at.is_(None)).order_by(RoundAssignment.idea_id)).scalars().all()
        seen = {i.id: i for i in db.session.execute(policy.visible(user, Idea).where(
            Idea.id.in_([a.idea_id for a in mine]))).scalars()} if mine else {}
        out.append((rnd, [QueueEntry(rnd, seen.get(a.idea_id), a.idea_id, (user.id, a.idea_id) in scored)
                          for a in mine]))
    return out


def assignments_of(rnd: JudgingRound) -> list[RoundAssignment]:
    return _active_assignments(rnd)


def round_of_challenge(challenge: Item, round_id: Any) -> JudgingRound:
    try:
        rid = int(round_id)
    except (TypeError, ValueError):
        raise ServiceError("Choose a round.", 404, field="round_id") from None
    if not 0 < rid < 2**63:  # no database stores such an id (SQLite would raise)
        raise ServiceError("There is no such round in this challenge.", 404, field="round_id")
    rnd = db.session.get(JudgingRound, rid)
    if rnd is None or rnd.challenge_id != challenge.id:
        raise ServiceError("There is no such round in this challenge.", 404, field="round_id")
    return rnd

