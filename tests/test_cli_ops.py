"""The operator's commands: users (create with a prompted password, set-password, list),
receipt keys, the moderation digest, `audit verify --pinned`; every command in the README
exists as written; and the commands work with no extra environment in a checkout where the
key was generated (real subprocesses), while a missing key is one line of advice that works.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select

from marketplace import audit, email_address
from marketplace.extensions import db
from marketplace.models import AuditEvent, OutgoingMail, User
from marketplace.security import verify_password
from marketplace.services import accounts, moderation as mod_svc

ROOT = Path(__file__).resolve().parent.parent
PW = "a-long-password"


def user(app, email):
    with app.app_context():
        u = accounts.find_user(email)
        if u is not None:
            db.session.expunge(u)
        return u


def count(app, model) -> int:
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()


# --------------------------------------------------------------------------- users create


def test_users_create_prompts_for_the_password_hidden_and_twice(app, runner):
    r = runner.invoke(args=["users", "create", "pat@example.test", "--name", "Pat"],
                      input=f"{PW}\nnot-the-same-pw\n{PW}\n{PW}\n")
    assert r.exit_code == 0, r.output
    assert r.output.count("Password: ") == 2 and r.output.count("Repeat for confirmation: ") == 2
    assert "do not match" in r.output
    assert PW not in r.output and "not-the-same-pw" not in r.output  # never echoed
    assert verify_password(user(app, "pat@example.test").password_hash, PW)


BAD_ADDRESSES = ["ann@localhost", "ann@", "@example.test", "a b@example.test", "ann@example",
                 "ann@@example.test", "x" * 250 + "@example.test", "ann@exa_mple.test"]
GOOD_ADDRESSES = [("Ann.Lee+tag@Example.ORG", "ann.lee+tag@example.org"), ("bo@uni.test", "bo@uni.test"),
                  ("  cy@example.test ", "cy@example.test")]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
def test_every_way_in_refuses_the_same_addresses(app, runner, client, address):
    """One check (marketplace/email_address.py, the email-validator library) for the CLI, the
    sign-up form and the service."""
    r = runner.invoke(args=["users", "create", address, "--name", "Someone"], input=f"{PW}\n{PW}\n")
    assert r.exit_code == 1 and "is not an e-mail address" in r.output
    assert "Password:" not in r.output  # refused before asking for a password
    page = client.post("/auth/register", data={"email": address, "display_name": "Someone",
                                               "password": PW, "confirm": PW})
    assert page.status_code == 400 and b"Enter a valid e-mail address." in page.data
    with app.app_context():
        with pytest.raises(accounts.ServiceError) as e:
            accounts.create_user(address, "Someone", PW)
        assert e.value.field == "email"
    assert count(app, User) == 0


@pytest.mark.parametrize("address,stored", GOOD_ADDRESSES)
def test_valid_addresses_are_stored_lower_cased(app, runner, address, stored):
    r = runner.invoke(args=["users", "create", address, "--name", "Someone", "--password", PW])
    assert r.exit_code == 0, r.output
    assert user(app, stored) is not None and f"<{stored}>" in r.output


def test_the_email_library_is_used_in_one_place_only():
    users = [p.relative_to(ROOT).as_posix() for p in (ROOT / "marketplace").rglob("*.py")
             if re.search(r"^\s*(import email_validator|from email_validator|from wtforms.validators import[^\n]*\bEmail\b)",
                          p.read_text(encoding="utf-8"), re.M)]
    assert users == ["marketplace/email_address.py"]
    assert email_address.check(" Ann@Example.test") == "ann@example.test"


def test_users_create_strips_characters_xml_cannot_carry(app, runner):
    r = runner.invoke(args=["users", "create", "ff@example.test", "--name", "Form\x0cFeed", "--password", PW])
    assert r.exit_code == 0, r.output
    assert user(app, "ff@example.test").display_name == "FormFeed"
    r = runner.invoke(args=["orgs", "create", "Acme\x0b\x01 Labs", "--kind", "company", "--owner", "ff@example.test"])
    assert r.exit_code == 0 and "'Acme Labs'" in r.output


# --------------------------------------------------------------------------- users set-password / list


def test_users_set_password(app, runner):
    runner.invoke(args=["users", "create", "sp@example.test", "--name", "Sam", "--password", PW])
    before = user(app, "sp@example.test")
    new = "a-brand-new-password"
    r = runner.invoke(args=["users", "set-password", "SP@example.test"], input=f"{new}\n{new}\n")
    assert r.exit_code == 0, r.output
    assert "Password set for sp@example.test" in r.output and new not in r.output
    after = user(app, "sp@example.test")
    assert verify_password(after.password_hash, new) and not verify_password(after.password_hash, PW)
    assert after.session_version == before.session_version + 1  # signed out everywhere
    with app.app_context():
        ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "password.reset")).scalar_one()
        assert (ev.subject_type, ev.subject_id, ev.data) == ("user", after.id, "{}")
    r = runner.invoke(args=["users", "set-password", "sp@example.test", "--password", "short"])
    assert r.exit_code == 1 and "at least 10 characters" in r.output
    r = runner.invoke(args=["users", "set-password", "ghost@example.test"], input=f"{new}\n{new}\n")
    assert r.exit_code == 1 and "no account with e-mail ghost@example.test" in r.output
    assert "Password:" not in r.output  # said before asking
    assert verify_password(user(app, "sp@example.test").password_hash, new)


def test_a_reset_password_signs_the_account_out(app, client, auth, runner):
    runner.invoke(args=["users", "create", "out@example.test", "--name", "Out", "--password", PW])
    auth.login("out@example.test", PW)
    assert client.get("/auth/account").status_code == 200
    runner.invoke(args=["users", "set-password", "out@example.test", "--password", "another-long-one"])
    assert client.get("/auth/account").status_code == 302  # back to the sign-in page


def test_users_end_sessions_signs_one_account_or_every_account_out(app, runner):
    """ASVS 7.4.5: an operator ends the sessions of one account, or of all; each is audited
    with the count and printed."""
    for email in ("one@example.test", "two@example.test"):
        runner.invoke(args=["users", "create", email, "--name", "Someone", "--password", PW])
    one_laptop, one_phone, two = app.test_client(), app.test_client(), app.test_client()
    for c, email in ((one_laptop, "one@example.test"), (one_phone, "one@example.test"), (two, "two@example.test")):
        assert c.post("/auth/login", data={"email": email, "password": PW}).status_code == 302

    def signed_in(c):
        return c.get("/auth/account").status_code == 200

    r = runner.invoke(args=["users", "end-sessions", "ONE@example.test"])
    assert r.exit_code == 0, r.output
    assert "Ended 2 session(s) of one@example.test" in r.output
    assert not signed_in(one_laptop) and not signed_in(one_phone) and signed_in(two)
    assert verify_password(user(app, "one@example.test").password_hash, PW)  # the password stays
    with app.app_context():
        ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "sessions.ended")).scalar_one()
        assert (ev.subject_type, ev.subject_id, ev.data) == ("user", user(app, "one@example.test").id, '{"count":2}')

    assert one_laptop.post("/auth/login", data={"email": "one@example.test", "password": PW}).status_code == 302
    r = runner.invoke(args=["users", "end-sessions", "--all"])
    assert r.exit_code == 0, r.output
    assert "Ended 2 session(s) of every account" in r.output
    assert not signed_in(one_laptop) and not signed_in(two)
    with app.app_context():
        ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "sessions.ended_all")).scalar_one()
        assert (ev.subject_type, ev.subject_id, ev.data) == ("site", None, '{"count":2}')
        assert audit.verify_chain().ok
    r = runner.invoke(args=["users", "end-sessions", "--all"])
    assert r.exit_code == 0 and "Ended 0 session(s)" in r.output


@pytest.mark.parametrize("args, message", [
    ([], "name one account (EMAIL) or give --all"),
    (["one@example.test", "--all"], "name one account (EMAIL) or give --all"),
    (["ghost@example.test"], "no account with e-mail ghost@example.test"),
])
def test_users_end_sessions_refuses_unclear_targets(app, runner, args, message):
    runner.invoke(args=["users", "create", "one@example.test", "--name", "One", "--password", PW])
    before = count(app, AuditEvent)
    r = runner.invoke(args=["users", "end-sessions", *args])
    assert r.exit_code == 1 and message in r.output
    assert count(app, AuditEvent) == before


def test_users_list(app, runner, f):
    assert runner.invoke(args=["users", "list"]).output == "No accounts.\n"
    with app.app_context():
        from datetime import timedelta

        from marketplace.models import utcnow

        f.make_user(email="a@example.test", name="Ann A")
        f.make_user(email="m@example.test", name="Mo M", site_role="moderator")
        f.make_user(email="b@example.test", name="Ban B", banned=True)
        f.make_user(email="s@example.test", name="Sus S", suspended_until=utcnow() + timedelta(days=2))
    r = runner.invoke(args=["users", "list"])
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert len(lines) == 5 and lines[-1] == "4 account(s)."
    assert re.search(r"a@example\.test\s+user\s+active\s+Ann A$", lines[0])
    assert re.search(r"m@example\.test\s+moderator\s+active\s+Mo M$", lines[1])
    assert re.search(r"b@example\.test\s+user\s+banned\s+Ban B$", lines[2])
    assert re.search(r"s@example\.test\s+user\s+suspended until \d{4}-\d\d-\d\d \d\d:\d\d UTC\s+Sus S$", lines[3])
    r = runner.invoke(args=["users", "list", "--role", "moderator"])
    assert r.output.splitlines()[-1] == "1 account(s)." and "m@example.test" in r.output
    assert runner.invoke(args=["users", "list", "--role", "admin"]).output == "No accounts with role admin.\n"


# --------------------------------------------------------------------------- moderation digest


@pytest.fixture
def waiting_report(app, f):
    with app.app_context():
        mod = f.make_user(email="mod@example.test", site_role="moderator")
        reporter = f.make_user()
        org = f.make_org(owner=f.make_user())
        item = f.make_item(org, title="Spammy challenge")
        mod_svc.file_report(reporter, "challenge", item.id, "spam", "An advert.")
        return mod.id


def _mails(app) -> list[OutgoingMail]:
    with app.app_context():
        rows = db.session.execute(select(OutgoingMail).where(OutgoingMail.subject.like("Moderation digest%"))).scalars().all()
        for m in rows:
            db.session.expunge(m)
        return rows


def test_digest_is_queued_once_a_day_however_often_it_runs(app, runner, waiting_report):
    first = runner.invoke(args=["moderation", "digest"])
    assert first.exit_code == 0 and "Queued 1 digest mail(s)." in first.output
    second = runner.invoke(args=["moderation", "digest"])
    assert second.exit_code == 0
    assert "Queued 0 digest mail(s). 1 moderator(s) already had today's digest." in second.output
    assert [m.to_email for m in _mails(app)] == ["mod@example.test"]
    with app.app_context():  # even a caller that skips the look-up cannot queue it twice
        from marketplace.notify import send_mail

        key = _mails(app)[0].dedupe_key
        assert key and send_mail("mod@example.test", "Moderation digest: again", "x", dedupe_key=key) is None
        db.session.commit()
    assert len(_mails(app)) == 1


def test_digest_links_use_the_configured_address(app, runner, waiting_report):
    app.config.update(SERVER_NAME="market.example.org", PREFERRED_URL_SCHEME="https")
    r = runner.invoke(args=["moderation", "digest"])
    assert r.exit_code == 0 and "Note:" not in r.output
    assert "Open the queue: https://market.example.org/moderation/" in _mails(app)[0].body


def test_digest_without_server_name_says_where_links_point(app, runner, waiting_report):
    r = runner.invoke(args=["moderation", "digest"])
    assert r.exit_code == 0
    assert "SERVER_NAME is not set, so the links point at http://127.0.0.1:5000/moderation/" in r.output
    assert "Open the queue: http://127.0.0.1:5000/moderation/" in _mails(app)[0].body


# --------------------------------------------------------------------------- audit verify --pinned


def test_audit_verify_pinned(app, runner, f):
    r = runner.invoke(args=["audit", "verify", "--pinned", audit.GENESIS])
    assert r.exit_code == 0 and "empty chain" in r.output
    with app.app_context():
        u = f.make_user()
        accounts.set_site_role(u, "moderator")
        accounts.set_site_role(u, "user")
        head = audit.head().hash
    r = runner.invoke(args=["audit", "verify", "--pinned", head.upper()])
    assert r.exit_code == 0 and "Pinned head found at row 2." in r.output
    never = "ab" * 32
    r = runner.invoke(args=["audit", "verify", "--pinned", never])
    assert r.exit_code == 1 and f"unknown hash {never}" in r.output
    for bad in ("xyz", "ab" * 31, "g" * 64):
        r = runner.invoke(args=["audit", "verify", "--pinned", bad])
        assert r.exit_code == 2 and "64 hexadecimal characters" in r.output


# --------------------------------------------------------------------------- the README's commands


def readme_commands() -> list[str]:
    """Every `flask --app app ...` in the README: in shell and cron blocks and inline code."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```(?:sh|cron)\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if line.lstrip().startswith("#"):
                continue
            for m in re.finditer(r"(?:^|\s|/)flask --app app ([^#&;]+)", line):
                lines.append(m.group(1).strip())
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    lines += [m.strip() for m in re.findall(r"`[^`\n]*?flask --app app ([^`\n]+)`", prose)]
    return lines


def test_every_readme_command_exists_with_its_options(app):
    cmds = readme_commands()
    assert len(cmds) >= 30
    ctx_app: Flask = app
    root = ctx_app.cli
    import click

    with click.Context(root) as ctx:
        for line in cmds:
            words = line.split()
            cmd: click.Command = root
            path = []
            while isinstance(cmd, click.Group) and words and re.match(r"^[a-z][a-z|-]*$", words[0]):
                alternatives = words.pop(0).split("|")
                sub = cmd.get_command(ctx, alternatives[0])
                assert sub is not None, f"README: `flask --app app {line}`: no command {' '.join(path + alternatives[:1])}"
                for alt in alternatives[1:]:
                    assert cmd.get_command(ctx, alt) is not None, f"README: no command {alt} in `{line}`"
                path.append(alternatives[0])
                cmd = sub
            assert not isinstance(cmd, click.Group), f"README: `flask --app app {line}` names no command"
            options = {o for p in cmd.params for o in getattr(p, "opts", [])}
            for opt in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line):
                if opt not in ("--app",):
                    assert opt in options or opt == "--help", f"README: `{line}`: {path} has no option {opt}"


# --------------------------------------------------------------------------- no extra environment


def _env(instance: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SECRET_KEY", "DATABASE_URL", "FLASK_DEBUG", "SEARCH_INDEX_DIR", "UPLOAD_DIR",
                        "LOG_FILE", "RATELIMIT_STORAGE_URI", "SERVER_NAME")}
    env["MARKETPLACE_INSTANCE"] = str(instance)
    env["SEARCH_WORKER"] = "off"
    return env


def _flask(instance: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "flask"), "--app", "app", *args], cwd=ROOT,
                          env=_env(instance), capture_output=True, text=True, input=input, timeout=120)


def test_without_a_key_the_command_says_so_in_one_line_and_the_advice_works(tmp_path):
    instance = tmp_path / "instance"
    r = _flask(instance, "users", "list")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("marketplace: SECRET_KEY is not set and ") and "run scripts/secret_key.sh" in r.stderr
    # The advice: generate the key as `make run` does; then every command works, no variables set.
    key = subprocess.run([str(ROOT / "scripts/secret_key.sh")], env=_env(instance), capture_output=True,
                         text=True, check=True).stdout.strip()
    assert (instance / "secret_key").read_text().strip() == key and len(key) >= 32
    assert _flask(instance, "db", "upgrade").returncode == 0
    r = _flask(instance, "users", "create", "op@example.test", "--name", "Operator", "--role", "admin",
               "--password", PW)
    assert r.returncode == 0, r.stderr
    r = _flask(instance, "users", "list")
    assert r.returncode == 0 and re.search(r"op@example\.test\s+admin\s+active\s+Operator", r.stdout), r.stderr
