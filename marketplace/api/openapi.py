"""The OpenAPI 3.1 document, built from the operations as declared (core.operation) and their
pydantic schemas, served at /api/v1/openapi.json, and the reference page at /api/docs
(rendered here, from the same document: no script or style from elsewhere).

Why pydantic and a small builder rather than flask-smorest, apiflask or spectree: pydantic
writes JSON Schema 2020-12, the dialect of OpenAPI 3.1, so schemas go into the document as
they are (marshmallow/apispec target 3.0's dialect); the app keeps its Flask class, its
blueprints and its one app-wide error handler (flask-smorest and apiflask install their own
error handlers and error shape app-wide, apiflask replaces the Flask class); and our
routes, scopes and error statuses are already declared in one place, which is all a builder
needs. The document is checked by openapi-spec-validator and exercised by schemathesis in
tests/test_api_openapi.py.
"""
from __future__ import annotations

import copy
import re
from typing import Any

from flask import current_app, render_template
from pydantic.json_schema import models_json_schema

from ..errors import API_CODES, MESSAGES
from ..sanitize import render_markdown
from ..services.tokens import SCOPES
from . import bp
from . import schemas as s
from .core import OPERATIONS, Operation, operation

_PARAM = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
ERROR_TEXT = {**MESSAGES, 401: "No valid token or session (`invalid_token`, `unauthenticated`).",
              403: "Not allowed, or the token lacks the scope (`insufficient_scope`).",
              404: MESSAGES[404], 410: "That has ended.", 415: "Send JSON.",
              422: "Fields that are invalid or may not be set (`fields` names them); nothing was applied.",
              304: "Not modified: If-None-Match matched the ETag.", 405: MESSAGES[405]}

DESCRIPTION = """\
Everything a signed-in person can do on the site, for programs, through the same services
and rules as the pages.

**Authentication.** `Authorization: Bearer TOKEN` with a personal token (Settings → API
tokens) or an organisation token (the organisation's Integrations page). Without it, the
browser session is used (writes then need the CSRF token); with neither, you see what an
anonymous visitor sees.

**Scopes.** GET needs `read`; each write names its scope (`ideas:write`, ...) and `write`
covers them all.

**Errors.** Always `{"error": {"code", "message", "fields"}}`. What you may not see is 404,
exactly like what does not exist; fields you may not set are 422 and nothing is applied.

**Pagination.** `page` and `per_page` (at most 100); lists carry `total`, `page`, `per_page`,
`pages`, and `Link` and `X-Total-Count` headers. Reads carry an `ETag`; send it back in
`If-None-Match` to get 304.

**Rate limits.** Per token (or account, or address), shared by every server process;
`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers; 429 beyond.
"""


def openapi_path(rule: str) -> str:
    return "/api" + _PARAM.sub(lambda m: "{" + m.group(2) + "}", rule)


def _path_params(rule: str) -> list[dict]:
    out = []
    for conv, name in _PARAM.findall(rule):
        if conv == "int":
            schema = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
        else:
            schema = {"type": "string", "minLength": 1, "maxLength": 140, "pattern": "^[^/]+$"}
        out.append({"name": name, "in": "path", "required": True, "schema": schema})
    return out


def _query_params(model) -> list[dict]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        desc = prop.pop("description", None)
        p = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if desc:
            p["description"] = desc
        out.append(p)
    return out


def _statuses(op: Operation) -> set[int]:
    codes = {400, 401, 403, 429}  # bad input or CSRF; bad token; scope; rate limit
    codes.update(op.errors)
    if "<" in op.rule:
        codes.add(404)
    if "<int:" in op.rule:
        # An id beyond 64 bits matches no route; where the path has other methods, Werkzeug
        # answers that this one is not allowed.
        codes.add(405)
    if op.method != "GET":
        codes.update({413, 422})
    return codes


def _schemas() -> tuple[dict, dict]:
    models = {(m, mode) for op in OPERATIONS.values()
              for m, mode in ((op.body, "validation"), (op.response, "serialization")) if m is not None}
    models.add((s.Error, "serialization"))
    keyed, top = models_json_schema(sorted(models, key=lambda x: (x[0].__name__, x[1])),
                                    ref_template="#/components/schemas/{model}")
    return keyed, top.get("$defs", {})


def build_document() -> dict[str, Any]:
    keyed, defs = _schemas()

    def ref(model, mode) -> dict:
        return copy.deepcopy(keyed[(model, mode)])

    error_ref = ref(s.Error, "serialization")
    paths: dict[str, dict] = {}
    for op in sorted(OPERATIONS.values(), key=lambda o: (o.rule, o.method)):
        entry: dict[str, Any] = {
            "operationId": op.endpoint, "summary": op.summary, "tags": [op.tag],
            "parameters": _path_params(op.rule) + (_query_params(op.query) if op.query else []),
            "security": [{"bearerAuth": [op.scope]}, {"cookieAuth": []}] + ([] if op.auth else [{}]),
            "x-scope": op.scope,
        }
        if op.description:
            entry["description"] = op.description
        if op.body is not None:
            entry["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": ref(op.body, "validation")}}}
        responses: dict[str, Any] = {}
        headers = {"RateLimit-Limit": {"schema": {"type": "string"}, "description": "Requests allowed per window."},
                   "RateLimit-Remaining": {"schema": {"type": "string"}},
                   "RateLimit-Reset": {"schema": {"type": "string"}, "description": "Seconds until the window resets."}}
        if op.method == "GET":
            headers["ETag"] = {"schema": {"type": "string"}}
        if op.paginated:
            headers["Link"] = {"schema": {"type": "string"}, "description": "first, prev, next, last (RFC 8288)."}
            headers["X-Total-Count"] = {"schema": {"type": "string"}}
        for status in sorted({op.status, *op.extra_responses}):
            if status == 204:
                responses["204"] = {"description": "Done.", "headers": headers}
                continue
            responses[str(status)] = {
                "description": op.extra_responses.get(status, op.summary), "headers": headers,
                "content": {"application/json": {"schema": ref(op.response, "serialization")}}}
        if op.method == "GET":
            responses["304"] = {"description": ERROR_TEXT[304]}
        for code in sorted(_statuses(op)):
            responses[str(code)] = {"description": f"`{API_CODES.get(code, 'error')}`: {ERROR_TEXT.get(code, '')}",
                                    "content": {"application/json": {"schema": error_ref}}}
        entry["responses"] = responses
        paths.setdefault(openapi_path(op.rule), {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {"title": "Open Innovation Marketplace API", "version": "1.0.0", "description": DESCRIPTION,
                 "license": {"name": "MIT", "identifier": "MIT"}},
        "paths": paths,
        "components": {
            "schemas": defs,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer",
                               "description": "A personal or organisation token. Scopes: " +
                                              "; ".join(f"`{k}`: {v}" for k, v in SCOPES.items()) + "."},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": current_app.session_interface.get_cookie_name(current_app),
                               "description": "The site's browser session (writes need X-CSRFToken)."},
            },
        },
        "tags": [{"name": t} for t in dict.fromkeys(op.tag for op in OPERATIONS.values())],
    }


def document() -> dict[str, Any]:
    """The document, built once per app (operations are declared at import)."""
    doc = current_app.extensions.get("api_openapi")
    if doc is None:
        doc = current_app.extensions["api_openapi"] = build_document()
    return doc


@operation("/v1/openapi.json", summary="This OpenAPI 3.1 document", tag="Meta", response=s.OpenAPIDocument)
def openapi_json():
    return document()


@bp.route("/docs")
def docs():
    """The reference, readable: every operation with its scope, parameters, body and answers."""
    doc = document()
    groups: dict[str, list] = {}
    for path, methods in doc["paths"].items():
        for method, entry in methods.items():
            groups.setdefault(entry["tags"][0], []).append((method.upper(), path, entry))
    return render_template("api/docs.html", doc=doc, groups=groups, scopes=SCOPES,
                           description_html=render_markdown(doc["info"]["description"]))
