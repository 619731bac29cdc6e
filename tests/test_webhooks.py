"""Webhooks, received by a real HTTP server started in the test (http.server in a thread):
deliveries are written in the event's transaction, signed (HMAC-SHA256 over timestamp and
body), retried with back-off, parked, re-sent from the page, and carry only what the
organisation may see. Endpoints on private or loopback addresses are refused outside tests."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from marketplace import create_app
from marketplace.config import TestingConfig
from marketplace.extensions import db
from marketplace.models import WebhookDelivery, utcnow
from marketplace.services import engagement as eng_svc
from marketplace.services import items as items_svc
from marketplace.services import webhooks as svc
from marketplace.services.common import ServiceError
from marketplace.webhooks.worker import deliver_due

from .factories_ideas import IdeaFactories


class Receiver:
    """A local endpoint that records each request and answers with the next queued status."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(f"answer {status}".encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


@pytest.fixture
def world(f):
    fi = IdeaFactories(f)
    owner = f.make_user(email="owner@acme.test")
    admin = f.make_user(email="admin@acme.test")
    contributor = f.make_user(email="c@else.test")
    org = f.make_org(name="Acme", owner=owner, admins=(admin,))
    other = f.make_org(name="Other", owner=f.make_user())
    setup = fi.challenge(owner=owner, org=org, confidentiality="open")
    sealed = fi.challenge(owner=owner, org=org, confidentiality="sealed")
    return {"fi": fi, "f": f, "owner": owner, "admin": admin, "contributor": contributor, "org": org,
            "other": other, "challenge": setup.challenge, "sealed": sealed.challenge}


def verify(req, secret) -> dict:
    ts = req["headers"]["X-Marketplace-Timestamp"]
    want = "sha256=" + hmac.new(secret.encode(), ts.encode() + b"." + req["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req["headers"]["X-Marketplace-Signature"], want)
    return json.loads(req["body"])


def test_an_idea_submitted_is_delivered_signed(world, receiver):
    w, secret = svc.create_webhook(world["admin"], world["org"], receiver.url, ["idea.submitted"])
    idea = world["fi"].submit(world["contributor"], world["challenge"], title="Robot arms")
    tally = deliver_due()
    assert tally.delivered == 1 and len(receiver.requests) == 1
    req = receiver.requests[0]
    assert req["headers"]["X-Marketplace-Event"] == "idea.submitted" and req["path"] == "/hook"
    body = verify(req, secret)
    assert body["event"] == "idea.submitted" and body["organisation"]["slug"] == world["org"].slug
    assert body["data"]["idea"]["id"] == idea.id and body["data"]["idea"]["title"] == "Robot arms"
    assert body["data"]["item"]["id"] == world["challenge"].id
    # A wrong secret does not verify.
    with pytest.raises(AssertionError):
        verify(req, secret + "x")
    d = db.session.execute(select(WebhookDelivery)).scalar_one()
    assert (d.status, d.attempts, d.response_status, d.response_body) == ("delivered", 1, 200, "answer 200")


def test_deliveries_are_written_in_the_event_s_transaction(world, receiver):
    svc.create_webhook(world["admin"], world["org"], receiver.url, ["status.changed"])
    ch = world["challenge"]
    with pytest.raises(ServiceError):
        items_svc.change_status(world["owner"], ch, "draft")  # refused: nothing written
    assert db.session.execute(select(WebhookDelivery)).first() is None
    items_svc.change_status(world["owner"], ch, "closed")
    d = db.session.execute(select(WebhookDelivery)).scalar_one()
    assert json.loads(d.payload)["data"]["status"] == {"from": "open", "to": "closed"}


def test_only_subscribed_events_of_the_organisation_s_own_items(world, receiver):
    svc.create_webhook(world["admin"], world["org"], receiver.url, ["question.asked"])
    f = world["f"]
    theirs = f.make_item(world["other"], kind="challenge", visibility="public")
    eng_svc.ask_question(world["contributor"], theirs, "On another organisation's challenge?")
    world["fi"].submit(world["contributor"], world["challenge"])  # not subscribed
    assert db.session.execute(select(WebhookDelivery)).first() is None
    q = eng_svc.ask_question(world["contributor"], world["challenge"], "How big is the warehouse?")
    deliver_due()
    assert [json.loads(r["body"])["data"]["question"]["id"] for r in receiver.requests] == [q.id]


def test_a_sealed_idea_s_text_stays_out_of_the_payload(world, receiver):
    """The organisation's admins do not read sealed ideas (only the review panel does)."""
    svc.create_webhook(world["admin"], world["org"], receiver.url, ["idea.submitted"])
    idea = world["fi"].submit(world["contributor"], world["sealed"], title="Top secret title",
                              body="Sealed body text")
    deliver_due()
    raw = receiver.requests[0]["body"].decode()
    assert "Top secret title" not in raw and "Sealed body text" not in raw
    data = json.loads(raw)["data"]
    assert data["idea"]["id"] == idea.id and data["idea"].get("title") is None


def test_failures_are_retried_with_back_off_then_parked_and_can_be_resent(world, receiver, client, auth):
    svc.create_webhook(world["admin"], world["org"], receiver.url, ["terms.versioned"])
    world["fi"].set_terms(world["owner"], world["challenge"], field_of_use="Ports only.")
    receiver.statuses = [500, 503]
    now = utcnow()
    assert deliver_due(now).failed == 1
    d = db.session.execute(select(WebhookDelivery)).scalar_one()
    first_delay = d.next_attempt_at - now
    assert d.status == "pending" and d.attempts == 1 and d.response_status == 500
    assert deliver_due(now).attempted == 0  # not due yet
    later = d.next_attempt_at + timedelta(seconds=1)
    assert deliver_due(later).failed == 1
    db.session.refresh(d)
    assert d.next_attempt_at - later > first_delay  # the delay grew
    # The endpoint recovers: delivered on the third attempt.
    assert deliver_due(d.next_attempt_at + timedelta(seconds=1)).delivered == 1
    db.session.refresh(d)
    assert (d.status, d.attempts) == ("delivered", 3)
    assert len(receiver.requests) == 3
    ids = {json.loads(r["body"])["event_id"] for r in receiver.requests}
    assert len(ids) == 1  # the same event each time: receivers can drop duplicates

    # Re-sent from the page: a new delivery of the same payload.
    auth.login("admin@acme.test")
    page = client.get(f"/orgs/{world['org'].slug}/webhooks").get_data(as_text=True)
    assert "delivered" in page and "HTTP 200" in page
    r = client.post(f"/orgs/{world['org'].slug}/webhooks/deliveries/{d.id}/redeliver")
    assert r.status_code == 302
    again = db.session.execute(select(WebhookDelivery).where(WebhookDelivery.redelivery_of_id == d.id)).scalar_one()
    assert again.payload == d.payload and again.status == "pending"
    assert deliver_due().delivered == 1 and len(receiver.requests) == 4


def test_parked_after_the_last_attempt(tmp_path, receiver):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'p.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        UPLOAD_DIR = str(tmp_path / "uploads")
        WEBHOOK_MAX_ATTEMPTS = 2

    from .factories import Factories

    app = create_app(Cfg)
    with app.app_context():
        db.create_all()
        f = Factories()
        owner = f.make_user()
        org = f.make_org(owner=owner)
        svc.create_webhook(owner, org, receiver.url, ["status.changed"])
        item = f.make_item(org, kind="failure")
        items_svc.change_status(owner, item, "archived")
        receiver.statuses = [500, 500, 500]
        now = utcnow()
        deliver_due(now)
        d = db.session.execute(select(WebhookDelivery)).scalar_one()
        deliver_due(d.next_attempt_at)
        db.session.refresh(d)
        assert (d.status, d.attempts, d.last_error) == ("parked", 2, "HTTP 500")
        assert deliver_due(now + timedelta(days=1)).attempted == 0
        db.session.remove()
        db.engine.dispose()


def test_an_endpoint_that_is_down_is_a_failure_not_a_crash(world):
    svc.create_webhook(world["admin"], world["org"], "http://127.0.0.1:9/nothing", ["status.changed"])
    items_svc.change_status(world["owner"], world["challenge"], "closed")
    assert deliver_due().failed == 1
    d = db.session.execute(select(WebhookDelivery)).scalar_one()
    assert d.last_error and d.response_status is None


def test_cli_delivers(world, receiver, runner):
    svc.create_webhook(world["admin"], world["org"], receiver.url, ["status.changed"])
    items_svc.change_status(world["owner"], world["challenge"], "closed")
    r = runner.invoke(args=["webhooks", "deliver"])
    assert r.exit_code == 0 and "1 delivered" in r.output
    assert len(receiver.requests) == 1


def test_the_page_registers_shows_the_secret_once_and_is_for_admins(world, client, auth, receiver):
    slug = world["org"].slug
    auth.login("c@else.test")
    assert client.post(f"/orgs/{slug}/webhooks", data={"url": receiver.url, "events": ["idea.submitted"]}) \
        .status_code == 403
    auth.logout()
    auth.login("admin@acme.test")
    r = client.post(f"/orgs/{slug}/webhooks", data={"url": receiver.url, "events": ["idea.submitted"]})
    assert r.status_code == 200
    secret = re.search(r'id="new-secret">(whsec_[^<]+)<', r.get_data(as_text=True)).group(1)
    assert secret not in client.get(f"/orgs/{slug}/webhooks").get_data(as_text=True)
    r = client.post(f"/orgs/{slug}/webhooks", data={"url": "ftp://example.org/x", "events": ["idea.submitted"]})
    assert r.status_code == 400 and "https://" in r.get_data(as_text=True)


@pytest.fixture
def prod_like(tmp_path):
    """The production rule: no loopback, HTTPS only."""
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'ssrf.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        UPLOAD_DIR = str(tmp_path / "uploads")
        WEBHOOK_ALLOW_LOOPBACK = False

    app = create_app(Cfg)
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/hook", "https://127.0.0.1/hook", "https://localhost/hook", "https://[::1]/hook",
    "https://10.0.0.5/hook", "https://192.168.1.1/hook", "https://172.16.0.1/hook", "https://169.254.169.254/latest",
    "https://0.0.0.0/", "https://[::ffff:127.0.0.1]/", "https://user:pw@203.0.113.9/", "http://93.184.215.14/",
    "javascript:alert(1)", "https://",
])
def test_private_loopback_and_plain_http_endpoints_are_refused(prod_like, url):
    from .factories import Factories

    f = Factories()
    owner = f.make_user()
    org = f.make_org(owner=owner)
    with pytest.raises(ServiceError) as e:
        svc.create_webhook(owner, org, url, ["idea.submitted"])
    assert e.value.field == "url"


def test_public_https_addresses_pass_the_check(prod_like):
    scheme, host, port, addrs = svc.resolve("https://93.184.215.14:8443/hook")
    assert (scheme, port, addrs) == ("https", 8443, ["93.184.215.14"])
