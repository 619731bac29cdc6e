"""Apps for each search backend, so the search suite runs against all of them.

* ``fast`` / ``whoosh``: the Whoosh backend with each query engine, on SQLite in a temporary
  folder (as conftest's `app`);
* ``postgres``: SEARCH_BACKEND=postgres on a fresh database of the PostgreSQL server the test
  suite starts (TEST_DATABASE_URL, set by `make test` through scripts/pg.sh). Each app gets
  its own database, copied from a template made once per test process with the models'
  tables (``CREATE DATABASE ... TEMPLATE``, much faster than creating every table again),
  and dropped when the app is disposed. Without a server the PostgreSQL variants skip with
  the reason, and fail under CI=true (conftest's `unavailable`).
"""
from __future__ import annotations

import os
import secrets

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from .factories_foundation import dispose, make_app

# Every backend (and Whoosh query engine) the search suite runs against.
SEARCH_VARIANTS = ["fast", "whoosh", "postgres"]
BACKENDS = ["whoosh", "postgres"]

_template: dict = {}


def _server(unavailable):
    raw = os.environ.get("TEST_DATABASE_URL")
    if not raw:
        unavailable("TEST_DATABASE_URL is not set: the PostgreSQL search backend needs a server "
                    "(`make test` starts one; or `scripts/pg.sh start` and export its URL)")
    url = make_url(raw)
    if not url.drivername.startswith("postgresql"):
        unavailable(f"TEST_DATABASE_URL is not a PostgreSQL URL ({url.drivername})")
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def _admin(url):
    return create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")


def _template_db(url, tmp_dir) -> str:
    """A database holding the models' empty tables, made once per test process."""
    key = (url.render_as_string(hide_password=False), os.getpid())
    name = _template.get(key)
    if name is not None:
        return name
    name = f"mk_search_tmpl_{os.getpid()}_{secrets.token_hex(3)}"
    admin = _admin(url)
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    app = make_app(tmp_dir, SQLALCHEMY_DATABASE_URI=url.set(database=name).render_as_string(hide_password=False),
                   SQLALCHEMY_ENGINE_OPTIONS={"poolclass": NullPool})
    dispose(app)
    _template[key] = name
    return name


def drop_templates() -> None:
    """Drop the template databases this process made (session teardown)."""
    for (raw, pid), name in list(_template.items()):
        if pid != os.getpid():
            continue
        admin = _admin(make_url(raw))
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        del _template[(raw, pid)]


def make_search_app(variant: str, tmp_dir, unavailable=None, **overrides):
    """An app (tables created) for one search variant: "fast", "whoosh" or "postgres"."""
    if variant in ("fast", "whoosh"):
        return make_app(tmp_dir, SEARCH_ENGINE=variant, **overrides)
    if variant != "postgres":
        raise ValueError(variant)
    if unavailable is None:
        raise TypeError("the postgres variant needs the `unavailable` fixture")
    url = _server(unavailable)
    try:
        template = _template_db(url, tmp_dir / "template")
        name = f"mk_search_{os.getpid()}_{secrets.token_hex(4)}"
        admin = _admin(url)
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        admin.dispose()
    except Exception as e:  # noqa: BLE001 - any connection problem means "no server"
        unavailable(f"cannot create a database on TEST_DATABASE_URL: {e}")
    overrides.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_size": 10, "max_overflow": 10, "pool_pre_ping": True})
    app = make_app(tmp_dir, SEARCH_BACKEND="postgres",
                   SQLALCHEMY_DATABASE_URI=url.set(database=name).render_as_string(hide_password=False), **overrides)
    app.config["TEST_PG_DATABASE"] = name
    return app


def dispose_search_app(app) -> None:
    dispose(app)
    name = app.config.get("TEST_PG_DATABASE")
    if name:
        url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
        admin = _admin(url)
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


__all__ = ["BACKENDS", "SEARCH_VARIANTS", "dispose_search_app", "drop_templates", "make_search_app"]
