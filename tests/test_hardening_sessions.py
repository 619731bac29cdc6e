"""Server-side sessions (issue 15): a cookie captured before sign-out, a password change, a
suspension or a ban opens nothing afterwards; a new session id at every sign-in; idle and
absolute timeouts; the account page lists the live sessions and ends the others; the check
costs one indexed query per request."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from marketplace.extensions import db
from marketplace.models import Item, User, UserSession, utcnow
from marketplace.services import moderation as mod_svc
from marketplace.services import sessions as sessions_svc

from .factories import PASSWORD, Factories


@pytest.fixture
def alice(app):
    with app.app_context():
        f = Factories()
        u = f.make_user(email="alice@example.test", name="Alice")
        org = f.make_org(owner=u)
        item = f.make_item(org, kind="challenge", visibility="public", title="Alice's challenge")
        return u.id, item.id


def sign_in(client, email="alice@example.test", password=PASSWORD, **extra):
    r = client.post("/auth/login", data={"email": email, "password": password, **extra})
    assert r.status_code == 302, r.status_code
    return r


def captured_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None
    return cookie.value


def replay(app, cookie_value: str):
    """A fresh client presenting a captured session cookie (an attacker who copied it)."""
    c = app.test_client()
    c.set_cookie("session", cookie_value)
    return c


def is_signed_in(client) -> bool:
    return client.get("/auth/account").status_code == 200


def session_rows(app, uid) -> list[UserSession]:
    with app.app_context():
        rows = db.session.execute(select(UserSession).where(UserSession.user_id == uid)
                                  .order_by(UserSession.id)).scalars().all()
        for r in rows:
            db.session.expunge(r)
        return rows


# --------------------------------------------------------------------------- replayed cookies


def test_a_cookie_captured_before_sign_out_is_signed_out_afterwards(app, client, alice):
    uid, _ = alice
    sign_in(client)
    stolen = captured_cookie(client)
    assert is_signed_in(replay(app, stolen))  # the copy works while the session lives
    assert client.post("/auth/logout").status_code == 302
    assert not is_signed_in(client)
    thief = replay(app, stolen)
    r = thief.get("/auth/account")
    assert r.status_code == 302 and "/auth/login" in r.headers["Location"]
    assert thief.get("/api/v1/me").get_json()["authenticated"] is False
    (row,) = session_rows(app, uid)
    assert row.revoked_at is not None and row.revoked_reason == "signed out"


def test_a_cookie_captured_before_a_password_change_is_signed_out(app, client, alice):
    sign_in(client)
    elsewhere = app.test_client()
    sign_in(elsewhere)
    stolen = captured_cookie(elsewhere)
    here_before = captured_cookie(client)
    r = client.post("/auth/account", data={"pw-current": PASSWORD, "pw-password": "a-brand-new-password",
                                           "pw-confirm": "a-brand-new-password", "pw-submit": "Change password"})
    assert r.status_code == 302
    assert is_signed_in(client)  # the person who changed it goes on...
    assert captured_cookie(client) != here_before  # ...under a new session id
    assert not is_signed_in(replay(app, here_before))  # the old id of this very browser ends too
    assert not is_signed_in(replay(app, stolen))
    assert not is_signed_in(elsewhere)


def test_a_password_reset_by_mailed_link_ends_every_session(app, client, alice):
    """The reset link (marketplace/auth/views.py reset_password) ends every session of the
    account, the one of the browser that follows the link included, and revokes their rows."""
    import re

    from marketplace.models import OutgoingMail

    uid, _ = alice
    sign_in(client)
    elsewhere = app.test_client()
    sign_in(elsewhere)
    stolen = captured_cookie(elsewhere)
    assert client.post("/auth/reset", data={"email": "alice@example.test"}).status_code == 200
    with app.app_context():
        mail = db.session.execute(select(OutgoingMail).where(OutgoingMail.to_email == "alice@example.test")
                                  .order_by(OutgoingMail.id.desc())).scalars().first()
        path = re.search(r"https?://[^/\s]+(/auth/reset/[^\s\"<]+)", mail.body).group(1)
    here = captured_cookie(client)
    r = client.post(path, data={"password": "a-brand-new-password", "confirm": "a-brand-new-password"})
    assert r.status_code == 302 and "/auth/login" in r.headers["Location"]
    for c in (client, elsewhere, replay(app, stolen), replay(app, here)):
        assert not is_signed_in(c)
    rows = session_rows(app, uid)
    assert len(rows) == 2 and all(r.revoked_at is not None for r in rows)
    assert {r.revoked_reason for r in rows} == {"password reset by link"}
    sign_in(client, password="a-brand-new-password")


@pytest.mark.parametrize("kind", ["suspend", "ban"])
def test_a_cookie_captured_before_a_suspension_or_ban_is_signed_out(app, client, alice, kind):
    uid, item_id = alice
    with app.app_context():
        f = Factories()
        mod_id = f.make_user(site_role="moderator").id
        author = f.make_user(email="bob@example.test")
        author_id, before = author.id, author.session_version
    sign_in(client, "bob@example.test")
    stolen = captured_cookie(client)
    with app.app_context():
        from marketplace.models import Item
        from marketplace.services import engagement as eng_svc

        item = db.session.get(Item, item_id)
        eng_svc.set_rules(db.session.get(User, uid), item, {"ask_rule": "registered", "question_cutoff_hours": 0})
        q = eng_svc.ask_question(db.session.get(User, author_id), item, "Cheap parcels at spam.example!")
        mod_svc.take_action(db.session.get(User, mod_id), "question", q.id, kind, "Spam.",
                            days=3 if kind == "suspend" else None, user_id=author_id)
        after = db.session.get(User, author_id)
        assert after.session_version == before + 1  # the version mechanism is kept
    assert not is_signed_in(client)
    assert not is_signed_in(replay(app, stolen))
    rows = session_rows(app, author_id)
    assert rows and all(r.revoked_at is not None for r in rows)
    assert {r.revoked_reason for r in rows} == {"suspended" if kind == "suspend" else "banned"}


def test_a_cookie_without_a_session_row_is_anonymous(app, client, alice):
    uid, _ = alice
    sign_in(client)
    with app.app_context():
        db.session.execute(update(UserSession).values(token_hash="0" * 64))
        db.session.commit()
    assert not is_signed_in(client)


def test_a_forged_session_id_opens_nothing(app, client, alice):
    uid, _ = alice
    sign_in(client)
    with client.session_transaction() as s:
        s["_sid"] = "x" * 43  # the right shape, not a session we issued
    assert not is_signed_in(client)
    with client.session_transaction() as s:
        s["_sid"] = ["not", "a", "string"]
    assert not is_signed_in(client)


def test_a_session_of_one_account_cannot_be_pointed_at_another(app, client, alice):
    with app.app_context():
        other = Factories().make_user(email="other@example.test").id
    sign_in(client)
    with client.session_transaction() as s:
        s["_user_id"] = str(other)  # the cookie is signed; this is an insider's forgery test
    assert client.get("/api/v1/me").get_json()["authenticated"] is False


# --------------------------------------------------------------------------- new id at sign-in


def test_every_sign_in_gets_a_new_session_id_and_drops_what_the_cookie_held(app, client, alice):
    uid, _ = alice
    with client.session_transaction() as s:
        s["_sid"] = "planted-by-an-attacker-0123456789"
        s["planted"] = "fixation"
    sign_in(client)
    with client.session_transaction() as s:
        first = s["_sid"]
        assert "planted" not in s and first != "planted-by-an-attacker-0123456789"
    client.post("/auth/logout")
    sign_in(client)
    with client.session_transaction() as s:
        assert s["_sid"] != first
    rows = session_rows(app, uid)
    assert len(rows) == 2 and len({r.token_hash for r in rows}) == 2
    # The database keeps only the hash of the id.
    assert all(r.token_hash != first and len(r.token_hash) == 64 for r in rows)


def test_registration_signs_in_only_from_an_invitation_and_then_through_a_session(app, client, alice):
    # Registration alone signs nobody in (the address is confirmed by a mailed link first).
    r = client.post("/auth/register", data={"email": "new@example.test", "display_name": "New Person",
                                            "password": "a-long-password", "confirm": "a-long-password"})
    assert r.status_code == 200 and "Check your inbox" in r.text
    assert not is_signed_in(client)
    with app.app_context():
        assert db.session.execute(select(UserSession)).scalars().all() == []
    # From an invitation mailed to the address, the account is signed in at once: through a
    # server-side session, which a captured cookie does not outlive.
    from .factories_invitations import make_invitation

    with app.app_context():
        _inv, token = make_invitation(db.session.get(Item, alice[1]), "invited@example.test",
                                      invited_by=db.session.get(User, alice[0]))
    c = app.test_client()
    r = c.post(f"/auth/register?next=/invitations/t/{token}",
               data={"email": "invited@example.test", "display_name": "Invited Person",
                     "password": "a-long-password", "confirm": "a-long-password"})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/invitations/t/{token}")
    with app.app_context():
        uid = db.session.execute(select(User.id).where(User.email == "invited@example.test")).scalar_one()
    assert len(session_rows(app, uid)) == 1
    stolen = captured_cookie(c)
    c.post("/auth/logout")
    assert not is_signed_in(replay(app, stolen))


# --------------------------------------------------------------------------- timeouts


def _age(app, uid, **deltas):
    with app.app_context():
        row = db.session.execute(select(UserSession).where(UserSession.user_id == uid,
                                                           UserSession.revoked_at.is_(None))).scalar_one()
        for column, delta in deltas.items():
            setattr(row, column, getattr(row, column) - delta)
        db.session.commit()


def test_idle_timeout(app, client, alice):
    uid, _ = alice
    sign_in(client)
    _age(app, uid, last_seen_at=timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] - 5))
    assert is_signed_in(client)  # used within the limit: goes on, and the use is recorded
    (row,) = session_rows(app, uid)
    assert utcnow() - row.last_seen_at < timedelta(minutes=1)
    _age(app, uid, last_seen_at=timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1))
    assert not is_signed_in(client)


def test_absolute_timeout_however_much_the_session_is_used(app, client, alice):
    uid, _ = alice
    sign_in(client)
    _age(app, uid, created_at=timedelta(days=app.config["SESSION_ABSOLUTE_DAYS"], minutes=1))
    assert not is_signed_in(client)


def test_keep_me_signed_in_lengthens_the_idle_limit_and_dates_the_cookie(app, client, alice):
    uid, _ = alice
    r = sign_in(client, remember="y")
    cookie = [c for c in r.headers.getlist("Set-Cookie") if c.startswith("session=")][-1]
    assert "Expires=" in cookie  # survives closing the browser
    plain = app.test_client()
    r = sign_in(plain)
    assert "Expires=" not in [c for c in r.headers.getlist("Set-Cookie") if c.startswith("session=")][-1]
    rows = session_rows(app, uid)
    assert [r.remember for r in rows] == [True, False]
    with app.app_context():
        db.session.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(hours=5)))
        db.session.commit()
    assert is_signed_in(client)  # remembered: idle for 5 hours is fine
    assert not is_signed_in(plain)  # 2 hours is the limit otherwise


def test_timeouts_are_configurable_and_checked(tmp_path):
    from marketplace import create_app
    from marketplace.config import ConfigError, TestingConfig

    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 't.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "s")
        SESSION_IDLE_MINUTES = "soon"

    with pytest.raises(ConfigError, match="SESSION_IDLE_MINUTES='soon' must be a whole number"):
        create_app(Cfg)


# --------------------------------------------------------------------------- account page


def test_the_account_page_lists_live_sessions_and_ends_the_others(app, client, alice):
    uid, _ = alice
    sign_in(client)
    phone = app.test_client()
    phone.post("/auth/login", data={"email": "alice@example.test", "password": PASSWORD},
               headers={"User-Agent": "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile"})
    ended = app.test_client()
    sign_in(ended)
    ended.post("/auth/logout")
    page = client.get("/auth/account").text
    assert "Where you are signed in" in page
    assert "Chrome on Android" in page and "(this session)" in page
    assert page.count("<tr") == 3  # header + two live sessions (the ended one is not listed)
    r = client.post("/auth/account", data={"s-submit": "Sign out other sessions", "s-password": PASSWORD})
    assert r.status_code == 302
    assert is_signed_in(client)
    assert not is_signed_in(phone)
    page = client.get("/auth/account").text
    assert page.count("<tr") == 2 and "Sign out other sessions" not in page
    reasons = [r.revoked_reason for r in session_rows(app, uid)]
    assert reasons == [None, "signed out elsewhere", "signed out"]


def test_sign_out_other_sessions_needs_the_csrf_token(csrf_client):
    c, token = csrf_client
    form = {"s-submit": "Sign out other sessions", "s-password": PASSWORD}
    assert c.post("/auth/account", data=form).status_code == 400
    r = c.post("/auth/account", data={**form, "s-csrf_token": token})
    assert r.status_code == 302


@pytest.mark.parametrize("password", ["", "not the password at all"])
def test_sign_out_other_sessions_asks_for_the_current_password(app, client, alice, password):
    """ASVS 7.5.2: ending the other sessions needs the login credentials typed again; a wrong
    or missing password is a form error and every session goes on."""
    uid, _ = alice
    sign_in(client)
    phone = app.test_client()
    sign_in(phone)
    page = client.get("/auth/account").text
    assert 'name="s-password"' in page and 'autocomplete="current-password"' in page
    r = client.post("/auth/account", data={"s-submit": "Sign out other sessions", "s-password": password})
    assert r.status_code == 400
    expected = "Enter your current password." if not password else "Your current password is not correct."
    assert expected in r.text
    assert is_signed_in(client) and is_signed_in(phone)
    assert [row.revoked_at for row in session_rows(app, uid)] == [None, None]
    r = client.post("/auth/account", data={"s-submit": "Sign out other sessions", "s-password": PASSWORD})
    assert r.status_code == 302
    assert is_signed_in(client) and not is_signed_in(phone)


@pytest.fixture
def csrf_client(tmp_path):
    import re

    from .factories_foundation import dispose, make_app

    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    with app.app_context():
        Factories().make_user(email="alice@example.test")
    c = app.test_client()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', c.get("/auth/login").text).group(1)
    sign_in(c, csrf_token=token)
    # Signing in began a new session: the token of the old one is gone with it.
    assert c.post("/auth/logout", data={"csrf_token": token}).status_code == 400
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/auth/account").text).group(1)
    yield c, token
    dispose(app)


# --------------------------------------------------------------------------- cost


def test_the_session_check_is_one_indexed_query_per_request(app, client, alice):
    sign_in(client)
    client.get("/about")
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get("/about").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    touching = [s for s in statements if "user_sessions" in s]
    assert len(touching) == 1, touching  # the lookup (last-seen is written at most once a minute)
    assert "JOIN users" in touching[0] and "token_hash" in touching[0]
    assert not [s for s in statements if "FROM users" in s and "user_sessions" not in s]
    with app.app_context():
        plan = " ".join(str(r) for r in db.session.execute(
            db.text("EXPLAIN QUERY PLAN " + touching[0].replace("?", "'x'"))).all())
    assert "USING INDEX" in plan and "(token_hash=?)" in plan, plan  # not a scan


def test_last_seen_is_written_at_most_once_a_minute(app, client, alice):
    uid, _ = alice
    sign_in(client)
    (row,) = session_rows(app, uid)
    client.get("/about")
    client.get("/about")
    assert session_rows(app, uid)[0].last_seen_at == row.last_seen_at
    with app.app_context():
        db.session.execute(update(UserSession).values(last_seen_at=utcnow() - timedelta(seconds=90)))
        db.session.commit()
    client.get("/about")
    assert utcnow() - session_rows(app, uid)[0].last_seen_at < timedelta(seconds=30)


def test_old_ended_sessions_are_purged_at_sign_in(app, client, alice):
    uid, _ = alice
    sign_in(client)
    client.post("/auth/logout")
    with app.app_context():
        db.session.execute(update(UserSession).values(revoked_at=utcnow() - timedelta(days=40)))
        db.session.commit()
    sign_in(client)
    rows = session_rows(app, uid)
    assert len(rows) == 1 and rows[0].revoked_at is None


def test_describe_agent():
    assert sessions_svc.describe_agent(
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0") == "Firefox on Linux"
    assert sessions_svc.describe_agent(
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36 Edg/126.0"
    ) == "Edge on Windows"
    assert sessions_svc.describe_agent("") == "Unknown browser"
    assert sessions_svc.describe_agent("<script>alert(1)</script>") == "Unknown browser"
