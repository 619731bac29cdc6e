"""`flask backup create PATH` and `flask backup restore PATH`: the database, the uploads and
the audit chain head, copied online and put back whole.

**What a backup is.** A folder (PATH, which must not exist yet) holding:

- ``database.sqlite3`` (SQLite: a copy made by SQLite's online backup API, consistent while
  the site keeps writing) or ``database.pgdump`` (PostgreSQL: ``pg_dump --format=custom``
  run on a snapshot exported from our own REPEATABLE READ transaction, so the dump and the
  figures below describe the very same moment);
- ``uploads/``: every file of the upload store (marketplace/storage.py, local or S3),
  copied *after* the database snapshot. A file is written to the store before the row that
  names it is committed and is never overwritten, so every file the copied rows name is
  there (files of later uploads may be too; they are harmless);
- ``manifest.json``: format, time, database kind, migration revision, the row count of
  every table, the audit chain head (hash, row id, rows) and each upload's size and SHA-256,
  all read from the snapshot itself.

The folder is written as ``PATH.partial`` and renamed to PATH when complete: a backup that
was interrupted never looks finished.

**Restoring** refuses a database or upload store that holds anything (beyond the empty
schema and bookkeeping rows) unless ``--force``, which replaces both. It checks every upload
against its SHA-256 before touching anything, loads the database (SQLite's backup API the
other way round; ``pg_restore --clean --if-exists --single-transaction``), writes the uploads,
then proves the result: every table's row count equals the manifest's, the audit chain
verifies and ends at the recorded head, and the search index, rebuilt from the restored
rows, verifies (nothing missing, extra or stale).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from glob import glob
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from .extensions import db

FORMAT = 1
MANIFEST = "manifest.json"
# Rows that say nothing about the site's content: an "empty" database may have them.
BOOKKEEPING = {"alembic_version", "database_identity", "rate_limit_counters"}


class BackupError(RuntimeError):
    """A backup or restore that cannot go on; the message says why and what to do."""


@dataclass
class RestoreReport:
    tables: int = 0
    rows: int = 0
    uploads: int = 0
    audit_rows: int = 0
    audit_head: str = ""
    documents: int = 0
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def _dialect() -> str:
    name = db.engine.dialect.name
    if name not in ("sqlite", "postgresql"):  # pragma: no cover - the site runs on these two only
        raise BackupError(f"backups support SQLite and PostgreSQL, not {name}")
    return name


def _sqlite_path() -> Path:
    database = db.engine.url.database
    if not database or database == ":memory:":
        raise BackupError("the SQLite database is in memory: there is nothing on disk to back up")
    return Path(database)


def pg_tool(name: str) -> str:
    """pg_dump / pg_restore: from PG_BINDIR, else the newest /usr/lib/postgresql/*/bin (a newer
    client reads older servers), else PATH."""
    candidates = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]) / name)
    candidates += [Path(d) / name for d in sorted(glob("/usr/lib/postgresql/*/bin"),
                                                  key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0,
                                                  reverse=True)]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which(name)
    if found:
        return found
    raise BackupError(f"{name} was not found: install Debian's postgresql-client (or set PG_BINDIR)")


def _libpq(url) -> tuple[str, dict]:
    """A libpq connection URL for pg_dump/pg_restore, and the environment carrying the password
    (never on the command line, where `ps` shows it)."""
    url = make_url(url) if isinstance(url, str) else url
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _run(cmd: list[str], env: dict) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-8:])
        raise BackupError(f"{Path(cmd[0]).name} failed (exit {done.returncode}):\n{tail}")


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _snapshot_facts(conn) -> dict:
    """Row counts of every table, the migration revision and the audit head, read on `conn`
    (inside the snapshot being copied)."""
    names = sorted(inspect(conn).get_table_names())
    counts = {t: conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one() for t in names}
    revision = None
    if "alembic_version" in names:
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    head = {"hash": None, "row": None, "rows": counts.get("audit_events", 0)}
    if "audit_events" in names:
        last = conn.execute(text("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1")).first()
        if last is not None:
            head.update(row=last[0], hash=last[1])
    return {"tables": counts, "revision": revision, "audit_head": head}


# --------------------------------------------------------------------------- create


def create(path: str | os.PathLike, progress=print) -> dict:
    """Write a backup folder at `path` (see the module docstring); returns the manifest."""
    from .storage import get_storage

    final = Path(path)
    if final.exists():
        raise BackupError(f"{final} already exists: give a new folder (backups are never written over)")
    partial = final.with_name(final.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # left by an interrupted backup
    partial.mkdir(parents=True)
    os.chmod(partial, 0o700)  # the copy holds everything the site holds
    try:
        dialect = _dialect()
        if dialect == "sqlite":
            facts = _copy_sqlite(partial / "database.sqlite3")
            dbfile = "database.sqlite3"
        else:
            facts = _dump_postgres(partial / "database.pgdump")
            dbfile = "database.pgdump"
        progress(f"database: {sum(facts['tables'].values())} rows in {len(facts['tables'])} tables")
        store = get_storage()
        uploads = {}
        (partial / "uploads").mkdir()
        for name in store.names():
            target = partial / "uploads" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with store.open(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            uploads[name] = {"size": target.stat().st_size, "sha256": _sha256_file(target)}
        progress(f"uploads: {len(uploads)} files from {store.describe()}")
        manifest = {"format": FORMAT, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "database": dialect, "database_file": dbfile,
                    "database_sha256": _sha256_file(partial / dbfile), **facts, "uploads": uploads}
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        os.replace(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return manifest


def _copy_sqlite(target: Path) -> dict:
    source = _sqlite_path()
    if not source.exists():
        raise BackupError(f"the SQLite database {source} does not exist")
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=1024)  # online: other processes keep writing meanwhile
    finally:
        src.close()
        dst.close()
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{target}")
    try:
        with engine.connect() as conn:
            return _snapshot_facts(conn)
    finally:
        engine.dispose()


def _dump_postgres(target: Path) -> dict:
    url, env = _libpq(db.engine.url)
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            facts = _snapshot_facts(conn)
            # pg_dump reads the same snapshot while this transaction stays open.
            _run([pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                  f"--snapshot={snapshot}", f"--file={target}", f"--dbname={url}"], env)
    return facts


# --------------------------------------------------------------------------- restore


def _content_rows() -> dict[str, int]:
    """Rows per table of the current database, bookkeeping tables left out (a missing table
    counts as empty)."""
    with db.engine.connect() as conn:
        names = inspect(conn).get_table_names()
        return {t: conn.execute(text(f'SELECT COUNT(*) FROM "{t}"')).scalar_one()
                for t in names if t not in BOOKKEEPING}


def read_manifest(path: str | os.PathLike) -> tuple[Path, dict]:
    folder = Path(path)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        raise BackupError(f"{folder} is not a finished backup (no {MANIFEST})") from None
    except ValueError as e:
        raise BackupError(f"{folder / MANIFEST} is damaged: {e}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{folder}: backup format {manifest.get('format')!r}, this version reads {FORMAT}")
    return folder, manifest


def check_backup(folder: Path, manifest: dict) -> None:
    """Every file of the backup is there with its recorded SHA-256."""
    dbfile = folder / manifest["database_file"]
    if not dbfile.is_file() or _sha256_file(dbfile) != manifest["database_sha256"]:
        raise BackupError(f"{dbfile.name} is missing or damaged (its SHA-256 differs from the manifest's)")
    for name, meta in manifest["uploads"].items():
        p = folder / "uploads" / name
        if not p.is_file() or _sha256_file(p) != meta["sha256"]:
            raise BackupError(f"upload {name} is missing or damaged in the backup")


def restore(path: str | os.PathLike, *, force: bool = False, progress=print) -> RestoreReport:
    """Restore the backup at `path` into the app's database and upload store, then prove it
    (see the module docstring). Raises BackupError, leaving the target untouched, when the
    backup is damaged, of another database kind, or the target is not empty without force."""
    from . import audit
    from .search.cli import rebuild_index, verify_index
    from .storage import get_storage

    folder, manifest = read_manifest(path)
    dialect = _dialect()
    if manifest["database"] != dialect:
        raise BackupError(f"this backup is of a {manifest['database']} database; the site uses {dialect}")
    check_backup(folder, manifest)
    store = get_storage()
    existing = {t: n for t, n in _content_rows().items() if n}
    stored = next(iter(store.names()), None)
    if (existing or stored is not None) and not force:
        what = []
        if existing:
            what.append(f"the database has rows ({', '.join(f'{t}: {n}' for t, n in sorted(existing.items())[:5])}"
                        + (", ..." if len(existing) > 5 else "") + ")")
        if stored is not None:
            what.append(f"the upload store ({store.describe()}) has files")
        raise BackupError("refusing to restore over a site that is not empty: " + "; ".join(what)
                          + ". Restore into an empty database and store, or use --force to replace them.")
    db.session.remove()
    if dialect == "sqlite":
        _restore_sqlite(folder / manifest["database_file"])
    else:
        _restore_postgres(folder / manifest["database_file"])
    progress("database: restored")
    # Written by sqlite3 / pg_restore, not through the app's engine: say so to the page caches.
    from . import pagecache

    pagecache.bump_generation()
    if force:
        for name in list(store.names()):
            store.delete(name)
    for name in manifest["uploads"]:
        with open(folder / "uploads" / name, "rb") as fh:
            store.write(name, fh.read())
    progress(f"uploads: {len(manifest['uploads'])} files written to {store.describe()}")

    report = RestoreReport(uploads=len(manifest["uploads"]))
    # The proof: counts, uploads, audit chain, search index.
    with db.engine.connect() as conn:
        facts = _snapshot_facts(conn)
    diff = {t: (n, facts["tables"].get(t)) for t, n in manifest["tables"].items() if facts["tables"].get(t) != n}
    if diff:
        raise BackupError("the restored database differs from the backup's figures: "
                          + ", ".join(f"{t}: {a} expected, {b} found" for t, (a, b) in sorted(diff.items())))
    report.tables, report.rows = len(facts["tables"]), sum(facts["tables"].values())
    for name, meta in manifest["uploads"].items():
        with store.open(name) as fh:
            if hashlib.sha256(fh.read()).hexdigest() != meta["sha256"]:
                raise BackupError(f"upload {name} differs from the backup after it was written")
    result = audit.verify_chain()
    if not result.ok:
        raise BackupError(f"the restored audit chain does not verify: {result.problem}")
    want = manifest["audit_head"]["hash"] or audit.GENESIS
    if result.head != want or result.checked != manifest["audit_head"]["rows"]:
        raise BackupError(f"the restored audit chain ends at {result.head} after {result.checked} rows; the "
                          f"backup recorded {want} after {manifest['audit_head']['rows']}")
    report.audit_rows, report.audit_head = result.checked, result.head
    progress(f"audit chain: {result.checked} rows verified, head {result.head}")
    info = rebuild_index(procs=1)
    v = verify_index()
    if v["missing"] or v["extra"] or v["stale"]:
        raise BackupError(f"the rebuilt search index does not match the database: {len(v['missing'])} missing, "
                          f"{len(v['extra'])} extra, {len(v['stale'])} stale")
    report.documents = v["documents"]
    progress(f"search index: rebuilt and verified, {info['documents']} documents")
    return report


def _restore_sqlite(source: Path) -> None:
    target = _sqlite_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    db.engine.dispose()  # no pooled connection may hold the old content
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target, timeout=30)
    try:
        src.backup(dst)  # replaces the whole database, in one transaction on the target
    finally:
        src.close()
        dst.close()
    db.engine.dispose()


def _restore_postgres(source: Path) -> None:
    url, env = _libpq(db.engine.url)
    db.engine.dispose()
    _run([pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
          "--single-transaction", "--exit-on-error", f"--dbname={url}", str(source)], env)
    db.engine.dispose()
