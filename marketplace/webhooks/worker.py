"""The webhook delivery worker: sends due deliveries from the outbox, signed, and records the
answer. A failure (no connection, timeout, a status other than 2xx) is retried after a delay
that doubles each time (WEBHOOK_BACKOFF_SECONDS, at most 6 hours); after
WEBHOOK_MAX_ATTEMPTS the delivery is parked with its last error, shown on the
organisation's webhooks page, where it can be re-sent. It never stops the web processes: it
runs as `flask webhooks deliver [--watch]`, a small loop of its own (kept apart from the
search writer and the mail worker until the workers are unified).

Several workers may run (`flask worker` on several hosts): each claims the next due delivery
by moving its next attempt forward by LEASE in one UPDATE whose subquery picks the row
``FOR UPDATE SKIP LOCKED`` on PostgreSQL (`workers.claim_next`; only one worker's UPDATE
changes it) before sending it.

The endpoint's address is resolved and checked again at each attempt, and the connection goes
to that checked address (TLS still verifies the host name), so a DNS answer changed after
registration cannot point a delivery at the site's own network.
"""
from __future__ import annotations

import http.client
import logging
import socket
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select, update

from ..extensions import db
from ..models import WebhookDelivery, utcnow
from ..services.webhooks import SIGNATURE_HEADER, UnsafeURL, resolve, sign
from ..workers import claim_next

log = logging.getLogger(__name__)
LEASE = timedelta(minutes=5)      # a claimed delivery is retried if its worker died mid-send
MAX_DELAY = timedelta(hours=6)
RESPONSE_KEPT = 2000              # characters of the endpoint's answer kept for the page
USER_AGENT = "OpenInnovationMarketplace-Webhooks/1"


@dataclass
class Tally:
    delivered: int = 0
    failed: int = 0
    parked: int = 0
    ids: list[int] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed + self.parked


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, ip: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self) -> None:
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, ip: str, port: int, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self) -> None:
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    scheme, host, port, addresses = resolve(url)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    cls = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    conn = cls(host, addresses[0], port, timeout)
    try:
        # Redirects are not followed: a 3xx is a failed delivery like any other non-2xx.
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read(RESPONSE_KEPT * 4).decode("utf-8", "replace")[:RESPONSE_KEPT]
        return resp.status, text
    finally:
        conn.close()


def _delay(attempts: int) -> timedelta:
    base = int(current_app.config.get("WEBHOOK_BACKOFF_SECONDS", 30))
    return min(timedelta(seconds=base * 2 ** max(0, attempts - 1)), MAX_DELAY)


def deliver_one(d: WebhookDelivery, now: datetime | None = None) -> str:
    """Send one (claimed) delivery and record the outcome: delivered, failed (retried
    later) or parked."""
    now = now or utcnow()
    w = d.webhook
    body = d.payload.encode("utf-8")
    ts = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-Marketplace-Event": d.event, "X-Marketplace-Delivery": str(d.id),
               "X-Marketplace-Timestamp": ts, SIGNATURE_HEADER: sign(w.secret, ts, body)}
    status, text, error = None, None, None
    try:
        status, text = _post(w.url, body, headers, float(current_app.config.get("WEBHOOK_TIMEOUT_SECONDS", 10)))
    except UnsafeURL as e:
        error = f"refused: {e}"
    except (OSError, http.client.HTTPException, ssl.SSLError) as e:
        error = f"{type(e).__name__}: {e}"[:500]
    d.attempts += 1
    d.last_attempt_at = now
    d.response_status, d.response_body = status, text
    if status is not None and 200 <= status < 300:
        d.status, d.delivered_at, d.last_error, d.next_attempt_at = "delivered", now, None, None
    else:
        d.last_error = error or f"HTTP {status}"
        if d.attempts >= int(current_app.config.get("WEBHOOK_MAX_ATTEMPTS", 8)):
            d.status, d.next_attempt_at = "parked", None
        else:
            d.next_attempt_at = now + _delay(d.attempts)
    db.session.commit()
    # Neither URL nor payload in the log: the payload names items and people.
    log.info("webhook delivery %s: %s (attempt %s)", d.id, d.status if d.status != "pending" else "failed",
             d.attempts)
    return d.status if d.status != "pending" else "failed"


def deliver_due(now: datetime | None = None, limit: int = 100) -> Tally:
    """Send every delivery due at `now` (at most `limit`)."""
    now = now or utcnow()
    tally = Tally()
    for _ in range(limit):
        # Claimed one at a time: a batch claimed at once could outlive its lease while the
        # first deliveries wait on slow endpoints, and another worker would send the rest again.
        did = claim_next(WebhookDelivery, WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now,
                         order_by=(WebhookDelivery.next_attempt_at, WebhookDelivery.id),
                         values={"next_attempt_at": now + LEASE})
        if did is None:
            break
        d = db.session.get(WebhookDelivery, did)
        outcome = deliver_one(d, now)
        setattr(tally, outcome, getattr(tally, outcome) + 1)
        tally.ids.append(did)
    return tally


def watch(poll_seconds: float = 2.0, stop=None) -> None:
    """Deliver forever (until `stop()` is true or the process is stopped)."""
    while stop is None or not stop():
        try:
            tally = deliver_due()
        except Exception:  # a broken delivery or database hiccup must not end the worker
            log.exception("webhook worker: delivery round failed")
            db.session.rollback()
            tally = Tally()
        if not tally.attempted:
            time.sleep(poll_seconds)
