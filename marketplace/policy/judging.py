"""Judging rounds, assignments, conflicts of interest, round scores, the panel discussion
and the challenge's exports (issue 11).

Who may do what:

* A challenge's rounds (names, dates, criteria, panels, how many go through) are seen by
  its review panel (the posting organisation's owners/admins and the challenge's active
  reviewers) while they may see the challenge; set up, changed, assigned and removed by
  those who manage its terms (``manage_rounds``: owners/admins, challenge not archived).
  A round's results (raw and normalised scores of every judge) are seen by the challenge's
  admins and that round's panel (``view_results``).
* A round panelist judges (``judge``) an idea when the idea is in that round (its current
  round), reviewable and not hidden, the panelist is an active reviewer, is assigned to it,
  is not one of its authors, has declared no conflict that covers it, and the round has
  started. A judge may not be assigned an idea they are conflicted on or wrote.
* A conflict covers an idea when the judge declared it on that idea, or declared it with
  the authors of another idea and they share an author, or with the authors' organisations
  and an author of this idea is a member of one. Any active reviewer who is not an author
  declares one (``declare_conflict``), once per idea. A declaration is seen by its judge
  and the challenge's admins; an assignment likewise.
* A round score is seen by its judge and the challenge's admins (others see results).
* The panel discussion of an idea in a round: that round's panelists who are active
  reviewers and the challenge's admins, never an author of the idea, and only while they
  may see the idea (sealed ideas follow the idea rule).
* Advancing an idea to the next round (or, from the last round, to the shortlist) is a
  decision of the challenge's admins and the active panelists of the idea's current round.
* Exports (CSV, JSON, evidence bundle) are the challenge's admins' (archived challenges
  too: the record outlives the challenge); they hold only the ideas ``visible`` says the
  requester may see, and the acceptance receipts of those ideas (and the challenge's NDA
  receipts): ``receipt_exportable``. The panel progress page is the admins' too.
"""
from __future__ import annotations

from sqlalchemy import and_, false, select

from ..extensions import db
from ..models import (
    ConflictDeclaration,
    Idea,
    IdeaStatus,
    Item,
    ItemKind,
    JudgingRound,
    Membership,
    PanelComment,
    RoundAssignment,
    RoundEntry,
    RoundScore,
    TermsAcceptance,
    utcnow,
)
from .core import Rule, Viewer, rule
from .ideas import (
    IDEA_COUNTING_AUTHOR_STATES,
    IDEA_REVIEWABLE_STATES,
    IDEAS,
    REVIEW_PANEL,
    can_manage_terms,
    can_view_idea,
    check_idea,
    is_active_reviewer,
    is_idea_author,
    is_review_panel,
)
from .items import ITEMS, can_view_item, item_visibility_clause

CONFLICT_SCOPES = ("idea", "authors", "organisations")


# --------------------------------------------------------------------------- facts


def rounds_of(challenge_id: int) -> list[JudgingRound]:
    """The challenge's rounds in order (empty: the flat review of the ideas rules)."""
    return db.session.execute(select(JudgingRound).where(JudgingRound.challenge_id == challenge_id)
                              .order_by(JudgingRound.position)).scalars().all()


def current_round(idea: Idea) -> JudgingRound | None:
    """The round an idea is in: the latest it was advanced to, else the first; None without rounds."""
    rounds = rounds_of(idea.challenge_id)
    if not rounds:
        return None
    entered = set(db.session.execute(select(RoundEntry.round_id).where(RoundEntry.idea_id == idea.id)).scalars())
    now_in = rounds[0]
    for r in rounds:
        if r.id in entered:
            now_in = r
    return now_in


def is_panelist(v: Viewer, rnd: JudgingRound) -> bool:
    return v.is_authenticated and v.user_id in rnd.panel_ids


def is_active_panelist(v: Viewer, rnd: JudgingRound) -> bool:
    """On the round's panel and an active reviewer of its challenge now."""
    return is_panelist(v, rnd) and is_active_reviewer(v, rnd.challenge)


def _counting_authors(idea: Idea) -> set[int]:
    return {a.user_id for a in idea.authors if a.status in IDEA_COUNTING_AUTHOR_STATES}


def author_org_ids(idea: Idea) -> set[int]:
    authors = _counting_authors(idea)
    if not authors:
        return set()
    return set(db.session.execute(select(Membership.org_id).where(Membership.user_id.in_(authors))).scalars())


def judge_conflicted(judge_id: int, idea: Idea) -> bool:
    """Whether a declaration of this judge in the idea's challenge covers the idea."""
    decls = db.session.execute(select(ConflictDeclaration).where(
        ConflictDeclaration.judge_id == judge_id,
        ConflictDeclaration.challenge_id == idea.challenge_id)).scalars().all()
    if not decls:
        return False
    authors = _counting_authors(idea)
    orgs: set[int] | None = None
    for d in decls:
        if d.scope not in CONFLICT_SCOPES:
            return True  # an unknown scope covers everything: fail closed
        if d.idea_id == idea.id:
            return True
        if d.scope in ("authors", "organisations") and authors & set(d.author_ids):
            return True
        if d.scope == "organisations":
            orgs = author_org_ids(idea) if orgs is None else orgs
            if orgs & set(d.org_ids):
                return True
    return False


def _assignment(judge_id: int, rnd: JudgingRound, idea: Idea) -> RoundAssignment | None:
    return db.session.execute(select(RoundAssignment).where(
        RoundAssignment.round_id == rnd.id, RoundAssignment.idea_id == idea.id,
        RoundAssignment.judge_id == judge_id, RoundAssignment.removed_at.is_(None))).scalar()


def assignment_refusal(judge_id: int, rnd: JudgingRound, idea: Idea) -> str | None:
    """Why this judge may not be assigned this idea in this round (None: they may)."""
    check_idea(idea)
    if idea.challenge_id != rnd.challenge_id:
        return "That idea is not in this challenge."
    if judge_id not in rnd.panel_ids:
        return "Only the round's panel can be assigned its ideas."
    if judge_id in {a.user_id for a in idea.authors}:
        return "A judge cannot judge an idea they are an author of."
    if judge_conflicted(judge_id, idea):
        return "This judge declared a conflict of interest that covers this idea."
    if idea.status not in IDEA_REVIEWABLE_STATES or idea.hidden_at is not None:
        return "Only ideas still under review are assigned."
    return None


def receipt_exportable(v: Viewer, challenge: Item, acc: TermsAcceptance) -> bool:
    """An acceptance receipt goes into the challenge's export: to its admins, for an idea
    they may see (or the challenge's NDA, which names no idea)."""
    if acc.challenge_id != challenge.id or not v.is_org_admin(challenge.org_id):
        return False
    return acc.idea_id is None or can_view_idea(v, acc.idea)


# --------------------------------------------------------------------------- challenge actions


@ITEMS.action("manage_rounds")
def can_manage_rounds(v: Viewer, item: Item) -> bool:
    return can_manage_terms(v, item)


@ITEMS.action("export_ideas")
def can_export_ideas(v: Viewer, item: Item) -> bool:
    return item.kind == ItemKind.CHALLENGE.value and v.is_org_admin(item.org_id)


@ITEMS.action("view_panel_progress")
def can_view_panel_progress(v: Viewer, item: Item) -> bool:
    return item.kind == ItemKind.CHALLENGE.value and v.is_org_admin(item.org_id)


@ITEMS.action("judge_queue")
def can_open_judge_queue(v: Viewer, item: Item) -> bool:
    """The judge's queue and comparison page: the challenge's review panel."""
    return item.kind == ItemKind.CHALLENGE.value and is_review_panel(v, item)


# --------------------------------------------------------------------------- idea actions


@IDEAS.action("judge")
def can_judge_idea(v: Viewer, idea: Idea) -> bool:
    check_idea(idea)
    if idea.status not in IDEA_REVIEWABLE_STATES or idea.hidden_at is not None or is_idea_author(v, idea):
        return False
    rnd = current_round(idea)
    if rnd is None or rnd.starts_at > utcnow() or not is_active_panelist(v, rnd):
        return False
    return _assignment(v.user_id, rnd, idea) is not None and not judge_conflicted(v.user_id, idea)


@IDEAS.action("declare_conflict")
def can_declare_conflict(v: Viewer, idea: Idea) -> bool:
    check_idea(idea)
    if is_idea_author(v, idea) or not is_active_reviewer(v, idea.challenge):
        return False
    return db.session.execute(select(ConflictDeclaration.id).where(
        ConflictDeclaration.idea_id == idea.id, ConflictDeclaration.judge_id == v.user_id)).first() is None


def _round_panel_or_admin(v: Viewer, idea: Idea, rnd: JudgingRound | None) -> bool:
    if rnd is None or is_idea_author(v, idea):
        return False
    return v.is_org_admin(idea.challenge.org_id) or is_active_panelist(v, rnd)


@IDEAS.action("discuss")
def can_discuss_idea(v: Viewer, idea: Idea) -> bool:
    """Read and write the panel discussion of the idea's current round."""
    check_idea(idea)
    return _round_panel_or_admin(v, idea, current_round(idea))


@IDEAS.action("advance")
def can_advance_idea(v: Viewer, idea: Idea) -> bool:
    check_idea(idea)
    if idea.status not in (IdeaStatus.SUBMITTED.value, IdeaStatus.UNDER_REVIEW.value) or idea.hidden_at is not None:
        return False
    return _round_panel_or_admin(v, idea, current_round(idea))


# --------------------------------------------------------------------------- rule objects


class JudgingRoundRule(Rule):
    model = JudgingRound

    def check(self, v: Viewer, rnd: JudgingRound) -> bool:
        ch = rnd.challenge
        return can_view_item(v, ch) and is_review_panel(v, ch)

    def clause(self, v: Viewer):
        if not v.is_authenticated:
            return false()
        now = utcnow()
        return and_(JudgingRound.challenge_id.in_(select(Item.id).where(item_visibility_clause(v, now))),
                    REVIEW_PANEL.clause(v, JudgingRound.challenge_id))

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions.update({
            "manage": lambda v, rnd: can_manage_terms(v, rnd.challenge),
            "view_results": lambda v, rnd: v.is_org_admin(rnd.challenge.org_id) or is_active_panelist(v, rnd),
        })


def _admin_of(v: Viewer, challenge_id: int) -> bool:
    ch = db.session.get(Item, challenge_id)
    return ch is not None and v.is_org_admin(ch.org_id)


class RoundAssignmentRule(Rule):
    model = RoundAssignment

    def check(self, v: Viewer, a: RoundAssignment) -> bool:
        return v.is_user(a.judge_id) or _admin_of(v, a.round.challenge_id)


class ConflictDeclarationRule(Rule):
    model = ConflictDeclaration

    def check(self, v: Viewer, d: ConflictDeclaration) -> bool:
        return v.is_user(d.judge_id) or _admin_of(v, d.challenge_id)


class RoundScoreRule(Rule):
    model = RoundScore

    def check(self, v: Viewer, s: RoundScore) -> bool:
        idea = db.session.get(Idea, s.idea_id)
        if idea is None or is_idea_author(v, idea) or not can_view_idea(v, idea):
            return False
        return v.is_user(s.judge_id) or v.is_org_admin(idea.challenge.org_id)


class PanelCommentRule(Rule):
    model = PanelComment

    def check(self, v: Viewer, c: PanelComment) -> bool:
        idea = c.idea
        return can_view_idea(v, idea) and _round_panel_or_admin(v, idea, c.round)


for _r in (JudgingRoundRule(), RoundAssignmentRule(), ConflictDeclarationRule(), RoundScoreRule(),
           PanelCommentRule()):
    rule(_r)


def conflict_snapshot(idea: Idea, scope: str) -> tuple[list[int], list[int]]:
    """The author and organisation ids a declaration with this scope covers, as of now."""
    if scope not in CONFLICT_SCOPES:
        raise ValueError(scope)
    authors = sorted(_counting_authors(idea)) if scope in ("authors", "organisations") else []
    orgs = sorted(author_org_ids(idea)) if scope == "organisations" else []
    return authors, orgs


__all__ = ["CONFLICT_SCOPES", "assignment_refusal", "author_org_ids", "conflict_snapshot", "current_round",
           "is_active_panelist", "is_panelist", "judge_conflicted", "receipt_exportable", "rounds_of"]
