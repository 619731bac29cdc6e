"""PostgreSQL databases for tests outside tests/test_postgres.py: a fresh database on the
TEST_DATABASE_URL server (which `make test` starts with scripts/pg.sh), migrated by
`flask db upgrade` run for real, and dropped afterwards. Without a server the caller's
`unavailable` skips (or fails under CI=true)."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

ROOT = Path(__file__).resolve().parent.parent


def server_url(unavailable) -> URL:
    raw = os.environ.get("TEST_DATABASE_URL")
    if not raw:
        unavailable("TEST_DATABASE_URL is not set: start a server with `scripts/pg.sh start` "
                    "and export its URL, or run `make test`")
    base = make_url(raw)
    if not base.drivername.startswith("postgresql"):
        unavailable(f"TEST_DATABASE_URL is not a PostgreSQL URL ({base.drivername})")
    if base.drivername == "postgresql":
        base = base.set(drivername="postgresql+psycopg")
    return base


@contextmanager
def fresh_database(unavailable, label: str = "t"):
    """A new, empty database; yields its URL; dropped (forcibly) at the end."""
    base = server_url(unavailable)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"mk_{label}_{worker}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # noqa: BLE001 - any connection problem means "no server"
        admin.dispose()
        unavailable(f"cannot create a database on TEST_DATABASE_URL: {e}")
    try:
        yield base.set(database=name)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def url_text(url: URL) -> str:
    return url.render_as_string(hide_password=False)


def flask_env(url: URL | str, instance: Path, **extra: str) -> dict:
    """The environment of a `flask` subprocess on that database, everything else in `instance`."""
    env = dict(os.environ, DATABASE_URL=url if isinstance(url, str) else url_text(url),
               SECRET_KEY=secrets.token_urlsafe(32), MARKETPLACE_INSTANCE=str(instance),
               SEARCH_INDEX_DIR=str(instance / "search"), UPLOAD_DIR=str(instance / "uploads"),
               SEARCH_WORKER="off", MAIL_WORKER="off", FLASK_APP="app", LOG_LEVEL="WARNING")
    env.pop("FLASK_DEBUG", None)
    env.update(extra)
    return env


def migrate(url: URL, instance: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=ROOT,
                          env=flask_env(url, instance), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"flask db upgrade failed on PostgreSQL:\n{proc.stdout}\n{proc.stderr}"
