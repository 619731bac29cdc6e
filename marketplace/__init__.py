"""Open-innovation marketplace: the application factory."""
from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

from flask import Flask

from .config import BASE_DIR, DEFAULT_SECRET, SECRET_KEY_FILE, Config, ConfigError

# Whoosh 2.7 has invalid escapes and `is` comparisons with literals; Python warns when it
# compiles them (the warning's "module" is then the file's path). Only Whoosh's are silenced.
warnings.filterwarnings("ignore", category=SyntaxWarning, module=r".*[\\/]whoosh[\\/].*")


def create_app(config: type | dict | None = None) -> Flask:
    app = Flask(
        __name__,
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
        instance_path=os.environ.get("MARKETPLACE_INSTANCE", str(BASE_DIR / "instance")),
    )
    app.config.from_object(Config)
    if isinstance(config, dict):
        app.config.update(config)
    elif config is not None:
        app.config.from_object(config)
    _check_numbers(app)
    _check_secret(app)
    _check_ratelimit_storage(app)
    _check_timezone(app)
    _cookie_names(app)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    from . import logs
    logs.configure_logging(app)
    # First of all before_request functions, so every response (even a CSRF refusal) has an id.
    logs.init_request_ids(app)

    @app.before_request
    def _fresh_request_state():
        # Per-request caches live on `g`; drop them in case an outer app context (CLI, tests,
        # background work) is reused across requests. Before every other before_request
        # function (the rate limiter's keys and auth_loader load the viewer): the viewer is
        # loaded once per request, and never served from another request.
        from flask import g

        from .policy.core import reset_request_memos

        g.pop("_login_user", None)
        g.pop("_user_session", None)
        reset_request_memos()

    from . import models  # noqa: F401  (register every model)
    from . import ratelimit  # noqa: F401  (registers the database:// rate-limit storage)
    from .extensions import csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)

    from .db_setup import init_db_events
    init_db_events(app)

    from . import auth_loader, errors, templating
    auth_loader.init_app(app)
    errors.init_app(app)
    templating.init_app(app)

    from .services import guards
    guards.init_app(app)

    from . import storage
    try:
        storage.init_app(app)
    except ValueError as e:
        raise ConfigError(str(e)) from None

    from . import search
    search.init_app(app)

    from . import mail
    mail.init_app(app)

    from . import textclean
    textclean.init_app(app)  # NUL refused, other characters XML cannot carry stripped / refused

    from . import converters
    converters.init_app(app)  # before any route is added

    from .blueprints import register_blueprints
    register_blueprints(app)
    from .extensions import CSRF_EXEMPT_BLUEPRINTS, CSRF_EXEMPT_VIEWS
    for name in CSRF_EXEMPT_BLUEPRINTS:
        csrf.exempt(app.blueprints[name])
    for endpoint in CSRF_EXEMPT_VIEWS:
        csrf.exempt(app.view_functions[endpoint])

    from . import cli
    cli.init_app(app)

    from . import pagecache
    pagecache.init_app(app)  # last: its verdict sees what every other part did to the response
    # Outside the page cache's middleware, so the cache keys on the host and scheme the
    # trusted proxies forwarded.
    _trust_proxies(app)

    return app


def _check_secret(app: Flask) -> None:
    key = app.config.get("SECRET_KEY")
    if app.debug or app.testing:
        return
    if not key or key == DEFAULT_SECRET:
        if SECRET_KEY_FILE.exists() and not os.access(SECRET_KEY_FILE, os.R_OK):
            raise ConfigError(f"SECRET_KEY is not set and {SECRET_KEY_FILE} cannot be read by this user: "
                              "run the command as the user that owns it, or set SECRET_KEY in the environment.")
        raise ConfigError(
            f"SECRET_KEY is not set and {SECRET_KEY_FILE} does not exist: run scripts/secret_key.sh "
            "(or `make run` once) to generate it, or set SECRET_KEY in the environment.")
    if len(str(key)) < 16:
        raise ConfigError("SECRET_KEY is too short: use at least 16 random characters "
                          "(scripts/secret_key.sh writes a good one to instance/secret_key).")


def _check_numbers(app: Flask) -> None:
    for key, env in (("MAX_CONTENT_LENGTH", "MAX_UPLOAD_BYTES"), ("TRUSTED_PROXIES", "TRUSTED_PROXIES"),
                     ("WEBHOOK_MAX_ATTEMPTS", "WEBHOOK_MAX_ATTEMPTS"),
                     ("WEBHOOK_BACKOFF_SECONDS", "WEBHOOK_BACKOFF_SECONDS"),
                     ("WEBHOOK_TIMEOUT_SECONDS", "WEBHOOK_TIMEOUT_SECONDS")):
        value = app.config.get(key)
        if value is not None and not isinstance(value, int):
            raise ConfigError(f"{env}={value!r} is not a whole number.")
    for key in ("SESSION_IDLE_MINUTES", "SESSION_ABSOLUTE_DAYS", "SESSION_REMEMBER_IDLE_DAYS", "THREAD_PAGE_SIZE"):
        value = app.config.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise ConfigError(f"{key}={value!r} must be a whole number of at least 1.")
    if (app.config.get("TRUSTED_PROXIES") or 0) < 0:
        raise ConfigError(f"TRUSTED_PROXIES={app.config['TRUSTED_PROXIES']} must be 0 (no proxy) or the number "
                          "of proxies in front.")


def _cookie_names(app: Flask) -> None:
    """Over HTTPS (SESSION_COOKIE_SECURE) the session cookie is a `__Host-` cookie (ASVS
    3.3.1): browsers then accept it only when Secure, for Path=/ and with no Domain, so no
    other host of the domain (and no plain-http page) can set or overwrite it. Over plain
    http (make run, tests) browsers refuse that prefix, so the name stays `session`.

    The session cookie is the only cookie the site sets: Flask-Login's remember cookie is
    never written (server-side sessions with "keep me signed in" replaced it; login_user is
    never asked to remember), and one presented anyway signs nobody in (auth_loader._load
    needs the server-side session)."""
    if not app.config.get("SESSION_COOKIE_SECURE"):
        return
    if app.config.get("SESSION_COOKIE_NAME") in (None, "session"):
        app.config["SESSION_COOKIE_NAME"] = "__Host-session"
    if str(app.config["SESSION_COOKIE_NAME"]).startswith("__Host-"):
        # What the prefix demands; Flask would otherwise take the path from APPLICATION_ROOT.
        app.config["SESSION_COOKIE_PATH"] = "/"
        app.config["SESSION_COOKIE_DOMAIN"] = None
        app.config["REMEMBER_COOKIE_NAME"] = "__Host-remember_token"
        app.config["REMEMBER_COOKIE_PATH"] = "/"
        app.config["REMEMBER_COOKIE_DOMAIN"] = None


def _check_timezone(app: Flask) -> None:
    from .timezones import is_valid_zone

    name = app.config.get("DEFAULT_TIMEZONE") or "UTC"
    if not is_valid_zone(name):
        raise ConfigError(f"DEFAULT_TIMEZONE={name!r} is not a time zone this system knows: use an IANA name "
                          "such as Europe/Paris or UTC (Debian: apt-get install tzdata).")


def _check_ratelimit_storage(app: Flask) -> None:
    uri = str(app.config.get("RATELIMIT_STORAGE_URI") or "")
    # limits speaks to Redis through redis-py, an optional extra: say so now rather than on
    # the first rate-limited request.
    if uri.split(":", 1)[0].startswith(("redis", "rediss")) and importlib.util.find_spec("redis") is None:
        raise ConfigError(
            "RATELIMIT_STORAGE_URI uses Redis but the Redis client is not installed: "
            "run .venv/bin/pip install -e '.[redis]'.")


def _trust_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXIES reverse proxies, take the client address, scheme and host from
    their X-Forwarded-* headers (rate limits and logs then see the visitor, not the proxy)."""
    n = int(app.config.get("TRUSTED_PROXIES") or 0)
    if n:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
