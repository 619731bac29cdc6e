"""Error pages and JSON errors: a clear message, never a traceback or a hidden item's data.

Refusals from the write services (`ServiceError`) that a view does not show on its form end
here too: the transaction is rolled back and the refusal becomes a 4xx with its message.
Denials (403, 404) are logged at INFO with the route pattern and user id; unexpected errors
at ERROR with their traceback and the request id, which the 500 page shows.

A number the database cannot hold (an id beyond 64 bits, a date past year 9999) is refused
where it is read (marketplace/params.py, the forms' ranges, the path converters); should one
still reach the database or date arithmetic, the `OverflowError` (SQLite, datetime) or
`DataError` (PostgreSQL) it raises becomes a 400 after a rollback, logged at WARNING, never
a 500.
"""
from __future__ import annotations

import logging

from flask import Flask, g, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import DataError, NoInspectionAvailable
from werkzeug.exceptions import HTTPException

from .logs import request_id
from .services.common import ServiceError

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
    503: "The service is unavailable for a moment; nothing was saved. Please try again later.",
    507: "There is no room left to store that; nothing was saved. Please try again later.",
}
SERVER_ERROR = "Something went wrong on our side. Nothing was saved; please try again."
OUT_OF_RANGE = ("A number or date in the request is out of range (or not a valid value). "
                "Nothing was saved; check what you entered and try again.")


def wants_json() -> bool:
    if request.blueprint == "api" or request.path.startswith("/api/") or request.is_json:
        return True  # the API, and callers that sent JSON
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


# The API's one error shape names the kind of error with one of these codes.
API_CODES = {
    400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 413: "too_large",
    415: "unsupported_media_type", 422: "invalid_fields", 429: "rate_limited", 500: "server_error",
}


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def api_error_body(code: int, message: str, *, error_code: str | None = None, fields: dict | None = None,
                   extra: dict | None = None, reference: str | None = None) -> dict:
    """{"error": {"code", "message", "fields"}}: the one error shape of /api/ (see README)."""
    err = {"code": error_code or API_CODES.get(code, "error"), "message": message, "fields": fields or {}}
    if extra:
        err.update(extra)
    if reference:
        err["request_id"] = reference
    # "status" repeats the HTTP status, as every JSON error of the site always has.
    return {"error": err, "status": code}


def _render(code: int, message: str, reference: str | None = None, **api):
    if is_api_request():
        return make_response(jsonify(api_error_body(code, message, reference=reference, **api)), code)
    if wants_json():
        body = {"error": message, "status": code}
        if reference:
            body["request_id"] = reference
        return make_response(jsonify(body), code)
    return make_response(render_template("error.html", code=code, message=message, reference=reference), code)


def route() -> str:
    """The matched route pattern: logged instead of the path, which may carry a token."""
    return request.url_rule.rule if request.url_rule is not None else "(no route)"


def user_id_for_log() -> int | None:
    """The signed-in user's id if this request has loaded it, without touching the database
    (this runs while handling errors, possibly with a broken connection)."""
    user = g.get("_login_user")
    if user is None:
        return None
    try:
        identity = sa_inspect(user).identity
    except NoInspectionAvailable:  # the anonymous user
        return None
    return identity[0] if identity else None


def _rollback() -> None:
    from .extensions import db

    try:
        db.session.rollback()
    except Exception:  # the connection itself may be what failed; the response must still go out
        log.warning("rollback failed while handling an error", exc_info=True)


def _rate_limit_message(e) -> tuple[str, int]:
    """(message, seconds to wait) for a 429: the limit's own message, else which limit it is."""
    import math
    import time

    from flask_limiter.errors import RateLimitExceeded

    from .extensions import limiter

    wait = 60
    try:
        current = limiter.current_limit
        if current is not None:
            wait = max(1, math.ceil(current.reset_at - time.time()))
    except Exception:  # noqa: BLE001 - the storage failing must not turn a 429 into a 500
        log.warning("could not read the rate limit's reset time", exc_info=True)
    if isinstance(e, RateLimitExceeded) and e.limit.error_message:
        first = e.description
    elif isinstance(e, RateLimitExceeded):
        first = f"Too many requests: the limit here is {e.limit.limit}."
    elif e.description and e.description != type(e).description:
        first = e.description
    else:
        first = MESSAGES[429]
    unit = "second" if wait == 1 else "seconds"
    return f"{first} Please wait {wait} {unit} before trying again.", wait


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(e):
        if is_api_request():
            return _render(400, "A cookie-session write needs the page's CSRF token (X-CSRFToken header); "
                           "programs send a bearer token instead.", error_code="csrf_failed")
        return _render(400, "Your form expired or was sent from elsewhere. Reload the page and try again.")

    @app.errorhandler(429)
    def too_many(e):
        # A rate limit (marketplace/ratelimit.py): say which, and how long to wait.
        message, wait = _rate_limit_message(e)
        log.info("rate limited: %s %s user=%s", request.method, route(), user_id_for_log())
        resp = _render(429, message)
        resp.headers["Retry-After"] = str(wait)
        return resp

    @app.errorhandler(413)
    def too_large(e):
        limit = app.config.get("MAX_CONTENT_LENGTH") or 0
        return _render(413, f"The upload is too large: the limit is {limit // (1024 * 1024)} MB.")

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException):
        code = e.code or 500
        if code in (403, 404):
            log.info("denied %s: %s %s user=%s", code, request.method, route(), user_id_for_log())
        desc = e.description if code in (400, 401, 403, 409, 413, 415, 422, 429) and e.description and \
            e.description != type(e).description else MESSAGES.get(code, e.name)
        resp = _render(code, desc, **getattr(e, "api_details", {}))
        if code == 405 and getattr(e, "valid_methods", None):
            resp.headers["Allow"] = ", ".join(e.valid_methods)
        return resp

    @app.errorhandler(ServiceError)
    def service_refused(e: ServiceError):
        # A refusal no view turned into a form error: nothing of it may be committed later.
        _rollback()
        # 503 and 507: the refusal is the server's (an upload store down or full), said as such.
        code = e.status if 400 <= (e.status or 0) < 500 or e.status in (503, 507) else 400
        # The message is not logged: it can quote what the user wrote.
        log.info("refused %s: %s %s user=%s", code, request.method, route(), user_id_for_log())
        # A 404 says no more than any other 404 (it must not confirm that something exists).
        message = MESSAGES[404] if code == 404 else (e.message or MESSAGES.get(code, MESSAGES[400]))
        fields = {e.field: message} if e.field and code != 404 else None
        return _render(code, message, fields=fields)

    @app.errorhandler(OverflowError)
    @app.errorhandler(DataError)
    def out_of_range(e: Exception):
        # A value the database (or datetime arithmetic) cannot hold: the request's fault, not
        # ours. Logged without the value or the SQL parameters (the engine hides them).
        _rollback()
        log.warning("out-of-range value refused (%s): %s %s user=%s request_id=%s", type(e).__name__,
                    request.method, route(), user_id_for_log(), request_id())
        return _render(400, OUT_OF_RANGE)

    @app.errorhandler(Exception)
    def unhandled(e: Exception):
        if isinstance(e, HTTPException):
            return http_error(e)
        if isinstance(e, ServiceError):
            return service_refused(e)
        log.exception("unhandled error: %s %s user=%s", request.method, route(), user_id_for_log())
        _rollback()
        if app.config.get("PROPAGATE_UNHANDLED"):
            raise e
        return _render(500, SERVER_ERROR, reference=request_id())
