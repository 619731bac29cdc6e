"""Security logging (ASVS 5.0 16.2.5, 16.3.1, 16.3.2, 16.4.1), read from real log records
of real requests:

- sign-in successes and failures, refusals (403, a policy denial, a service refusal) and
  governance actions are logged with who (user id) and what (route pattern, action);
- a scripted journey (register and confirm, reset the password by its mailed link, sign in,
  create an API token and use it, submit a sealed idea) leaves no password, session id,
  token (API, verification, reset) or sealed idea text in any record;
- control characters in values someone sent are escaped in log lines: one record, one line.

The levels are those of the production logging configuration (logs.logging_config).
"""
from __future__ import annotations

import logging
import re
import sys

import pytest
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.logs import FORMAT, SafeFormatter, escape_controls, logging_config
from marketplace.models import Idea, OutgoingMail, User

from .factories import PASSWORD, Factories
from .factories_ideas import IdeaFactories


@pytest.fixture
def prod_levels(caplog):
    """caplog at the levels production logs at (root INFO, SQLAlchemy and Werkzeug WARNING...)."""
    config = logging_config("INFO")
    caplog.set_level(logging.INFO)
    for name, spec in config["loggers"].items():
        caplog.set_level(getattr(logging, spec["level"]), logger=name)
    caplog.set_level(logging.INFO)  # set_level also sets the capturing handler's level: INFO again
    caplog.handler.setFormatter(SafeFormatter(FORMAT.replace(" [%(request_id)s]", "")))
    return caplog


def messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name != "marketplace.access"]


def everything_logged(caplog) -> str:
    """Every record's message, arguments, exception and stack text, and the formatted lines."""
    parts = [caplog.text]
    for r in caplog.records:
        parts += [r.getMessage(), repr(r.args), str(r.msg), r.exc_text or "", r.stack_info or ""]
    return "\n".join(parts)


def link_in(address: str, path: str) -> str:
    db.session.expire_all()
    mail = db.session.execute(select(OutgoingMail).where(OutgoingMail.to_email == address)
                              .order_by(OutgoingMail.id.desc())).scalars().first()
    m = re.search(r"https?://[^/\s]+(" + re.escape(path) + r"[^\s\"<]+)", mail.body)
    assert m, mail.body
    return m.group(1)


def session_id(app, client) -> str:
    """The random session id inside the signed session cookie (what the database hashes)."""
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    data = app.session_interface.get_signing_serializer(app).loads(cookie.value)
    return data["_sid"]


# --------------------------------------------------------------------------- who and what


def test_a_403_and_a_policy_denial_are_logged_with_who_and_where(app, client, auth, f, prod_levels):
    nobody = f.make_user(email="no-org@example.test")
    org = f.make_org(owner=f.make_user())
    private = f.make_item(org, visibility="organisation", title="Hidden plan")
    uid, item_id = nobody.id, private.id
    auth.login("no-org@example.test", PASSWORD)
    assert client.post("/challenges/new", data={"title": "x"}).status_code == 403
    assert client.get(f"/challenges/{item_id}").status_code == 404  # hidden: denied as missing
    logged = messages(prod_levels)
    assert f"denied 403: POST /challenges/new user={uid}" in logged
    assert f"denied 404: GET /challenges/<int:item_id> user={uid}" in logged
    assert "Hidden plan" not in everything_logged(prod_levels)


def test_a_refused_service_action_and_wrong_passwords_on_the_account_page_are_logged(
        app, client, auth, f, prod_levels):
    user = f.make_user(email="acct@example.test")
    uid = user.id
    auth.login("acct@example.test", PASSWORD)
    phone = app.test_client()
    phone.post("/auth/login", data={"email": "acct@example.test", "password": PASSWORD})
    r = client.post("/auth/account", data={"s-submit": "Sign out other sessions", "s-password": "Guess-Sekr1t-x"})
    assert r.status_code == 400
    r = client.post("/auth/account", data={"s-submit": "Sign out other sessions", "s-password": PASSWORD})
    assert r.status_code == 302
    logged = messages(prod_levels)
    assert f"other sessions not ended (wrong password): user={uid}" in logged
    assert f"other sessions ended: user={uid} count=1" in logged
    text = everything_logged(prod_levels)
    assert "Sekr1t" not in text and PASSWORD not in text


# --------------------------------------------------------------------------- no secrets


def test_a_scripted_journey_leaves_no_password_token_or_sealed_text_in_the_logs(app, client, prod_levels):
    with app.app_context():
        f = Factories()
        fi = IdeaFactories(f)
        setup = fi.challenge(confidentiality="sealed")
        challenge = setup.challenge
        challenge_id = challenge.id
    first_pw, new_pw, wrong_pw = "First-pass-Q7zv", "Second-pass-W3kx", "Wrong-pass-J9mb"
    email = "journey@example.test"
    secrets: dict[str, str] = {"first password": first_pw, "new password": new_pw, "wrong password": wrong_pw}

    # Register, then confirm the address by its mailed link.
    r = client.post("/auth/register", data={"email": email, "display_name": "Journey", "password": first_pw,
                                            "confirm": first_pw})
    assert r.status_code in (200, 302)
    with app.app_context():
        verify = link_in(email, "/auth/verify/")
    secrets["verification token"] = verify.rsplit("/", 1)[-1]
    assert client.get(verify).status_code == 302
    # A wrong password, and a password pasted into the address field.
    assert client.post("/auth/login", data={"email": email, "password": wrong_pw}).status_code == 400
    assert client.post("/auth/login", data={"email": wrong_pw, "password": wrong_pw}).status_code == 400
    # Reset the password by its mailed link.
    assert client.post("/auth/reset", data={"email": email}).status_code == 200
    with app.app_context():
        reset = link_in(email, "/auth/reset/")
    secrets["reset token"] = reset.rsplit("/", 1)[-1]
    assert client.get(reset).status_code == 200
    assert client.post(reset, data={"password": new_pw, "confirm": new_pw}).status_code == 302
    # Sign in with the new password; the session id is a secret too.
    assert client.post("/auth/login", data={"email": email, "password": new_pw}).status_code == 302
    secrets["session id"] = session_id(app, client)
    secrets["session cookie"] = client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
    # Create an API token and use it.
    r = client.post("/settings/tokens", data={"name": "Journey bot", "scopes": ["read"], "expires": "30"})
    assert r.status_code == 200
    token = re.search(r'id="new-token">(oim_[^<]+)<', r.text).group(1)
    secrets["API token"] = token
    me = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.get_json()["authenticated"] is True
    assert app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}x"}).status_code == 401
    # Submit a sealed idea.
    with app.app_context():
        form = fi.form(db.session.get(type(challenge), challenge_id), title="Sealed canary Zq81 title",
                       summary="Sealed canary Zq82 summary", body="Sealed canary Zq83 body text.")
    r = client.post(f"/challenges/{challenge_id}/ideas/new", data=form)
    assert r.status_code == 302, r.text[:500]
    with app.app_context():
        idea = db.session.execute(select(Idea).where(Idea.title == "Sealed canary Zq81 title")).scalar_one()
        assert idea.confidentiality == "sealed"
        uid = db.session.execute(select(User.id).where(User.email == email)).scalar_one()
    secrets.update({"sealed title": "Zq81", "sealed summary": "Zq82", "sealed body": "Zq83",
                    "address": email})
    client.post("/auth/logout")

    logged = messages(prod_levels)
    # What happened is there, with who did it...
    assert f"account created: user={uid}" in logged
    assert f"address verified: user={uid}" in logged
    assert f"sign-in failed: wrong password for user={uid}" in logged
    assert "sign-in failed: unknown account" in logged
    assert f"password reset by mailed link: user={uid}" in logged
    assert f"sign-in ok: user={uid}" in logged
    assert any(m.startswith(f"governance token.created user:{uid} actor={uid}") for m in logged), logged
    assert any(m.startswith(f"governance idea.submitted idea:{idea.id} actor={uid}") for m in logged), logged
    assert f"sign-out: user={uid}" in logged
    # ... and none of the secrets, in any form a record carries.
    text = everything_logged(prod_levels)
    leaked = {what: value for what, value in secrets.items() if value in text}
    assert not leaked, leaked


# --------------------------------------------------------------------------- one record, one line


HOSTILE = ["GET\r\n2030-01-01 00:00:00 INFO marketplace.auth sign-in ok: user=1", "GET\x1b[2J", "GET\u2028forged"]


@pytest.mark.parametrize("method", HOSTILE)
def test_control_characters_sent_in_a_request_are_escaped_in_its_log_line(client, prod_levels, method):
    """The access log names the request's method, which the client chooses."""
    client.open("/about", method=method)
    lines = prod_levels.text.splitlines()
    access = [line for line in lines if "marketplace.access" in line]
    assert len(access) == 1, lines
    assert escape_controls(method.upper()) in access[0]  # Werkzeug upper-cases the method
    assert not any(line.startswith("2030-01-01") for line in lines)
    assert not re.search("[\x00-\x1f\x7f\u2028]", prod_levels.text.replace("\n", ""))


def test_a_quoted_value_and_a_traceback_cannot_forge_a_record(prod_levels):
    log = logging.getLogger("marketplace.test")
    log.warning("search for %r failed", "x\r\nFAKE INFO marketplace.auth sign-in ok: user=1\x00")
    try:
        raise ValueError("bad value\nFAKE INFO marketplace.auth sign-in ok: user=2")
    except ValueError:
        log.error("refused", exc_info=sys.exc_info())
    lines = prod_levels.text.splitlines()
    assert not any(line.startswith("FAKE") for line in lines), lines
    assert "search for 'x\\r\\nFAKE INFO marketplace.auth sign-in ok: user=1\\x00' failed" in prod_levels.text
    # Every line of the traceback is indented under its record.
    record_lines = [line for line in lines if not line.startswith("    ")]
    assert len(record_lines) == 2, lines
    assert "    ValueError: bad value" in prod_levels.text and "    FAKE INFO" in prod_levels.text


def test_the_production_configuration_uses_the_escaping_formatter():
    config = logging_config("INFO", None)
    assert config["formatters"]["default"]["()"] is SafeFormatter
    assert escape_controls("a\rb\nc\td\x1be\x7ff\x85g\u2029h") == "a\\rb\\nc\\td\\x1be\\x7ff\\x85g\\u2029h"
    assert escape_controls("Zoë — naïve ✓") == "Zoë — naïve ✓"  # text stays text
