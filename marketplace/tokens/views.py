from __future__ import annotations

from datetime import timedelta

from flask import flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from .. import policy
from ..models import ApiToken, utcnow
from ..services import tokens as svc
from . import bp
from .forms import OrgTokenForm, TokenForm
from .pages import integrations_org, submit


def _expiry(form) -> object:
    return None if form.expires.data == "never" else utcnow() + timedelta(days=int(form.expires.data))


@bp.route("/settings/tokens", methods=["GET", "POST"])
@login_required
def personal():
    form, created = submit(TokenForm(), lambda f: svc.create_personal_token(
        current_user, f.name.data, f.scopes.data, _expiry(f)))
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


@bp.route("/orgs/<slug>/tokens", methods=["GET", "POST"])
@login_required
def org(slug: str):
    o = integrations_org(slug)
    form, created = submit(OrgTokenForm(), lambda f: svc.create_org_token(
        current_user, o, f.name.data, f.scopes.data, f.role.data, _expiry(f)))
    rows = svc.org_tokens(current_user, o)
    roles = {t.id: svc.token_role(t) for t in rows}
    return render_template("tokens/org.html", org=o, form=form, rows=rows, roles=roles, created=created,
                           now=utcnow()), (400 if form.errors else 200)
