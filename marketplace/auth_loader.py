"""Flask-Login wiring on server-side sessions (marketplace/services/sessions.py).

The signed session cookie holds the user id (Flask-Login's `_user_id`) and a random session
id (`_sid`). Each request looks the session id up in one indexed query
(`user_sessions` joined to `users`) and signs the visitor in only while that session holds:
not revoked, within the idle and absolute timeouts, stamped with the account's current
session version, the account not blocked. So a cookie captured before sign-out, a password
change, a suspension or a ban opens nothing afterwards.

`start_session` (sign-in, registration) begins a session under a new id and clears whatever
the cookie held before (no session fixation); `end_session` (sign-out) revokes it.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask, flash, g, jsonify, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user

from .converters import MAX_ID
from .extensions import login_manager
from .models import User, UserSession, utcnow
from .params import parse_int
from .services import sessions

SID_KEY = "_sid"
log = logging.getLogger("marketplace.auth")


def current_session() -> UserSession | None:
    """The session row the current request was signed in with (None when anonymous)."""
    current_user._get_current_object()  # loads it (and the row) if not yet done
    return g.get("_user_session")


def start_session(user: User, remember: bool = False) -> UserSession:
    """Sign `user` in under a brand-new session id (the old cookie's content is dropped)."""
    session.clear()
    row, token = sessions.begin(user, ip=request.remote_addr, user_agent=request.user_agent.string,
                                remember=remember)
    session[SID_KEY] = token
    # A "keep me signed in" session survives closing the browser (a dated cookie, within the
    # absolute timeout); any other one is a browser-session cookie.
    session.permanent = bool(remember)
    login_user(user)
    g._user_session = row
    return row


def end_session(reason: str = "signed out") -> None:
    """Sign the visitor out here and on the server: the session row is revoked, so the cookie
    it was captured from opens nothing anymore."""
    row = g.get("_user_session") if current_user.is_authenticated else None
    if row is not None:
        sessions.revoke(row, reason)
    logout_user()
    session.clear()
    g.pop("_user_session", None)


def _load(user_id: str) -> User | None:
    # Cookies from before server-side sessions held "id:version"; the version now lives on the
    # session row, so only the id is compared.
    uid = parse_int(str(user_id).split(":", 1)[0], 1, MAX_ID)
    if uid is None:
        return None
    found = sessions.find(session.get(SID_KEY))
    if found is None:
        return None
    row, user = found
    now = utcnow()
    if user.id != uid or user.is_blocked or not sessions.is_live(row, user, now):
        return None
    try:
        sessions.touch(row, now)
    except Exception:  # noqa: BLE001 - a missed "last seen" must not sign anyone out or fail a page
        log.warning("could not record session use: session=%s", row.id, exc_info=True)
    g._user_session = row
    return user


def init_app(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see this page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"
    # A remembered session's cookie lasts no longer than the session itself may.
    app.permanent_session_lifetime = timedelta(days=int(app.config["SESSION_ABSOLUTE_DAYS"]))

    login_manager.user_loader(_load)

    @app.before_request
    def _load_viewer():
        # Check the session before the view runs (and before any write of the view's own):
        # its "last seen" is recorded on a connection of its own, never inside the view's
        # transaction. Static files need no viewer.
        if request.endpoint != "static":
            current_user._get_current_object()

    @login_manager.unauthorized_handler
    def unauthorized():
        if request.path.startswith("/api/"):
            from .errors import api_error_body

            return jsonify(api_error_body(401, "Sign in, or send Authorization: Bearer TOKEN.")), 401
        if request.accept_mimetypes.best == "application/json":
            return jsonify(error="authentication required"), 401
        flash(login_manager.login_message, "info")
        return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))
