"""Who is calling the API, what their token's scopes allow, and how fast they may call.

The one place where scopes are checked (`check_scope`): every operation declares its scope
(core.operation), a token must hold it (or `write` for any write scope), and a cookie
session holds every scope (it is a person at their browser, bound by CSRF).

* `Authorization: Bearer TOKEN`: the token's account acts (a personal token's owner, or an
  organisation token's integration account); the session cookie is ignored entirely, so a
  request carrying both is a token request (never a cookie request exempted from CSRF). A
  token that is unknown, revoked, expired, or whose account is blocked gets 401, checked on
  every request.
* No Authorization header: the cookie session, as on the pages; writes need the CSRF token
  (X-CSRFToken header). Anonymous callers see what an anonymous visitor sees.

Rate limits (Flask-Limiter, in the app's limiter storage, so shared by every worker process
when RATELIMIT_STORAGE_URI is shared): API_RATE_LIMIT per token, per signed-in account or per
address, with RateLimit-Limit / -Remaining / -Reset headers on every API response.
"""
from __future__ import annotations

import hashlib
import time

from flask import current_app, g, request
from flask_login import current_user

from ..extensions import csrf, limiter
from ..services import tokens as token_svc
from . import bp
from .core import ApiError, add_etag, add_link_headers, current_operation

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _bearer() -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise ApiError(401, "Send Authorization: Bearer TOKEN.", code="invalid_token")
    return value.strip()


def token_scopes() -> set[str] | None:
    """The scopes of the token of this request; None for a cookie session or anonymous call."""
    t = g.get("api_token")
    return set(t.scope_list) if t is not None else None


def check_scope(required: str) -> None:
    """Refuse (403 insufficient_scope) a token request whose token lacks `required`."""
    have = token_scopes()
    if have is None:
        return
    ok = required in have or (required.endswith("write") and "write" in have)
    if not ok:
        raise ApiError(403, f"This token lacks the {required!r} scope.", code="insufficient_scope",
                       extra={"required_scope": required})


@bp.before_request
def authenticate() -> None:
    # An outer app context (CLI, tests) may be reused across requests, and `g` with it.
    g.pop("api_token", None)
    g.pop("api_page", None)
    text = _bearer()
    if text is not None:
        t = token_svc.authenticate(text)
        if t is None:
            raise ApiError(401, "The token is unknown, expired or revoked.", code="invalid_token")
        g.api_token = t
        # Flask-Login reads the user from here: the cookie session is never consulted.
        g._login_user = t.acting_user
    op = current_operation()
    if op is not None and op.auth and not current_user.is_authenticated:
        raise ApiError(401, "Sign in, or send Authorization: Bearer TOKEN.", code="unauthenticated")
    if text is None and request.method not in SAFE_METHODS and current_user.is_authenticated \
            and current_app.config.get("WTF_CSRF_ENABLED", True):
        csrf.protect()  # a cookie session acting: the page's CSRF token is required
    if op is not None:
        check_scope(op.scope)


def rate_key() -> str:
    text = request.headers.get("Authorization", "")
    if text[:7].lower() == "bearer ":
        # Keyed by the token's hash (no database look-up before the limit applies).
        return "token:" + hashlib.sha256(text[7:].strip().encode("utf-8")).hexdigest()[:32]
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return "addr:" + (request.remote_addr or "?")


def _rate_limit_value() -> str:
    return current_app.config.get("API_RATE_LIMIT", "120/minute;3000/hour")


@bp.after_request
def headers(resp):
    add_link_headers(resp)
    lim = limiter.current_limit
    if lim is not None:
        resp.headers["RateLimit-Limit"] = str(lim.limit.amount)
        resp.headers["RateLimit-Remaining"] = str(max(0, lim.remaining))
        reset = max(0, int(lim.reset_at - time.time()))
        resp.headers["RateLimit-Reset"] = str(reset)
        if resp.status_code == 429:
            resp.headers["Retry-After"] = str(reset)
    # Answers depend on who asks: private, revalidated with the ETag.
    resp.headers["Cache-Control"] = "private, no-cache"
    resp.vary.add("Authorization")
    resp.vary.add("Cookie")
    return add_etag(resp)


# CSRF is checked in `authenticate` (cookie sessions only), not by Flask-WTF's app-wide hook:
# create_app exempts this blueprint from that hook through CSRF_EXEMPT_BLUEPRINTS
# (extensions.py), the one list of exemptions.
# The limit covers every API route (one counter per caller across the blueprint).
limiter.shared_limit(_rate_limit_value, scope="api", key_func=rate_key)(bp)
