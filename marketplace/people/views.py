"""Views: the person's data download and account deletion (their own only: the policy's
`download_data` and `delete_account` on User)."""
from __future__ import annotations

import logging

from flask import Response, abort, flash, g, redirect, render_template, session, url_for
from flask_login import current_user, login_required, logout_user

from ..extensions import db
from ..formtools import attach_service_error
from ..policy import require
from ..services import people as svc
from ..services.common import ServiceError
from . import bp
from .forms import DeleteAccountForm

log = logging.getLogger(__name__)


@bp.route("/settings/data.json")
@login_required
def data_download():
    """Everything the site holds about the signed-in person, as one JSON file."""
    user = current_user._get_current_object()
    require("download_data", user)
    try:
        text = svc.personal_data_json(user, user)
    except ServiceError as e:
        abort(e.status, e.message)
    resp = Response(text, mimetype="application/json")
    resp.headers["Content-Disposition"] = 'attachment; filename="my-data.json"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/settings/delete", methods=["GET", "POST"])
@login_required
def delete_account():
    user = current_user._get_current_object()
    require("delete_account", user)
    form = DeleteAccountForm()
    stuck = svc.sole_owner_of(user)
    status = 200
    if form.validate_on_submit():
        try:
            name = svc.delete_account(user, form.password.data, bool(form.confirm.data))
        except ServiceError as e:
            db.session.rollback()
            attach_service_error(form, e)
            status = e.status
        else:
            log.info("account deleted: user=%s", user.id)
            # Every session row is gone with the account: sign this browser out too.
            g.pop("_user_session", None)
            logout_user()
            session.clear()
            flash(f"Your account was deleted. What others rely on is kept under “{name}”.", "info")
            return redirect(url_for("main.index"))
    elif form.errors:
        status = 400
    return render_template("people/delete.html", form=form, stuck=stuck), status
