"""The search page (``search.search``, also the header box) and its JSON twin.

Both call service.search with the current user; every query string, however malformed,
gets a normal page (the parser never raises and unknown fields are plain words).
"""
from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request
from flask_login import current_user

from . import service

bp = Blueprint("search", __name__)


def _int_arg(name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except (TypeError, ValueError):
        return default


def _run():
    return service.search(
        current_user,
        request.args.get("q", ""),
        sort=request.args.get("sort") or None,
        page=_int_arg("page", 1),
        per_page=_int_arg("per_page", service.PER_PAGE),
    )


@bp.route("/search")
def search():
    result = _run()
    args = {"q": result.q}
    if request.args.get("sort") in service.SORTS:
        args["sort"] = request.args["sort"]
    return render_template("search/results.html", result=result, args=args, sorts=service.SORTS)


@bp.route("/api/search")
def api_search():
    result = _run()
    resp = jsonify({
        "q": result.q,
        "sort": result.sort,
        "page": result.page,
        "per_page": result.per_page,
        "total": result.total,
        "pages": result.pages,
        "results": [service.hit_json(h) for h in result.hits],
        "facets": {f.field: [{"value": v.value, "label": v.label, "count": v.count} for v in f.values]
                   for f in result.facets},
        "suggestion": result.suggestion,
    })
    resp.headers["Cache-Control"] = "private, no-store"
    return resp
