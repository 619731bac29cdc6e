"""Absolute links for mails: the request's own host inside a request, else the configured
public address (SERVER_NAME, PREFERRED_URL_SCHEME, APPLICATION_ROOT).

Without SERVER_NAME, links built outside a request (the CLI, background work) point at
`make run`'s address, which is right on a development checkout and says plainly on a
server that SERVER_NAME is missing.
"""
from __future__ import annotations

from flask import current_app, has_request_context, url_for

DEV_SERVER_NAME = "127.0.0.1:5000"


def external_base_configured() -> bool:
    return bool(current_app.config.get("SERVER_NAME"))


def external_url(endpoint: str, **values) -> str:
    if has_request_context():
        return url_for(endpoint, _external=True, **values)
    cfg = current_app.config
    adapter = current_app.url_map.bind(
        cfg.get("SERVER_NAME") or DEV_SERVER_NAME,
        script_name=cfg.get("APPLICATION_ROOT") or "/",
        url_scheme=cfg.get("PREFERRED_URL_SCHEME") or "http",
    )
    return adapter.build(endpoint, values, force_external=True)
