"""The single outbox writer: applies index jobs in batches, under the index's writer lock.

Order of work per batch, which is what makes a crash at any point lose nothing:

1. take the writer lock (or give up at once: web requests never wait on it);
2. check that the index belongs to this database (identity.py), rebuilding it if not;
3. read up to `batch` due outbox rows, oldest first (parked rows, and rows waiting out
   their back-off, are skipped: they never block the rows behind them);
4. load the current state of those documents from the database;
5. write them to the index and commit the index;
6. delete exactly the rows read in 3 (and the older rows of the same documents that were
   retrying or parked, read with them: they are covered), and commit.

Killed before 5 completes: Whoosh never wrote its table of contents, the index is as
before, and the rows are still there. Killed between 5 and 6: the rows are applied
again next time, which is harmless (a job means "make the index match the database
for this document", not "apply this diff"). Rows added while a batch runs stay for
the next one.

A job that fails is isolated without losing the others: a document that cannot be
loaded or that Whoosh refuses fails alone; when the index commit itself fails, the batch
is split in halves until the failing part is found (if both halves fail, the cause is
not one job, and the whole group is retried later). Each failure is logged with its
traceback and recorded on the row: `attempts`, `last_error`, and `retry_at` (exponential
back-off, SEARCH_RETRY_BASE_SECONDS doubling up to SEARCH_RETRY_MAX_SECONDS); at
SEARCH_MAX_ATTEMPTS failures the row is parked (`parked_at`) until an operator retries it
(`flask search retry`, /admin/search). Rows retried after a failure are bisected all the
way down, so a bad job always ends up failing alone.

Documents whose principals lapse by the clock (an access grant expiring) are found in
the index by their ``stale_at`` column and reindexed by the same loop.
"""
from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import delete, func, select, update

from ..extensions import db
from ..models import SearchOutbox, utcnow
from . import identity
from .documents import load_docs, split_key
from .backend import DocumentRejected, IndexBusy

log = logging.getLogger(__name__)

BATCH = 500
RETRY_BASE_SECONDS = 5.0
RETRY_MAX_SECONDS = 900.0
MAX_ATTEMPTS = 6
ERROR_CHARS = 8000  # the end of a traceback is the part that names the cause


def pending_count() -> int:
    """Jobs not yet applied (waiting, retrying or parked)."""
    return db.session.execute(select(func.count(SearchOutbox.id))).scalar() or 0


def _setting(name: str, default):
    return type(default)(current_app.config.get(name, default))


def backoff_seconds(attempts: int) -> float:
    """Delay before the next try of a job that has failed `attempts` times."""
    base = _setting("SEARCH_RETRY_BASE_SECONDS", RETRY_BASE_SECONDS)
    cap = _setting("SEARCH_RETRY_MAX_SECONDS", RETRY_MAX_SECONDS)
    return min(cap, base * 2 ** max(0, attempts - 1))


def apply_outbox(backend, *, batch: int | None = None, max_batches: int | None = None, wait: bool = False,
                 sweep: bool = True, on_batch=None, rebuild_procs: int = 1, status=None) -> int:
    """Drain the outbox (inside an app context). Returns the number of jobs applied;
    0 when another writer holds the lock and `wait` is False. An index built from
    another database is rebuilt first (with `rebuild_procs` processes)."""
    try:
        with backend.lock(wait=wait, timeout=120.0):
            reconcile_database(backend, procs=rebuild_procs, status=status)
            return drain(backend, batch=batch, max_batches=max_batches, sweep=sweep, on_batch=on_batch,
                         status=status)
    except IndexBusy:
        db.session.rollback()
        return 0


def reconcile_database(backend, *, procs: int = 1, status=None) -> bool:
    """Under the writer lock: if the live index was built from another database, say so
    and rebuild it from this one. Returns True when it rebuilt."""
    if not backend.has_index():
        return False
    fp = identity.fingerprint()
    if fp is None:
        return False  # not migrated yet: nothing to compare with
    stamp = backend.index_stamp()
    if identity.same_database(stamp, fp):
        return False
    log.warning("search index %s was built from %s, but this app uses database %s… at %s: rebuilding it",
                backend.current_folder(), identity.describe(stamp), fp["database_id"][:8], fp["url"])
    from .cli import rebuild_index

    if status is not None:
        status.report("rebuilding", force=True)
    info = rebuild_index(procs=procs, locked=True)
    log.warning("search index rebuilt for this database: %d documents in %.1f s", info["documents"],
                info["seconds"])
    return True


@dataclass
class _Batch:
    rows: list            # the due rows read (id, doc_type, doc_id, attempts)
    covered: dict         # (doc_type, doc_id) -> ids of its retrying/parked rows read with them
    jobs: dict = field(default_factory=dict)    # (doc_type, doc_id) -> [row ids]
    failed: dict = field(default_factory=dict)  # (doc_type, doc_id) -> error text


def drain(backend, *, batch: int | None = None, max_batches: int | None = None, sweep: bool = True,
          on_batch=None, status=None) -> int:
    """The body of apply_outbox, for callers that already hold the writer lock. `status`
    (health.WriterStatus) hears of each batch, so a long drain still shows as alive."""
    batch = batch or _setting("SEARCH_BATCH", BATCH)
    applied = 0
    failed_ids: set[int] = set()  # rows that failed in this call are not tried again in it
    try:
        backend.ensure_index(identity.fingerprint())
        extra: set[tuple[str, int]] = set()
        if sweep:
            for key in backend.stale_keys(int(time.time())):
                parsed = split_key(key)
                if parsed:
                    extra.add(parsed)
        batches = 0
        while True:
            now = utcnow()
            q = (select(SearchOutbox.id, SearchOutbox.doc_type, SearchOutbox.doc_id, SearchOutbox.attempts)
                 .where(SearchOutbox.parked_at.is_(None),
                        SearchOutbox.retry_at.is_(None) | (SearchOutbox.retry_at <= now))
                 .order_by(SearchOutbox.id).limit(batch))
            if failed_ids:
                q = q.where(SearchOutbox.id.not_in(failed_ids))
            rows = db.session.execute(q).all()
            if not rows and not extra:
                break
            b = _Batch(rows=rows, covered=_covered_rows(rows))
            for r in rows:
                b.jobs.setdefault((r.doc_type, r.doc_id), []).append(r.id)
            for job in extra:
                b.jobs.setdefault(job, [])
            extra = set()
            retried = any(r.attempts for r in rows)
            _apply_isolating(backend, b, list(b.jobs), exhaustive=retried)
            if on_batch is not None:
                on_batch(len(rows))  # tests use this to die between index and outbox commits
            done_ids = [i for job, ids in b.jobs.items() if job not in b.failed
                        for i in ids + b.covered.get(job, [])]
            for start in range(0, len(done_ids), 500):
                db.session.execute(delete(SearchOutbox).where(SearchOutbox.id.in_(done_ids[start:start + 500])))
            for job, error in b.failed.items():
                failed_ids.update(b.jobs[job])
                _record_failure(b.jobs[job], job, error)
            db.session.commit()
            applied += len(b.jobs) - len(b.failed)
            batches += 1
            if status is not None:
                status.report("writing")
            if max_batches is not None and batches >= max_batches:
                break
    except BaseException:
        db.session.rollback()
        raise
    return applied


def _covered_rows(rows) -> dict:
    """Retrying or parked rows of the batch's documents. Read before the documents are
    loaded, so a successful write of the document covers them too."""
    by_type: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        by_type[r.doc_type].add(r.doc_id)
    read = {r.id for r in rows}
    out: dict[tuple[str, int], list[int]] = defaultdict(list)
    for doc_type, ids in by_type.items():
        ids = sorted(ids)
        for start in range(0, len(ids), 500):
            for rid, t, i in db.session.execute(
                    select(SearchOutbox.id, SearchOutbox.doc_type, SearchOutbox.doc_id)
                    .where(SearchOutbox.doc_type == doc_type, SearchOutbox.doc_id.in_(ids[start:start + 500]),
                           (SearchOutbox.attempts > 0) | SearchOutbox.parked_at.is_not(None))):
                if rid not in read:
                    out[(t, i)].append(rid)
    return out


def _apply_isolating(backend, b: _Batch, jobs: list, *, exhaustive: bool) -> None:
    """Write `jobs` in one index commit; on failure find the failing job(s) by halving.
    Failures end up in b.failed. Not `exhaustive`: when both halves fail, the cause is
    not one job, and both halves are failed as a whole (retried later, then exhaustively)."""
    error = _try_write(backend, b, jobs)
    if error is None:
        return
    if len(jobs) == 1:
        b.failed[jobs[0]] = error
        return
    log.warning("search outbox: a batch of %d jobs failed; looking for the failing job(s)", len(jobs))
    _bisect(backend, b, jobs, exhaustive)


def _bisect(backend, b: _Batch, jobs: list, exhaustive: bool) -> None:
    half = len(jobs) // 2
    parts = [jobs[:half], jobs[half:]]
    errors = [_try_write(backend, b, part) for part in parts]
    if all(errors) and not exhaustive:
        for part, error in zip(parts, errors):
            for job in part:
                b.failed[job] = error
        return
    for part, error in zip(parts, errors):
        if error is None:
            continue
        if len(part) == 1:
            b.failed[part[0]] = error
        else:
            _bisect(backend, b, part, exhaustive)


def _try_write(backend, b: _Batch, jobs: list) -> str | None:
    """Load and write `jobs` (minus those already failed). Documents that fail to load or
    that the index refuses fail alone (their jobs go to b.failed) and the rest is written;
    returns the traceback when the write as a whole fails, else None."""
    jobs = [j for j in jobs if j not in b.failed]
    if not jobs:
        return None
    upserts, deletes = _load(b, jobs)
    while True:
        try:
            backend.write(upserts, deletes)
            return None
        except DocumentRejected as e:
            parsed = split_key(e.key)
            log.exception("search outbox: the index refused %s", e.key)
            b.failed[parsed] = _error_text()
            upserts = [d for d in upserts if d.key != e.key]
        except Exception:
            log.exception("search outbox: writing %d document(s) to the index failed", len(jobs))
            return _error_text()


def _load(b: _Batch, jobs: list):
    by_type: dict[str, list[int]] = defaultdict(list)
    for doc_type, doc_id in jobs:
        by_type[doc_type].append(doc_id)
    upserts, deletes = [], []
    for doc_type, ids in by_type.items():
        ids = sorted(ids)
        try:
            docs = load_docs(doc_type, ids)
        except Exception:
            db.session.rollback()  # e.g. PostgreSQL refuses further statements in a failed transaction
            docs = {}
            for doc_id in ids:  # one at a time: find the failing ones, keep the rest
                try:
                    docs.update(load_docs(doc_type, [doc_id]))
                except Exception:
                    db.session.rollback()
                    log.exception("search outbox: loading %s:%s for the index failed", doc_type, doc_id)
                    b.failed[(doc_type, doc_id)] = _error_text()
        for doc_id, doc in docs.items():
            if doc is None:
                deletes.append(f"{doc_type}:{doc_id}")
            else:
                upserts.append(doc)
    return upserts, deletes


def _error_text() -> str:
    text = traceback.format_exc()
    return text if len(text) <= ERROR_CHARS else "…" + text[-ERROR_CHARS:]


def _record_failure(row_ids: list[int], job: tuple[str, int], error: str) -> None:
    """Count a failure on the job's rows: back off, or park at SEARCH_MAX_ATTEMPTS."""
    if not row_ids:
        return  # a clock-driven re-index (no row): found again by the next sweep
    now = utcnow()
    limit = _setting("SEARCH_MAX_ATTEMPTS", MAX_ATTEMPTS)
    for rid, attempts in db.session.execute(
            select(SearchOutbox.id, SearchOutbox.attempts).where(SearchOutbox.id.in_(row_ids))).all():
        attempts += 1
        values = {"attempts": attempts, "last_error": error}
        if attempts >= limit:
            values.update(parked_at=now, retry_at=None)
            log.error("search outbox: job %d (%s:%s) failed %d times and is parked: %s", rid, job[0], job[1],
                      attempts, _last_line(error))
        else:
            delay = backoff_seconds(attempts)
            values["retry_at"] = now + timedelta(seconds=delay)
            log.warning("search outbox: job %d (%s:%s) failed (attempt %d of %d); retrying in %.0f s: %s", rid,
                        job[0], job[1], attempts, limit, delay, _last_line(error))
        db.session.execute(update(SearchOutbox).where(SearchOutbox.id == rid).values(**values))


def _last_line(error: str) -> str:
    lines = [line for line in error.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "unknown error"


def retry_parked(ids: list[int] | None = None) -> int:
    """Put parked jobs (all, or those in `ids`) back in the queue, due now, with a fresh
    count of attempts (their last error is kept until they succeed). Returns how many."""
    stmt = update(SearchOutbox).where(SearchOutbox.parked_at.is_not(None))
    if ids is not None:
        stmt = stmt.where(SearchOutbox.id.in_(ids))
    n = db.session.execute(stmt.values(parked_at=None, retry_at=None, attempts=0)).rowcount
    db.session.commit()
    if n:
        log.info("search outbox: %d parked job(s) put back in the queue", n)
    return n


def failing_jobs(limit: int = 200) -> list[SearchOutbox]:
    """Parked jobs first, then retrying ones, oldest first."""
    return list(db.session.execute(
        select(SearchOutbox).where(SearchOutbox.attempts > 0)
        .order_by(SearchOutbox.parked_at.is_(None), SearchOutbox.id).limit(limit)).scalars())


class WriterLoop:
    """One pass after another of the outbox writer, for the background thread and for
    `flask search apply --watch`: never dies of a failing pass (logged with its
    traceback; the next pass waits longer, up to a minute), and reports its state
    (health.WriterStatus) for /healthz and `flask search stats`."""

    def __init__(self, app: Flask, backend, *, mode: str, interval: float = 1.0, sweep_interval: float = 10.0,
                 wait: bool = False, rebuild_procs: int = 1):
        from .health import WriterStatus

        self.app = app
        self.backend = backend
        self.interval = interval
        self.sweep_interval = sweep_interval
        self.wait = wait
        self.rebuild_procs = rebuild_procs  # 1 in a web process: never fork beside other threads
        self.status = WriterStatus(backend.base, mode)
        self._last_sweep = 0.0
        self.failures = 0
        self.status.report("started", force=True)

    def run_once(self) -> int:
        """One pass; returns the jobs applied (0 after a failure, which is logged)."""
        sweep = time.monotonic() - self._last_sweep >= self.sweep_interval
        try:
            with self.app.app_context():
                try:
                    n = apply_outbox(self.backend, wait=self.wait, sweep=sweep, rebuild_procs=self.rebuild_procs,
                                    status=self.status)
                    if sweep:
                        self._last_sweep = time.monotonic()
                finally:
                    db.session.remove()
        except Exception:
            self.failures += 1
            log.exception("search outbox: a pass of the index writer failed (%d in a row); the jobs stay "
                          "queued", self.failures)
            self.status.report("failing", error=traceback.format_exc())
            return 0
        self.failures = 0
        self.status.report("idle", applied=n)
        return n

    def delay(self) -> float:
        """Seconds to wait before the next pass: the interval, doubled per failed pass."""
        if not self.failures:
            return self.interval
        return min(60.0, self.interval * 2 ** min(self.failures, 6))

    def stopped(self) -> None:
        self.status.report("stopped", force=True)


class OutboxThread(threading.Thread):
    """Background writer for SEARCH_WORKER = "thread": wakes on every commit that wrote
    jobs (and every `interval` seconds, for jobs from other processes and for expiries)."""

    def __init__(self, app: Flask, backend, interval: float = 1.0, sweep_interval: float = 10.0):
        super().__init__(name="search-outbox", daemon=True)
        self.loop = WriterLoop(app, backend, mode="thread", interval=interval, sweep_interval=sweep_interval)
        self.wake = threading.Event()
        self.stopping = False
        self.pid = os.getpid()

    def run(self) -> None:
        while not self.stopping:
            self.wake.wait(self.loop.delay())
            self.wake.clear()
            if self.stopping:
                break
            self.loop.run_once()

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()
