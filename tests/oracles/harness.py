"""The matrix runner: every viewer x every row, the oracle against the policy's faces.

For each viewer (one simulated request each, so the policy memoises what it memoises in
production) and each row it asks:
  can      policy.can(user, "view", row)
  visible  row.id in db.session.execute(policy.visible(user, Model))
  search   set(policy.principals(user)) & set(policy.doc_principals(row)) is not empty
and compares each with the oracle. A model without a list filter (visible() raises
PolicyError) must be declared in `no_sql`; a model without search principals
(doc_principals() raises PolicyError) must have no search oracle, and one that has them
must have one, so a face added later cannot go unchecked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import User

from .facts import TABLE_OF, Facts


@dataclass(frozen=True)
class Mismatch:
    viewer: str
    label: str
    face: str
    want: bool
    got: bool

    def __str__(self) -> str:
        return f"{self.viewer} on {self.label}: {self.face} said {self.got}, the rules say {self.want}"


@dataclass
class Outcome:
    mismatches: list[Mismatch] = field(default_factory=list)
    faces: dict[type, set[str]] = field(default_factory=dict)   # faces compared per model
    counts: dict[type, list[int]] = field(default_factory=dict)  # [cells the oracle allows, denies]
    problems: set[str] = field(default_factory=set)

    def wrong(self, exclude: set[tuple[str, str, str]] = frozenset()) -> list[str]:
        """Every disagreement except the known ones, as (viewer, row label, face) triples."""
        return [str(m) for m in self.mismatches if (m.viewer, m.label, m.face) not in exclude] \
            + sorted(self.problems)

    def only(self, cells: set[tuple[str, str, str]]) -> list[str]:
        """The disagreements among `cells` (viewer, row label, face)."""
        return [str(m) for m in self.mismatches if (m.viewer, m.label, m.face) in cells]


Oracle = Callable[..., bool]


def run_matrix(app, viewers: dict[str, int | None], labels: dict[type, dict[int, str]],
               oracles: dict[type, Oracle], search_oracles: dict[type, Oracle] | None = None,
               no_sql: frozenset[type] = frozenset()) -> Outcome:
    """`labels[Model][row id]` names each row in messages; `oracles[Model](person, row, facts)`
    answers for can() and visible(), `search_oracles[Model]` for search."""
    search_oracles = search_oracles or {}
    out = Outcome()
    with app.app_context():
        facts = Facts()
    for model in labels:
        out.faces[model] = {"can"}
        out.counts[model] = [0, 0]
    for name, uid in viewers.items():
        p = facts.person(name, uid)
        with app.test_request_context():
            user = db.session.get(User, uid) if uid is not None else None
            mine = set(policy.principals(user))
            for model, named in labels.items():
                table = getattr(facts, TABLE_OF[model])
                sql_ids = _sql_ids(user, model, no_sql, out)
                rows = db.session.execute(select(model).where(model.id.in_(list(named)))).scalars().all()
                for row in rows:
                    label = named[row.id]
                    want = oracles[model](p, table[row.id], facts)
                    out.counts[model][0 if want else 1] += 1
                    got = {"can": policy.can(user, "view", row)}
                    if sql_ids is not None:
                        got["visible"] = row.id in sql_ids
                    for face, value in got.items():
                        if value != want:
                            out.mismatches.append(Mismatch(name, label, face, want, value))
                    search = _search_face(row, mine, model, search_oracles, out)
                    if search is not None:
                        want_s = search_oracles[model](p, table[row.id], facts)
                        if search != want_s:
                            out.mismatches.append(Mismatch(name, label, "search", want_s, search))
    return out


def _sql_ids(user, model, no_sql, out: Outcome) -> set[int] | None:
    try:
        stmt = policy.visible(user, model)
    except policy.PolicyError:
        if model not in no_sql:
            out.problems.add(f"visible() has no rule for {model.__name__}")
        return None
    out.faces[model].add("visible")
    return {r.id for r in db.session.execute(stmt).scalars()}


def _search_face(row, mine: set[str], model, search_oracles, out: Outcome) -> bool | None:
    try:
        terms = policy.doc_principals(row)
    except policy.PolicyError:
        if model in search_oracles:
            out.problems.add(f"doc_principals() has no rule for {model.__name__}")
        return None
    if model not in search_oracles:
        out.problems.add(f"{model.__name__} has search principals but the matrix has no search oracle for it")
        return None
    out.faces[model].add("search")
    return bool(mine & set(terms))
