from __future__ import annotations

from flask import render_template
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
    db.session.execute(func.now().select() if db.engine.dialect.name == "postgresql" else db.text("select 1"))
    return {"status": "ok"}
