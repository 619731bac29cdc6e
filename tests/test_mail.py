"""E-mail that is really sent: a real SMTP server (aiosmtpd) in the test process receives
what the worker sends. Headers, both parts, links on the configured public address, the
no-leak rule per recipient, retries and back-off, crash safety (never twice), the CLI, the
file backend, and the admin page of failures (subjects only where the admin may see what
the mail is about).
"""
from __future__ import annotations

import email
import email.policy
import re
import socket
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from marketplace import create_app
from marketplace.config import ConfigError, TestingConfig
from marketplace.extensions import db
from marketplace.mail import worker
from marketplace.models import Follow, MailStatus, Notification, OutgoingMail, User, utcnow
from marketplace.services import invitations as inv_svc
from marketplace.services import notifications as notes

from .factories import PASSWORD, Factories
from .factories_ideas import IdeaFactories

BASE = "https://market.example.org"


class Inbox:
    """aiosmtpd handler: keeps every message; refuses recipients at refuse.test (550)."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.endswith("@refuse.test"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if address in str(m["To"])]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = Inbox()
    port = _free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    inbox.port = port
    yield inbox
    ctl.stop()


@pytest.fixture
def mapp(tmp_path, smtp):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'mail.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        UPLOAD_DIR = str(tmp_path / "uploads")
        MAIL_BACKEND = "smtp"
        MAIL_SERVER = "127.0.0.1"
        MAIL_PORT = smtp.port
        MAIL_TIMEOUT = 5
        MAIL_DEFAULT_SENDER = "Open Innovation Marketplace <noreply@market.example.org>"
        SERVER_NAME = "market.example.org"
        PREFERRED_URL_SCHEME = "https"

    app = create_app(Cfg)
    app.instance_path = str(tmp_path)
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


def parts(msg) -> tuple[str, str]:
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    return text, html


def _challenge(fi, title: str | None = None, **kw):
    s = fi.challenge(**kw)
    if title:
        s.challenge.title = title
        db.session.commit()
    return s


def links(text: str) -> list[str]:
    return re.findall(r"https?://[^\s<>\"']+", text)


# --------------------------------------------------------------------------- the round trip


def test_invitation_travels_by_smtp_with_both_parts_and_public_links(mapp, smtp):
    f = Factories()
    fi = IdeaFactories(f)
    s = _challenge(fi, visibility="invited", title="Dust-proof lidar")
    inv, token = inv_svc.create_invitation(s.owner, s.challenge, "Newcomer@Expert.test")
    counts = worker.send_pending()
    assert counts["sent"] == 1
    [msg] = smtp.to("newcomer@expert.test")
    assert msg["From"] == "Open Innovation Marketplace <noreply@market.example.org>"
    assert msg["Subject"].startswith(f"{s.org.name} invites you to a challenge")
    assert msg["Message-ID"].endswith("@market.example.org>")
    text, html = parts(msg)
    assert "Dust-proof lidar" in text and "Dust-proof lidar" in html
    assert f"{BASE}/invitations/t/{token}" in text and f'href="{BASE}/invitations/t/{token}"' in html
    assert all(u.startswith(BASE + "/") for u in links(text)), links(text)
    assert "create your account" in text  # the address has no account: its owner is told
    row = db.session.execute(select(OutgoingMail)).scalar_one()
    assert row.status == "sent" and row.sent_at is not None and row.attempts == 1
    assert row.body == "" and row.html_body == ""  # carried a one-time link: text dropped once sent
    assert (row.about_type, row.about_id) == ("items", s.challenge.id) and inv.email == "newcomer@expert.test"


def test_notification_mail_has_unsubscribe_headers_and_plain_words(mapp, smtp):
    f = Factories()
    fi = IdeaFactories(f)
    s = fi.challenge()
    author = f.make_user(email="ann@contrib.test")
    idea = fi.submit(author, s.challenge, title="Glare filter")
    from marketplace.services import ideas as idea_svc
    idea_svc.shortlist_idea(s.owner, idea)
    worker.send_pending()
    [msg] = [m for m in smtp.to("ann@contrib.test") if "shortlisted" in m["Subject"]]
    assert msg["Subject"].strip() == "Idea shortlisted: Your idea “Glare filter” was shortlisted."
    unsub = msg["List-Unsubscribe"].strip().strip("<>")
    assert unsub.startswith(f"{BASE}/notifications/unsubscribe/")
    assert msg["List-Unsubscribe-Post"].strip() == "List-Unsubscribe=One-Click"
    text, html = parts(msg)
    assert "idea.shortlisted" not in text and "Idea shortlisted" in text
    assert f"{BASE}/ideas/{idea.id}" in text and unsub in text and unsub in html
    # The sponsor's admins were told of the submission (they may see the idea).
    assert any("New idea" in m["Subject"] for m in smtp.to(s.owner.email))


def test_sealed_idea_text_never_reaches_someone_who_cannot_open_it(mapp, smtp):
    f = Factories()
    fi = IdeaFactories(f)
    s = _challenge(fi, confidentiality="sealed", title="Sealed challenge")
    follower = f.make_user(email="follower@watch.test")
    db.session.add(Follow(user_id=follower.id, target_kind="challenge", target_key=str(s.challenge.id)))
    db.session.commit()
    author = f.make_user(email="inventor@contrib.test")
    fi.submit(author, s.challenge, title="CANARY-TITLE-7731", body="CANARY-BODY-7731 the secret sauce")
    notes.announce(s.owner, s.challenge, "Q&A session", "Join us on Friday.")
    worker.send_pending()
    assert smtp.messages
    for msg in smtp.messages:
        raw = msg.as_string()
        assert "CANARY-BODY-7731" not in raw  # no idea text is ever mailed
        if "CANARY-TITLE-7731" in raw:  # only to those who may open the sealed idea
            rcpt = str(msg["To"])
            user = db.session.execute(select(User).where(User.email == rcpt)).scalar_one()
            from marketplace import policy
            from marketplace.models import Idea
            idea = db.session.execute(select(Idea)).scalar_one()
            assert policy.can(user, "view", idea), rcpt
    assert smtp.to("follower@watch.test")  # the follower got the announcement
    assert not any("CANARY" in m.as_string() for m in smtp.to("follower@watch.test"))


def test_private_item_title_stays_out_of_an_invitation(mapp, smtp):
    f = Factories()
    owner = f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, visibility="organisation", title="CANARY-PRIVATE-5512")
    draft = f.make_item(org, visibility="invited", status="draft", title="CANARY-DRAFT-5512")
    inv_svc.create_invitation(owner, item, "guest@outside.test")
    inv_svc.create_invitation(owner, draft, "guest2@outside.test")
    worker.send_pending()
    assert len(smtp.messages) == 2
    assert not any("CANARY" in m.as_string() for m in smtp.messages)


def test_a_mail_is_cancelled_when_its_recipient_can_no_longer_see_what_it_is_about(mapp, smtp):
    f = Factories()
    fi = IdeaFactories(f)
    s = fi.challenge(visibility="invited")
    guest = f.make_user(email="guest@late.test")
    grant = f.grant(s.challenge, user=guest)
    db.session.add(Follow(user_id=guest.id, target_kind="challenge", target_key=str(s.challenge.id)))
    db.session.commit()
    notes.announce(s.owner, s.challenge, "CANARY-ANN-9 update", "Details.")
    grant.revoked_at = utcnow()  # access ends before the worker runs
    db.session.commit()
    counts = worker.send_pending()
    assert counts["cancelled"] == 1 and not smtp.to("guest@late.test")
    row = db.session.execute(select(OutgoingMail).where(OutgoingMail.to_email == "guest@late.test")).scalar_one()
    assert row.status == "cancelled" and "CANARY" not in row.body


# --------------------------------------------------------------------------- failures and crashes


def test_permanent_refusal_fails_at_once_and_others_still_go(mapp, smtp):
    from marketplace.mail.outbox import queue_text
    queue_text("nobody@refuse.test", "Hello", "One")
    queue_text("somebody@fine.test", "Hello", "Two")
    db.session.commit()
    counts = worker.send_pending()
    assert counts == {"sent": 1, "retry": 0, "failed": 1, "cancelled": 0}
    bad = db.session.execute(select(OutgoingMail).where(OutgoingMail.to_email == "nobody@refuse.test")).scalar_one()
    assert bad.status == "failed" and "SMTPRecipientsRefused" in bad.last_error and bad.attempts == 1
    assert len(smtp.to("somebody@fine.test")) == 1


def test_temporary_failure_backs_off_then_gives_up(mapp):
    from marketplace.mail.outbox import queue_text
    mapp.config["MAIL_PORT"] = _free_port()  # nobody listens: connection refused
    mapp.extensions["mailman"].port = mapp.config["MAIL_PORT"]
    queue_text("later@fine.test", "Hello", "Body")
    db.session.commit()
    now = utcnow()
    assert worker.send_pending(now=now)["retry"] == 1
    row = db.session.execute(select(OutgoingMail)).scalar_one()
    assert row.status == "pending" and row.attempts == 1 and row.next_attempt_at == now + timedelta(minutes=1)
    assert worker.send_pending(now=now + timedelta(seconds=30)) == {"sent": 0, "retry": 0, "failed": 0,
                                                                   "cancelled": 0}  # not due yet
    t = now
    for expected in (timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=6)):
        t = row.next_attempt_at
        worker.send_pending(now=t)
        db.session.refresh(row)
        assert row.next_attempt_at == t + expected
    worker.send_pending(now=row.next_attempt_at)
    db.session.refresh(row)
    assert row.status == "failed" and row.attempts == 6 and "Connection" in row.last_error


def test_two_workers_never_claim_the_same_mail(mapp):
    from marketplace.mail.outbox import queue_text
    row = queue_text("x@fine.test", "Hello", "Body")
    db.session.commit()
    assert worker.claim(row.id, utcnow()) is True
    assert worker.claim(row.id, utcnow()) is False


class _DiesAfterSending:
    """A connection that hands the message to the real server, then the process "dies"
    before the worker can mark it sent."""

    def __init__(self, real):
        self.real = real

    def open(self):
        return self.real.open()

    def close(self):
        return self.real.close()

    def send_messages(self, messages):
        self.real.send_messages(messages)
        raise SystemExit("killed after sending")


def test_sent_but_not_marked_is_never_sent_twice(mapp, smtp):
    from marketplace.mail import get_connection
    from marketplace.mail.outbox import queue_text
    row = queue_text("once@fine.test", "Only once", "Body")
    db.session.commit()
    with pytest.raises(SystemExit):
        worker.send_pending(connection=_DiesAfterSending(get_connection()))
    db.session.rollback()
    db.session.refresh(row)
    assert row.status == "sending" and len(smtp.to("once@fine.test")) == 1
    # Other workers come by: the row is never taken again, and after the lease it is listed
    # as failed ("may or may not have been delivered") for an admin to decide.
    assert worker.send_pending()["sent"] == 0
    assert worker.send_pending(now=utcnow() + worker.LEASE + timedelta(seconds=1))["sent"] == 0
    db.session.refresh(row)
    assert row.status == "failed" and "may or may not have been delivered" in row.last_error
    assert len(smtp.to("once@fine.test")) == 1


def test_admin_failures_page_hides_subjects_of_mails_about_drafts_and_can_send_again(mapp, smtp):
    f = Factories()
    admin = f.make_user(site_role="admin")
    owner = f.make_user()
    org = f.make_org(owner=owner)
    draft = f.make_item(org, visibility="invited", status="draft", title="CANARY-DRAFTLOG-1")
    public = f.make_item(org, visibility="public", title="Public thing")
    from marketplace.mail.outbox import queue_text
    queue_text("a@refuse.test", "About CANARY-DRAFTLOG-1", "x", about=draft)
    queue_text("b@refuse.test", "About Public thing", "x", about=public)
    db.session.commit()
    worker.send_pending()
    c = mapp.test_client()
    c.post("/auth/login", data={"email": admin.email, "password": PASSWORD})
    for path in ("/mail/failures", "/notifications/mail-log"):
        page = c.get(path).text
        assert "CANARY-DRAFTLOG-1" not in page and "About Public thing" in page
        assert "about something you may not see" in page and "SMTPRecipientsRefused" in page
    # The organisation's owner is no site admin: no mail log.
    c2 = mapp.test_client()
    c2.post("/auth/login", data={"email": owner.email, "password": PASSWORD})
    assert c2.get("/mail/failures").status_code == 403
    row = db.session.execute(select(OutgoingMail).where(OutgoingMail.to_email == "b@refuse.test")).scalar_one()
    assert c2.post(f"/mail/{row.id}/retry").status_code == 404
    assert c.post(f"/mail/{row.id}/retry").status_code == 302
    db.session.refresh(row)
    assert row.status == "pending" and row.attempts == 0
    assert c.post(f"/mail/{row.id}/retry").status_code == 409  # only failed ones


# --------------------------------------------------------------------------- CLI, backends, config


def test_cli_send_pending_and_test_message(mapp, smtp):
    runner = mapp.test_cli_runner()
    r = runner.invoke(args=["mail", "test", "ops@market.example.org"])
    assert r.exit_code == 0, r.output
    assert "Sent to ops@market.example.org" in r.output
    [msg] = smtp.to("ops@market.example.org")
    text, html = parts(msg)
    assert "test message" in text and "test message" in html
    r = runner.invoke(args=["mail", "test", "not an address"])
    assert r.exit_code == 1 and "not an e-mail address" in r.output
    from marketplace.mail.outbox import queue_text
    queue_text("queued@fine.test", "Queued", "Body")
    db.session.commit()
    r = runner.invoke(args=["mail", "send-pending"])
    assert r.exit_code == 0 and "sent: 1" in r.output, r.output
    r = runner.invoke(args=["mail", "status"])
    assert "sent: 2" in r.output and "failed: 0" in r.output


def test_cli_test_reports_a_dead_server(mapp):
    mapp.extensions["mailman"].port = _free_port()
    r = mapp.test_cli_runner().invoke(args=["mail", "test", "ops@market.example.org"])
    assert r.exit_code == 1 and "not sent (pending)" in r.output


def test_file_backend_writes_one_eml_per_message(tmp_path):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'f.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        MAIL_BACKEND = "file"
        MAIL_FILE_PATH = str(tmp_path / "mail")

    app = create_app(Cfg)
    with app.app_context():
        db.create_all()
        from marketplace.mail.outbox import queue_text
        queue_text("one@x.test", "First", "Body one")
        queue_text("two@x.test", "Second", "Body two")
        db.session.commit()
        assert worker.send_pending()["sent"] == 2
        files = sorted(Path(tmp_path / "mail").glob("*.eml"))
        assert len(files) == 2
        msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
        assert msg["To"] == "one@x.test" and "Body one" in msg.get_body(("plain",)).get_content()
        from marketplace.mail import describe_backend
        assert str(tmp_path / "mail") in describe_backend(app)
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("settings,message", [
    ({"MAIL_BACKEND": "carrier-pigeon"}, "MAIL_BACKEND"),
    ({"MAIL_BACKEND": "smtp", "MAIL_USE_TLS": True, "MAIL_USE_SSL": True}, "exclude each other"),
    ({"MAIL_WORKER": "sometimes"}, "MAIL_WORKER"),
    ({"MAIL_PORT": "twenty-five"}, "MAIL_PORT"),
    ({"NOTIFY_DEADLINE_LEAD_HOURS": "72,soon"}, "NOTIFY_DEADLINE_LEAD_HOURS"),
])
def test_bad_mail_configuration_stops_the_app_with_a_message(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        create_app({**{k: v for k, v in vars(TestingConfig).items() if k.isupper()},
                    "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'c.db'}", **settings})


def test_the_sync_worker_sends_after_the_request_and_never_fails_it(tmp_path, smtp):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 's.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        MAIL_BACKEND = "smtp"
        MAIL_SERVER = "127.0.0.1"
        MAIL_PORT = _free_port()  # nobody listens
        MAIL_WORKER = "sync"

    app = create_app(Cfg)
    with app.app_context():
        db.create_all()
    c = app.test_client()
    r = c.post("/auth/reset", data={"email": "someone@x.test"})
    assert r.status_code == 200 and "Check your inbox" in r.text  # the request did not fail
    with app.app_context():
        row = db.session.execute(select(OutgoingMail)).scalar_one()
        assert row.status == MailStatus.PENDING.value and row.attempts == 1  # queued for a retry
        db.session.remove()
        db.engine.dispose()


def test_notification_rows_record_what_they_are_about(mapp):
    f = Factories()
    fi = IdeaFactories(f)
    s = fi.challenge()
    author = f.make_user()
    idea = fi.submit(author, s.challenge)
    n = db.session.execute(select(Notification).where(Notification.user_id == s.owner.id)).scalars().first()
    assert (n.about_type, n.about_id) == ("ideas", idea.id)
