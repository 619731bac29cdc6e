"""The single outbox writer: applies index jobs in batches, under the index's writer lock.

Order of work per batch, which is what makes a crash at any point lose nothing:

1. take the writer lock (or give up at once: web requests never wait on it);
2. read up to `batch` outbox rows, oldest first;
3. load the current state of those documents from the database;
4. write them to the index and commit the index;
5. delete exactly the rows read in 2, and commit.

Killed before 4 completes: Whoosh never wrote its table of contents, the index is as
before, and the rows are still there. Killed between 4 and 5: the rows are applied
again next time, which is harmless (a job means "make the index match the database
for this document", not "apply this diff"). Rows added while a batch runs stay for
the next one.

Documents whose principals lapse by the clock (an access grant expiring) are found in
the index by their ``stale_at`` column and reindexed by the same loop.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict

from flask import Flask
from sqlalchemy import delete, func, select

from ..extensions import db
from ..models import SearchOutbox
from .documents import load_docs, split_key
from .whoosh_backend import IndexBusy

log = logging.getLogger(__name__)

BATCH = 500


def pending_count() -> int:
    return db.session.execute(select(func.count(SearchOutbox.id))).scalar() or 0


def apply_outbox(backend, *, batch: int = BATCH, max_batches: int | None = None, wait: bool = False,
                 sweep: bool = True, on_batch=None) -> int:
    """Drain the outbox (inside an app context). Returns the number of jobs applied;
    0 when another writer holds the lock and `wait` is False."""
    try:
        with backend.lock(wait=wait, timeout=120.0):
            return drain(backend, batch=batch, max_batches=max_batches, sweep=sweep, on_batch=on_batch)
    except IndexBusy:
        db.session.rollback()
        return 0


def drain(backend, *, batch: int = BATCH, max_batches: int | None = None, sweep: bool = True,
          on_batch=None) -> int:
    """The body of apply_outbox, for callers that already hold the writer lock."""
    applied = 0
    try:
        backend.ensure_index()
        extra: set[tuple[str, int]] = set()
        if sweep:
            for key in backend.stale_keys(int(time.time())):
                parsed = split_key(key)
                if parsed:
                    extra.add(parsed)
        batches = 0
        while True:
            rows = db.session.execute(
                select(SearchOutbox.id, SearchOutbox.doc_type, SearchOutbox.doc_id)
                .order_by(SearchOutbox.id).limit(batch)
            ).all()
            if not rows and not extra:
                break
            jobs = {(r.doc_type, r.doc_id) for r in rows} | extra
            extra = set()
            _write_jobs(backend, jobs)
            if on_batch is not None:
                on_batch(len(rows))  # tests use this to die between index and outbox commits
            if rows:
                db.session.execute(delete(SearchOutbox).where(SearchOutbox.id.in_([r.id for r in rows])))
            db.session.commit()
            applied += len(jobs)
            batches += 1
            if max_batches is not None and batches >= max_batches:
                break
    except BaseException:
        db.session.rollback()
        raise
    return applied


def _write_jobs(backend, jobs) -> None:
    by_type: dict[str, list[int]] = defaultdict(list)
    for doc_type, doc_id in jobs:
        by_type[doc_type].append(doc_id)
    upserts, deletes = [], []
    for doc_type, ids in by_type.items():
        for doc_id, doc in load_docs(doc_type, sorted(ids)).items():
            if doc is None:
                deletes.append(f"{doc_type}:{doc_id}")
            else:
                upserts.append(doc)
    backend.write(upserts, deletes)


class OutboxThread(threading.Thread):
    """Background writer for SEARCH_WORKER = "thread": wakes on every commit that wrote
    jobs (and every `interval` seconds, for jobs from other processes and for expiries)."""

    def __init__(self, app: Flask, backend, interval: float = 1.0, sweep_interval: float = 10.0):
        super().__init__(name="search-outbox", daemon=True)
        self.app = app
        self.backend = backend
        self.interval = interval
        self.sweep_interval = sweep_interval
        self.wake = threading.Event()
        self.stopping = False
        self.pid = os.getpid()
        self._last_sweep = 0.0

    def run(self) -> None:
        while not self.stopping:
            self.wake.wait(self.interval)
            self.wake.clear()
            sweep = time.monotonic() - self._last_sweep >= self.sweep_interval
            try:
                with self.app.app_context():
                    try:
                        apply_outbox(self.backend, wait=False, sweep=sweep)
                        if sweep:
                            self._last_sweep = time.monotonic()
                    finally:
                        db.session.remove()
            except Exception:  # keep the writer alive; the jobs stay in the outbox
                log.exception("search outbox: applying failed; will retry")
                time.sleep(self.interval)

    def stop(self) -> None:
        self.stopping = True
        self.wake.set()

