"""Full-text search: one Whoosh index over every kind of document, filtered by the
policy module's principals, kept in step with the database through an outbox (issue 5).

Modules:
  analysis        tokenizer, minimal stemmer, fast positional field, snippets
  schema          the Whoosh schema
  querylang       the search box's language (our parser; Whoosh's is never used)
  documents       SearchDoc and the registry of document types
  sources         built-in document types and the changes that reindex them
  outbox          session listeners writing index jobs in the same transaction
  worker          the single writer that applies the outbox (retries, parks failing jobs)
  identity        which database an index was built from
  health          the writer's reported state and the outbox backlog (/healthz, stats)
  backend         the backend interface; whoosh_backend and pg_backend implement it
  pg_backend      SEARCH_BACKEND=postgres: a table of the site's PostgreSQL database
                  (tsvector + GIN, principals as an indexed text[]), shared by every host
  whoosh_backend  the index folder, the writer lock, rebuilds; one of two query engines:
  whoosh_query    what a parsed query means, as Whoosh query objects (both engines run it)
  engine          SEARCH_ENGINE=fast: numpy over Whoosh's segment files
  whoosh_engine   SEARCH_ENGINE=whoosh: Whoosh's own Searcher, public API only
  whoosh_internals  the only module touching Whoosh's internals (checks its version): the
                  fast engine's readers and the fast rebuild's segment builder
  service         what the views call: search for a user, with snippets and facets
  views, cli      the page, the JSON endpoint, /admin/search, `flask search ...`

`init_app` wires the listeners and starts the writer as SEARCH_WORKER says:
"thread" (a background thread per web process, woken by each commit and polling every
second), "sync" (tests: applied right after each commit once an index exists, and before
every search), "off" (run `flask worker`, or `flask search apply --watch`, in one process
elsewhere; `make serve` starts `flask worker`).
Narrowing changes never wait for the writer: search filters them at query time.

An index built from another database is never served: searches find nothing until the
writer has rebuilt it (identity.py), and the first request of each web process logs it.
"""
from __future__ import annotations

import logging
import os
import threading
import time

from flask import Flask, current_app, has_app_context

from .documents import DocType, SearchDoc, register_dependents, register_doc_type
from ..workers import ThreadRuntime
from .outbox import Change, register_doc_source

log = logging.getLogger(__name__)

__all__ = ["Change", "DocType", "SearchDoc", "get_backend", "init_app", "register_dependents",
           "register_doc_source", "register_doc_type"]

_builtin_registered = False

# The writer's settings (environment variables of the same names override them):
SETTINGS = {
    "SEARCH_LAG_DEGRADED_SECONDS": 120.0,  # /healthz says "degraded" when a job waits longer
    "SEARCH_RETRY_BASE_SECONDS": 5.0,      # first back-off of a failed job; doubles per failure
    "SEARCH_RETRY_MAX_SECONDS": 900.0,     # longest back-off
    "SEARCH_MAX_ATTEMPTS": 6,              # failures before a job is parked
    "SEARCH_BATCH": 500,                   # jobs per index commit
    "SEARCH_REBUILD_BUILDER": "fast",      # "fast" (whoosh_internals.SegmentBuilder) or "whoosh" (Whoosh's writer)
}


class SearchRuntime(ThreadRuntime):
    """Per-app search state: the backend and the writer mode."""

    stopped_message = "search outbox: the writer thread had stopped; starting it again"

    def __init__(self, app: Flask, backend, mode: str):
        if mode not in ("thread", "sync", "off"):
            raise ValueError(f"SEARCH_WORKER must be thread, sync or off, not {mode!r}")
        super().__init__(app, mode)
        self.backend = backend
        self._fp: tuple[float, dict | None] | None = None   # (read at, identity.fingerprint())
        self._index_state: tuple[tuple, str] | None = None  # ((folder, database), state)
        self._state_lock = threading.Lock()

    def new_thread(self):
        from .worker import OutboxThread

        return OutboxThread(self.app, self.backend)

    def committed(self) -> None:
        """A commit wrote outbox rows."""
        if self.mode == "sync":
            # Until the first search creates the index, jobs simply wait: search() drains
            # the outbox before it reads, so this saves test suites that never search
            # from indexing every commit, and changes nothing any test can observe.
            if self.backend.has_index():
                self.apply_now()
        elif self.mode == "thread" and self._thread is not None:
            self._thread.wake.set()

    def database_fingerprint(self, max_age: float = 30.0) -> dict | None:
        """identity.fingerprint() of the app's database, re-read every `max_age` seconds
        (a database dropped and created again at the same URL gets a new identity)."""
        from . import identity

        got = self._fp
        if got is None or time.monotonic() - got[0] > max_age:
            got = (time.monotonic(), identity.fingerprint())
            self._fp = got
        return got[1]

    def index_state(self) -> str:
        """"ok" (the live index was built from this database), "missing" (no index yet),
        "other-database" (built from another one, or before indexes recorded it: not served
        until the writer has rebuilt it), "unknown" (the database has no identity yet)."""
        from . import identity

        folder = self.backend.current_folder()
        if folder is None:
            return "missing"
        fp = self.database_fingerprint()
        if fp is None:
            return "unknown"
        key = (folder, fp["database_id"], fp["url"])
        with self._state_lock:
            cached = self._index_state
            if cached is not None and cached[0] == key:
                return cached[1]
            stamp = self.backend.index_stamp()
            state = "ok" if identity.same_database(stamp, fp) else "other-database"
            self._index_state = (key, state)
        if state != "ok":
            log.warning("search index %s was built from %s, not from this app's database (%s… at %s): searches "
                        "find nothing until the index writer has rebuilt it", folder, identity.describe(stamp),
                        fp["database_id"][:8], fp["url"])
        return state

    def apply_now(self, wait: bool = False) -> int:
        """Drain the outbox in a fresh app context (its own database session)."""
        from .worker import apply_outbox
        from ..extensions import db

        with self.app.app_context():
            try:
                return apply_outbox(self.backend, wait=wait)
            except Exception:
                log.exception("search outbox: applying failed; the jobs stay queued")
                return 0
            finally:
                db.session.remove()


def _on_commit(_session) -> None:
    if not has_app_context():
        return
    runtime = current_app.extensions.get("search")
    if runtime is not None:
        runtime.committed()


def get_runtime(app: Flask | None = None) -> SearchRuntime:
    return (app or current_app).extensions["search"]


def get_backend(app: Flask | None = None):
    return get_runtime(app).backend


BACKENDS = ("whoosh", "postgres")


def make_backend(app: Flask):
    """The backend SEARCH_BACKEND names: "whoosh" (default; a folder on this host) or
    "postgres" (a table of the site's PostgreSQL database, shared by every host). A wrong
    value, or "postgres" on another database, stops the app here saying why."""
    name = (app.config.get("SEARCH_BACKEND") or "whoosh").strip().lower()
    if name == "whoosh":
        from .whoosh_backend import WhooshBackend

        # An unknown SEARCH_ENGINE stops the app here, saying which values exist.
        return WhooshBackend(app.config["SEARCH_INDEX_DIR"], engine=app.config.get("SEARCH_ENGINE", "fast"),
                             cache_postings=int(app.config.get("SEARCH_CACHE_POSTINGS", 16_000_000)))
    if name == "postgres":
        from sqlalchemy.engine import make_url

        from .pg_backend import PostgresBackend

        driver = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).drivername
        if not driver.startswith("postgresql"):
            raise ValueError("SEARCH_BACKEND=postgres keeps the index in the site's database, which must be "
                             f"PostgreSQL (DATABASE_URL=postgresql+psycopg://...), not {driver}")
        return PostgresBackend(app.config["SEARCH_INDEX_DIR"])
    raise ValueError(f"SEARCH_BACKEND must be one of {', '.join(BACKENDS)}, not {name!r}")


def init_app(app: Flask) -> None:
    """Register the document types, the outbox listeners and the writer."""
    global _builtin_registered
    from . import outbox, sources

    for name, default in SETTINGS.items():
        # Environment, then the app's config class (tests), then the default.
        app.config.setdefault(name, type(default)(os.environ.get(name, default)))
    if app.config["SEARCH_REBUILD_BUILDER"] not in ("fast", "whoosh"):
        raise ValueError("SEARCH_REBUILD_BUILDER must be fast or whoosh, "
                         f"not {app.config['SEARCH_REBUILD_BUILDER']!r}")
    if not _builtin_registered:
        sources.register_builtin()
        _builtin_registered = True
    outbox.install()
    if _on_commit not in outbox.on_commit:
        outbox.on_commit.append(_on_commit)

    backend = make_backend(app)
    runtime = SearchRuntime(app, backend, app.config.get("SEARCH_WORKER", "thread"))
    app.extensions["search"] = runtime

    if runtime.mode == "thread":
        # Started by the first request of each process (not at import: gunicorn may fork
        # after create_app, and CLI commands need no writer thread).
        @app.before_request
        def _start_search_writer():
            runtime.start_thread()

    if runtime.mode != "sync":
        checked: list[int] = []

        @app.before_request
        def _check_search_database():
            # Once per process, at its first request: say in the log when the index on
            # disk belongs to another database (index_state logs it).
            if checked and checked[0] == os.getpid():
                return
            checked[:] = [os.getpid()]
            try:
                runtime.index_state()
            except Exception:  # never let a health check take a page down
                log.exception("search: checking which database the index belongs to failed")

