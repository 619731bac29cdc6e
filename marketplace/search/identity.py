"""Which database a search index was built from.

An index holds documents of one database. Pointing the app at another database (a
changed DATABASE_URL, a database dropped and created again at the same URL, a test
database) while the index folder stays must never show the other database's hits. So:

* the database has a random identity (`database_identity`, created by the migration, or
  here on first use for databases made with ``create_all``);
* every index folder records the identity and the URL (without its password) of the
  database it was built from, in ``DATABASE`` (JSON) beside Whoosh's files;
* the writer compares the two before each pass and rebuilds on a mismatch, saying so in
  the log; searches refuse to serve from an index of another database meanwhile.

An index folder without the record (built before indexes recorded it) counts as a
mismatch: it is rebuilt once.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

from sqlalchemy import URL, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from ..extensions import db
from ..models import DatabaseIdentity, utcnow

log = logging.getLogger(__name__)

STAMP_FILE = "DATABASE"


def safe_url(engine=None) -> str:
    """The database URL without its password (passwords never reach files or logs)."""
    url = (engine or db.engine).url
    if url.password is not None:
        url = URL.create(url.drivername, username=url.username, host=url.host, port=url.port,
                         database=url.database, query=url.query)
    return url.render_as_string(hide_password=False)


def database_id(engine=None) -> str | None:
    """This database's random identity, created on first use; None when the database has
    no `database_identity` table yet (not migrated)."""
    engine = engine or db.engine
    try:
        with engine.connect() as conn:
            token = conn.execute(select(DatabaseIdentity.token).where(DatabaseIdentity.id == 1)).scalar()
        if token is not None:
            return token
        try:
            with engine.begin() as conn:
                conn.execute(insert(DatabaseIdentity).values(id=1, token=secrets.token_hex(16), created_at=utcnow()))
        except IntegrityError:
            pass  # another process created it first: read theirs
        with engine.connect() as conn:
            return conn.execute(select(DatabaseIdentity.token).where(DatabaseIdentity.id == 1)).scalar()
    except (OperationalError, ProgrammingError):
        log.warning("search: the database has no identity table yet (run `flask db upgrade`)")
        return None


def fingerprint(engine=None) -> dict | None:
    """{"database_id", "url"} of the app's database, or None when it cannot be told."""
    token = database_id(engine)
    if token is None:
        return None
    return {"database_id": token, "url": safe_url(engine)}


def read_stamp(folder: str | os.PathLike) -> dict | None:
    try:
        data = json.loads((Path(folder) / STAMP_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_stamp(folder: str | os.PathLike, fp: dict) -> None:
    path = Path(folder) / STAMP_FILE
    tmp = path.with_name(f"{STAMP_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"database_id": fp["database_id"], "url": fp["url"],
                               "stamped_at": utcnow().isoformat(timespec="seconds")}) + "\n")
    os.replace(tmp, path)


def same_database(stamp: dict | None, fp: dict | None) -> bool:
    """True when the index stamp names this database (both identity and URL)."""
    if stamp is None or fp is None:
        return False
    return stamp.get("database_id") == fp["database_id"] and stamp.get("url") == fp["url"]


def describe(stamp: dict | None) -> str:
    if stamp is None:
        return "an unrecorded database (the index predates database records)"
    return f"database {str(stamp.get('database_id', '?'))[:8]}… at {stamp.get('url', '?')}"
