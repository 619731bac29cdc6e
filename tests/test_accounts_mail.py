"""Accounts by mail: verification on registration, password reset, change of address, and
registration that answers the same whether or not an address has an account (the mail to
the address carries the difference). Tokens: expired, reused, for another account."""
from __future__ import annotations

import re
import time

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import func, select

from marketplace import create_app
from marketplace.config import TestingConfig
from marketplace.extensions import db
from marketplace.models import OutgoingMail, User
from marketplace.policy import UNVERIFIED_REFUSAL

from .factories import PASSWORD, Factories
from .factories_ideas import IdeaFactories

NEW_PW = "a-brand-new-password"


def mails_to(address: str) -> list[OutgoingMail]:
    db.session.expire_all()
    return list(db.session.execute(select(OutgoingMail).where(OutgoingMail.to_email == address)
                                   .order_by(OutgoingMail.id)).scalars())


def link_in(mail: OutgoingMail, path: str) -> str:
    m = re.search(r"https?://[^/\s]+(" + re.escape(path) + r"[^\s\"<]+)", mail.body)
    assert m, mail.body
    return m.group(1)


def register(client, email, name="New Person", password="a-long-password", **query):
    return client.post("/auth/register", query_string=query,
                       data={"email": email, "display_name": name, "password": password, "confirm": password})


def user_by(email: str) -> User | None:
    db.session.expire_all()
    return db.session.execute(select(User).where(User.email == email)).scalar()


# --------------------------------------------------------------------------- registration


def test_registration_answers_the_same_for_a_known_address(ctx, client):
    f = Factories()
    f.make_user(email="known@example.test", name="Known Person")
    new = register(client, "fresh@example.test")
    known = register(client, "known@example.test", name="Impostor")
    assert new.status_code == known.status_code == 200
    strip = lambda r, a: r.text.replace(a, "ADDRESS")  # noqa: E731
    assert strip(new, "fresh@example.test") == strip(known, "known@example.test")
    assert "already" not in known.text
    # Nobody is signed in either way, and no second account exists.
    assert client.get("/auth/account").status_code == 302
    assert db.session.execute(select(func.count()).select_from(User).where(
        User.email == "known@example.test")).scalar_one() == 1
    assert user_by("known@example.test").display_name == "Known Person"
    # The mails carry the difference, to each address's owner.
    [verify] = mails_to("fresh@example.test")
    assert verify.kind == "account.verify" and "/auth/verify/" in verify.body
    [notice] = mails_to("known@example.test")
    assert notice.kind == "account.exists" and "already has an account" in notice.body
    assert "/auth/verify/" not in notice.body and "/auth/reset" in notice.body


def test_verification_link_confirms_and_unlocks_taking_part(ctx, client):
    f = Factories()
    fi = IdeaFactories(f)
    s = fi.challenge()
    register(client, "maker@example.test")
    user = user_by("maker@example.test")
    assert user.email_verified_at is None
    # Signing in works; taking part does not, with a clear refusal and a way to resend.
    client.post("/auth/login", data={"email": "maker@example.test", "password": "a-long-password"})
    from marketplace import policy
    assert policy.participation_refusal(user, s.challenge) == UNVERIFIED_REFUSAL
    page = client.get(f"/challenges/{s.challenge.id}").text
    assert "Confirm your e-mail address" in page and "/auth/verify/resend" in page
    r = client.post(f"/challenges/{s.challenge.id}/ideas/new", data=fi.form(s.challenge))
    assert r.status_code in (400, 403) and "Confirm your e-mail address" in r.text
    assert client.post("/auth/verify/resend").status_code == 302
    assert len(mails_to("maker@example.test")) == 2
    path = link_in(mails_to("maker@example.test")[-1], "/auth/verify/")
    assert client.get(path).status_code == 302
    assert user_by("maker@example.test").email_verified_at is not None
    assert policy.participation_refusal(user_by("maker@example.test"), s.challenge) is None
    # Reused: harmless, still confirmed.
    assert client.get(path).status_code == 302


def test_verification_link_refusals(ctx, client, monkeypatch):
    f = Factories()
    other = f.make_user(email="other@example.test")
    register(client, "slow@example.test")
    path = link_in(mails_to("slow@example.test")[0], "/auth/verify/")
    # Signed in as another account: refused, nothing verified.
    client.post("/auth/login", data={"email": other.email, "password": PASSWORD})
    r = client.get(path)
    assert r.status_code == 403 and "another account" in r.text
    assert r.headers["Cache-Control"] == "no-store"
    client.post("/auth/logout")
    assert user_by("slow@example.test").email_verified_at is None
    # Tampered and expired links.
    assert client.get(path[:-3] + "xyz").status_code == 404
    from marketplace.services import accounts
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 8 * 24 * 3600)
    old = accounts._serializer("verify").dumps({"u": user_by("slow@example.test").id, "e": "slow@example.test"})
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    r = client.get(f"/auth/verify/{old}")
    assert r.status_code == 410 and "expired" in r.text
    assert user_by("slow@example.test").email_verified_at is None


def test_unverified_people_cannot_ask_comment_or_request(ctx):
    from marketplace import policy
    f = Factories()
    owner = f.make_user()
    org = f.make_org(owner=owner)
    challenge = f.make_item(org, kind="challenge")
    failure = f.make_item(org, kind="failure")
    asset = f.make_item(org, kind="asset")
    u = f.make_user(email_verified_at=None)
    v = policy.viewer_for(u)
    assert policy.ask_refusal(v, challenge) == UNVERIFIED_REFUSAL
    assert policy.discussion_refusal(v, failure) == UNVERIFIED_REFUSAL
    assert policy.asset_request_refusal(v, asset) == UNVERIFIED_REFUSAL
    verified = policy.viewer_for(f.make_user())
    assert policy.ask_refusal(verified, challenge) is None


# --------------------------------------------------------------------------- password reset


def test_password_reset_by_single_use_link(ctx, client):
    f = Factories()
    u = f.make_user(email="forgetful@example.test")
    other_client = ctx.test_client()
    other_client.post("/auth/login", data={"email": u.email, "password": PASSWORD})
    known = client.post("/auth/reset", data={"email": "Forgetful@Example.test"})
    unknown = client.post("/auth/reset", data={"email": "stranger@example.test"})
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace("forgetful", "X") == unknown.text.replace("stranger", "X")
    [note] = mails_to("stranger@example.test")
    assert note.kind == "account.reset_unknown" and "no account uses it" in note.body
    [mail] = mails_to("forgetful@example.test")
    path = link_in(mail, "/auth/reset/")
    assert "Choose a new password" in client.get(path).text
    r = client.post(path, data={"password": NEW_PW, "confirm": NEW_PW})
    assert r.status_code == 302
    # Every session ended; the new password works, the old does not.
    assert other_client.get("/auth/account").status_code == 302
    assert client.post("/auth/login", data={"email": u.email, "password": PASSWORD}).status_code == 400
    assert client.post("/auth/login", data={"email": u.email, "password": NEW_PW}).status_code == 302
    client.post("/auth/logout")
    # Used once: the link is dead.
    r = client.get(path)
    assert r.status_code == 410 and "already used" in r.text
    assert client.post(path, data={"password": "yet-another-pass", "confirm": "yet-another-pass"}).status_code == 410


def test_reset_link_expired_or_for_another_account(ctx, client, monkeypatch):
    f = Factories()
    u = f.make_user(email="late@example.test")
    other = f.make_user()
    from marketplace.services import accounts
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(time.time()) - 2 * 3600)
    old = accounts._serializer("reset").dumps({"u": u.id, "p": accounts._password_fingerprint(u)})
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    r = client.get(f"/auth/reset/{old}")
    assert r.status_code == 410 and "expired" in r.text
    client.post("/auth/reset", data={"email": u.email})
    path = link_in(mails_to(u.email)[-1], "/auth/reset/")
    client.post("/auth/login", data={"email": other.email, "password": PASSWORD})
    r = client.post(path, data={"password": NEW_PW, "confirm": NEW_PW})
    assert r.status_code == 403 and "another account" in r.text
    db.session.expire_all()
    from marketplace.security import verify_password
    assert verify_password(db.session.get(User, u.id).password_hash, PASSWORD)


def test_reset_form_refuses_bad_input(ctx, client):
    r = client.post("/auth/reset", data={"email": "not-an-address"})
    assert r.status_code == 400 and "valid e-mail address" in r.text
    f = Factories()
    u = f.make_user(email="short@example.test")
    client.post("/auth/reset", data={"email": u.email})
    path = link_in(mails_to(u.email)[-1], "/auth/reset/")
    r = client.post(path, data={"password": "short", "confirm": "short"})
    assert r.status_code == 400 and "at least 10 characters" in r.text


# --------------------------------------------------------------------------- change of address


def test_change_of_address_is_confirmed_at_the_new_address(ctx, client):
    f = Factories()
    u = f.make_user(email="before@example.test")
    f.make_user(email="taken@example.test")
    client.post("/auth/login", data={"email": u.email, "password": PASSWORD})
    r = client.post("/auth/email", data={"e-email": "after@example.test", "e-password": "wrong-password-1"})
    assert r.status_code == 400 and "current password is not correct" in r.text
    free = client.post("/auth/email", data={"e-email": "after@example.test", "e-password": PASSWORD})
    taken = client.post("/auth/email", data={"e-email": "taken@example.test", "e-password": PASSWORD})
    assert free.status_code == taken.status_code == 302
    assert "already" not in client.get("/auth/account").text
    [note] = mails_to("taken@example.test")
    assert note.kind == "account.email_taken" and "/auth/email/" not in note.body
    [mail] = mails_to("after@example.test")
    path = link_in(mail, "/auth/email/")
    assert user_by("before@example.test") is not None  # nothing changes before the link is used
    assert "after@example.test" in client.get(path).text
    assert client.post(path).status_code == 302
    moved = user_by("after@example.test")
    assert moved is not None and moved.id == u.id and moved.email_verified_at is not None
    [told] = mails_to("before@example.test")
    assert told.kind == "account.email_changed" and "a•••@example.test" in told.body
    assert client.get(path).status_code == 410  # used


def test_change_link_for_another_account_is_refused(ctx, client):
    f = Factories()
    u = f.make_user(email="mine@example.test")
    other = f.make_user()
    c1 = ctx.test_client()
    c1.post("/auth/login", data={"email": u.email, "password": PASSWORD})
    c1.post("/auth/email", data={"e-email": "moved@example.test", "e-password": PASSWORD})
    path = link_in(mails_to("moved@example.test")[0], "/auth/email/")
    client.post("/auth/login", data={"email": other.email, "password": PASSWORD})
    assert client.post(path).status_code == 403
    assert user_by("mine@example.test") is not None


# --------------------------------------------------------------------------- rate limits


@pytest.fixture
def limited(tmp_path):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'rl.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        RATELIMIT_ENABLED = True

    app = create_app(Cfg)
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()
        db.engine.dispose()


def test_reset_and_registration_are_rate_limited_per_address(limited):
    c = limited.test_client()
    codes = [c.post("/auth/reset", data={"email": "target@example.test"}).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    # Another address from the same visitor still gets through.
    assert c.post("/auth/reset", data={"email": "other@example.test"}).status_code == 200
    codes = [register(c, "victim@example.test", password=f"a-long-password-{i}").status_code for i in range(6)]
    assert codes[-1] == 429
