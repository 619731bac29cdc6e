"""The search page (``search.search``, also the header box) and its JSON twin, and the
operators' page of the index writer (``search.admin``, site admins only).

Both search views call service.search with the current user; every query string, however
malformed, gets a normal page (the parser never raises and unknown fields are plain words).
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from .. import policy
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
        "notice": result.notice,
    })
    resp.headers["Cache-Control"] = "private, no-store"
    return resp


@bp.route("/admin/search")
@login_required
def admin():
    """The index writer's state, the outbox backlog, and the failing jobs with their errors."""
    policy.require("administer")
    from .cli import collect_stats

    return render_template("search/admin.html", st=collect_stats(limit_jobs=200))


@bp.route("/admin/search/retry", methods=["POST"])
@login_required
def admin_retry():
    """Queue parked jobs again: one (job=ID) or all (all=1)."""
    policy.require("administer")
    from . import get_runtime
    from .worker import retry_parked

    if request.form.get("all"):
        ids = None
    else:
        try:
            ids = [int(request.form.get("job", ""))]
        except ValueError:
            abort(400, "Name the parked job to retry.")
    n = retry_parked(ids)
    flash(f"{n} parked job{'s' if n != 1 else ''} queued again." if n else "No such parked job.",
          "success" if n else "error")
    get_runtime().committed()
    return redirect(url_for("search.admin"))
