"""The API's machinery: each operation is declared once (path, method, scope, pydantic models
for its query, body and response) by the `operation` decorator, which registers the Flask
route and the entry the OpenAPI document (openapi.py) and the scope check (auth.py) read.

Also: request parsing (query errors are 400, body fields that fail or may not be set are 422,
never applied), pagination with totals and `Link` headers, and ETags on reads.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlencode

from flask import Response, g, jsonify, request
from flask_login import current_user
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func, select
from werkzeug.exceptions import HTTPException

from .. import policy
from ..extensions import db
from ..params import parse_int
from . import bp


class ApiError(HTTPException):
    """An API refusal in the one error shape, with a code, the fields at fault and any extra
    members (e.g. the current terms digest on a 409)."""

    def __init__(self, status: int, message: str, *, code: str | None = None, fields: dict | None = None,
                 extra: dict | None = None):
        super().__init__(description=message)
        self.code = status
        self.api_details = {"error_code": code, "fields": fields, "extra": extra}


# --------------------------------------------------------------------------- declarations


@dataclass
class Operation:
    endpoint: str
    rule: str
    method: str
    summary: str
    tag: str
    scope: str            # "read" for GETs, an area's write scope (or "write") for writes
    auth: bool            # anonymous callers get 401
    query: type[BaseModel] | None
    body: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    errors: tuple[int, ...]
    description: str = ""
    paginated: bool = False
    extra_responses: dict[int, str] = field(default_factory=dict)


OPERATIONS: dict[str, Operation] = {}  # "api.<endpoint>" -> its declaration

# Statuses any operation may answer with; each operation adds its own.
COMMON_ERRORS = (400, 429)


def operation(rule: str, method: str = "GET", *, summary: str, tag: str, scope: str | None = None,
              auth: bool | None = None, query: type[BaseModel] | None = None, body: type[BaseModel] | None = None,
              response: type[BaseModel] | None = None, status: int = 200, errors: tuple[int, ...] = (),
              paginated: bool = False, extra_responses: dict[int, str] | None = None) -> Callable:
    """Declare and register an API operation. The view receives `q` (the parsed query) and
    `body` (the parsed JSON body) when declared, and returns a dict (sent as JSON with
    `status`), a (dict, status) pair, None (204) or a Response."""
    def deco(fn: Callable) -> Callable:
        endpoint = fn.__name__
        needs_auth = auth if auth is not None else method != "GET"
        op = Operation(endpoint=endpoint, rule=rule, method=method, summary=summary, tag=tag,
                       scope=scope or ("read" if method == "GET" else "write"), auth=needs_auth, query=query,
                       body=body, response=response, status=status, errors=tuple(errors),
                       description=(fn.__doc__ or "").strip(), paginated=paginated,
                       extra_responses=dict(extra_responses or {}))

        @functools.wraps(fn)
        def view(**kw):
            if query is not None:
                kw["q"] = parse_query(query)
            if body is not None:
                kw["body"] = parse_body(body)
            return to_response(fn(**kw), status)

        bp.add_url_rule(rule, endpoint, view, methods=[method])
        OPERATIONS[f"{bp.name}.{endpoint}"] = op
        return view
    return deco


def current_operation() -> Operation | None:
    return OPERATIONS.get(request.endpoint or "")


# --------------------------------------------------------------------------- request parsing


def _loc(err: dict) -> str:
    return ".".join(str(p) for p in err.get("loc", ())) or "body"


def _message(err: dict) -> str:
    if err.get("type") == "extra_forbidden":
        return "This field may not be set here."
    return str(err.get("msg", "Invalid value."))


def _fields(e: ValidationError) -> dict[str, str]:
    out: dict[str, str] = {}
    for err in e.errors(include_url=False):
        out.setdefault(_loc(err), _message(err))
    return out


def _int_bounds(model: type[BaseModel]) -> dict[str, tuple[int, int]]:
    """The query model's bounded whole-number fields: name -> (minimum, maximum)."""
    out = {}
    for name, info in model.model_fields.items():
        lo = next((m.ge for m in info.metadata if isinstance(getattr(m, "ge", None), int)), None)
        hi = next((m.le for m in info.metadata if isinstance(getattr(m, "le", None), int)), None)
        if lo is not None and hi is not None:
            out[name] = (lo, hi)
    return out


def parse_query(model: type[BaseModel]) -> BaseModel:
    """The query string as `model`, or a 400 naming every parameter at fault. Whole numbers
    are read as the pages read them (params.parse_int: ASCII digits only, no "1_0", "1.0" or
    other scripts' digits) and a bad one is told what is allowed, in plain words."""
    data = {k: request.args.get(k) for k in request.args}
    fields: dict[str, str] = {}
    for name, (lo, hi) in _int_bounds(model).items():
        raw = data.get(name)
        if raw is None:
            continue
        value = parse_int(raw, lo, hi)
        if value is None:
            fields[name] = f"{name} must be a whole number from {lo} to {hi}."
            del data[name]  # refused above; pydantic need not refuse it again
        else:
            data[name] = value
    try:
        parsed = model.model_validate(data)
    except ValidationError as e:
        fields.update(_fields(e))
    if fields:
        name, msg = next(iter(fields.items()))
        raise ApiError(400, msg if msg.startswith(f"{name} ") else f"Query parameter {name}: {msg}",
                       fields=fields) from None
    return parsed


def parse_body(model: type[BaseModel]) -> BaseModel:
    data = request.get_json(silent=True) if request.mimetype == "application/json" else None
    if not isinstance(data, dict):
        raise ApiError(400, "Send a JSON object (Content-Type: application/json).")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        fields = _fields(e)
        forbidden = [k for k, v in fields.items() if v == "This field may not be set here."]
        msg = (f"Field {forbidden[0]} may not be set here; nothing was changed." if forbidden
               else "Some fields are not valid; nothing was changed.")
        raise ApiError(422, msg, fields=fields) from None


def to_response(rv: Any, status: int) -> Response:
    if isinstance(rv, Response):
        return rv
    if rv is None:
        return Response(status=204)
    if isinstance(rv, tuple):
        rv, status = rv
    resp = jsonify(rv)
    resp.status_code = status
    return resp


# --------------------------------------------------------------------------- pagination


class PageQuery(BaseModel):
    """page and per_page: bounded (per_page at most 100; page at most 10,000)."""

    model_config = ConfigDict(extra="ignore")
    page: int = Field(1, ge=1, le=10_000, description="Page number, from 1.")
    per_page: int = Field(20, ge=1, le=100, description="Rows per page (1 to 100).")


class PageMeta(BaseModel):
    total: int
    page: int
    per_page: int
    pages: int


def page_meta(total: int, page: int, per_page: int) -> dict:
    pages = max(1, math.ceil(total / per_page))
    g.api_page = (page, pages, total)
    return {"total": total, "page": page, "per_page": per_page, "pages": pages}


def paginate(stmt, q: PageQuery) -> tuple[list, dict]:
    """One page of `stmt` (already filtered by the policy and ordered) and its totals; the
    response gets `Link` (first, prev, next, last) and `X-Total-Count` headers."""
    total = db.session.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()
    rows = db.session.execute(stmt.limit(q.per_page).offset((q.page - 1) * q.per_page)).scalars().unique().all()
    return rows, page_meta(total, q.page, q.per_page)


def newest_visible(model, *where):
    """The rows of ``model`` the viewer may see (the policy's SQL) that match ``where``, newest
    first (ties by id): the order of the API's lists of records."""
    return policy.visible(current_user, model).where(*where).order_by(model.created_at.desc(), model.id.desc())


def listing(key: str, stmt, q: PageQuery, to_json) -> dict:
    """A list response: one page of `stmt` (as `paginate` takes it) under `key`, each row
    turned into JSON by `to_json`, with the page totals."""
    rows, meta = paginate(stmt, q)
    return {key: [to_json(r) for r in rows], **meta}


def page_list(rows: list, q: PageQuery) -> tuple[list, dict]:
    """Paginate rows already loaded and filtered row by row (bounded lists)."""
    return rows[(q.page - 1) * q.per_page:q.page * q.per_page], page_meta(len(rows), q.page, q.per_page)


def _page_url(page: int) -> str:
    args = request.args.to_dict()
    args["page"] = str(page)
    return f"{request.base_url}?{urlencode(args)}"


def add_link_headers(resp: Response) -> None:
    state = g.get("api_page")
    if state is None:
        return
    page, pages, total = state
    links = [f'<{_page_url(1)}>; rel="first"', f'<{_page_url(pages)}>; rel="last"']
    if page > 1:
        links.append(f'<{_page_url(min(page - 1, pages))}>; rel="prev"')
    if page < pages:
        links.append(f'<{_page_url(page + 1)}>; rel="next"')
    resp.headers["Link"] = ", ".join(links)
    resp.headers["X-Total-Count"] = str(total)


def add_etag(resp: Response) -> Response:
    """Reads carry a strong ETag of their body; If-None-Match with it answers 304."""
    if request.method != "GET" or resp.status_code != 200 or resp.direct_passthrough:
        return resp
    resp.add_etag()
    return resp.make_conditional(request)
