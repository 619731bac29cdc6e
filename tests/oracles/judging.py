"""Who may do what in judging rounds and exports (issue 11), stated from the issue and the
judging rules' prose, over plain rows (facts.py), never through the policy:

* a challenge's rounds are seen by whoever sees the challenge and is on its review panel
  (the organisation's owners and admins, and its active reviewers); its owners and admins
  set them up (``manage_rounds``) unless the challenge is archived;
* a round's results: the organisation's owners/admins and the round's panelists who are
  active reviewers;
* a judge scores an idea (``judge``) when the idea is seen by them, under review (submitted,
  under review or shortlisted) and not hidden, they are not its author, the idea's current
  round (the latest round it was put through to, else the first) has started, they sit on
  that round's panel and are an active reviewer, they are assigned the idea in that round,
  and no conflict they declared covers it (declared on the idea; or with its authors,
  sharing an author; or with the authors' organisations, sharing an author or an author
  being a member of one);
* a conflict is declared by an active reviewer who sees the idea and is not its author,
  once per idea;
* the panel discussion of an idea (``discuss``) and a panel comment: whoever sees the idea,
  is not its author, and is the organisation's owner/admin or an active reviewer on the
  panel of the idea's current round (for a comment: of the comment's round);
* an idea is put through (``advance``) by the same people, when submitted or under review
  and not hidden;
* exports and the panel's progress: the organisation's owners and admins, for a challenge
  they see; the judge's queue: the review panel of a challenge they see;
* a score is seen by its judge and the organisation's owners/admins, never by an author of
  the idea, and only with the idea; a conflict declaration and an assignment by their judge
  and the organisation's owners/admins.
"""
from __future__ import annotations

import json
from types import SimpleNamespace

from sqlalchemy import inspect, select

from marketplace.extensions import db
from marketplace.models import (
    ConflictDeclaration,
    JudgingRound,
    PanelComment,
    RoundAssignment,
    RoundEntry,
    RoundPanelist,
    RoundScore,
)

from .facts import Facts
from .ideas import active_reviewer, is_author, sees_idea
from .items import sees_item

REVIEWABLE = ("submitted", "under-review", "shortlisted")
JUDGING_TABLES = {"rounds": JudgingRound, "panelists": RoundPanelist, "entries": RoundEntry,
                  "assignments": RoundAssignment, "conflicts": ConflictDeclaration, "scores": RoundScore,
                  "comments_": PanelComment}


def _plain(row) -> SimpleNamespace:
    return SimpleNamespace(**{a.key: getattr(row, a.key) for a in inspect(type(row)).column_attrs})


class JudgingFacts(Facts):
    def __init__(self) -> None:
        super().__init__()
        for name, model in JUDGING_TABLES.items():
            setattr(self, name, {r.id: _plain(r) for r in db.session.execute(select(model)).scalars()})


def panel(facts, round_id) -> set[int]:
    return {p.user_id for p in facts.panelists.values() if p.round_id == round_id}


def rounds_of(facts, challenge_id) -> list:
    return sorted((r for r in facts.rounds.values() if r.challenge_id == challenge_id), key=lambda r: r.position)


def idea_round(facts, idea):
    rounds = rounds_of(facts, idea.challenge_id)
    if not rounds:
        return None
    entered = {e.round_id for e in facts.entries.values() if e.idea_id == idea.id}
    later = [r for r in rounds if r.id in entered]
    return later[-1] if later else rounds[0]


def org_admin(p, challenge) -> bool:
    return p.admin(challenge.org_id)


def on_panel(p, facts, rnd) -> bool:
    challenge = facts.items[rnd.challenge_id]
    return p.signed_in and p.id in panel(facts, rnd.id) and active_reviewer(p, challenge, facts)


def counting_authors(facts, idea) -> set[int]:
    return {a.user_id for a in facts.authors_of_idea.get(idea.id, []) if a.status in ("lead", "accepted")}


def covered(facts, judge_id, idea) -> bool:
    authors = counting_authors(facts, idea)
    orgs = {m.org_id for m in facts.memberships.values() if m.user_id in authors}
    for d in facts.conflicts.values():
        if d.judge_id != judge_id or d.challenge_id != idea.challenge_id:
            continue
        if d.idea_id == idea.id:
            return True
        if d.scope in ("authors", "organisations") and authors & set(json.loads(d.author_ids_json)):
            return True
        if d.scope == "organisations" and orgs & set(json.loads(d.org_ids_json)):
            return True
    return False


def judge(p, idea, facts) -> bool:
    if not sees_idea(p, idea, facts) or idea.status not in REVIEWABLE or idea.hidden_at is not None:
        return False
    if is_author(p, idea, facts):
        return False
    rnd = idea_round(facts, idea)
    if rnd is None or rnd.starts_at > facts.now or not on_panel(p, facts, rnd):
        return False
    assigned = any(a.round_id == rnd.id and a.idea_id == idea.id and a.judge_id == p.id and a.removed_at is None
                   for a in facts.assignments.values())
    return assigned and not covered(facts, p.id, idea)


def declare_conflict(p, idea, facts) -> bool:
    if not sees_idea(p, idea, facts) or is_author(p, idea, facts):
        return False
    if not active_reviewer(p, facts.items[idea.challenge_id], facts):
        return False
    return not any(d.idea_id == idea.id and d.judge_id == p.id for d in facts.conflicts.values())


def _panel_or_admin(p, idea, facts, rnd) -> bool:
    if rnd is None or not sees_idea(p, idea, facts) or is_author(p, idea, facts):
        return False
    return org_admin(p, facts.items[idea.challenge_id]) or on_panel(p, facts, rnd)


def discuss(p, idea, facts) -> bool:
    return _panel_or_admin(p, idea, facts, idea_round(facts, idea))


def advance(p, idea, facts) -> bool:
    if idea.status not in ("submitted", "under-review") or idea.hidden_at is not None:
        return False
    return _panel_or_admin(p, idea, facts, idea_round(facts, idea))


def sees_comment(p, c, facts) -> bool:
    return _panel_or_admin(p, facts.ideas[c.idea_id], facts, facts.rounds[c.round_id])


def sees_round(p, rnd, facts) -> bool:
    ch = facts.items[rnd.challenge_id]
    return sees_item(p, ch, facts) and (org_admin(p, ch) or active_reviewer(p, ch, facts))


def round_results(p, rnd, facts) -> bool:
    return sees_round(p, rnd, facts) and (org_admin(p, facts.items[rnd.challenge_id]) or on_panel(p, facts, rnd))


def manage_rounds(p, ch, facts) -> bool:
    return sees_item(p, ch, facts) and ch.kind == "challenge" and org_admin(p, ch) and ch.status != "archived"


def export(p, ch, facts) -> bool:
    return sees_item(p, ch, facts) and ch.kind == "challenge" and org_admin(p, ch)


def queue(p, ch, facts) -> bool:
    return sees_item(p, ch, facts) and (org_admin(p, ch) or active_reviewer(p, ch, facts))


def sees_score(p, s, facts) -> bool:
    idea = facts.ideas[s.idea_id]
    if not sees_idea(p, idea, facts) or is_author(p, idea, facts):
        return False
    return p.is_(s.judge_id) or org_admin(p, facts.items[idea.challenge_id])


def sees_own_or_admin(p, row, facts, challenge_id) -> bool:
    return p.is_(row.judge_id) or org_admin(p, facts.items[challenge_id])
