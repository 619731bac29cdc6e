from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from .. import policy
from ..extensions import db
from ..models import Organisation, Webhook, WebhookDelivery
from ..services import webhooks as svc
from ..tokens.pages import integrations_org, submit
from . import bp
from .forms import WebhookForm

DELIVERIES_SHOWN = 100


def _delivery(slug: str, delivery_id: int) -> tuple[Organisation, WebhookDelivery]:
    """The organisation (as integrations_org loads it) and one of its hooks' deliveries: 404
    for a delivery the viewer may not see or of another organisation's hook."""
    org = integrations_org(slug)
    d = policy.get_visible_or_404(WebhookDelivery, delivery_id)
    if d.webhook.org_id != org.id:
        abort(404)
    return org, d


@bp.route("/orgs/<slug>/webhooks", methods=["GET", "POST"])
@login_required
def index(slug: str):
    org = integrations_org(slug)
    form, created = submit(WebhookForm(), lambda f: svc.create_webhook(current_user, org, f.url.data, f.events.data))
    hooks = db.session.execute(policy.visible(current_user, Webhook).where(Webhook.org_id == org.id)
                               .order_by(Webhook.id)).scalars().all()
    deliveries = db.session.execute(
        policy.visible(current_user, WebhookDelivery)
        .where(WebhookDelivery.webhook_id.in_([w.id for w in hooks] or [-1]))
        .order_by(WebhookDelivery.id.desc()).limit(DELIVERIES_SHOWN)).scalars().all()
    return render_template("webhooks/index.html", org=org, form=form, hooks=hooks, deliveries=deliveries,
                           created=created, events=svc.EVENTS), (400 if form.errors else 200)


@bp.route("/orgs/<slug>/webhooks/<int:webhook_id>/delete", methods=["POST"])
@login_required
def delete(slug: str, webhook_id: int):
    org = integrations_org(slug)
    w = policy.get_visible_or_404(Webhook, webhook_id)
    if w.org_id != org.id:
        abort(404)
    svc.delete_webhook(current_user, w)
    flash("Webhook removed; its deliveries are no longer sent.", "success")
    return redirect(url_for("webhooks.index", slug=org.slug))


@bp.route("/orgs/<slug>/webhooks/deliveries/<int:delivery_id>")
@login_required
def delivery(slug: str, delivery_id: int):
    org, d = _delivery(slug, delivery_id)
    return render_template("webhooks/delivery.html", org=org, d=d)


@bp.route("/orgs/<slug>/webhooks/deliveries/<int:delivery_id>/redeliver", methods=["POST"])
@login_required
def redeliver(slug: str, delivery_id: int):
    org, d = _delivery(slug, delivery_id)
    again = svc.redeliver(current_user, d)
    flash(f"Queued again as delivery {again.id}.", "success")
    return redirect(url_for("webhooks.index", slug=org.slug))
