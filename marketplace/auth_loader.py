"""Flask-Login wiring: sessions carry the account's session version, so bumping it
(password change, suspension, ban) ends every session of that account at once."""
from __future__ import annotations

from flask import Flask, jsonify, redirect, request, url_for, flash

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

    @login_manager.unauthorized_handler
    def unauthorized():
        if request.blueprint == "api" or request.accept_mimetypes.best == "application/json":
            return jsonify(error="authentication required"), 401
        flash(login_manager.login_message, "info")
        return redirect(url_for("auth.login", next=request.full_path if request.query_string else request.path))
