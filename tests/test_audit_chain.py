"""The tamper-evident audit trail: `flask audit verify` catches rows edited, removed or
reordered behind the application's back; the application itself never updates or deletes
audit rows; the chain head is public."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from marketplace import audit
from marketplace.extensions import db
from marketplace.models import AuditEvent
from marketplace.models.moderation import ModerationAction
from marketplace.services import moderation as svc
from marketplace.services.guards import AppendOnlyViolation


@pytest.fixture
def chain(ctx):
    """Five events appended the way services do."""
    for i in range(5):
        audit.record("test.event", "thing", i, data={"n": i, "note": f"event {i}"})
    db.session.commit()
    return [r.id for r in db.session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars()]


def verify(runner, *args):
    db.session.expire_all()
    return runner.invoke(args=["audit", "verify", *args])


def raw(sql: str, **params) -> None:
    """Tamper as an attacker with database access would: raw SQL, outside the ORM and its guard."""
    db.session.execute(text(sql), params)
    db.session.commit()


def test_clean_chain_verifies(chain, runner):
    r = verify(runner)
    assert r.exit_code == 0 and "OK: 5 row(s) verified" in r.output


def test_edited_row_is_named(chain, runner):
    raw("UPDATE audit_events SET data = :d WHERE id = :i", d=json.dumps({"n": 2, "note": "rewritten"}), i=chain[2])
    r = verify(runner)
    assert r.exit_code == 1 and f"row {chain[2]} was altered" in r.output


def test_edited_actor_or_time_is_caught(chain, runner):
    raw("UPDATE audit_events SET actor_id = NULL, action = 'test.other' WHERE id = :i", i=chain[1])
    r = verify(runner)
    assert r.exit_code == 1 and f"row {chain[1]} was altered" in r.output


def test_deleted_row_is_named(chain, runner):
    raw("DELETE FROM audit_events WHERE id = :i", i=chain[1])
    r = verify(runner)
    assert r.exit_code == 1 and f"row {chain[1]} is missing" in r.output


def test_deleted_first_row_is_caught(chain, runner):
    raw("DELETE FROM audit_events WHERE id = :i", i=chain[0])
    r = verify(runner)
    assert r.exit_code == 1 and f"row {chain[1]} does not follow" in r.output


def test_reordered_rows_are_named(chain, runner):
    a, b = chain[2], chain[3]
    raw("UPDATE audit_events SET id = -1 WHERE id = :a", a=a)
    raw("UPDATE audit_events SET id = :a WHERE id = :b", a=a, b=b)
    raw("UPDATE audit_events SET id = :b WHERE id = -1", b=b)
    r = verify(runner)
    assert r.exit_code == 1 and f"row {a} does not follow the previous row" in r.output


def test_truncated_tail_is_caught_against_a_pinned_head(chain, runner):
    pinned = audit.head().hash
    assert verify(runner, "--pinned", pinned).exit_code == 0
    raw("DELETE FROM audit_events WHERE id = :i", i=chain[-1])
    assert verify(runner).exit_code == 0  # the rest still chains: this is why the head is published
    r = verify(runner, "--pinned", pinned)
    assert r.exit_code == 1 and "no longer in the chain" in r.output


def test_head_command_and_public_page(chain, runner, client):
    head = audit.head()
    r = runner.invoke(args=["audit", "head"])
    assert r.exit_code == 0 and head.hash in r.output and "rows 5" in r.output
    page = client.get("/audit")
    assert page.status_code == 200 and head.hash.encode() in page.data
    data = client.get("/audit.json").get_json()
    assert data == {"hash": head.hash, "row_id": head.id, "rows": 5, "at": head.created_at.isoformat(),
                    "algorithm": "sha256"}
    assert b'href="/audit"' in client.get("/").data  # footer link on every page


def test_the_application_never_updates_or_deletes_audit_rows(chain):
    row = db.session.get(AuditEvent, chain[0])
    row.data = json.dumps({"n": 0, "note": "quietly fixed"})
    with pytest.raises(AppendOnlyViolation):
        db.session.commit()
    db.session.rollback()
    db.session.delete(db.session.get(AuditEvent, chain[0]))
    with pytest.raises(AppendOnlyViolation):
        db.session.commit()
    db.session.rollback()
    assert audit.verify_chain().ok


def test_moderation_actions_are_append_only_and_audited(f, runner):
    mod = f.make_user(site_role="moderator")
    user = f.make_user()
    action = svc.take_action(mod, "user", user.id, "suspend", "Spam.", days=1)
    ev = db.session.execute(select(AuditEvent).order_by(AuditEvent.id.desc())).scalars().first()
    assert ev.action == "moderation.suspend" and ev.actor_id == mod.id and ev.subject_id == user.id
    assert json.loads(ev.data)["reason"] == "Spam." and json.loads(ev.data)["action_id"] == action.id
    action = db.session.get(ModerationAction, action.id)
    action.reason = "Something nicer."
    with pytest.raises(AppendOnlyViolation):
        db.session.commit()
    db.session.rollback()
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
