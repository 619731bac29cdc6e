"""Configuration read from the environment; tests subclass it.

Every variable read here is listed, with its default, in the README ("Running it in
production") and in `.env.example`.
"""
from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("MARKETPLACE_INSTANCE", BASE_DIR / "instance"))
DEFAULT_SECRET = "dev-insecure-change-me"
SECRET_KEY_FILE = INSTANCE_DIR / "secret_key"


class ConfigError(RuntimeError):
    """A configuration the site cannot start with; its message says what to do (one line)."""


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int | str:
    """The variable as an int; a value that is not one is kept as text, for create_app to
    refuse with a message (importing this module never fails)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw)
    except ValueError:
        return raw


def _list(name: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, "").split(",") if v.strip()]


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'marketplace.db'}")
    # Plain postgres URLs mean psycopg 3 here (the driver we install).
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _secret_key() -> str:
    """SECRET_KEY from the environment, else this checkout's instance/secret_key (written by
    scripts/secret_key.sh, which `make run` and `make serve` call), else the development
    default that only debug and testing accept (create_app refuses it otherwise)."""
    key = os.environ.get("SECRET_KEY", "").strip()
    if key:
        return key
    try:
        key = SECRET_KEY_FILE.read_text(encoding="utf-8").strip()
    except OSError:  # missing or unreadable: create_app says which, in one line
        key = ""
    return key or DEFAULT_SECRET


class Config:
    SECRET_KEY = _secret_key()
    # Old keys still accepted for signed cookies (and old HMAC receipts) after a rotation.
    SECRET_KEY_FALLBACKS = _list("SECRET_KEY_FALLBACKS")
    SQLALCHEMY_DATABASE_URI = _database_url()
    # hide_parameters: database errors are logged with their traceback; their SQL parameters
    # (idea text, e-mail addresses, token hashes) must not be.
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True, "hide_parameters": True}
    SEARCH_INDEX_DIR = os.environ.get("SEARCH_INDEX_DIR", str(INSTANCE_DIR / "search"))
    # "thread": a background thread in each web process drains the outbox;
    # "sync": applied right after each commit (tests); "off": an external worker does it.
    SEARCH_WORKER = os.environ.get("SEARCH_WORKER", "thread")
    # "fast": numpy engine over Whoosh's internals (proven against Whoosh 2.7.4 by the
    # differential test); "whoosh": Whoosh's own Searcher and writer, public API only.
    SEARCH_ENGINE = os.environ.get("SEARCH_ENGINE", "fast")
    # "whoosh": an index folder on this host (SEARCH_INDEX_DIR); "postgres": a table of the site's
    # PostgreSQL database (search/pg_backend.py), shared by every host. Needs DATABASE_URL on PostgreSQL.
    SEARCH_BACKEND = os.environ.get("SEARCH_BACKEND", "whoosh")
    UPLOAD_DIR = os.environ.get("UPLOAD_DIR", str(INSTANCE_DIR / "uploads"))
    # Where attachments are kept (marketplace/storage.py): "local" (UPLOAD_DIR on this host) or
    # s3://BUCKET[/PREFIX] on an S3-compatible store at S3_ENDPOINT_URL (unset: AWS), with the
    # access key S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY and S3_REGION (default us-east-1).
    UPLOAD_STORAGE = os.environ.get("UPLOAD_STORAGE", "").strip() or "local"
    S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL", "").strip() or None
    S3_ACCESS_KEY_ID = os.environ.get("S3_ACCESS_KEY_ID", "").strip() or None
    S3_SECRET_ACCESS_KEY = os.environ.get("S3_SECRET_ACCESS_KEY", "").strip() or None
    S3_REGION = os.environ.get("S3_REGION", "").strip() or None
    MAX_CONTENT_LENGTH = _int("MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
    # The site's public address, for links built outside a request (mails sent by the CLI
    # and background work): host[:port], e.g. market.example.org. Unset: make run's address.
    SERVER_NAME = os.environ.get("SERVER_NAME", "").strip() or None
    PREFERRED_URL_SCHEME = os.environ.get("PREFERRED_URL_SCHEME", "").strip() or "http"
    # Reverse proxies in front of the app that set X-Forwarded-For/-Proto/-Host (0: none, the
    # headers are ignored). Only count proxies you run: each one trusted lets the next hop
    # choose the client address that rate limits are keyed on.
    TRUSTED_PROXIES = _int("TRUSTED_PROXIES", 0)
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE")
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE")
    # Server-side sessions (marketplace/services/sessions.py): a session ends after this long
    # unused, or this long after sign-in however much it is used; "keep me signed in" sets
    # the idle limit to SESSION_REMEMBER_IDLE_DAYS instead.
    SESSION_IDLE_MINUTES = _int("SESSION_IDLE_MINUTES", 120)
    SESSION_ABSOLUTE_DAYS = _int("SESSION_ABSOLUTE_DAYS", 14)
    SESSION_REMEMBER_IDLE_DAYS = _int("SESSION_REMEMBER_IDLE_DAYS", 14)
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None
    # Unset: counters in the site's own database, shared by every process
    # (marketplace/ratelimit.py); redis://host:6379/0 for Redis (the optional extra).
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "").strip() or "database://"
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    # Overrides of the limits in marketplace/ratelimit.py (DEFAULTS), e.g. {"signin_per_address": "20/minute"}.
    RATELIMITS: dict = {}
    # Terms acceptance receipts: Ed25519 keys in RECEIPT_KEYS_DIR (default instance/receipt_keys),
    # or the current private key from RECEIPT_SIGNING_KEY (PEM). See marketplace/receipt_keys.py.
    RECEIPT_KEYS_DIR = os.environ.get("RECEIPT_KEYS_DIR") or None
    RECEIPT_SIGNING_KEY = os.environ.get("RECEIPT_SIGNING_KEY") or None
    # Receipts issued before Ed25519 signing carry an HMAC keyed from SECRET_KEY. They verify
    # against SECRET_KEY, SECRET_KEY_FALLBACKS and these old SECRET_KEY values, which serve
    # for nothing else (so a SECRET_KEY retired after a leak can stay here, not in fallbacks).
    LEGACY_RECEIPT_SECRETS = _list("LEGACY_RECEIPT_SECRETS")
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    LOG_FILE = os.environ.get("LOG_FILE") or None
    # API calls per token (or signed-in account, or address), in the limiter's storage:
    # with RATELIMIT_STORAGE_URI shared, one count across every worker process.
    API_RATE_LIMIT = os.environ.get("API_RATE_LIMIT", "120/minute;3000/hour")
    # Webhook deliveries (flask webhooks deliver): attempts before a delivery is parked, the
    # first retry delay (doubling each time, at most 6 hours) and each request's timeout.
    WEBHOOK_MAX_ATTEMPTS = _int("WEBHOOK_MAX_ATTEMPTS", 8)
    WEBHOOK_BACKOFF_SECONDS = _int("WEBHOOK_BACKOFF_SECONDS", 30)
    WEBHOOK_TIMEOUT_SECONDS = _int("WEBHOOK_TIMEOUT_SECONDS", 10)
    # Only tests may send webhooks to http://127.0.0.1 (a server in the test); elsewhere HTTPS
    # to public addresses only.
    WEBHOOK_ALLOW_LOOPBACK = False
    # E-mail (names as Flask-Mailman reads them). MAIL_BACKEND: "smtp" (MAIL_SERVER, MAIL_PORT,
    # MAIL_USE_TLS for STARTTLS or MAIL_USE_SSL, MAIL_USERNAME, MAIL_PASSWORD), "file" (one
    # .eml file per message in MAIL_FILE_PATH: the default, so nothing is ever sent by
    # accident) or "locmem" (kept in memory: tests).
    MAIL_BACKEND = os.environ.get("MAIL_BACKEND", "").strip().lower() or "file"
    MAIL_SERVER = os.environ.get("MAIL_SERVER", "").strip() or "localhost"
    MAIL_PORT = _int("MAIL_PORT", 25)
    MAIL_USE_TLS = _bool("MAIL_USE_TLS")
    MAIL_USE_SSL = _bool("MAIL_USE_SSL")
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME") or None
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD") or None
    # Unset: "Open Innovation Marketplace <noreply@SERVER_NAME's host>".
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "").strip() or None
    MAIL_FILE_PATH = os.environ.get("MAIL_FILE_PATH", str(INSTANCE_DIR / "mail"))
    MAIL_TIMEOUT = _int("MAIL_TIMEOUT", 30)
    # Who sends the outbox: "thread" (a background thread in each web process; rows are
    # claimed one by one, so any number of senders is safe), "off" (a separate
    # `flask mail send-pending --watch`), "sync" (at the end of each request: tests).
    MAIL_WORKER = os.environ.get("MAIL_WORKER", "").strip().lower() or "thread"
    MAIL_MAX_ATTEMPTS = _int("MAIL_MAX_ATTEMPTS", 6)
    # Deadline reminders, hours before a challenge's deadline (comma-separated).
    NOTIFY_DEADLINE_LEAD_HOURS = os.environ.get("NOTIFY_DEADLINE_LEAD_HOURS", "").strip() or "72,24"
    # The hour (UTC) after which the day's notification digests go out.
    NOTIFY_DIGEST_HOUR = _int("NOTIFY_DIGEST_HOUR", 7)
    # The page cache for anonymous visitors (marketplace/pagecache.py): "on" or "off"; entries
    # live at most PAGE_CACHE_TTL seconds (bounds changes made by time alone, such as a deadline
    # passing), within PAGE_CACHE_MAX_BYTES per process, PAGE_CACHE_MAX_ENTRY_BYTES per page.
    PAGE_CACHE = os.environ.get("PAGE_CACHE", "").strip().lower() or "on"
    PAGE_CACHE_TTL = os.environ.get("PAGE_CACHE_TTL", "").strip() or 5
    PAGE_CACHE_MAX_BYTES = _int("PAGE_CACHE_MAX_BYTES", 32 * 1024 * 1024)
    PAGE_CACHE_MAX_ENTRY_BYTES = _int("PAGE_CACHE_MAX_ENTRY_BYTES", 512 * 1024)
    # Redis shared by every host (redis://host:6379/0): the page cache's data generation lives
    # there, so a write on one host invalidates the pages cached on all. Unset: a Redis
    # RATELIMIT_STORAGE_URI serves, else a file in the instance folder (one host only).
    REDIS_URL = os.environ.get("REDIS_URL", "").strip() or None
    PAGE_SIZE = 20
    # Top-level posts (a question with its answer, a comment with its replies) per page of a thread.
    THREAD_PAGE_SIZE = _int("THREAD_PAGE_SIZE", 25)
    # The time zone anonymous visitors see times in (an IANA name); signed-in people choose theirs.
    DEFAULT_TIMEZONE = os.environ.get("DEFAULT_TIMEZONE", "").strip() or "UTC"
    TESTING = False
    DEBUG = _bool("FLASK_DEBUG")


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing-secret"
    SECRET_KEY_FALLBACKS: list = []
    SERVER_NAME = None
    PREFERRED_URL_SCHEME = "http"
    TRUSTED_PROXIES = 0
    WTF_CSRF_ENABLED = False
    SEARCH_WORKER = "sync"
    UPLOAD_STORAGE = "local"
    RATELIMIT_ENABLED = False
    RATELIMIT_STORAGE_URI = "memory://"
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    RECEIPT_SIGNING_KEY = None
    RECEIPT_KEYS_DIR = None
    LEGACY_RECEIPT_SECRETS: list = []
    LOG_FILE = None
    WEBHOOK_ALLOW_LOOPBACK = True
    WEBHOOK_TIMEOUT_SECONDS = 5
    MAIL_BACKEND = "locmem"
    MAIL_WORKER = "off"  # tests send with marketplace.mail.worker.send_pending() when they mean to
    MAIL_DEFAULT_SENDER = None
    MAIL_FILE_PATH = None
    # Tests share one process: leave the logging set-up to pytest unless a test asks for it.
    LOG_CONFIGURE = False
    PROPAGATE_UNHANDLED = True
    # On, so the whole suite runs with it and proves the invalidation; never Redis by accident.
    PAGE_CACHE = "on"
    REDIS_URL = None
