"""A shared page cache for anonymous visitors, invalidated exactly by every committed write.

Public pages are the same for every anonymous visitor, so this process keeps the answers it
rendered for them and serves them again, as a reverse proxy would, but inside the app, where
it knows when the data changed: never a page the database no longer allows, not even for a
moment after the write that changed it committed.

What is served from the cache (all must hold):
  * a GET or HEAD request with no Cookie header at all, no Authorization header and no
    credential-like parameter in the query string (``token``, ``key``, ``sig``...);
  * to an endpoint of `CACHEABLE_ENDPOINTS`, read-only pages anonymous visitors may see;
  * an entry stored under the current data *generation* and younger than PAGE_CACHE_TTL.

What is stored (all must hold): status 200, no Set-Cookie, the Flask session unmodified, no
flashed message, nobody signed in, a Vary limited to the headers the key holds, a body of at
most PAGE_CACHE_MAX_ENTRY_BYTES; HEAD requests are served from GET entries, never stored.
Per-request headers (X-Request-ID, Date, RateLimit-*) are not kept: a hit gets a fresh
X-Request-ID, the server a fresh Date, and `Age` and ``X-Page-Cache: hit`` are added
(``miss`` on an eligible request that was rendered). An entry stored with an ETag answers
If-None-Match with 304, as werkzeug's conditional handling would. Hits are answered before
the app runs, so no rate limit counts them: that is why the API, whose calls are all counted
(API_RATE_LIMIT), is not on the list.

The key: scheme, host, script root, path, raw query string, and the request headers a page
may vary on (Accept, Accept-Language, Accept-Encoding).

The generation: a random token that is replaced after EVERY committed transaction that wrote
anything, by any process using the database (gunicorn workers, `flask worker`, every CLI
command, tests' factories): each statement that is not a read (`_is_write`) marks its
database connection; the dialect's commit, once it has returned (the commit is durable),
replaces the token; a rollback clears the mark. Replacing the token before the commit would
let a reader cache pre-commit data under the new token. Each entry keeps the token read at
the start of its request, before the view ran any query, so data committed during the
rendering makes the entry stale at once. Where: Redis (REDIS_URL, else a redis://
RATELIMIT_STORAGE_URI), needed when several hosts share the database; otherwise a file in
the instance folder, replaced atomically. A token that cannot be read means a miss that is
not stored. Random tokens, not counters: a lost or restarted store can never bring back a
value an old entry was stored under.

Writes that never change a page (`UNTRACKED_TABLES`: the rate limiter's counters, the
session "last seen" stamps) do not replace the token; no cacheable page reads those tables
(tests/test_pagecache.py checks it), and counting them would empty the cache on every API
request and every signed-in click.

Only time changes a page without a write (a deadline passing, a sealed idea's reveal date):
PAGE_CACHE_TTL (default 5 s) bounds that. The rule book hides nothing from anonymous
visitors by time alone (grant and agreement expiry concern signed-in viewers only; time
only ever reveals to them), so the TTL bounds a late reveal, never a leak.

Every process tracks writes whatever PAGE_CACHE says (a process with the cache off must
still tell those with it on); PAGE_CACHE=off only stops serving and storing.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import unquote_plus

from flask import Flask, current_app, request, session
from sqlalchemy import event

log = logging.getLogger(__name__)

# Read-only pages that anonymous visitors may see and that depend only on the database, the
# request's key and the clock. Nothing that opens something by a token in its path
# (invitation, appeal, unsubscribe links), no form page, no file download.
CACHEABLE_ENDPOINTS = frozenset({
    "main.index", "main.about",
    "items.list_kind", "items.detail",
    "orgs.index", "orgs.detail",
    "search.search",
    "feeds.feed",
})
# The API is not cached: its answers promise RateLimit-* headers and its per-address limit
# (API_RATE_LIMIT) must keep counting every call, which a hit answered before the app runs
# would not do.

# Tables whose writes do not change any page (see the module docstring).
UNTRACKED_TABLES = frozenset({"rate_limit_counters", "user_sessions"})

# Statements that write nothing: reads, transaction control, session settings.
_READS = ("SELECT", "PRAGMA", "SAVEPOINT", "RELEASE", "ROLLBACK", "SHOW", "SET ", "BEGIN", "EXPLAIN")
_TARGET = re.compile(r'^\s*(?:INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE|DELETE\s+FROM)\s+"?([A-Za-z_][A-Za-z0-9_]*)"?[\s(]',
                     re.IGNORECASE)
_WRITE_WORD = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE|CREATE|DROP|ALTER|TRUNCATE)\b", re.IGNORECASE)

# Query parameters that look like a credential: such a request is never cached.
_CREDENTIAL_PARAM = re.compile(r"(?:token|key|secret|sig|signature|auth|password|passwd|session)$", re.IGNORECASE)
# Request headers that make a request ineligible.
_PRIVATE_HEADERS = ("HTTP_COOKIE", "HTTP_AUTHORIZATION")
# Request headers in the key; a response may vary on these (and on Cookie and Authorization,
# which an eligible request never carries).
_KEY_HEADERS = ("HTTP_ACCEPT", "HTTP_ACCEPT_LANGUAGE", "HTTP_ACCEPT_ENCODING")
_VARY_OK = frozenset({"cookie", "authorization", "accept", "accept-language", "accept-encoding"})
# Response headers that belong to one request: never stored.
_PER_REQUEST = frozenset({"x-request-id", "date", "age", "x-page-cache", "set-cookie", "ratelimit-limit",
                          "ratelimit-remaining", "ratelimit-reset", "retry-after"})
_CONDITIONAL = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_MATCH", "HTTP_IF_UNMODIFIED_SINCE")

_DIRTY = "pagecache_dirty"        # on a DBAPI connection's info: it wrote in this transaction
_ENVIRON = "marketplace.pagecache"  # the request's eligibility, and the app's verdict on storing
_ENTRY_OVERHEAD = 256             # bytes an entry costs beyond its body and headers (estimate)
GENERATION_FILE = "page-cache-generation"
REDIS_KEY = "marketplace:page-cache:generation"


def _is_write(statement: str) -> bool:
    """Whether a statement may change data that a page shows (unknown statements: yes)."""
    head = statement.lstrip()[:10].upper()
    if head.startswith(_READS):
        return False
    if head.startswith("WITH"):
        return _WRITE_WORD.search(statement) is not None
    m = _TARGET.match(statement)
    if m is not None and m.group(1).lower() in UNTRACKED_TABLES:
        return False
    return True


# --------------------------------------------------------------------------- the generation


def new_token() -> str:
    return secrets.token_hex(16)


class FileGeneration:
    """The generation in a file of the instance folder, replaced atomically (write a
    temporary file, then os.replace), so a reader sees the old token or the new one, whole.
    The folder is read from the app each time (tests move it after create_app)."""

    kind = "file"

    def __init__(self, app: Flask):
        self.app = app

    @property
    def path(self) -> str:
        return os.path.join(self.app.instance_path, GENERATION_FILE)

    def read(self) -> str | None:
        try:
            with open(self.path, "rb") as fh:
                token = fh.read(64).decode("ascii", "replace").strip()
        except FileNotFoundError:
            try:
                self.bump()  # for the next request: this one is not stored
            except OSError:
                log.warning("page cache: cannot write %s; pages are rendered, not cached", self.path, exc_info=True)
            return None
        except OSError:
            log.warning("page cache: cannot read %s; pages are rendered, not cached", self.path, exc_info=True)
            return None
        return token or None

    def bump(self) -> None:
        path = self.path
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{GENERATION_FILE}.{os.getpid()}.{threading.get_ident()}.{new_token()[:8]}")
        with open(tmp, "wb") as fh:
            fh.write(new_token().encode("ascii"))
        os.replace(tmp, path)

    def describe(self) -> str:
        return f"file {self.path}"


class RedisGeneration:
    """The generation under one Redis key, shared by every host using that Redis."""

    kind = "redis"

    def __init__(self, url: str):
        import redis

        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)

    def read(self) -> str | None:
        try:
            value = self.client.get(REDIS_KEY)
        except Exception:  # noqa: BLE001 - Redis down: render, do not store
            log.warning("page cache: Redis unreachable; pages are rendered, not cached", exc_info=True)
            return None
        if value is None:
            try:
                self.bump()
            except Exception:  # noqa: BLE001
                pass
            return None
        return value.decode("ascii", "replace")

    def bump(self) -> None:
        self.client.set(REDIS_KEY, new_token())

    def describe(self) -> str:
        from sqlalchemy.engine import make_url

        try:
            shown = make_url(self.url.replace("redis", "sqlite", 1)).render_as_string(hide_password=True)
            return "redis " + shown.replace("sqlite", "redis", 1)
        except Exception:  # noqa: BLE001 - only for display
            return "redis"


def redis_url(config) -> str | None:
    """REDIS_URL, else the rate limiter's storage when it is a plain Redis URL."""
    url = str(config.get("REDIS_URL") or "").strip()
    if url:
        return url
    limiter = str(config.get("RATELIMIT_STORAGE_URI") or "").strip()
    if limiter.startswith(("redis://", "rediss://")):
        return limiter
    return None


# --------------------------------------------------------------------------- the cache


@dataclass
class Entry:
    generation: str
    stored_at: float
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    etag: bool
    size: int


class PageCache:
    """A size-bounded LRU of rendered pages, per process and per app. `clock` (monotonic
    seconds) is an attribute so tests can move time without sleeping."""

    def __init__(self, ttl: float, max_bytes: int, max_entry_bytes: int, clock: Callable[[], float] = time.monotonic):
        self.ttl = float(ttl)
        self.max_bytes = int(max_bytes)
        self.max_entry_bytes = int(max_entry_bytes)
        self.clock = clock
        self._entries: OrderedDict[tuple, Entry] = OrderedDict()
        self._bytes = 0
        self._generation: str | None = None  # the newest seen: older entries are dropped
        self._lock = threading.Lock()
        self.hits = self.misses = self.stores = self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def get(self, key: tuple, generation: str) -> Entry | None:
        with self._lock:
            if generation != self._generation:
                # Every entry was stored under another token: none can be served again.
                self._entries.clear()
                self._bytes = 0
                self._generation = generation
                return None
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.generation != generation or self.clock() - entry.stored_at >= self.ttl:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple, entry: Entry) -> bool:
        if entry.size > self.max_entry_bytes or entry.size > self.max_bytes:
            return False
        with self._lock:
            if entry.generation != self._generation:
                return False  # the data changed while the page was rendered
            if key in self._entries:
                self._drop(key)
            self._entries[key] = entry
            self._bytes += entry.size
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))
                self.evictions += 1
            self.stores += 1
            return True

    def _drop(self, key: tuple) -> None:
        entry = self._entries.pop(key)
        self._bytes -= entry.size


# --------------------------------------------------------------------------- the middleware


class PageCacheMiddleware:
    """WSGI middleware around the Flask app: answers eligible requests from the cache, and
    stores the eligible answers the app rendered."""

    def __init__(self, app: Flask, wsgi_app, cache: PageCache, store):
        self.app = app
        self.wsgi_app = wsgi_app
        self.cache = cache
        self.store = store

    # -- eligibility

    def _rule(self, environ):
        """The URL rule an eligible request goes to, or None."""
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return None
        if any(h in environ for h in _PRIVATE_HEADERS):
            return None
        qs = environ.get("QUERY_STRING", "")
        if qs:
            for part in qs.split("&"):
                name = unquote_plus(part.split("=", 1)[0])
                if _CREDENTIAL_PARAM.search(name):
                    return None
        try:
            adapter = self.app.create_url_adapter(self.app.request_class(environ))
            rule, _args = adapter.match(method="GET", return_rule=True)
        except Exception:  # noqa: BLE001 - 404, 405, redirects, bad hosts: the app answers
            return None
        return rule if rule.endpoint in CACHEABLE_ENDPOINTS else None

    @staticmethod
    def _key(environ) -> tuple:
        host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
        return (environ.get("wsgi.url_scheme", "http"), host, environ.get("SCRIPT_NAME", ""),
                environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", ""),
                *(environ.get(h, "") for h in _KEY_HEADERS))

    # -- the request

    def __call__(self, environ, start_response):
        rule = self._rule(environ)
        if rule is None:
            return self.wsgi_app(environ, start_response)
        if getattr(self.store, "host_warning", None):
            log.warning(self.store.host_warning)
            self.store.host_warning = None
        # Read before the app runs any query: data committed after this makes the entry stale.
        generation = self.store.read()
        key = self._key(environ)
        if generation is not None:
            entry = self.cache.get(key, generation)
            if entry is not None:
                self.cache.hits += 1
                return self._serve(entry, rule, environ, start_response)
        self.cache.misses += 1
        state = environ[_ENVIRON] = {"endpoint": rule.endpoint, "storable": False}
        captured: dict = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, list(headers)
            return start_response(status, list(headers) + [("X-Page-Cache", "miss")], exc_info)

        app_iter = self.wsgi_app(environ, capture)
        if (generation is None or environ.get("REQUEST_METHOD") != "GET" or not state["storable"]
                or not captured or not self._storable(captured["status"], captured["headers"])):
            return app_iter
        return self._collect(app_iter, key, generation, captured["status"], captured["headers"])

    def _storable(self, status: str, headers: list[tuple[str, str]]) -> bool:
        if not status.startswith("200"):
            return False
        for name, value in headers:
            lower = name.lower()
            if lower == "set-cookie":
                return False
            if lower == "vary" and any(v.strip().lower() not in _VARY_OK for v in value.split(",")):
                return False
            if lower == "content-length":
                try:
                    if int(value) > self.cache.max_entry_bytes:
                        return False
                except ValueError:
                    return False
        return True

    def _collect(self, app_iter: Iterable[bytes], key, generation, status, headers):
        """Read the body (up to the entry limit) to store it; a larger one is passed on as it
        comes, unstored."""
        chunks: list[bytes] = []
        size = 0
        it = iter(app_iter)
        try:
            for chunk in it:
                chunks.append(chunk)
                size += len(chunk)
                if size > self.cache.max_entry_bytes:
                    return _Rest(chunks, it, app_iter)
        except BaseException:
            _close(app_iter)
            raise
        _close(app_iter)
        body = b"".join(chunks)
        if self.store.read() != generation:
            return [body]  # written while it rendered: it could never be served
        kept = [(k, v) for k, v in headers if k.lower() not in _PER_REQUEST]
        etag = any(k.lower() == "etag" for k, _ in kept)
        entry_size = len(body) + sum(len(k) + len(v) for k, v in kept) + sum(len(p) for p in key) + _ENTRY_OVERHEAD
        self.cache.put(key, Entry(generation, self.cache.clock(), status, kept, body, etag, entry_size))
        return [body]

    def _serve(self, entry: Entry, rule, environ, start_response):
        from .logs import access_log, choose_request_id

        started = time.perf_counter()
        rid = choose_request_id(environ.get("HTTP_X_REQUEST_ID", ""))
        age = max(0, int(self.cache.clock() - entry.stored_at))
        headers = entry.headers + [("X-Request-ID", rid), ("Age", str(age)), ("X-Page-Cache", "hit")]
        method = environ.get("REQUEST_METHOD")
        if entry.etag and method == "GET" and any(h in environ for h in _CONDITIONAL):
            # As the API answers (api/core.add_etag): werkzeug's conditional handling on the ETag.
            from werkzeug.wrappers import Response

            resp = Response(entry.body, status=entry.status, headers=headers)
            resp.make_conditional(environ)
            status = resp.status
            out = resp(environ, start_response)
        else:
            status = entry.status
            start_response(entry.status, headers)
            out = [] if method == "HEAD" else [entry.body]
        access_log.info("%s %s %s %.0fms", method, rule.rule, status.split(" ", 1)[0],
                        (time.perf_counter() - started) * 1000, extra={"request_id": rid})
        return out


class _Rest:
    """The chunks already read, then the rest of the app's iterable (closed at the end)."""

    def __init__(self, head: list[bytes], it, app_iter):
        self._head, self._it, self._app_iter = head, it, app_iter

    def __iter__(self):
        yield from self._head
        yield from self._it

    def close(self):
        _close(self._app_iter)


def _close(app_iter) -> None:
    close = getattr(app_iter, "close", None)
    if close is not None:
        close()


# --------------------------------------------------------------------------- write tracking


def track_writes(engine, on_commit: Callable[[], None]) -> None:
    """Call `on_commit` after every committed transaction on `engine` that wrote anything.

    A statement marks its DBAPI connection (before_cursor_execute); the dialect's commit
    calls `on_commit` once it has returned, i.e. once the commit is durable; its rollback
    (a request's, or the pool's reset) clears the mark. The dialect's do_commit is the one
    place every path goes through (ORM sessions, Core session.execute, engine.begin(),
    connection.commit(), the pool's reset); SQLAlchemy's commit events fire before it."""
    dialect = engine.dialect
    if getattr(dialect, "_pagecache_tracked", False):
        dialect._pagecache_on_commit = on_commit
        return
    dialect._pagecache_on_commit = on_commit
    dialect._pagecache_tracked = True
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def _bump() -> None:
        try:
            dialect._pagecache_on_commit()
        except Exception:  # noqa: BLE001 - the commit stands; log it, never fail it
            log.exception("page cache: a committed write could not replace the generation")

    def do_commit(dbapi_connection) -> None:
        info = _info(dbapi_connection)
        dirty = info.pop(_DIRTY, False) if info is not None else False
        try:
            commit(dbapi_connection)
        except BaseException:
            if dirty:
                _bump()  # the outcome is unknown: a new token is always safe
            raise
        if dirty:
            _bump()

    def do_rollback(dbapi_connection) -> None:
        info = _info(dbapi_connection)
        if info is not None:
            info.pop(_DIRTY, None)
        rollback(dbapi_connection)

    dialect.do_commit = do_commit
    dialect.do_rollback = do_rollback

    @event.listens_for(engine, "before_cursor_execute")
    def _mark(conn, _cursor, statement, _params, _context, _executemany):
        if _is_write(statement):
            conn.info[_DIRTY] = True

    @event.listens_for(engine, "after_cursor_execute")
    def _autocommit(conn, _cursor, _statement, _params, _context, _executemany):
        # Under AUTOCOMMIT a statement is durable as soon as it returns: no commit follows.
        if conn.info.get(_DIRTY) and conn._is_autocommit_isolation():
            conn.info.pop(_DIRTY, None)
            _bump()


def _info(connection) -> dict | None:
    """The pool's info dict of a connection the dialect is given (the pooled connection of a
    Connection, as before_cursor_execute's `conn.info` is); None for a bare DBAPI connection
    (first connect, some pool paths), which no statement of ours has marked."""
    try:
        return connection.info
    except (AttributeError, NotImplementedError):
        return None


# --------------------------------------------------------------------------- wiring


def _check_config(app: Flask) -> None:
    from .config import ConfigError

    mode = str(app.config.get("PAGE_CACHE", "on")).strip().lower()
    if mode not in ("on", "off"):
        raise ConfigError(f"PAGE_CACHE={app.config.get('PAGE_CACHE')!r} must be on or off.")
    app.config["PAGE_CACHE"] = mode
    for key, lowest in (("PAGE_CACHE_TTL", 0), ("PAGE_CACHE_MAX_BYTES", 0), ("PAGE_CACHE_MAX_ENTRY_BYTES", 0)):
        value = app.config.get(key)
        try:
            number = float(value) if key == "PAGE_CACHE_TTL" else int(value)
        except (TypeError, ValueError):
            number = None
        if number is None or number < lowest or isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be a number of at least {lowest}.")
        app.config[key] = number


def make_store(app: Flask):
    url = redis_url(app.config)
    if url:
        import importlib.util

        if importlib.util.find_spec("redis") is None:
            from .config import ConfigError

            raise ConfigError("REDIS_URL (or a Redis RATELIMIT_STORAGE_URI) is set but the Redis client is not "
                              "installed: run .venv/bin/pip install -e '.[redis]'.")
        return RedisGeneration(url)
    return FileGeneration(app)


def get_cache(app: Flask | None = None) -> PageCache | None:
    """This process's cache of `app` (None when PAGE_CACHE is off)."""
    return (app or current_app).extensions.get("pagecache")


def bump_generation(app: Flask | None = None) -> None:
    """Replace the generation by hand: after the database was changed by something else than
    this app's engine (a restore with sqlite3 or pg_restore, a manual SQL session)."""
    (app or current_app).extensions["pagecache_store"].bump()


def _cli():
    import click
    from flask.cli import AppGroup

    group = AppGroup("pagecache", help="The page cache for anonymous visitors (marketplace/pagecache.py).")

    @group.command("status")
    def status():
        """Show the settings, where the data generation is kept, and its current value."""
        app = current_app._get_current_object()
        store = app.extensions["pagecache_store"]
        click.echo(f"page cache: {app.config['PAGE_CACHE']} (this setting; each process reads its own)")
        click.echo(f"ttl: {app.config['PAGE_CACHE_TTL']:g} s, max {app.config['PAGE_CACHE_MAX_BYTES']} bytes per "
                   f"process, {app.config['PAGE_CACHE_MAX_ENTRY_BYTES']} per page")
        click.echo(f"generation: {store.describe()}: {store.read() or 'unreadable (pages are rendered, not cached)'}")

    @group.command("bump")
    def bump():
        """Invalidate every cached page of every process: after the database was changed by
        something else than the app (sqlite3, psql, pg_restore)."""
        current_app.extensions["pagecache_store"].bump()
        click.echo("page cache: generation replaced; every process renders its pages again")

    return group


def init_app(app: Flask) -> None:
    """Track writes (always) and, unless PAGE_CACHE=off, serve anonymous pages from the cache.
    Call after every other part of the app is registered: the verdict on storing must see
    the session and the viewer as the other after_request functions left them."""
    from .extensions import db

    _check_config(app)
    store = make_store(app)
    app.extensions["pagecache_store"] = store
    with app.app_context():
        engine = db.engine
    track_writes(engine, store.bump)
    app.cli.add_command(_cli())
    # Said by the first page a process caches (web workers), not by every CLI command.
    store.host_warning = (
        f"page cache: the generation is kept in {store.path}; if several hosts share this database, set "
        "REDIS_URL so a write on one host invalidates the pages cached on the others"
        if store.kind == "file" and engine.dialect.name != "sqlite" and not app.testing else None)
    if app.config["PAGE_CACHE"] == "off":
        return
    cache = PageCache(app.config["PAGE_CACHE_TTL"], app.config["PAGE_CACHE_MAX_BYTES"],
                      app.config["PAGE_CACHE_MAX_ENTRY_BYTES"])
    app.extensions["pagecache"] = cache

    def _verdict(resp):
        state = request.environ.get(_ENVIRON)
        if state is not None:
            from flask_login import current_user

            state["storable"] = (request.endpoint == state["endpoint"] and not session.modified
                                 and "_flashes" not in session and not current_user.is_authenticated)
        return resp

    # First in the list: after_request functions run last-registered first, so this one sees
    # what every other one did to the session.
    app.after_request_funcs.setdefault(None, []).insert(0, _verdict)
    app.wsgi_app = PageCacheMiddleware(app, app.wsgi_app, cache, store)
