"""`flask worker` (marketplace/jobs.py): one command runs every background job kind, and
several workers at once do each job exactly once.

On SQLite: one pass of `flask worker --once` drains the search outbox, sends the mail,
delivers the webhooks and runs the periodic jobs. On PostgreSQL (TEST_DATABASE_URL, started
by `make test`): four workers in threads with their own connections, then three `flask
worker` processes started before the jobs exist, share N mails and M webhook deliveries, and
every one is sent exactly once; the Whoosh writer's advisory lock lets one host write."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import func, select

from marketplace import create_app
from marketplace.config import TestingConfig
from marketplace.extensions import db
from marketplace.jobs import KINDS, SearchWriterGuard, Worker
from marketplace.models import OutgoingMail, SearchOutbox, Webhook, WebhookDelivery, utcnow

from .pg_support import ROOT, flask_env, fresh_database, migrate, url_text
from .test_webhooks import Receiver


def _queue_mails(n: int, prefix: str = "r") -> None:
    from marketplace.mail.outbox import queue_text

    for i in range(n):
        queue_text(f"{prefix}{i}@example.test", f"Message {i}", f"Body {i}")
    db.session.commit()


def _queue_deliveries(org_id: int, url: str, n: int) -> None:
    hook = Webhook(org_id=org_id, url=url, events="idea.submitted", secret="s" * 32)
    db.session.add(hook)
    db.session.flush()
    now = utcnow()
    for i in range(n):
        db.session.add(WebhookDelivery(webhook_id=hook.id, event="idea.submitted",
                                       payload=json.dumps({"n": i}), next_attempt_at=now))
    db.session.commit()


# --------------------------------------------------------------------------- SQLite, one worker


def test_one_pass_runs_every_kind(app, f, runner):
    mailman = app.extensions["mailman"]
    mailman.outbox = []
    owner = f.make_user()
    org = f.make_org(owner=owner)
    f.make_item(org, kind="failure", visibility="public", title="Worker indexed me")
    assert db.session.execute(select(func.count(SearchOutbox.id))).scalar() > 0  # no index yet: jobs wait
    _queue_mails(3)
    with Receiver() as receiver:
        _queue_deliveries(org.id, receiver.url, 2)
        result = runner.invoke(args=["worker", "--once"])
        assert result.exit_code == 0, result.output
        assert len(receiver.requests) == 2
    assert "search: " in result.output and "mail: 3" in result.output and "webhooks: 2" in result.output
    assert "periodic: " in result.output
    assert db.session.execute(select(func.count(SearchOutbox.id))).scalar() == 0
    assert len(mailman.outbox) == 3
    result = runner.invoke(args=["search", "verify"])
    assert result.exit_code == 0, result.output


def test_kinds_are_chosen_by_name(app, runner):
    r = runner.invoke(args=["worker", "--once", "--only", "mail", "--only", "webhooks"])
    assert r.exit_code == 0 and r.output.strip() == "mail: 0, webhooks: 0", r.output
    r = runner.invoke(args=["worker", "--once", "--without", "search", "--without", "periodic"])
    assert r.exit_code == 0 and r.output.strip() == "mail: 0, webhooks: 0", r.output
    r = runner.invoke(args=["worker", "--once", "--only", "cron"])
    assert r.exit_code == 2 and "'cron' is not a job kind" in r.output and "search, mail, webhooks, periodic" in r.output
    r = runner.invoke(args=["worker", "--once", "--only", "mail", "--without", "mail"])
    assert r.exit_code == 2 and "no job kind left" in r.output


def test_a_failing_kind_does_not_stop_the_others(app, f, monkeypatch):
    from marketplace.mail import worker as mail_worker

    def broken(*a, **kw):
        raise RuntimeError("mail server exploded")

    monkeypatch.setattr(mail_worker, "send_pending", broken)
    owner = f.make_user()
    org = f.make_org(owner=owner)
    with Receiver() as receiver:
        _queue_deliveries(org.id, receiver.url, 1)
        w = Worker(app, ["mail", "webhooks"])
        got = w.run_once(force=True)
    assert got == {"mail": 0, "webhooks": 1} and w.failures == {"mail": 1}


def test_a_failing_kind_backs_off_and_recovers(app, monkeypatch):
    """Like the index writer `flask worker` replaced: a kind that keeps failing waits longer
    before each next round (interval x 2, 4, ... at most 60 s); one success resets it."""
    from marketplace.mail import worker as mail_worker

    calls, mended = [], []

    def broken(*a, **kw):
        calls.append(1)
        if not mended:
            raise RuntimeError("mail server exploded")
        return {"sent": 0}

    monkeypatch.setattr(mail_worker, "send_pending", broken)
    w = Worker(app, ["mail"], interval=0.5)
    assert [w.backoff(k) for k in (0, 1, 2, 3, 7, 20)] == [0.0, 1.0, 2.0, 4.0, 32.0, 32.0]
    assert Worker(app, ["mail"], interval=2.0).backoff(6) == 60.0
    assert w.run_once() == {"mail": 0} and w.streak == {"mail": 1} and len(calls) == 1
    assert w.run_once() == {}, "a failing kind is not retried before its back-off ends"
    assert w.run_once(force=True) == {"mail": 0} and w.streak == {"mail": 2} and w.failures == {"mail": 2}
    mended.append(1)
    assert w.run_once(force=True) == {"mail": 0} and w.streak == {"mail": 0} and w.failures == {"mail": 2}
    assert w.run_once() == {"mail": 0}, "after a success the kind runs again at once"


def test_a_failing_search_pass_counts_and_backs_off(app, f, monkeypatch):
    """The search loop logs and swallows a failing pass; the worker still counts it (so
    `flask worker --once` exits 1) and backs off, and the jobs stay queued for the next pass."""
    from marketplace.search import worker as search_worker

    owner = f.make_user()
    f.make_item(f.make_org(owner=owner), kind="failure", visibility="public", title="Queued while broken")
    real = search_worker.drain

    def broken(*a, **kw):
        raise RuntimeError("index disk exploded")

    monkeypatch.setattr(search_worker, "drain", broken)
    w = Worker(app, ["search"], interval=0.5)
    assert w.run_once() == {"search": 0} and w.failures == {"search": 1} and w.streak == {"search": 1}
    assert w.run_once() == {}
    assert db.session.execute(select(func.count(SearchOutbox.id))).scalar() > 0
    monkeypatch.setattr(search_worker, "drain", real)
    got = w.run_once(force=True)
    assert got["search"] > 0 and w.streak == {"search": 0}
    assert db.session.execute(select(func.count(SearchOutbox.id))).scalar() == 0
    w.close()


def test_the_worker_stops_on_sigterm(tmp_path):
    """A real `flask worker` process (SQLite): it starts, and SIGTERM ends it cleanly."""
    db_url = f"sqlite:///{tmp_path / 'w.db'}"
    env = flask_env(db_url, tmp_path)
    up = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
    assert up.returncode == 0, up.stderr
    proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "worker", "--interval", "0.2"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "worker: running search, mail, webhooks, periodic" in line, line
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "worker: stopped" in err, err


# --------------------------------------------------------------------------- PostgreSQL, many workers


@pytest.fixture(scope="module")
def pg_db(unavailable, tmp_path_factory):
    with fresh_database(unavailable, "worker") as url:
        migrate(url, tmp_path_factory.mktemp("pg-worker-migrate"))
        yield url


@pytest.fixture
def pg_app(pg_db, tmp_path):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = url_text(pg_db)
        SQLALCHEMY_ENGINE_OPTIONS = {"pool_size": 10, "max_overflow": 10}
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        UPLOAD_DIR = str(tmp_path / "uploads")

    app = create_app(Cfg)
    app.instance_path = str(tmp_path)
    with app.app_context():
        for model in (OutgoingMail, WebhookDelivery, Webhook):
            db.session.execute(model.__table__.delete())
        db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.mark.postgres
def test_four_worker_threads_do_each_job_once(pg_app):
    from tests.factories import Factories

    app = pg_app
    mailman = app.extensions["mailman"]
    mailman.outbox = []
    n_mail, n_hooks = 120, 60
    with Receiver() as receiver:
        with app.app_context():
            f = Factories()
            org = f.make_org(owner=f.make_user())
            _queue_mails(n_mail)
            _queue_deliveries(org.id, receiver.url, n_hooks)
        workers = [Worker(app, ["mail", "webhooks"]) for _ in range(4)]
        start = threading.Barrier(len(workers))
        errors: list[BaseException] = []

        def run(w):
            try:
                start.wait()
                while any(w.run_once(force=True).values()):
                    pass
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=run, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors and not any(w.failures for w in workers)
        ids = [int(r["headers"]["X-Marketplace-Delivery"]) for r in receiver.requests]
    assert len(ids) == n_hooks and len(set(ids)) == n_hooks  # each delivery sent once
    assert sorted(m.to[0] for m in mailman.outbox) == sorted(f"r{i}@example.test" for i in range(n_mail))
    with app.app_context():
        rows = db.session.execute(select(OutgoingMail.status, OutgoingMail.attempts)).all()
        assert rows and all(r == ("sent", 1) for r in rows)
        hooks = db.session.execute(select(WebhookDelivery.status, WebhookDelivery.attempts)).all()
        assert all(h == ("delivered", 1) for h in hooks)
    assert sum(w.done.get("mail", 0) for w in workers) == n_mail
    assert sum(w.done.get("webhooks", 0) for w in workers) == n_hooks


@pytest.mark.postgres
def test_three_worker_processes_send_each_mail_once(pg_db, pg_app, tmp_path):
    n = 300
    procs, folders = [], []
    for i in range(3):
        inst = tmp_path / f"host{i}"
        folders.append(inst / "mail")
        env = flask_env(pg_db, inst, MAIL_BACKEND="file", MAIL_FILE_PATH=str(inst / "mail"))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "app", "worker", "--only", "mail", "--interval", "0.1"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    try:
        for p in procs:  # every worker is polling before the first mail exists
            line = p.stderr.readline()
            assert "worker: running mail" in line, line
        with pg_app.app_context():
            _queue_mails(n, prefix="p")
            deadline = time.time() + 120
            while db.session.execute(select(func.count(OutgoingMail.id)).where(OutgoingMail.status != "sent")).scalar():
                assert time.time() < deadline, "the workers did not send everything in time"
                time.sleep(0.2)
                db.session.rollback()
            claimed_by = db.session.execute(select(OutgoingMail.claimed_by).distinct()).scalars().all()
            attempts = set(db.session.execute(select(OutgoingMail.attempts)).scalars())
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
    files = [fn for folder in folders if folder.exists() for fn in folder.glob("*.eml")]
    recipients = [message_from_bytes(fn.read_bytes())["To"] for fn in files]
    assert len(recipients) == n and len(set(recipients)) == n  # every mail once, none twice
    assert attempts == {1}
    # The work was shared: more than one process sent mail (each claims one row at a time).
    assert len(claimed_by) >= 2, claimed_by
    assert sum(1 for folder in folders if folder.exists() and any(folder.glob("*.eml"))) >= 2


@pytest.mark.postgres
def test_one_search_writer_per_database_on_postgresql(pg_app):
    from marketplace.search import get_backend

    with pg_app.app_context():
        backend = get_backend(pg_app)
        first, second = SearchWriterGuard(pg_app, backend), SearchWriterGuard(pg_app, backend)
        assert first.needed and second.needed
        try:
            assert first.held() and first.held()   # kept while its connection lives
            assert not second.held()               # another host's worker leaves search alone
            first.release()                        # the holder stops (or its connection dies)
            assert second.held()                   # and another worker takes over
        finally:
            first.release()
            second.release()


def test_the_guard_is_not_needed_on_sqlite_or_for_a_shared_backend(app):
    from marketplace.search import get_backend

    class Shared:
        shared_across_hosts = True

    with app.app_context():
        assert not SearchWriterGuard(app, get_backend(app)).needed
        assert not SearchWriterGuard(app, Shared()).needed
    assert list(KINDS) == ["search", "mail", "webhooks", "periodic"]
