"""Configuration read from the environment; tests subclass it."""
from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("MARKETPLACE_INSTANCE", BASE_DIR / "instance"))
DEFAULT_SECRET = "dev-insecure-change-me"


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'marketplace.db'}")
    # Plain postgres URLs mean psycopg 3 here (the driver we install).
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Config:
    SECRET_KEY = os.environ.get("SECRET_KEY", DEFAULT_SECRET)
    SQLALCHEMY_DATABASE_URI = _database_url()
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    SEARCH_INDEX_DIR = os.environ.get("SEARCH_INDEX_DIR", str(INSTANCE_DIR / "search"))
    # "thread": a background thread in each web process drains the outbox;
    # "sync": applied right after each commit (tests); "off": an external worker does it.
    SEARCH_WORKER = os.environ.get("SEARCH_WORKER", "thread")
    # "fast": numpy engine over Whoosh's internals (proven against Whoosh 2.7.4 by the
    # differential test); "whoosh": Whoosh's own Searcher and writer, public API only.
    SEARCH_ENGINE = os.environ.get("SEARCH_ENGINE", "fast")
    UPLOAD_DIR = os.environ.get("UPLOAD_DIR", str(INSTANCE_DIR / "uploads"))
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_UPLOAD_BYTES", 10 * 1024 * 1024))
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE")
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE")
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    PAGE_SIZE = 20
    TESTING = False
    DEBUG = _bool("FLASK_DEBUG")


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing-secret"
    WTF_CSRF_ENABLED = False
    SEARCH_WORKER = "sync"
    RATELIMIT_ENABLED = False
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    PROPAGATE_UNHANDLED = True
