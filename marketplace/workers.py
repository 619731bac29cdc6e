"""What the background workers (search index writer, mail sender, webhook deliveries) and the
session hooks that feed them share: the per-process worker thread, Session listeners attached
once, and `claim_next`, which lets several workers on several hosts take one job row each.
"""
from __future__ import annotations

import logging
import os
import threading
from typing import Callable

from flask import Flask
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

_listening: set[str] = set()


def listen_on_sessions(owner: str, *listeners: tuple[str, Callable]) -> None:
    """Attach (event name, function) listeners to every Session, once per process for this
    `owner`: apps are created many times in one process (tests, CLI), and a listener
    attached twice would run twice."""
    if owner in _listening:
        return
    for name, fn in listeners:
        event.listen(Session, name, fn)
    _listening.add(owner)


class ThreadRuntime:
    """Per app: the worker mode and (in "thread" mode) this process's worker thread, started
    on demand, and again in a forked child or after it stopped. Subclasses say how to make
    the thread (it has ``pid`` and a ``wake`` event)."""

    # Logged when this process's thread is found stopped (None: restart silently).
    stopped_message: str | None = None

    def __init__(self, app: Flask, mode: str):
        self.app = app
        self.mode = mode
        self._thread = None
        self._thread_lock = threading.Lock()

    def new_thread(self) -> threading.Thread:  # pragma: no cover - every subclass defines it
        raise NotImplementedError

    def start_thread(self) -> None:
        with self._thread_lock:
            t = self._thread
            if t is not None and t.is_alive() and t.pid == os.getpid():
                return
            if t is not None and t.pid == os.getpid() and self.stopped_message:
                log.error(self.stopped_message)
            self._thread = self.new_thread()
            self._thread.start()

    def wake(self) -> None:
        if self._thread is not None:
            self._thread.wake.set()


def claim_next(model, *where, order_by, values: dict):
    """Claim one row of a job table for this process and commit: the oldest row (by
    `order_by`) matching `where` gets `values` (its "taken" mark), and its id is returned;
    None when there is nothing to claim.

    One statement, ``UPDATE t SET ... WHERE id = (SELECT id FROM t WHERE ... ORDER BY ...
    LIMIT 1 FOR UPDATE SKIP LOCKED) AND ... RETURNING id``. On PostgreSQL the subquery locks
    the row it picks and skips rows other workers have locked, so concurrent workers on any
    number of hosts each take a different row without waiting on one another; the outer
    WHERE repeats the condition, so a row another worker changed meanwhile is not taken.
    On SQLite, FOR UPDATE is not emitted: an UPDATE holds the database's single write lock
    from its first read to its end, so the same statement is atomic there too. Either way
    exactly one worker's statement changes the row, and only that worker does the job."""
    from .extensions import db

    pick = (select(model.id).where(*where).order_by(*order_by).limit(1)
            .with_for_update(skip_locked=True).scalar_subquery())
    stmt = (update(model).where(model.id == pick, *where).values(**values).returning(model.id)
            .execution_options(synchronize_session=False))
    try:
        claimed = db.session.execute(stmt).scalar()
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return claimed
