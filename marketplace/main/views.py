from __future__ import annotations

from flask import jsonify, render_template
from flask_login import current_user
from sqlalchemy import func

from .. import policy
from ..extensions import db
from ..models import Challenge, Failure, Asset, Status
from . import bp


@bp.route("/")
def index():
    def latest(model, n=6, order=None):
        q = policy.visible(current_user, model).where(model.status == Status.OPEN.value)
        q = q.order_by(*(order or [model.created_at.desc(), model.id.desc()])).limit(n)
        return db.session.execute(q).scalars().all()

    challenges = latest(Challenge, 8, [Challenge.deadline.is_(None), Challenge.deadline.asc(), Challenge.id.desc()])
    failures = latest(Failure, 4)
    assets = latest(Asset, 4)
    return render_template("main/index.html", challenges=challenges, failures=failures, assets=assets)


@bp.route("/about")
def about():
    return render_template("main/about.html")


@bp.route("/healthz")
def healthz():
    """Liveness and the search index writer's state, for monitoring (public: counts and
    states only, never error texts). 200 with "status": "ok" or "degraded" (search lags,
    jobs are parked, or the index is of another database: the site itself serves); 503
    "down" when the database cannot be reached."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..search import get_runtime
    from ..search.health import search_health

    try:
        db.session.execute(func.now().select() if db.engine.dialect.name == "postgresql" else db.text("select 1"))
    except SQLAlchemyError:
        db.session.rollback()
        return {"status": "down", "database": "unreachable"}, 503
    try:
        search = search_health(get_runtime())
    except SQLAlchemyError:  # e.g. the outbox table of an unmigrated database
        db.session.rollback()
        search = {"writer": "unknown", "problems": ["the search outbox could not be read"]}
    problems = search.pop("problems")
    body = {"status": "degraded" if problems else "ok", "database": "ok", "search": search}
    if problems:
        body["problems"] = problems
    resp = jsonify(body)
    resp.headers["Cache-Control"] = "no-store"
    return resp
