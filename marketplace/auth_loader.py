"""Flask-Login wiring: sessions carry the account's session version, so bumping it
(password change, suspension, ban) ends every session of that account at once."""
from __future__ import annotations

from flask import Flask, flash, g, jsonify, redirect, request, url_for

from .extensions import db, login_manager


def init_app(app: Flask) -> None:
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see this page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(token: str):
        from .models import User

        try:
            uid_s, ver_s = token.split(":", 1)
            uid, ver = int(uid_s), int(ver_s)
        except (ValueError, AttributeError):
            return None
        user = db.session.get(User, uid)
        if user is None or user.session_version != ver or user.is_blocked:
            return None
        return user

    @app.before_request
    def _fresh_request_state():
        # Each request has its own app context (and `g`) in production; tests that keep an
        # app context open around test-client calls share one `g` between requests. Drop
        # the per-request caches so every request loads its user and policy viewer afresh
        # (otherwise a second client would be served the first client's account).
        for key in [k for k in g if k == "_login_user" or k.startswith("_policy_")]:
            g.pop(key, None)

    @login_manager.unauthorized_handler
    def unauthorized():
        if request.path.startswith("/api/"):
            from .errors import api_error_body

            return jsonify(api_error_body(401, "Sign in, or send Authorization: Bearer TOKEN.")), 401
        if request.accept_mimetypes.best == "application/json":
            return jsonify(error="authentication required"), 401
        flash(login_manager.login_message, "info")
        return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))
