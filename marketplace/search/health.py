"""How the index writer is doing, for /healthz, `flask search stats` and /admin/search.

The writer may run in another process (`make serve` runs `flask worker` beside
gunicorn), so it reports its state in ``writer.json`` in SEARCH_INDEX_DIR,
rewritten atomically when its state changes and at least every HEARTBEAT seconds.
Readers judge it by its age (and, on the same host, by whether its process is alive).

The outbox says the rest: how many jobs wait, how old the oldest is, how many are
retrying or parked. The health is ``degraded`` when the index lags beyond
SEARCH_LAG_DEGRADED_SECONDS, when jobs are parked, or when the index belongs to another
database; /healthz still answers 200 then (the site serves; search is behind), and
503 only when the database itself cannot be reached.
"""
from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import case, func, select

from ..extensions import db
from ..models import SearchOutbox, utcnow

STATUS_FILE = "writer.json"
HEARTBEAT = 10.0        # seconds between two reports of an idle writer
STALE_AFTER = 45.0      # a report older than this means the writer is not running
_HOST = socket.gethostname()


class WriterStatus:
    """The writer's side: report state changes and heartbeats (cheaply: one small file
    write per change, or per HEARTBEAT seconds when nothing changes)."""

    def __init__(self, base_dir: str | os.PathLike, mode: str):
        self.path = Path(base_dir) / STATUS_FILE
        self.mode = mode
        self.started_at = time.time()
        self.data: dict = {}
        self._written_at = 0.0

    def report(self, state: str, *, error: str | None = None, applied: int = 0, force: bool = False) -> None:
        now = time.time()
        data = dict(self.data)
        data.update(pid=os.getpid(), host=_HOST, mode=self.mode, state=state,
                    started_at=self.started_at)
        if state == "idle" and (applied or "last_success_at" not in data):
            data["last_success_at"] = now
        if applied:
            data["applied_total"] = data.get("applied_total", 0) + applied
        if error is not None:
            data["last_error"] = error[-2000:]
            data["last_error_at"] = now
            data["consecutive_failures"] = data.get("consecutive_failures", 0) + 1
        elif state == "idle":
            data["consecutive_failures"] = 0
        changed = {k: v for k, v in data.items() if k != "heartbeat_at"} != \
                  {k: v for k, v in self.data.items() if k != "heartbeat_at"}
        if not (force or changed or now - self._written_at >= HEARTBEAT):
            return
        data["heartbeat_at"] = now
        self.data = data
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f"{STATUS_FILE}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, self.path)
            self._written_at = now
        except OSError:  # a full disk must not stop the writer; health shows the old report
            pass


def read_writer_status(base_dir: str | os.PathLike) -> dict | None:
    try:
        data = json.loads((Path(base_dir) / STATUS_FILE).read_text())
    except (FileNotFoundError, ValueError, OSError):
        return None
    return data if isinstance(data, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def writer_state(runtime) -> dict:
    """{"state": ..., ...}: "sync" (tests: applied at each commit), "running" (reported
    recently; "failing" when its last pass failed, "rebuilding" during a rebuild),
    "stopped" (its report is stale or its process is gone), "not seen" (never reported)."""
    if runtime.mode == "sync":
        return {"state": "sync"}
    report = read_writer_status(runtime.backend.base)
    if report is None:
        return {"state": "not seen"}
    age = time.time() - float(report.get("heartbeat_at", 0))
    out = {"state": report.get("state", "unknown"), "pid": report.get("pid"), "mode": report.get("mode"),
           "report_age_seconds": round(age, 1), "consecutive_failures": report.get("consecutive_failures", 0),
           "last_error_at": report.get("last_error_at"), "last_success_at": report.get("last_success_at")}
    gone = report.get("host") == _HOST and isinstance(report.get("pid"), int) and not _alive(report["pid"])
    if report.get("state") == "stopped" or gone or (age > STALE_AFTER and report.get("state") != "rebuilding"):
        out["state"] = "stopped"
    elif report.get("state") in ("started", "idle", "writing"):
        out["state"] = "running"
    return out


def outbox_summary(now: datetime | None = None) -> dict:
    """Counts of pending (due or retrying) and parked jobs, and the oldest pending job's age."""
    now = now or utcnow()
    parked = SearchOutbox.parked_at.is_not(None)
    retrying = SearchOutbox.parked_at.is_(None) & (SearchOutbox.attempts > 0)
    row = db.session.execute(select(
        func.count(SearchOutbox.id),
        func.coalesce(func.sum(case((parked, 1), else_=0)), 0),
        func.coalesce(func.sum(case((retrying, 1), else_=0)), 0),
    )).one()
    oldest = db.session.execute(
        select(func.min(SearchOutbox.created_at)).where(SearchOutbox.parked_at.is_(None))).scalar()
    if oldest is not None and oldest.tzinfo is None:  # SQLite through a plain func.min()
        from datetime import timezone
        oldest = oldest.replace(tzinfo=timezone.utc)
    if isinstance(oldest, str):  # pragma: no cover - some drivers return text for min()
        oldest = datetime.fromisoformat(oldest)
    total, n_parked, n_retrying = int(row[0]), int(row[1]), int(row[2])
    return {
        "pending": total - n_parked,
        "retrying": n_retrying,
        "parked": n_parked,
        "oldest_pending_age_seconds": None if oldest is None else round(max(0.0, (now - oldest).total_seconds()), 1),
    }


def search_health(runtime) -> dict:
    """The search part of /healthz: writer, backlog, index; `problems` lists why it is
    degraded (empty when healthy)."""
    threshold = float(current_app.config.get("SEARCH_LAG_DEGRADED_SECONDS", 120))
    outbox = outbox_summary()
    writer = writer_state(runtime)
    index = runtime.index_state()
    problems = []
    age = outbox["oldest_pending_age_seconds"]
    if age is not None and age > threshold:
        problems.append(f"the search index lags: the oldest waiting job is {age:.0f} s old "
                        f"(threshold {threshold:.0f} s)")
    if outbox["parked"]:
        problems.append(f"{outbox['parked']} search index job(s) parked after repeated failures")
    if index == "other-database":
        problems.append("the search index was built from another database; it is not served until rebuilt")
    return {
        "writer": writer["state"],
        "index": index,
        "backlog": outbox["pending"],
        "retrying": outbox["retrying"],
        "parked": outbox["parked"],
        "oldest_job_age_seconds": age,
        "lag_threshold_seconds": threshold,
        "problems": problems,
    }
