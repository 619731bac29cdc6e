"""Append-only, hash-chained governance events.

Each row's hash is SHA-256 over the canonical JSON of its content plus the previous row's
hash. ``prev_hash`` is unique, so two concurrent appends on the same head cannot both
commit: the loser retries on the new head. ``verify_chain`` names the first row altered,
removed or reordered. The application never updates or deletes rows (enforced by a
flush guard in marketplace/services/guards.py).

Each event is also logged (logger `marketplace.audit`, INFO) once its transaction commits:
action, subject, actor and row id, never its data (which can quote reasons and names). The
few that are webhook events also queue their deliveries, in the same transaction
(marketplace/services/webhooks.py).
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .extensions import db
from .models import AuditEvent, utcnow

GENESIS = "0" * 64
log = logging.getLogger(__name__)
_PENDING = "audit_log_pending"


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_hex(text: str | bytes) -> str:
    if isinstance(text, str):
        text = text.encode("utf-8")
    return hashlib.sha256(text).hexdigest()


def _ts(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def row_payload(row: AuditEvent) -> dict:
    return {
        "id": row.id,
        "created_at": _ts(row.created_at),
        "actor_id": row.actor_id,
        "action": row.action,
        "subject_type": row.subject_type,
        "subject_id": row.subject_id,
        "item_id": row.item_id,
        "data": json.loads(row.data or "{}"),
    }


def compute_hash(row: AuditEvent, prev_hash: str) -> str:
    return sha256_hex(canonical_json(row_payload(row)) + prev_hash)


def head() -> AuditEvent | None:
    return db.session.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).scalar()


def record(action: str, subject_type: str, subject_id: int | None = None, *, actor_id: int | None = None,
           item_id: int | None = None, data: dict | None = None) -> AuditEvent:
    """Append one event inside the caller's transaction (the caller commits).

    Takes a savepoint so a lost race on the chain head retries without losing the caller's
    other changes.
    """
    for attempt in range(20):
        last = head()
        prev = last.hash if last else GENESIS
        next_id = (last.id + 1) if last else 1
        row = AuditEvent(
            id=next_id,
            created_at=utcnow(),
            actor_id=actor_id,
            action=action,
            subject_type=subject_type,
            subject_id=subject_id,
            item_id=item_id,
            data=canonical_json(data or {}),
            prev_hash=prev,
        )
        row.hash = compute_hash(row, prev)
        try:
            with db.session.begin_nested():
                db.session.add(row)
        except IntegrityError:
            continue  # someone appended first: chain onto the new head
        db.session.info.setdefault(_PENDING, []).append(
            (action, subject_type, subject_id, actor_id, item_id, row.id))
        # Some events are webhook events: their deliveries join this same transaction.
        from .services.webhooks import enqueue_for_audit_event

        enqueue_for_audit_event(row)
        return row
    raise RuntimeError("could not append to the audit chain (contention)")


@event.listens_for(Session, "after_commit")
def _log_committed_events(session: Session) -> None:
    for action, subject_type, subject_id, actor_id, item_id, row_id in session.info.pop(_PENDING, ()):
        log.info("governance %s %s:%s actor=%s item=%s audit_row=%s",
                 action, subject_type, subject_id, actor_id, item_id, row_id)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back_events(session: Session) -> None:
    session.info.pop(_PENDING, None)


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    head: str
    problem: str | None = None
    row_id: int | None = None


def verify_chain() -> VerifyResult:
    prev = GENESIS
    expected_id = None
    n = 0
    for row in db.session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars():
        n += 1
        if expected_id is not None and row.id != expected_id:
            return VerifyResult(False, n, prev, f"row {expected_id} is missing (next row is {row.id})", expected_id)
        if row.prev_hash != prev:
            return VerifyResult(False, n, prev, f"row {row.id} does not follow the previous row "
                                "(removed or reordered rows before it)", row.id)
        if compute_hash(row, prev) != row.hash:
            return VerifyResult(False, n, prev, f"row {row.id} was altered", row.id)
        prev = row.hash
        expected_id = row.id + 1
    return VerifyResult(True, n, prev)
