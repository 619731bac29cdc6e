"""E-mail that is really sent: Flask-Mailman backends chosen by configuration, the outbox
(outbox.py), the worker (worker.py), `flask mail ...` (cli.py) and the admin pages of the
mail log and its failures (views.py).

Configuration (marketplace/config.py, README): MAIL_BACKEND smtp | file | locmem, MAIL_SERVER,
MAIL_PORT, MAIL_USE_TLS, MAIL_USE_SSL, MAIL_USERNAME, MAIL_PASSWORD, MAIL_DEFAULT_SENDER,
MAIL_FILE_PATH (file backend, default instance/mail), MAIL_WORKER thread | off | sync.
"""
from __future__ import annotations

import logging
import os
import threading

from flask import Blueprint, Flask, current_app, has_app_context
from flask_mailman import Mail

from ..config import ConfigError

bp = Blueprint("mail", __name__)
log = logging.getLogger(__name__)

BACKENDS = {
    "smtp": "smtp",
    "locmem": "locmem",
    # Flask-Mailman's "file" backend appends messages to .log files; ours writes one .eml each.
    "file": "marketplace.mail.eml_backend",
}
WORKER_MODES = ("thread", "off", "sync")
mailman = Mail()


class MailRuntime:
    """Per app: the worker mode and (in "thread" mode) this process's sender thread."""

    def __init__(self, app: Flask, mode: str):
        self.app = app
        self.mode = mode
        self._thread = None
        self._lock = threading.Lock()

    def start_thread(self) -> None:
        from .worker import MailThread

        with self._lock:
            t = self._thread
            if t is not None and t.is_alive() and t.pid == os.getpid():
                return
            self._thread = MailThread(self.app)
            self._thread.start()

    def wake(self) -> None:
        if self._thread is not None:
            self._thread.wake.set()


def get_connection(**kw):
    return mailman.get_connection(**kw)


def get_runtime(app: Flask | None = None) -> MailRuntime:
    return (app or current_app).extensions["mail_runtime"]


def describe_backend(app: Flask) -> str:
    """One line for the operator: where mail goes."""
    name = app.config["MAIL_BACKEND"]
    if name == "file":
        return f"mail: written as .eml files to {app.config['MAIL_FILE_PATH']}"
    if name == "smtp":
        mode = "SSL" if app.config.get("MAIL_USE_SSL") else "STARTTLS" if app.config.get("MAIL_USE_TLS") else "plain"
        return f"mail: sent by SMTP to {app.config['MAIL_SERVER']}:{app.config['MAIL_PORT']} ({mode})"
    return f"mail: kept in memory ({name} backend)"


def _check(app: Flask) -> None:
    cfg = app.config
    name = str(cfg.get("MAIL_BACKEND") or "").lower()
    if name not in BACKENDS:
        raise ConfigError(f"MAIL_BACKEND={name!r} is not one of {', '.join(BACKENDS)}.")
    cfg["MAIL_BACKEND"] = name
    if cfg.get("MAIL_WORKER") not in WORKER_MODES:
        raise ConfigError(f"MAIL_WORKER={cfg.get('MAIL_WORKER')!r} is not one of {', '.join(WORKER_MODES)}.")
    for key in ("MAIL_PORT", "MAIL_TIMEOUT", "MAIL_MAX_ATTEMPTS", "NOTIFY_DIGEST_HOUR"):
        if not isinstance(cfg.get(key), int):
            raise ConfigError(f"{key}={cfg.get(key)!r} is not a whole number.")
    if cfg.get("MAIL_USE_TLS") and cfg.get("MAIL_USE_SSL"):
        raise ConfigError("MAIL_USE_TLS (STARTTLS) and MAIL_USE_SSL (TLS from the start) exclude each other: "
                          "set one (port 587: MAIL_USE_TLS=1; port 465: MAIL_USE_SSL=1).")
    if not 0 <= cfg["NOTIFY_DIGEST_HOUR"] <= 23:
        raise ConfigError("NOTIFY_DIGEST_HOUR must be an hour from 0 to 23 (UTC).")
    try:
        hours = [int(h) for h in str(cfg.get("NOTIFY_DEADLINE_LEAD_HOURS") or "").split(",") if h.strip()]
    except ValueError:
        hours = [-1]
    if any(h <= 0 for h in hours):
        raise ConfigError(f"NOTIFY_DEADLINE_LEAD_HOURS={cfg.get('NOTIFY_DEADLINE_LEAD_HOURS')!r} must be "
                          "whole numbers of hours above 0, comma-separated (e.g. 72,24).")
    if not cfg.get("MAIL_FILE_PATH"):
        cfg["MAIL_FILE_PATH"] = os.path.join(app.instance_path, "mail")


def lead_hours(app: Flask | None = None) -> list[int]:
    raw = (app or current_app).config.get("NOTIFY_DEADLINE_LEAD_HOURS") or ""
    return sorted({int(h) for h in str(raw).split(",") if h.strip()}, reverse=True)


def init_app(app: Flask) -> None:
    _check(app)
    state = mailman.init_app(app)
    state.backend = BACKENDS[app.config["MAIL_BACKEND"]]
    runtime = MailRuntime(app, app.config["MAIL_WORKER"])
    app.extensions["mail_runtime"] = runtime

    from . import outbox  # noqa: F401
    app.jinja_env.filters["linkify"] = outbox.linkify

    if runtime.mode == "thread":
        # Started by each process's first request (gunicorn forks after importing nothing
        # of ours; CLI commands need no sender thread).
        @app.before_request
        def _start_mail_sender():
            runtime.start_thread()

        from sqlalchemy import event
        from sqlalchemy.orm import Session

        from ..models import OutgoingMail

        def _after_flush(session, _ctx):
            if any(isinstance(o, OutgoingMail) for o in session.new):
                session.info["mail_queued"] = True

        def _after_commit(session):
            if session.info.pop("mail_queued", False) and has_app_context():
                rt = current_app.extensions.get("mail_runtime")
                if rt is not None:
                    rt.wake()

        if not getattr(init_app, "_listening", False):
            event.listen(Session, "after_flush", _after_flush)
            event.listen(Session, "after_commit", _after_commit)
            init_app._listening = True  # type: ignore[attr-defined]

    elif runtime.mode == "sync":
        @app.after_request
        def _send_now(resp):
            from ..extensions import db
            from .worker import send_pending

            try:
                send_pending(limit=50)
            except Exception:  # noqa: BLE001 - sending never fails a request
                db.session.rollback()
                log.exception("mail: sending after the request failed; the mails stay queued")
            return resp


from . import views  # noqa: E402,F401
