"""Webhooks: organisations' admins register HTTPS endpoints for events on their own items;
each event writes one delivery per subscribed endpoint into the outbox (webhook_deliveries)
in the transaction of the event itself, so a rolled-back action sends nothing and a
committed one is never lost. The worker (marketplace/webhooks/worker.py, `flask webhooks
deliver`) sends them, signed, with retries and back-off.

Events come from the audit trail: `audit.record` hands each governance event to
`enqueue_for_audit_event`, which maps the few that are webhook events (EVENTS) and builds
their payload with what the organisation may see (`policy.organisation_viewer`): a sealed
idea's text, a request the organisation may not read, anything of another organisation,
stays out of it.

Endpoints must be HTTPS on public addresses (no loopback, private, link-local or reserved
address: a webhook must not be a way to reach the site's own network, SSRF). Only
`WEBHOOK_ALLOW_LOOPBACK` (set by the testing configuration) lets http://127.0.0.1 in.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, has_app_context
from sqlalchemy import select

from .. import audit, policy
from ..extensions import db
from ..models import (
    AssetRequest,
    AuditEvent,
    Idea,
    Item,
    Organisation,
    Question,
    User,
    Webhook,
    WebhookDelivery,
    utcnow,
)
from .common import ServiceError

EVENTS: dict[str, str] = {
    "idea.submitted": "An idea was submitted to one of the organisation's challenges",
    "question.asked": "A question was asked on one of its challenges",
    "request.made": "An asset request was sent for one of its assets",
    "status.changed": "One of its items, or an idea on one of its challenges, changed status",
    "terms.versioned": "One of its challenges or assets has a new terms version",
}

# Governance action -> webhook event.
FROM_AUDIT = {
    "idea.submitted": "idea.submitted",
    "question.asked": "question.asked",
    "request.sent": "request.made",
    "item.status_changed": "status.changed",
    "idea.shortlisted": "status.changed",
    "idea.declined": "status.changed",
    "idea.awarded": "status.changed",
    "idea.withdrawn": "status.changed",
    "terms.version_created": "terms.versioned",
    "asset.terms_published": "terms.versioned",
}
IDEA_STATUS_OF = {"idea.shortlisted": "shortlisted", "idea.declined": "declined", "idea.awarded": "awarded",
                  "idea.withdrawn": "withdrawn"}
MAX_WEBHOOKS_PER_ORG = 20
SIGNATURE_HEADER = "X-Marketplace-Signature"


# --------------------------------------------------------------------------- endpoints


class UnsafeURL(ValueError):
    pass


def _allow_loopback() -> bool:
    return bool(has_app_context() and current_app.config.get("WEBHOOK_ALLOW_LOOPBACK"))


def check_address(ip: str, allow_loopback: bool) -> None:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if addr.is_loopback and allow_loopback:
        return
    if not addr.is_global or addr.is_multicast or addr.is_reserved or addr.is_loopback or addr.is_link_local \
            or addr.is_private or addr.is_unspecified:
        raise UnsafeURL(f"{addr} is not a public address; webhooks only go to public HTTPS endpoints.")


def resolve(url: str, allow_loopback: bool | None = None) -> tuple[str, str, int, list[str]]:
    """(scheme, host, port, addresses) of a safe endpoint, or UnsafeURL saying why not."""
    allow = _allow_loopback() if allow_loopback is None else allow_loopback
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeURL("That is not a URL.") from None
    host = parts.hostname
    if parts.scheme not in ("https", "http") or not host:
        raise UnsafeURL("Use an https:// URL.")
    if parts.username or parts.password:
        raise UnsafeURL("The URL may not carry a user name or password.")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if parts.scheme == "http" and not (allow and literal is not None and literal.is_loopback):
        raise UnsafeURL("Use an https:// URL.")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURL(f"{host} could not be resolved.") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    for a in addresses:
        check_address(a, allow)
    return parts.scheme, host, port, addresses


def _clean_events(events) -> list[str]:
    if isinstance(events, str):
        events = events.split()
    chosen = list(dict.fromkeys(events or []))
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown:
        raise ServiceError(f"Unknown event {unknown[0]!r}; use some of: {', '.join(EVENTS)}.", field="events")
    if not chosen:
        raise ServiceError("Choose at least one event.", field="events")
    return chosen


def create_webhook(actor: User, org: Organisation, url: str, events) -> tuple[Webhook, str]:
    """Register an endpoint; returns (webhook, secret). The secret is shown once."""
    if not policy.can(actor, "manage_integrations", org):
        raise ServiceError("Only the organisation's owners and admins manage its webhooks.", 403)
    url = (url or "").strip()
    if len(url) > 500:
        raise ServiceError("At most 500 characters.", field="url")
    try:
        resolve(url)
    except UnsafeURL as e:
        raise ServiceError(str(e), field="url") from None
    chosen = _clean_events(events)
    count = db.session.execute(select(db.func.count()).select_from(Webhook).where(Webhook.org_id == org.id)).scalar()
    if count >= MAX_WEBHOOKS_PER_ORG:
        raise ServiceError(f"An organisation may have at most {MAX_WEBHOOKS_PER_ORG} webhooks.", 409)
    secret = "whsec_" + secrets.token_urlsafe(32)
    w = Webhook(org_id=org.id, url=url, events=" ".join(chosen), secret=secret, created_by_id=actor.id)
    db.session.add(w)
    db.session.flush()
    audit.record("integration.webhook_added", "organisation", org.id, actor_id=actor.id,
                 data={"webhook_id": w.id, "host": urlsplit(url).hostname, "events": chosen})
    db.session.commit()
    return w, secret


def delete_webhook(actor: User, w: Webhook) -> None:
    if not policy.can(actor, "manage", w):
        raise ServiceError("There is nothing here, or you may not see it.", 404)
    audit.record("integration.webhook_removed", "organisation", w.org_id, actor_id=actor.id,
                 data={"webhook_id": w.id})
    db.session.delete(w)
    db.session.commit()


def redeliver(actor: User, d: WebhookDelivery) -> WebhookDelivery:
    """Queue the same payload again (a new delivery; the old one keeps its record)."""
    if not policy.can(actor, "redeliver", d):
        raise ServiceError("There is nothing here, or you may not see it.", 404)
    again = WebhookDelivery(webhook_id=d.webhook_id, event=d.event, payload=d.payload, status="pending",
                            next_attempt_at=utcnow(), redelivery_of_id=d.id)
    db.session.add(again)
    db.session.commit()
    return again


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>", as the receiver recomputes it."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                                hashlib.sha256).hexdigest()


# --------------------------------------------------------------------------- the outbox


def _item_of(row: AuditEvent) -> Item | None:
    if row.item_id is not None:
        return db.session.get(Item, row.item_id)
    if row.subject_type == "asset_request" and row.subject_id is not None:
        r = db.session.get(AssetRequest, row.subject_id)
        return r.item if r is not None else None
    return None


def _payload_data(event: str, row: AuditEvent, item: Item, reader) -> dict[str, Any]:
    from ..api.serializers import idea_json, item_json, question_json, request_json

    data = json.loads(row.data or "{}")
    out: dict[str, Any] = {"item": item_json(item, reader) if policy.can(reader, "view", item) else {"id": item.id}}
    if row.subject_type == "idea":
        idea = db.session.get(Idea, row.subject_id)
        if idea is not None:
            out["idea"] = idea_json(idea, reader) if policy.can(reader, "view", idea) \
                else {"id": idea.id, "challenge_id": idea.challenge_id}
    elif row.subject_type == "question":
        q = db.session.get(Question, row.subject_id)
        if q is not None:
            out["question"] = question_json(q, reader) if policy.can(reader, "view", q) else {"id": q.id}
    elif row.subject_type == "asset_request":
        r = db.session.get(AssetRequest, row.subject_id)
        if r is not None:
            out["request"] = request_json(r) if policy.can(reader, "view", r) else {"id": r.id}
    if event == "status.changed":
        if row.subject_type == "idea":
            out["status"] = {"from": data.get("from"), "to": IDEA_STATUS_OF.get(row.action)}
        else:
            out["status"] = {"from": data.get("from"), "to": data.get("to")}
    if event == "terms.versioned":
        out["terms"] = {"version": data.get("version"), "digest": data.get("digest")}
    return out


def enqueue_for_audit_event(row: AuditEvent) -> None:
    """Called by audit.record inside the event's transaction: one pending delivery per active
    webhook of the item's organisation subscribed to this event."""
    event = FROM_AUDIT.get(row.action)
    if event is None:
        return
    item = _item_of(row)
    if item is None:
        return
    hooks = [w for w in db.session.execute(select(Webhook).where(Webhook.org_id == item.org_id,
                                                                 Webhook.active.is_(True))).scalars()
             if event in w.event_list]
    if not hooks:
        return
    reader = policy.organisation_viewer(item.org_id)
    body = {"event": event, "event_id": row.id, "occurred_at": row.created_at.isoformat().replace("+00:00", "Z"),
            "organisation": {"slug": item.organisation.slug, "name": item.organisation.name},
            "data": _payload_data(event, row, item, reader)}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    now = utcnow()
    for w in hooks:
        db.session.add(WebhookDelivery(webhook_id=w.id, event=event, payload=text, status="pending",
                                       next_attempt_at=now))
