"""The hardening of issue 15 on PostgreSQL: the database rate-limit storage increments
atomically under concurrency (INSERT ... ON CONFLICT DO UPDATE ... RETURNING), a value the
database refuses (DataError) is a 400 after a rollback, and server-side sessions end at
sign-out. Needs TEST_DATABASE_URL (``make test`` starts a server); without it these tests
skip with the reason, except under CI=true, where they fail."""
from __future__ import annotations

import os
import secrets
import threading

import pytest
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url

from marketplace import create_app
from marketplace.config import TestingConfig
from marketplace.extensions import db, limiter
from marketplace.models import User, UserSession
from marketplace.ratelimit import DatabaseStorage

from .factories import PASSWORD, Factories

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_app(unavailable, tmp_path_factory):
    raw = os.environ.get("TEST_DATABASE_URL")
    if not raw:
        unavailable("TEST_DATABASE_URL is not set: start a server with `scripts/pg.sh start` "
                    "and export its URL, or run `make test`")
    base = make_url(raw)
    if not base.drivername.startswith("postgresql"):
        unavailable(f"TEST_DATABASE_URL is not a PostgreSQL URL ({base.drivername})")
    if base.drivername == "postgresql":
        base = base.set(drivername="postgresql+psycopg")
    name = f"mk_harden_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # noqa: BLE001 - any connection problem means "no server"
        admin.dispose()
        unavailable(f"cannot create a database on TEST_DATABASE_URL: {e}")
    tmp = tmp_path_factory.mktemp("pg-harden")

    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = base.set(database=name).render_as_string(hide_password=False)
        SQLALCHEMY_ENGINE_OPTIONS = {"pool_size": 12, "max_overflow": 4}
        SEARCH_INDEX_DIR = str(tmp / "search")
        UPLOAD_DIR = str(tmp / "uploads")
        RATELIMIT_ENABLED = True
        RATELIMIT_STORAGE_URI = "database://"
        PROPAGATE_UNHANDLED = False

    app = create_app(Cfg)
    app.instance_path = str(tmp)
    with app.app_context():
        db.create_all()
        Factories().make_user(email="alice@example.test")

    @app.post("/probe/too-big")
    def too_big():
        db.session.add(User(email="half@example.test", display_name="Half", password_hash="x"))
        db.session.flush()
        # users.session_version is a 32-bit integer: PostgreSQL refuses this (a DataError).
        db.session.execute(update(User).values(session_version=2**40))
        return "unreachable"

    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_the_database_storage_is_atomic_on_postgresql(pg_app):
    assert isinstance(limiter.storage, DatabaseStorage)
    seen: list[int] = []
    lock = threading.Lock()

    def hit():
        with pg_app.app_context():
            got = [limiter.storage.incr("pg-shared", 60) for _ in range(25)]
        with lock:
            seen.extend(got)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 201))
    with pg_app.app_context():
        assert limiter.storage.get("pg-shared") == 200
        limiter.storage.clear("pg-shared")
        assert limiter.storage.get("pg-shared") == 0


def test_a_data_error_is_a_400_after_a_rollback(pg_app):
    r = pg_app.test_client().post("/probe/too-big")
    assert r.status_code == 400 and "out of range" in r.text
    with pg_app.app_context():
        assert db.session.execute(select(User).where(User.email == "half@example.test")).first() is None


def test_sign_out_ends_the_session_on_postgresql(pg_app):
    c = pg_app.test_client()
    assert c.post("/auth/login", data={"email": "alice@example.test", "password": PASSWORD}).status_code == 302
    stolen = c.get_cookie("session").value
    assert c.post("/auth/logout").status_code == 302
    thief = pg_app.test_client()
    thief.set_cookie("session", stolen)
    assert thief.get("/auth/account").status_code == 302
    with pg_app.app_context():
        row = db.session.execute(select(UserSession)).scalars().one()
        assert row.revoked_at is not None
