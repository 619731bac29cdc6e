"""`flask worker`: every kind of background job in one command, safe on several hosts at once.

Job kinds, each one round of work per pass (`KINDS`):

- ``search``: drain the search outbox into the index (search/worker.py), with back-off,
  parking and the health reports /healthz reads;
- ``mail``: send the mail outbox (mail/worker.py), with retries;
- ``webhooks``: send the due webhook deliveries (webhooks/worker.py), with retries;
- ``periodic``: deadline reminders, the daily notification digests and the moderators'
  daily digest (each deduplicated in the database, so every worker may run them).

**Several workers.** Mail messages and webhook deliveries are claimed one row at a time by
`workers.claim_next`: ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL, the single write
lock on SQLite; exactly one worker's claim changes a row, and only that worker does the job.
The periodic jobs write rows with unique keys (a reminder per challenge, deadline and lead
time; a digest per person and day), so a second worker's copy is refused by the database.

**Search is one writer per index.** The Whoosh index is a folder on one host's disk that
the web processes read: only a worker on that host (with the same SEARCH_INDEX_DIR) may
apply search jobs, and within the host the index's writer lock lets one at a time. On
PostgreSQL the search kind also takes a session advisory lock (`SearchWriterGuard`) before
it applies anything, so a worker on another host, whose SEARCH_INDEX_DIR is another disk,
never drains the shared outbox into an index nobody reads; it does the other kinds and
takes over search only if the holder's connection ends. Run `flask worker` on the index's
host with every kind, and on other hosts with ``--without search``. A search backend that
lives in the database (``shared_across_hosts = True`` on the backend) needs no guard.

A failing round is logged with its traceback and the worker goes on; its jobs stay in their
outbox, and that kind's next round waits 2, 4, 8 ... times the idle interval, at most 60 s
(`Worker.backoff`), while it keeps failing, as the index writer it replaced did. SIGTERM and
SIGINT end the worker after the round in progress.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

from flask import Flask
from sqlalchemy import text

from .extensions import db

log = logging.getLogger(__name__)

# The advisory lock id the Whoosh writer holds on PostgreSQL (any fixed 64-bit number).
SEARCH_WRITER_LOCK = zlib.crc32(b"marketplace:search-writer")


class SearchWriterGuard:
    """On PostgreSQL with an index on one host's disk: a session advisory lock, held on a
    connection of its own for as long as this worker writes the index. Elsewhere: always
    granted (SQLite is one host; a database-backed search index is shared)."""

    def __init__(self, app: Flask, backend):
        self.app = app
        self.needed = (db.engine.dialect.name == "postgresql"
                       and not getattr(backend, "shared_across_hosts", False))
        self._conn = None
        self._told = False

    def held(self) -> bool:
        if not self.needed:
            return True
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT 1"))
                return True
            except Exception:  # noqa: BLE001 - the connection died: the lock went with it
                conn, self._conn = self._conn, None
                conn.invalidate()
        conn = db.engine.connect()
        try:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": SEARCH_WRITER_LOCK}).scalar()
            conn.commit()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            if not self._told:
                log.warning("worker: another worker writes the search index (it holds the search writer lock); "
                            "this one leaves search jobs to it")
                self._told = True
            return False
        self._conn, self._told = conn, False
        log.info("worker: this worker writes the search index")
        return True

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            # Unlocked explicitly: a pooled connection goes back to the pool, session and lock alive.
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SEARCH_WRITER_LOCK})
            conn.commit()
            conn.close()
        except Exception:  # noqa: BLE001 - the connection is gone, and the lock with its session
            conn.invalidate()


@dataclass
class Kind:
    name: str
    help: str
    every: float                              # at least this many seconds between two rounds
    make: Callable[[Flask], Callable[[], int]]  # app -> one round (returns the jobs done)


def _search(app: Flask) -> Callable[[], int]:
    from .search import get_backend
    from .search.worker import WriterLoop

    with app.app_context():
        backend = get_backend(app)
        guard = SearchWriterGuard(app, backend)
    loop = WriterLoop(app, backend, mode="worker", wait=False, rebuild_procs=min(2, os.cpu_count() or 1))

    def run() -> int:
        with app.app_context():
            if not guard.held():
                return 0
        return loop.run_once()  # logs and reports its own failures; never raises

    run.close = lambda: (guard.release(), loop.stopped())  # type: ignore[attr-defined]
    # The loop logs and swallows a failing pass; the worker counts them by this, and backs off.
    run.failing = lambda: loop.failures  # type: ignore[attr-defined]
    return run


def _mail(app: Flask) -> Callable[[], int]:
    from .mail.worker import send_pending

    def run() -> int:
        return sum(send_pending().values())

    return run


def _webhooks(app: Flask) -> Callable[[], int]:
    from .webhooks.worker import deliver_due

    def run() -> int:
        return deliver_due().attempted

    return run


def _periodic(app: Flask) -> Callable[[], int]:
    from .mail.worker import run_periodic
    from .models import utcnow
    from .services.moderation import send_digest

    def run() -> int:
        now = utcnow()
        done = sum(run_periodic(now).values())
        # The moderators' digest: once a (UTC) day, from the digest hour on, like the others.
        if now.hour >= int(app.config.get("NOTIFY_DIGEST_HOUR") or 0):
            done += send_digest(now)[0]
        return done

    return run


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("search", "apply the search outbox to the index", 0.0, _search),
    Kind("mail", "send the mail outbox", 0.0, _mail),
    Kind("webhooks", "send due webhook deliveries", 0.0, _webhooks),
    Kind("periodic", "deadline reminders, notification and moderation digests", 60.0, _periodic),
)}


@dataclass
class Worker:
    """Runs the chosen kinds in turn, pass after pass, until stopped."""

    app: Flask
    kinds: list[str]
    interval: float = 2.0                       # idle pause between passes
    done: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)   # failed rounds per kind, in all
    streak: dict[str, int] = field(default_factory=dict)     # failed rounds per kind, in a row

    def __post_init__(self):
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown job kind(s): {', '.join(unknown)} (known: {', '.join(KINDS)})")
        self._runs = {k: KINDS[k].make(self.app) for k in self.kinds}
        self._next: dict[str, float] = {}  # kind -> monotonic time its next round is due
        self.stop_event = threading.Event()

    def backoff(self, failed_in_a_row: int) -> float:
        """Seconds before the next round of a kind whose last `failed_in_a_row` rounds failed:
        none after a success, then the interval times 2, 4, 8 ..., at most 60 s."""
        if not failed_in_a_row:
            return 0.0
        return min(60.0, self.interval * 2 ** min(failed_in_a_row, 6))

    def run_once(self, force: bool = False) -> dict[str, int]:
        """One pass over the kinds that are due (all of them with `force`); the jobs done per
        kind. A failing kind is logged and counted, and backs off; the others still run."""
        out: dict[str, int] = {}
        for name, run in self._runs.items():
            now = time.monotonic()
            if not force and now < self._next.get(name, 0.0):
                continue
            failed = False
            # The search loop logs and swallows a failing pass, counting them itself.
            failing = getattr(run, "failing", None)
            failed_before = failing() if failing is not None else 0
            try:
                if name == "search":
                    n = run()  # the search loop pushes its own app context
                else:
                    with self.app.app_context():
                        try:
                            n = run()
                        finally:
                            db.session.remove()
            except Exception:
                failed = True
                self.failures[name] = self.failures.get(name, 0) + 1
                log.exception("worker: a round of %s failed; its jobs stay queued", name)
                n = 0
            if not failed and failing is not None and failing() > failed_before:
                failed = True
                self.failures[name] = self.failures.get(name, 0) + 1
            self.streak[name] = self.streak.get(name, 0) + 1 if failed else 0
            self._next[name] = now + max(KINDS[name].every, self.backoff(self.streak[name]))
            out[name] = n
            self.done[name] = self.done.get(name, 0) + n
        return out

    def run_forever(self, on_pass: Callable[[dict[str, int]], None] | None = None) -> None:
        try:
            while not self.stop_event.is_set():
                got = self.run_once()
                if on_pass is not None:
                    on_pass(got)
                if not any(got.values()):
                    self.stop_event.wait(self.interval)  # busy: go straight on with the next pass
        finally:
            self.close()

    def stop(self, *_args) -> None:
        self.stop_event.set()

    def close(self) -> None:
        for run in self._runs.values():
            close = getattr(run, "close", None)
            if close is not None:
                close()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
