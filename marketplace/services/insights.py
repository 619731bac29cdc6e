"""Figures: an organisation's dashboard, a cluster's participation, the public transparency
page. Read-only; every figure is one aggregate query (GROUP BY, COUNT, SUM), never a Python
loop over rows, so a page costs the same few queries whatever the data size.

Who may see what is the policy's: ideas are counted through ``visible_clause(viewer, Idea)``
on dashboards; the public page counts what anonymous readers may see exactly and discloses
every figure derived from anything else through ``policy.shown_count`` / ``policy.disclosed``
(the small-count rule).

The funnel reads idea states through one function, `funnel_stages`; for one challenge,
each later judging round is a stage too (`_round_stages`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable

from sqlalchemy import Numeric, and_, case, cast, func, literal, select, true

from .. import policy
from ..extensions import db
from ..models import (
    Answer,
    Appeal,
    IdeaAward,
    Idea,
    IdeaStatus,
    InvitationList,
    Item,
    ItemKind,
    ItemList,
    ListMember,
    Membership,
    ModerationAction,
    Organisation,
    Question,
    Report,
    RoundEntry,
    Status,
    utcnow,
)
from ..policy.items import active_list_member_clause
from ..policy.judging import rounds_of

PUBLISHED = (Status.OPEN.value, Status.CLOSED.value, Status.ARCHIVED.value)


# --------------------------------------------------------------------------- SQL helpers per dialect


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def month_of(col):
    """SQL: 'YYYY-MM' of a UTC timestamp column."""
    if _dialect() == "postgresql":
        return func.to_char(func.timezone("UTC", col), "YYYY-MM")
    return func.strftime("%Y-%m", col)


def year_of(col):
    if _dialect() == "postgresql":
        return func.to_char(func.timezone("UTC", col), "YYYY")
    return func.strftime("%Y", col)


def seconds_between(start, end):
    """SQL: seconds from `start` to `end`."""
    if _dialect() == "postgresql":
        return func.date_part("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def json_text(col, key: str):
    """SQL: the text of key `key` of a JSON object stored as text."""
    if _dialect() == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        return cast(col, JSONB)[key].astext
    return func.json_extract(col, f"$.{key}")


def median_of(expr, *where) -> tuple[int, float | None]:
    """(rows, median) of a numeric SQL expression over the rows `where` selects, in SQL:
    a count, then the middle row(s) by ORDER BY ... LIMIT/OFFSET."""
    n = db.session.execute(select(func.count()).where(*where)).scalar_one()
    if not n:
        return 0, None
    vals = db.session.execute(
        select(expr.label("v")).where(*where).order_by(expr).offset((n - 1) // 2).limit(2 - n % 2)
    ).scalars().all()
    return n, sum(float(v) for v in vals) / len(vals)


# --------------------------------------------------------------------------- the funnel


@dataclass(frozen=True)
class FunnelStage:
    key: str
    label: str
    # Idea states counted in this stage: an idea counts in every stage it has reached.
    statuses: frozenset[str]


def funnel_stages(challenge_ids: list[int] | None = None) -> list[FunnelStage]:
    """The funnel's stages, in order, and the idea states each counts. The one place the
    funnel reads states from: judging rounds add a stage per round here (their ideas'
    states or round memberships), for the challenges in `challenge_ids`."""
    reached_review = {IdeaStatus.UNDER_REVIEW.value, IdeaStatus.SHORTLISTED.value, IdeaStatus.AWARDED.value}
    return [
        FunnelStage("submitted", "Submitted", frozenset(policy.IDEA_SHOWN_STATES)),
        FunnelStage("under-review", "Under review", frozenset(reached_review)),
        FunnelStage("shortlisted", "Shortlisted", frozenset({IdeaStatus.SHORTLISTED.value, IdeaStatus.AWARDED.value})),
        FunnelStage("awarded", "Awarded", frozenset({IdeaStatus.AWARDED.value})),
    ]


# --------------------------------------------------------------------------- dashboards


@dataclass
class Series:
    """A chart's data: (label, value) rows, with the chart's title and the unit of values."""

    title: str
    rows: list[tuple[str, float | int]]
    unit: str = ""

    @property
    def peak(self) -> float:
        return max([v for _l, v in self.rows if isinstance(v, (int, float))] or [0]) or 1


@dataclass
class Dashboard:
    org: Organisation
    challenges: list[dict]
    chosen: Item | None
    submissions: Series
    funnel: Series
    response: Series
    answered: int
    unanswered: int
    median_hours: float | None
    extra: dict = field(default_factory=dict)


def _round_stages(challenge: Item, ideas_seen) -> list[tuple[str, int]]:
    """One funnel stage per judging round after the first (the first is "under review"):
    the ideas that went through to it by decision (an idea counts in every round it
    reached), as far as the viewer sees them; one query."""
    rounds = rounds_of(challenge.id)[1:]
    if not rounds:
        return []
    reached = dict(db.session.execute(
        select(RoundEntry.round_id, func.count(func.distinct(RoundEntry.idea_id)))
        .join(Idea, Idea.id == RoundEntry.idea_id)
        .where(ideas_seen, RoundEntry.round_id.in_([r.id for r in rounds]))
        .group_by(RoundEntry.round_id)).all())
    return [(f"Round {r.position}: {r.name}", reached.get(r.id, 0)) for r in rounds]


def _months(first: str, last: str) -> list[str]:
    y, m = map(int, first.split("-"))
    ly, lm = map(int, last.split("-"))
    out = []
    while (y, m) <= (ly, lm) and len(out) < 120:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def org_challenges_query(user: Any, org: Organisation):
    """The organisation's challenges the viewer may see (its admins see them all)."""
    return select(Item.id).where(Item.org_id == org.id, Item.kind == ItemKind.CHALLENGE.value,
                                 policy.visible_clause(user, Item))


def dashboard(user: Any, org: Organisation, challenge: Item | None = None) -> Dashboard:
    """The organisation's figures, for all its challenges or one. The caller checked
    ``view_dashboard``; ideas are counted as far as the viewer may see them."""
    ch_ids = org_challenges_query(user, org)
    if challenge is not None:
        ch_ids = ch_ids.where(Item.id == challenge.id)
    ideas_seen = and_(Idea.challenge_id.in_(ch_ids), policy.visible_clause(user, Idea))

    counts = select(Idea.challenge_id.label("cid"), func.count(Idea.id).label("n")) \
        .where(ideas_seen).group_by(Idea.challenge_id).subquery()
    rows = db.session.execute(
        select(Item.id, Item.title, Item.status, Item.deadline, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.cid == Item.id)
        .where(Item.id.in_(org_challenges_query(user, org)))
        .order_by(Item.created_at.desc(), Item.id.desc()).limit(200)
    ).all()
    challenges = [{"id": r[0], "title": r[1], "status": r[2], "deadline": r[3], "ideas": r[4]} for r in rows]

    month = month_of(Idea.submitted_at)
    per_month = db.session.execute(
        select(month, func.count(Idea.id)).where(ideas_seen, Idea.submitted_at.is_not(None))
        .group_by(month).order_by(month)
    ).all()
    found = dict(per_month)
    sub_rows = [(m, found.get(m, 0)) for m in _months(per_month[0][0], per_month[-1][0])] if per_month else []
    submissions = Series("Ideas submitted per month", sub_rows, "ideas")

    by_status = dict(db.session.execute(
        select(Idea.status, func.count(Idea.id)).where(ideas_seen).group_by(Idea.status)).all())
    stages = funnel_stages([c["id"] for c in challenges])
    funnel_rows = [(s.label, sum(by_status.get(st, 0) for st in s.statuses)) for s in stages]
    if challenge is not None:
        funnel_rows[2:2] = _round_stages(challenge, ideas_seen)
    funnel = Series("Ideas per stage", funnel_rows, "ideas")

    response, answered, unanswered, median_h = _qa_times(user, ch_ids)
    return Dashboard(org, challenges, challenge, submissions, funnel, response, answered, unanswered, median_h)


QA_BUCKETS = (("Within a day", 86400), ("1 to 3 days", 3 * 86400), ("3 to 7 days", 7 * 86400),
              ("Over a week", None))


def _qa_times(user: Any, ch_ids) -> tuple[Series, int, int, float | None]:
    """Questions asked on these challenges to the organisation's answer: how long it took
    (buckets and median), and how many wait. Deleted questions are left out."""
    asked = and_(Question.item_id.in_(ch_ids), Question.deleted_at.is_(None))
    delay = seconds_between(Question.created_at, Answer.created_at)
    whens = []
    for label, limit in QA_BUCKETS:
        if limit is not None:
            whens.append((delay < limit, literal(label)))
    bucket = case(*whens, else_=literal(QA_BUCKETS[-1][0]))
    got = dict(db.session.execute(
        select(bucket, func.count(Question.id)).join(Answer, Answer.question_id == Question.id)
        .where(asked).group_by(bucket)).all())
    answered = sum(got.values())
    unanswered = db.session.execute(
        select(func.count(Question.id)).outerjoin(Answer, Answer.question_id == Question.id)
        .where(asked, Answer.id.is_(None))).scalar_one()
    n, med = median_of(delay, asked, Answer.question_id == Question.id)
    series = Series("Time to the organisation's answer", [(label, got.get(label, 0)) for label, _l in QA_BUCKETS]
                    + [("Not answered yet", unanswered)], "questions")
    return series, answered, unanswered, (round(med / 3600, 1) if med is not None else None)


@dataclass
class Participation:
    lists: list[dict]
    member_orgs: list[dict]
    lists_chart: Series


def participation(user: Any, org: Organisation) -> Participation:
    """A cluster's lists (people and organisations on each, items using each that the
    viewer may see) and its member organisations (lists they are on, ideas their people
    submitted to the cluster's own challenges). The caller checked ``view_participation``."""
    now = utcnow()
    active = active_list_member_clause(now)
    people = func.count(func.distinct(case((ListMember.user_id.is_not(None), ListMember.id))))
    orgs = func.count(func.distinct(case((ListMember.member_org_id.is_not(None), ListMember.id))))
    members = select(ListMember.list_id.label("lid"), people.label("people"), orgs.label("orgs")) \
        .where(active).group_by(ListMember.list_id).subquery()
    # The item rule as its own subquery: inlined next to item_lists, its EXISTS over
    # item_lists would correlate with this query's row instead of the item's lists.
    seen_items = select(Item.id).where(policy.visible_clause(user, Item))
    used = select(ItemList.list_id.label("lid"), func.count(ItemList.id).label("n_items")) \
        .where(ItemList.item_id.in_(seen_items)).group_by(ItemList.list_id).subquery()
    rows = db.session.execute(
        select(InvitationList.id, InvitationList.name, func.coalesce(members.c.people, 0),
               func.coalesce(members.c.orgs, 0), func.coalesce(used.c.n_items, 0))
        .outerjoin(members, members.c.lid == InvitationList.id)
        .outerjoin(used, used.c.lid == InvitationList.id)
        .where(InvitationList.org_id == org.id).order_by(InvitationList.name).limit(200)
    ).all()
    lists = [{"id": r[0], "name": r[1], "people": r[2], "orgs": r[3], "items": r[4]} for r in rows]

    on_lists = select(ListMember.member_org_id.label("oid"), func.count(func.distinct(ListMember.list_id)).label("n")) \
        .join(InvitationList, InvitationList.id == ListMember.list_id) \
        .where(InvitationList.org_id == org.id, active, ListMember.member_org_id.is_not(None)) \
        .group_by(ListMember.member_org_id).subquery()
    own_challenges = org_challenges_query(user, org)
    ideas = select(Membership.org_id.label("oid"), func.count(func.distinct(Idea.id)).label("n")) \
        .join(Idea, Idea.author_id == Membership.user_id) \
        .where(Idea.challenge_id.in_(own_challenges), policy.visible_clause(user, Idea)) \
        .group_by(Membership.org_id).subquery()
    orows = db.session.execute(
        select(Organisation.id, Organisation.name, Organisation.slug, on_lists.c.n, func.coalesce(ideas.c.n, 0))
        .join(on_lists, on_lists.c.oid == Organisation.id)
        .outerjoin(ideas, ideas.c.oid == Organisation.id)
        .order_by(Organisation.name).limit(200)
    ).all()
    member_orgs = [{"id": r[0], "name": r[1], "slug": r[2], "lists": r[3], "ideas": r[4]} for r in orows]
    chart = Series("People and organisations on each list",
                   [(lst["name"], lst["people"] + lst["orgs"]) for lst in lists], "entries")
    return Participation(lists, member_orgs, chart)


# --------------------------------------------------------------------------- transparency

DECISION_STATES = (IdeaStatus.SHORTLISTED.value, IdeaStatus.DECLINED.value, IdeaStatus.AWARDED.value)
MONEY_KINDS = ("cash-prize", "milestone-payment")


@dataclass
class Figure:
    label: str
    value: Any
    note: str = ""


def _round_money(total: Any) -> str:
    """Totals are shown to the nearest hundred: a difference of one payment between two
    readings stays approximate."""
    d = Decimal(str(total or 0)).quantize(Decimal("1"))
    hundreds = (d / 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP) * 100
    return f"about {int(hundreds):,}"


def _in_year(col, year: int | None):
    return year_of(col) == f"{year:04d}" if year else true()


def transparency(year: int | None = None) -> dict:
    """The public figures, site-wide (optionally for one calendar year, UTC). What anonymous
    readers may see is counted exactly; everything else through the small-count rule."""
    public = policy.visible_clause(None, Item)
    published = and_(Item.kind == ItemKind.CHALLENGE.value, Item.status.in_(PUBLISHED),
                     _in_year(Item.published_at, year))
    n_public, n_other = db.session.execute(
        select(func.count(case((public, Item.id))), func.count(Item.id) - func.count(case((public, Item.id))))
        .where(published)).one()
    challenges = [
        Figure("Public challenges run", n_public),
        Figure("Other challenges run (for registered users, invited people or one organisation)",
               policy.shown_count(n_other)),
    ]

    received = and_(Idea.submitted_at.is_not(None), Idea.status != IdeaStatus.AWAITING_COAUTHORS.value,
                    _in_year(Idea.submitted_at, year))
    n_ideas = db.session.execute(select(func.count(Idea.id)).where(received)).scalar_one()
    n_awards = db.session.execute(
        select(func.count(IdeaAward.id)).where(_in_year(IdeaAward.created_at, year))).scalar_one()
    amount = cast(json_text(IdeaAward.incentive_json, "amount"), Numeric(18, 2))
    currency = json_text(IdeaAward.incentive_json, "currency")
    paid = db.session.execute(
        select(currency, func.count(IdeaAward.id), func.sum(amount))
        .where(IdeaAward.paid_at.is_not(None), json_text(IdeaAward.incentive_json, "kind").in_(MONEY_KINDS),
               _in_year(IdeaAward.paid_at, year))
        .group_by(currency).order_by(currency)).all()
    # A currency gets its own row only with enough payments in it: a row appearing for one
    # payment would single it out. The rest are one row, always shown.
    money = [Figure(f"Paid in {cur}", _round_money(total), f"{n} payments")
             for cur, n, total in paid if not policy.is_withheld(policy.shown_count(n))]
    rest = sum(n for _c, n, _t in paid if policy.is_withheld(policy.shown_count(n)))
    money.append(Figure("Payments in other currencies" if money else "Payments", policy.shown_count(rest)))
    n_paid = sum(n for _c, n, _t in paid)

    decided = (Idea.status.in_(DECISION_STATES), Idea.decided_at.is_not(None), Idea.submitted_at.is_not(None),
               _in_year(Idea.decided_at, year))
    n_dec, med = median_of(seconds_between(Idea.submitted_at, Idea.decided_at), *decided)
    median_days = policy.disclosed(n_dec, f"{round(med / 86400)} days" if med is not None else "")
    ideas = [
        Figure("Ideas received", policy.shown_count(n_ideas)),
        Figure("Ideas decided (shortlisted, declined or awarded)", policy.shown_count(n_dec)),
        Figure("Median time from submission to decision", median_days),
        Figure("Awards made", policy.shown_count(n_awards)),
        Figure("Awards paid in money", policy.shown_count(n_paid)),
    ]

    reports = db.session.execute(
        select(func.count(Report.id), func.count(Report.resolved_at)).where(_in_year(Report.created_at, year))).one()
    actions = db.session.execute(
        select(func.count(ModerationAction.id)).where(_in_year(ModerationAction.created_at, year))).scalar_one()
    appeals = db.session.execute(
        select(func.count(Appeal.id), func.count(Appeal.decided_at)).where(_in_year(Appeal.created_at, year))).one()
    moderation = [
        Figure("Reports received", policy.shown_count(reports[0])),
        Figure("Reports resolved", policy.shown_count(reports[1])),
        Figure("Moderation decisions", policy.shown_count(actions)),
        Figure("Appeals filed", policy.shown_count(appeals[0])),
        Figure("Appeals decided", policy.shown_count(appeals[1])),
    ]
    return {"challenges": challenges, "ideas": ideas, "money": money, "moderation": moderation,
            "year": year, "threshold": policy.SMALL_COUNT}


def transparency_years(span: int = 10) -> list[int]:
    """The years the year filter offers: this one and the nine before, whatever the data (a
    list starting at the first challenge would date a private one)."""
    now = datetime.now(timezone.utc).year
    return list(range(now, now - span, -1))
