"""Absolute links for mails: the configured public address (SERVER_NAME,
PREFERRED_URL_SCHEME, APPLICATION_ROOT) whenever it is set, inside a request too: a link
in a password-reset mail must never take its host from the request's Host header, which
the person asking chooses. Without SERVER_NAME: the request's own host inside a request,
else `make run`'s address, which is right on a development checkout and says plainly on a
server that SERVER_NAME is missing.
"""
from __future__ import annotations

from flask import current_app, has_request_context, url_for

DEV_SERVER_NAME = "127.0.0.1:5000"


def external_base_configured() -> bool:
    return bool(current_app.config.get("SERVER_NAME"))


def external_url(endpoint: str, **values) -> str:
    if has_request_context() and not external_base_configured():
        return url_for(endpoint, _external=True, **values)
    cfg = current_app.config
    adapter = current_app.url_map.bind(
        cfg.get("SERVER_NAME") or DEV_SERVER_NAME,
        script_name=cfg.get("APPLICATION_ROOT") or "/",
        url_scheme=cfg.get("PREFERRED_URL_SCHEME") or "http",
    )
    return adapter.build(endpoint, values, force_external=True)
