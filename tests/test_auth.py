"""Accounts and sessions: registration, sign-in, Argon2id, cookies, CSRF, the SECRET_KEY
guard, password change and blocked accounts ending sessions."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace import create_app
from marketplace.config import DEFAULT_SECRET, TestingConfig
from marketplace.extensions import db
from marketplace.models import User, utcnow
from marketplace.security import verify_password

from .factories import Factories

PASSWORD = "correct-horse-battery"


def users(app) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(User)).scalar_one()


def get_user(app, email):
    with app.app_context():
        u = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        if u is not None:
            db.session.expunge(u)
        return u


@pytest.fixture
def alice(app):
    with app.app_context():
        return Factories().make_user(email="alice@example.test", name="Alice").id


def register(client, **kw):
    data = {"email": "new@example.test", "display_name": "New Person", "password": "a-long-password",
            "confirm": "a-long-password"}
    data.update(kw)
    return client.post("/auth/register", data=data)


# --------------------------------------------------------------------------- registration


def test_register_hashes_with_argon2id_and_asks_to_confirm(app, client):
    r = register(client, email="  New@Example.TEST ")
    assert r.status_code == 200 and "Check your inbox" in r.text
    user = get_user(app, "new@example.test")  # stored normalised
    assert user.password_hash.startswith("$argon2id$v=19$")
    assert "a-long-password" not in user.password_hash
    assert verify_password(user.password_hash, "a-long-password")
    assert user.email_verified_at is None
    # Not signed in by registering (an existing address would not be): signing in works.
    assert client.get("/auth/account").status_code == 302
    assert client.post("/auth/login", data={"email": "new@example.test", "password": "a-long-password"}
                       ).status_code == 302
    assert client.get("/auth/account").status_code == 200


@pytest.mark.parametrize("fields,message", [
    ({"email": "not-an-email"}, b"Enter a valid e-mail address."),
    ({"email": ""}, b"Enter your e-mail address."),
    ({"email": "a" * 250 + "@example.test"}, b"Enter a valid e-mail address."),
    ({"password": "short", "confirm": "short"}, b"Use at least 10 characters"),
    ({"password": "p" * 201, "confirm": "p" * 201}, b"Use at least 10 characters"),
    ({"confirm": "something-else"}, b"The passwords do not match."),
    ({"display_name": ""}, b"Enter a display name."),
    ({"display_name": "X"}, b"Use 2 to 80 characters."),
    ({"display_name": " X "}, b"The display name needs 2 to 80 characters."),
    ({"display_name": "N" * 81}, b"Use 2 to 80 characters."),
])
def test_bad_registration_creates_nothing(app, client, alice, fields, message):
    before = users(app)
    r = register(client, **fields)
    assert r.status_code == 400 and message in r.data
    assert users(app) == before
    assert client.get("/auth/account").status_code == 302


# --------------------------------------------------------------------------- sign in


def test_sign_in_and_out(client, auth, alice):
    r = auth.login("alice@example.test")
    assert r.status_code == 302
    assert client.get("/auth/account").status_code == 200
    assert client.post("/auth/logout").status_code == 302
    assert client.get("/auth/account").status_code == 302


@pytest.mark.parametrize("email,password", [("alice@example.test", "wrong-password-123"),
                                            ("nobody@example.test", PASSWORD),
                                            ("ALICE@EXAMPLE.TEST", "Correct-horse-battery")])
def test_wrong_credentials_say_the_same_thing(client, alice, email, password):
    r = client.post("/auth/login", data={"email": email, "password": password})
    assert r.status_code == 400 and b"Wrong e-mail address or password." in r.data
    assert client.get("/auth/account").status_code == 302


def test_email_is_case_insensitive_at_sign_in(client, alice):
    assert client.post("/auth/login", data={"email": " Alice@Example.test", "password": PASSWORD}).status_code == 302


@pytest.mark.parametrize("target,lands", [("/challenges/", "/challenges/"), ("//evil.example/x", "/"),
                                          ("https://evil.example/", "/"), ("/\\evil.example", "/"),
                                          ("javascript:alert(1)", "/")])
def test_next_never_leaves_the_site(client, alice, target, lands):
    r = client.post("/auth/login", query_string={"next": target},
                    data={"email": "alice@example.test", "password": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"] == lands


def test_login_required_pages_redirect_with_next(client):
    r = client.get("/auth/account")
    assert r.status_code == 302 and r.headers["Location"].startswith("/auth/login?next=")


# --------------------------------------------------------------------------- cookies, headers, CSRF


def _session_cookie(resp):
    cookies = [c for c in resp.headers.getlist("Set-Cookie") if c.startswith(("session=", "__Host-session="))]
    assert cookies, resp.headers
    return cookies[-1]


def test_session_cookie_flags(client, auth, alice):
    cookie = _session_cookie(auth.login("alice@example.test"))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # only when configured (plain-HTTP local runs)


def test_session_cookie_secure_when_configured(tmp_path, alice):
    class Secure(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'test.db'}"  # the same database as `app`
        SEARCH_INDEX_DIR = str(tmp_path / "search2")
        SESSION_COOKIE_SECURE = True

    app = create_app(Secure)
    c = app.test_client()
    cookie = _session_cookie(c.post("/auth/login", data={"email": "alice@example.test", "password": PASSWORD}))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert cookie.startswith("__Host-session=") and "Path=/" in cookie and "Domain" not in cookie
    with app.app_context():
        db.engine.dispose()


def test_security_headers(client, auth, alice):
    r = client.get("/")
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    auth.login("alice@example.test")
    assert client.get("/auth/account").headers["Cache-Control"] == "private, no-store"


@pytest.fixture
def csrf_app(tmp_path):
    class WithCSRF(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'csrf.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search-csrf")
        WTF_CSRF_ENABLED = True

    app = create_app(WithCSRF)
    with app.app_context():
        db.create_all()
        Factories().make_user(email="alice@example.test")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_csrf_is_enforced_when_enabled(csrf_app):
    c = csrf_app.test_client()
    creds = {"email": "alice@example.test", "password": PASSWORD}
    r = c.post("/auth/login", data=creds)
    assert r.status_code == 400 and b"Your form expired or was sent from elsewhere" in r.data
    r = c.post("/auth/register", data={"email": "x@example.test", "display_name": "Xavier",
                                       "password": "a-long-password", "confirm": "a-long-password"})
    assert r.status_code == 400
    with csrf_app.app_context():
        assert db.session.execute(select(func.count()).select_from(User)).scalar_one() == 1
    page = c.get("/auth/login").text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    assert c.post("/auth/login", data={**creds, "csrf_token": "forged"}).status_code == 400
    assert c.post("/auth/login", data={**creds, "csrf_token": token}).status_code == 302
    # Signed in now: state-changing POSTs still need the token.
    assert c.post("/auth/logout").status_code == 400
    assert c.get("/auth/account").status_code == 200
    assert c.post("/orgs/new", data={"name": "No Token Org", "kind": "company"}).status_code == 400


# --------------------------------------------------------------------------- SECRET_KEY


def _prod_config(tmp_path, **kw):
    cfg = {"TESTING": False, "DEBUG": False, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.db'}",
           "SEARCH_INDEX_DIR": str(tmp_path / "search-prod"), "SEARCH_WORKER": "off"}
    cfg.update(kw)
    return cfg


@pytest.mark.parametrize("key", [DEFAULT_SECRET, "", None, "short-key"])
def test_refuses_to_start_with_a_default_or_weak_secret(tmp_path, key):
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(_prod_config(tmp_path, SECRET_KEY=key))


def test_starts_with_a_real_secret_or_in_debug(tmp_path):
    app = create_app(_prod_config(tmp_path, SECRET_KEY="k" * 48))
    assert app.config["SECRET_KEY"] == "k" * 48 and not app.debug and not app.testing
    app = create_app(_prod_config(tmp_path, SECRET_KEY=DEFAULT_SECRET, DEBUG=True))
    assert app.debug


# --------------------------------------------------------------------------- account changes


def test_password_change_ends_other_sessions(app, alice):
    here, elsewhere = app.test_client(), app.test_client()
    for c in (here, elsewhere):
        assert c.post("/auth/login", data={"email": "alice@example.test", "password": PASSWORD}).status_code == 302
    r = here.post("/auth/account", data={"pw-current": PASSWORD, "pw-password": "a-brand-new-password",
                                         "pw-confirm": "a-brand-new-password", "pw-submit": "Change password"})
    assert r.status_code == 302
    assert here.get("/auth/account").status_code == 200  # this session goes on
    assert elsewhere.get("/auth/account").status_code == 302  # the other one has ended
    fresh = app.test_client()
    assert fresh.post("/auth/login", data={"email": "alice@example.test", "password": PASSWORD}).status_code == 400
    assert fresh.post("/auth/login", data={"email": "alice@example.test",
                                           "password": "a-brand-new-password"}).status_code == 302


@pytest.mark.parametrize("data,message", [
    ({"pw-current": "not-my-password", "pw-password": "a-brand-new-password",
      "pw-confirm": "a-brand-new-password"}, b"Your current password is not correct."),
    ({"pw-current": PASSWORD, "pw-password": "short", "pw-confirm": "short"}, b"Use at least 10 characters"),
    ({"pw-current": PASSWORD, "pw-password": "a-brand-new-password", "pw-confirm": "different-one-1"},
     b"The passwords do not match."),
])
def test_bad_password_change_changes_nothing(app, client, auth, alice, data, message):
    auth.login("alice@example.test")
    before = get_user(app, "alice@example.test")
    r = client.post("/auth/account", data={**data, "pw-submit": "Change password"})
    assert r.status_code == 400 and message in r.data
    after = get_user(app, "alice@example.test")
    assert (after.password_hash, after.session_version) == (before.password_hash, before.session_version)
    assert client.get("/auth/account").status_code == 200


def test_display_name_change(app, client, auth, alice):
    auth.login("alice@example.test")
    r = client.post("/auth/account", data={"p-display_name": "  Alice Wonder ", "p-submit": "Save name"})
    assert r.status_code == 302 and get_user(app, "alice@example.test").display_name == "Alice Wonder"
    for bad, msg in (("", b"Enter a display name."), ("Z" * 81, b"Use 2 to 80 characters."),
                     ("  Z  ", b"The display name needs 2 to 80 characters.")):
        r = client.post("/auth/account", data={"p-display_name": bad, "p-submit": "Save name"})
        assert r.status_code == 400 and msg in r.data
    assert get_user(app, "alice@example.test").display_name == "Alice Wonder"


# --------------------------------------------------------------------------- blocked accounts


def _block(app, email, **changes):
    with app.app_context():
        u = db.session.execute(select(User).where(User.email == email)).scalar_one()
        for k, v in changes.items():
            setattr(u, k, v)
        db.session.commit()


@pytest.mark.parametrize("changes,message", [
    ({"suspended_until": utcnow() + timedelta(days=3)}, b"This account is suspended until"),
    ({"banned": True}, b"This account is banned."),
])
def test_blocked_accounts_cannot_sign_in_and_their_sessions_end(app, client, auth, alice, changes, message):
    assert auth.login("alice@example.test").status_code == 302
    assert client.get("/auth/account").status_code == 200
    _block(app, "alice@example.test", **changes)
    assert client.get("/auth/account").status_code == 302  # the live session ended
    r = auth.login("alice@example.test")
    assert r.status_code == 400 and message in r.data
    assert client.get("/auth/account").status_code == 302


def test_an_expired_suspension_lets_the_account_back_in(app, client, auth, alice):
    _block(app, "alice@example.test", suspended_until=utcnow() - timedelta(minutes=1))
    assert auth.login("alice@example.test").status_code == 302


def test_bumping_the_session_version_ends_every_session(app, client, auth, alice):
    auth.login("alice@example.test")
    _block(app, "alice@example.test", session_version=get_user(app, "alice@example.test").session_version + 1)
    assert client.get("/auth/account").status_code == 302


@pytest.mark.parametrize("token", ["garbage", "1", "1:x", "x:1", ":", "99999:1"])
def test_forged_session_user_ids_are_anonymous(app, client, alice, token):
    with client.session_transaction() as s:
        s["_user_id"] = token
        s["_fresh"] = True
    assert client.get("/auth/account").status_code == 302
    assert client.get("/").status_code == 200
