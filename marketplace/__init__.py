"""Open-innovation marketplace: the application factory."""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from flask import Flask

from .config import BASE_DIR, DEFAULT_SECRET, Config

warnings.filterwarnings("ignore", category=SyntaxWarning, module=r"whoosh\..*")


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
    _check_secret(app)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)

    from . import models  # noqa: F401  (register every model)
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

    from . import search
    search.init_app(app)

    @app.before_request
    def _fresh_request_state():
        # Per-request caches live on `g`; drop them in case an outer app context
        # (CLI, tests, background work) is reused across requests.
        from flask import g

        from .policy.core import reset_request_memos

        g.pop("_login_user", None)
        reset_request_memos()

    @app.before_request
    def _reject_nul():
        # NUL never belongs in text; PostgreSQL refuses it, so refuse it clearly up front.
        from flask import abort, request

        # Query strings are validated by each view (lists, search) with their own messages.
        for values in (request.form,):
            for key, value in values.items(multi=True):
                if "\x00" in key or "\x00" in value:
                    abort(400, "Text may not contain NUL characters.")

    from . import converters
    converters.init_app(app)  # before any route is added

    from .blueprints import register_blueprints
    register_blueprints(app)

    from . import cli
    cli.init_app(app)

    if not app.debug and not app.testing:
        logging.basicConfig(level=logging.INFO)
    return app


def _check_secret(app: Flask) -> None:
    key = app.config.get("SECRET_KEY")
    if app.debug or app.testing:
        return
    if not key or key == DEFAULT_SECRET or len(str(key)) < 16:
        raise RuntimeError(
            "SECRET_KEY is not set (or is the insecure default). Set SECRET_KEY in the environment "
            "to a long random value, or run with FLASK_DEBUG=1 for local development."
        )
