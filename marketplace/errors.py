"""Error pages and JSON errors: a clear message, never a traceback or a hidden item's data."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

MESSAGES = {
    400: "The request could not be understood.",
    401: "Please sign in.",
    403: "You are not allowed to do that.",
    404: "There is nothing here, or you may not see it.",
    405: "That method is not allowed here.",
    409: "That conflicts with the current state; reload and try again.",
    413: "The upload is too large.",
    429: "Too many requests; please slow down and try again shortly.",
}


def wants_json() -> bool:
    if request.blueprint == "api" or request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def _render(code: int, message: str):
    if wants_json():
        return make_response(jsonify(error=message, status=code), code)
    return make_response(render_template("error.html", code=code, message=message), code)


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(e):
        return _render(400, "Your form expired or was sent from elsewhere. Reload the page and try again.")

    @app.errorhandler(413)
    def too_large(e):
        limit = app.config.get("MAX_CONTENT_LENGTH") or 0
        return _render(413, f"The upload is too large: the limit is {limit // (1024 * 1024)} MB.")

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        code = e.code or 500
        desc = e.description if code in (400, 403, 409, 413, 422, 429) and e.description and \
            e.description != type(e).description else MESSAGES.get(code, e.name)
        resp = _render(code, desc)
        if code == 405 and getattr(e, "valid_methods", None):
            resp.headers["Allow"] = ", ".join(e.valid_methods)
        return resp

    @app.errorhandler(Exception)
    def unhandled(e: Exception):
        if isinstance(e, HTTPException):
            return http_error(e)
        log.exception("unhandled error on %s %s", request.method, request.path)
        from .extensions import db
        try:
            db.session.rollback()
        except Exception:  # pragma: no cover
            pass
        if app.config.get("PROPAGATE_UNHANDLED"):
            raise e
        return _render(500, "Something went wrong on our side. Nothing was saved; please try again.")
