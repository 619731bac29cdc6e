"""Logs: one configuration that a migration in the same process cannot switch off; 500s
logged with their traceback and the request id the page shows; sign-ins, denials and
governance actions logged without passwords, tokens or what people wrote; service refusals
that escape a view become a 4xx and leave nothing written."""
from __future__ import annotations

import logging
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from marketplace import create_app
from marketplace.config import TestingConfig
from marketplace.extensions import db
from marketplace.logs import REQUEST_ID_HEADER, logging_config
from marketplace.models import AuditEvent, Organisation
from marketplace.services import accounts
from marketplace.services.common import ServiceError

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env(tmp_path: Path, **extra) -> dict:
    """The environment of an operator's shell: no SECRET_KEY, the instance in tmp_path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SECRET_KEY", "DATABASE_URL", "FLASK_DEBUG", "LOG_FILE", "SEARCH_INDEX_DIR",
                        "UPLOAD_DIR", "SERVER_NAME", "RATELIMIT_STORAGE_URI", "TRUSTED_PROXIES")}
    env.update(MARKETPLACE_INSTANCE=str(tmp_path), PYTHONUNBUFFERED="1", **extra)
    return env


def _get(url: str, headers: dict | None = None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def test_make_run_logs_a_500_with_traceback_and_request_id_after_migrating_in_process(tmp_path):
    """scripts/dev_server.py (make run) migrates in its own process, then serves: the 500
    must still reach the log, with the traceback and the id the page shows."""
    subprocess.run([str(ROOT / "scripts/secret_key.sh")], env=_clean_env(tmp_path), check=True,
                   capture_output=True)
    port = _free_port()
    log_path = tmp_path / "stderr.log"
    env = _clean_env(tmp_path, PORT=str(port), SEARCH_WORKER="off")
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, str(ROOT / "scripts/dev_server.py")], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=log_file)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    status, _h, _b = _get(f"http://127.0.0.1:{port}/about")
                    break
                except (urllib.error.URLError, ConnectionError):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail("dev_server.py did not start:\n" + log_path.read_text())
                    time.sleep(0.3)
            assert status == 200
            # Break the database under the running site: the home page's query now fails.
            con = sqlite3.connect(tmp_path / "marketplace.db")
            con.execute("DROP TABLE items")
            con.commit()
            con.close()
            status, headers, body = _get(f"http://127.0.0.1:{port}/", {REQUEST_ID_HEADER: "probe-500-a1b2c3"})
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    log = log_path.read_text()
    assert status == 500
    assert headers[REQUEST_ID_HEADER] == "probe-500-a1b2c3"
    assert "probe-500-a1b2c3" in body and "Traceback" not in body and "no such table" not in body
    lines = [ln for ln in log.splitlines() if "unhandled error" in ln]
    assert len(lines) == 1, "the 500 was not logged:\n" + log
    line = lines[0]
    assert "ERROR marketplace.errors [probe-500-a1b2c3] unhandled error: GET / user=None" in line
    assert "Traceback (most recent call last)" in log and "no such table: items" in log
    # Alembic logged its steps through the same configuration, before the app served.
    assert "alembic.runtime.migration [-] Running upgrade" in log


@pytest.fixture
def prod_app(tmp_path):
    """An app that shows the 500 page, as in production (tests normally re-raise)."""

    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'test.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        UPLOAD_DIR = str(tmp_path / "uploads")
        PROPAGATE_UNHANDLED = False

    app = create_app(Cfg)
    app.instance_path = str(tmp_path)
    with app.app_context():
        db.create_all()

    def boom():
        raise RuntimeError("kaput")

    def refuse(status: int):
        # A write, then a refusal nobody catches: the handler must roll the write back.
        db.session.add(Organisation(name="Half written", slug="half-written", kind="company",
                                    description="", description_html=""))
        db.session.flush()
        raise ServiceError("Secret plans cannot be filed twice.", status)

    app.add_url_rule("/probe/boom", view_func=boom)
    app.add_url_rule("/probe/refuse/<int:status>", view_func=refuse, methods=["POST"])
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_500_page_and_json_show_the_request_id_that_is_logged(prod_app, caplog):
    client = prod_app.test_client()
    with caplog.at_level(logging.INFO, logger="marketplace"):
        r = client.get("/probe/boom")
    rid = r.headers[REQUEST_ID_HEADER]
    assert r.status_code == 500 and len(rid) == 32
    assert f"quote the reference <code class=\"request-id\">{rid}</code>" in r.get_data(as_text=True)
    assert "kaput" not in r.get_data(as_text=True)
    rec = next(rec for rec in caplog.records if rec.name == "marketplace.errors")
    assert rec.levelno == logging.ERROR and rec.exc_info and "kaput" in str(rec.exc_info[1])
    assert rec.getMessage() == "unhandled error: GET /probe/boom user=None"
    j = client.get("/probe/boom", headers={"Accept": "application/json", REQUEST_ID_HEADER: "lb-42.x"})
    assert j.status_code == 500 and j.json["request_id"] == "lb-42.x" == j.headers[REQUEST_ID_HEADER]


@pytest.mark.parametrize("incoming", ["", "x" * 200, "<script>", "a b", "-starts-with-dash", "ünïcode"])
def test_an_insane_incoming_request_id_is_replaced(client, incoming):
    r = client.get("/about", headers={REQUEST_ID_HEADER: incoming} if incoming else {})
    rid = r.headers[REQUEST_ID_HEADER]
    assert rid != incoming and len(rid) == 32 and int(rid, 16) >= 0


def test_the_request_id_is_on_every_log_line_of_the_request(app, client):
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    config = logging_config()
    filt = config["filters"]["request_id"]["()"]()
    handler.addFilter(filt)
    logger = logging.getLogger("marketplace")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        client.get("/nothing-here", headers={REQUEST_ID_HEADER: "trace-me-123"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert records and {r.request_id for r in records} == {"trace-me-123"}
    messages = [r.getMessage() for r in records]
    assert messages[0] == "denied 404: GET (no route) user=None"
    assert messages[-1].startswith("GET (no route) 404 ")


@pytest.mark.parametrize("status,expected_status,expected_message", [
    (409, 409, "Secret plans cannot be filed twice."),
    (403, 403, "Secret plans cannot be filed twice."),
    (404, 404, "There is nothing here, or you may not see it."),  # never confirms what exists
    (500, 400, "Secret plans cannot be filed twice."),  # a refusal is the caller's 4xx, never a 500
])
def test_an_escaped_service_refusal_is_a_4xx_with_its_message_and_nothing_written(
        prod_app, caplog, status, expected_status, expected_message):
    client = prod_app.test_client()
    with caplog.at_level(logging.INFO, logger="marketplace"):
        page = client.post(f"/probe/refuse/{status}")
        api = client.post(f"/probe/refuse/{status}", headers={"Accept": "application/json"})
    assert page.status_code == expected_status and expected_message in page.get_data(as_text=True)
    assert api.status_code == expected_status
    assert api.json == {"error": expected_message, "status": expected_status}
    with prod_app.app_context():
        assert db.session.execute(select(func.count(Organisation.id))).scalar_one() == 0
    assert f"refused {expected_status}: POST /probe/refuse/<int:status> user=None" in caplog.text
    assert "Secret plans" not in caplog.text  # the message can quote what people wrote


def test_sign_ins_denials_and_governance_are_logged_without_secrets(app, client, auth, f, caplog):
    password = "correct-horse-battery"
    user = f.make_user(email="logme@example.test")
    org = f.make_org(owner=f.make_user())
    private = f.make_item(org, visibility="organisation", title="Confidential gripper")
    uid, item_id = user.id, private.id
    with caplog.at_level(logging.INFO, logger="marketplace"):
        auth.login("logme@example.test", "wrong-password-Sekr1t")
        auth.login("nobody@example.test", "another-Sekr1t-guess")
        auth.login("logme@example.test", password)
        assert client.get(f"/challenges/{item_id}").status_code == 404
        auth.logout()
        with app.app_context():
            accounts.set_site_role(db.session.get(type(user), uid), "moderator", actor_id=None)
    messages = [r.getMessage() for r in caplog.records if r.name != "marketplace.access"]
    assert f"sign-in failed: wrong password for user={uid}" in messages
    assert "sign-in failed: unknown account" in messages
    assert f"sign-in ok: user={uid}" in messages
    assert f"denied 404: GET /challenges/<int:item_id> user={uid}" in messages
    assert f"sign-out: user={uid}" in messages
    with app.app_context():
        row = db.session.execute(select(AuditEvent)).scalar_one()
    assert f"governance role.changed user:{uid} actor=None item=None audit_row={row.id}" in messages
    text = caplog.text
    for secret in ("Sekr1t", password, "logme@example.test", "nobody@example.test", "Confidential gripper"):
        assert secret not in text
    # Request lines name the route pattern, never the path (invitation links carry tokens).
    assert any(m.startswith("GET /challenges/<int:item_id> 404 ") for m in
               (r.getMessage() for r in caplog.records if r.name == "marketplace.access"))


def test_a_rolled_back_governance_action_is_not_logged(app, f, caplog):
    user = f.make_user()
    from marketplace import audit

    with caplog.at_level(logging.INFO, logger="marketplace.audit"):
        audit.record("role.changed", "user", user.id)
        db.session.rollback()
        audit.record("role.granted", "user", user.id)
        db.session.commit()
    assert [r.getMessage().split()[1] for r in caplog.records] == ["role.granted"]
