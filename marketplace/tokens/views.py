from __future__ import annotations

from datetime import timedelta

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from .. import policy
from ..extensions import db
from ..formtools import attach_service_error
from ..models import ApiToken, Organisation, utcnow
from ..services import tokens as svc
from ..services.common import ServiceError
from . import bp
from .forms import OrgTokenForm, TokenForm


def _expiry(form) -> object:
    return None if form.expires.data == "never" else utcnow() + timedelta(days=int(form.expires.data))


@bp.route("/settings/tokens", methods=["GET", "POST"])
@login_required
def personal():
    form = TokenForm()
    created = None
    if form.validate_on_submit():
        try:
            t, text = svc.create_personal_token(current_user, form.name.data, form.scopes.data, _expiry(form))
        except ServiceError as e:
            attach_service_error(form, e)
        else:
            created = (t, text)
            form = TokenForm(formdata=None)
    rows = svc.personal_tokens(current_user)
    return render_template("tokens/personal.html", form=form, rows=rows, created=created, now=utcnow()), \
        (400 if form.errors else 200)


def _token(token_id: int) -> ApiToken:
    t = policy.get_visible_or_404(ApiToken, token_id)
    return t


@bp.route("/settings/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke(token_id: int):
    t = _token(token_id)
    svc.revoke_token(current_user, t)
    flash(f"Token “{t.name}” revoked: it stops working now.", "success")
    if t.org_id is not None:
        return redirect(url_for("tokens.org", slug=t.organisation.slug))
    return redirect(url_for("tokens.personal"))


def _org(slug: str) -> Organisation:
    org = db.session.execute(select(Organisation).where(Organisation.slug == slug[:140])).scalar()
    if org is None or not policy.can(current_user, "view", org):
        abort(404)
    policy.require("manage_integrations", org)
    return org


@bp.route("/orgs/<slug>/tokens", methods=["GET", "POST"])
@login_required
def org(slug: str):
    o = _org(slug)
    form = OrgTokenForm()
    created = None
    if form.validate_on_submit():
        try:
            t, text = svc.create_org_token(current_user, o, form.name.data, form.scopes.data, form.role.data,
                                           _expiry(form))
        except ServiceError as e:
            attach_service_error(form, e)
        else:
            created = (t, text)
            form = OrgTokenForm(formdata=None)
    rows = svc.org_tokens(current_user, o)
    roles = {t.id: svc.token_role(t) for t in rows}
    return render_template("tokens/org.html", org=o, form=form, rows=rows, roles=roles, created=created,
                           now=utcnow()), (400 if form.errors else 200)
