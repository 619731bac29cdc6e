"""The search outbox: an index job for every change that affects a document, written by
the same database transaction as the change itself.

Session listeners look at what a flush inserts, updates and deletes; for each model with
a registered *doc source* they ask which documents change and whether the change may
*narrow* who can see them. The jobs go into ``search_outbox`` on the flush's own
connection, so they commit or roll back with the change: a crash can lose neither.
ORM bulk ``update()``/``delete()`` statements on registered models are caught too (their
rows are looked up first, and treated as narrowing). Raw SQL is not seen -- `search
verify` reports what that leaves behind.

Feature packages register their models::

    register_doc_source(Idea, lambda idea, change: [("idea", idea.id, change.touches("status"))],
                        bulk=("idea", Idea.id))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from sqlalchemy import insert, inspect, select
from sqlalchemy.orm import Session

from ..models import SearchOutbox, utcnow
from ..workers import listen_on_sessions
from .documents import dependents_of

Job = tuple[str, int, bool]  # (doc_type, doc_id, narrowing)


@dataclass(frozen=True)
class Change:
    op: str                       # "insert", "update" or "delete"
    changed: frozenset[str] = frozenset()

    def touches(self, *attrs: str) -> bool:
        """True for deletes, and for updates of any of `attrs`."""
        return self.op == "delete" or (self.op == "update" and bool(self.changed.intersection(attrs)))


SourceFn = Callable[[Any, Change], Iterable[Job]]


@dataclass
class _Source:
    fn: SourceFn
    bulk: tuple[str, Any] | None     # (doc_type, column giving the doc id) for bulk statements


SOURCES: dict[type, list[_Source]] = {}
_JOBS = "search_outbox_jobs"
_PENDING = "search_outbox_pending"
# Called (with the session) after a commit that wrote outbox rows; search/__init__ sets it.
on_commit: list[Callable[[Session], None]] = []


def register_doc_source(model: type, fn: SourceFn, bulk: tuple[str, Any] | None = None) -> None:
    """`fn(obj, change)` yields (doc_type, doc_id, narrowing) for each document the change
    of `obj` affects. `bulk` maps ORM bulk update/delete statements on the model's table
    to documents: (doc_type, column holding the doc id)."""
    SOURCES.setdefault(model, []).append(_Source(fn, bulk))


def with_dependents(doc_type: str, doc_id: int, narrowing: bool) -> list[Job]:
    """The job for a document and for every document derived from it (ideas of a
    challenge, its questions and comments)."""
    jobs = [(doc_type, doc_id, narrowing)]
    jobs += [(t, i, narrowing) for t, i in dependents_of(doc_type, [doc_id])]
    return jobs


def reindex(session: Session, docs: Iterable[tuple[str, int]], narrowing: bool = True) -> None:
    """Queue index jobs for documents a change the listeners cannot see affects (an
    account deleted: the documents its person authored), in the session's transaction.
    Narrowing by default: until applied, the old documents are filtered out of results."""
    jobs: dict[tuple[str, int], bool] = session.info.setdefault(_JOBS, {})
    for doc_type, doc_id in docs:
        key = (doc_type, int(doc_id))
        jobs[key] = jobs.get(key, False) or narrowing
    _write(session)


def _sources_for(obj: Any) -> list[_Source]:
    out: list[_Source] = []
    for cls in type(obj).__mro__:
        out += SOURCES.get(cls, ())
    return out


def _changed_attrs(obj: Any) -> frozenset[str]:
    state = inspect(obj)
    return frozenset(a.key for a in state.attrs if a.history.has_changes())


def _collect(session: Session, objs, op: str) -> None:
    jobs: dict[tuple[str, int], bool] = session.info.setdefault(_JOBS, {})
    with session.no_autoflush:
        for obj in list(objs):
            sources = _sources_for(obj)
            if not sources:
                continue
            if op == "update":
                changed = _changed_attrs(obj)
                if not changed:
                    continue
                change = Change(op, changed)
            else:
                change = Change(op)
            for src in sources:
                for doc_type, doc_id, narrowing in src.fn(obj, change):
                    if doc_id is None:
                        continue
                    key = (doc_type, int(doc_id))
                    jobs[key] = jobs.get(key, False) or bool(narrowing)


def _before_flush(session: Session, _ctx, _instances) -> None:
    # Deletes and updates are read before the flush: a deleted row's relations (and rows
    # the database cascades away) can still be queried, and attribute history is intact.
    _collect(session, session.deleted, "delete")
    _collect(session, [o for o in session.dirty if session.is_modified(o)], "update")


def _after_flush(session: Session, _ctx) -> None:
    # Inserts after the flush, once their primary keys exist.
    _collect(session, session.new, "insert")
    _write(session)


def _write(session: Session) -> None:
    jobs = session.info.pop(_JOBS, None)
    if not jobs:
        return
    now = utcnow()
    rows = [{"doc_type": t, "doc_id": i, "narrowing": n, "created_at": now} for (t, i), n in jobs.items()]
    session.connection().execute(insert(SearchOutbox.__table__), rows)
    session.info[_PENDING] = True


def _after_commit(session: Session) -> None:
    # Releasing a savepoint (audit.record uses one) is not the real commit: wait for it.
    if session.in_nested_transaction():
        return
    if session.info.pop(_PENDING, False):
        for fn in on_commit:
            fn(session)


def _after_rollback(session: Session) -> None:
    session.info.pop(_JOBS, None)
    session.info.pop(_PENDING, None)


def _bulk_statement(state) -> None:
    """ORM-enabled bulk UPDATE/DELETE: look the affected documents up before it runs."""
    if not (state.is_update or state.is_delete):
        return
    stmt = state.statement
    table = getattr(stmt, "table", None)
    if table is None:
        return
    if state.is_update and _only_touches_primary_key(stmt, table):
        return  # e.g. services.common.lock_row: a no-op UPDATE used as a lock
    targets = []
    name = getattr(table, "name", None)  # ORM statements carry an annotated copy of the Table
    for model, sources in SOURCES.items():
        model_table = getattr(model, "__table__", None)
        if model_table is not None and model_table.name == name:
            targets += [s.bulk for s in sources if s.bulk is not None and s.bulk not in targets]
    if not targets:
        return
    session = state.session
    jobs: dict[tuple[str, int], bool] = {}
    with session.no_autoflush:
        for doc_type, column in targets:
            q = select(column)
            if stmt.whereclause is not None:
                q = q.where(stmt.whereclause)
            for doc_id in session.execute(q.distinct()).scalars():
                if doc_id is None:
                    continue
                for t, i, _n in with_dependents(doc_type, int(doc_id), True):
                    jobs[(t, i)] = True
    if jobs:
        session.info.setdefault(_JOBS, {}).update(jobs)
        _write(session)


def _only_touches_primary_key(stmt, table) -> bool:
    values = getattr(stmt, "_values", None) or {}
    names = {getattr(k, "key", getattr(k, "name", str(k))) for k in values}
    pk = {c.key for c in table.primary_key.columns}
    return bool(names) and names <= pk


def install() -> None:
    """Attach the listeners to every Session (once per process)."""
    listen_on_sessions("search outbox", ("before_flush", _before_flush), ("after_flush", _after_flush),
                       ("after_commit", _after_commit), ("after_rollback", _after_rollback),
                       ("do_orm_execute", _bulk_statement))
