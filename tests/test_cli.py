"""The flask commands: users, orgs, demo data, and their --help texts."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.models import (
    AccessGrant,
    AuditEvent,
    Item,
    Membership,
    Organisation,
    OrgKind,
    OrgRole,
    SiteRole,
    Status,
    User,
    Visibility,
)
from marketplace.security import verify_password


def run(runner, *args):
    return runner.invoke(args=list(args), catch_exceptions=False)


def one_user(app, email):
    with app.app_context():
        u = db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()
        if u is not None:
            db.session.expunge(u)
        return u


def table_counts(app) -> dict[str, int]:
    with app.app_context():
        return {t.name: db.session.execute(select(func.count()).select_from(t)).scalar_one()
                for t in db.metadata.sorted_tables}


# --------------------------------------------------------------------------- users


@pytest.mark.parametrize("role", ["user", "moderator", "admin"])
def test_users_create(app, runner, role):
    extra = [] if role == "user" else ["--role", role]
    r = run(runner, "users", "create", "Ann@Example.test", "--name", "Ann Example", "--password",
            "a-long-password", *extra)
    assert r.exit_code == 0, r.output
    assert f"<ann@example.test> with role {role}" in r.output
    user = one_user(app, "ann@example.test")
    assert (user.display_name, user.site_role) == ("Ann Example", role)
    assert user.password_hash.startswith("$argon2id$") and verify_password(user.password_hash, "a-long-password")
    with app.app_context():
        events = db.session.execute(select(AuditEvent.action)).scalars().all()
    assert events == ([] if role == "user" else ["role.granted"])


@pytest.mark.parametrize("args,code,message", [
    (["dup@example.test", "--name", "Dup Again", "--password", "a-long-password"], 1, "already exists"),
    (["new@example.test", "--name", "New", "--password", "short"], 1, "at least 10 characters"),
    (["not-an-email", "--name", "Someone", "--password", "a-long-password"], 1, "not an e-mail address"),
    (["new@example.test", "--name", "X", "--password", "a-long-password"], 1, "2 to 80 characters"),
    (["new@example.test", "--name", "N" * 81, "--password", "a-long-password"], 1, "2 to 80 characters"),
    (["new@example.test", "--name", "Ok Name", "--password", "a-long-password", "--role", "king"], 2,
     "Invalid value for '--role'"),
    (["new@example.test", "--password", "a-long-password"], 2, "Missing option '--name'"),
])
def test_users_create_refuses_bad_input(app, runner, args, code, message):
    run(runner, "users", "create", "dup@example.test", "--name", "Dup", "--password", "a-long-password")
    before = table_counts(app)
    r = runner.invoke(args=["users", "create", *args])
    assert r.exit_code == code
    assert message in r.output
    assert table_counts(app) == before


def test_users_set_role(app, runner):
    run(runner, "users", "create", "bo@example.test", "--name", "Bo", "--password", "a-long-password")
    r = run(runner, "users", "set-role", "BO@example.test", "moderator")
    assert r.exit_code == 0 and "bo@example.test is now moderator" in r.output
    assert one_user(app, "bo@example.test").site_role == "moderator"
    assert run(runner, "users", "set-role", "bo@example.test", "user").exit_code == 0
    assert one_user(app, "bo@example.test").site_role == "user"
    with app.app_context():
        rows = db.session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
        assert [(e.action, e.data) for e in rows] == [
            ("role.changed", '{"from":"user","to":"moderator"}'),
            ("role.changed", '{"from":"moderator","to":"user"}')]
    r = runner.invoke(args=["users", "set-role", "nobody@example.test", "admin"])
    assert r.exit_code == 1 and "no account with e-mail nobody@example.test" in r.output
    r = runner.invoke(args=["users", "set-role", "bo@example.test", "overlord"])
    assert r.exit_code == 2 and "Invalid value" in r.output
    assert one_user(app, "bo@example.test").site_role == "user"


# --------------------------------------------------------------------------- orgs


@pytest.mark.parametrize("kind", OrgKind.values())
def test_orgs_create(app, runner, kind):
    run(runner, "users", "create", "own@example.test", "--name", "Owner", "--password", "a-long-password")
    r = run(runner, "orgs", "create", f"Org of kind {kind}", "--kind", kind, "--owner", "own@example.test")
    assert r.exit_code == 0, r.output
    assert f"'Org of kind {kind}' (org-of-kind-{kind})" in r.output
    with app.app_context():
        org = db.session.execute(select(Organisation)).scalar_one()
        assert org.kind == kind
        assert [(m.user.email, m.role) for m in org.memberships] == [("own@example.test", "owner")]


@pytest.mark.parametrize("args,code,message", [
    (["Acme", "--kind", "guild", "--owner", "own@example.test"], 2, "Invalid value for '--kind'"),
    (["Acme", "--kind", "company", "--owner", "ghost@example.test"], 1, "no account with e-mail"),
    (["Existing Org", "--kind", "company", "--owner", "own@example.test"], 1, "already exists"),
    (["EXISTING ORG", "--kind", "cluster", "--owner", "own@example.test"], 1, "already exists"),
    (["N" * 121, "--kind", "company", "--owner", "own@example.test"], 1, "2 to 120 characters"),
    (["  ", "--kind", "company", "--owner", "own@example.test"], 1, "Give the organisation a name"),
    (["Acme", "--owner", "own@example.test"], 2, "Missing option '--kind'"),
])
def test_orgs_create_refuses_bad_input(app, runner, args, code, message):
    run(runner, "users", "create", "own@example.test", "--name", "Owner", "--password", "a-long-password")
    run(runner, "orgs", "create", "Existing Org", "--kind", "company", "--owner", "own@example.test")
    before = table_counts(app)
    r = runner.invoke(args=["orgs", "create", *args])
    assert r.exit_code == code
    assert message in r.output
    assert table_counts(app) == before


# --------------------------------------------------------------------------- demo


def test_demo_load_is_idempotent_and_covers_every_case(app, runner):
    first = run(runner, "demo", "load")
    assert first.exit_code == 0, first.output
    counts = table_counts(app)
    second = run(runner, "demo", "load")
    assert second.exit_code == 0, second.output
    assert table_counts(app) == counts
    with app.app_context():
        def values(col, *where):
            return set(db.session.execute(select(col).where(*where).distinct()).scalars())

        assert values(Item.visibility, Item.status != Status.DRAFT.value) == set(Visibility.values())
        assert {Status.DRAFT.value, Status.OPEN.value} <= values(Item.status)
        assert values(Item.kind) == {"challenge", "failure", "asset"}
        assert values(Organisation.kind) >= set(OrgKind.values())
        assert values(User.site_role) >= set(SiteRole.values())
        assert values(Membership.role) >= set(OrgRole.values())
        assert db.session.execute(select(func.count()).select_from(AccessGrant)).scalar_one() >= 1
        # an outsider: signed up, in no organisation, holding no grant
        outsider = db.session.execute(select(User).where(User.email == "outsider@contributor.test")).scalar_one()
        assert not outsider.memberships
        assert not db.session.execute(select(AccessGrant).where(AccessGrant.user_id == outsider.id)).first()


def test_demo_load_prints_what_each_account_is(runner):
    out = run(runner, "demo", "load").output
    assert "password for all: demo-password-1" in out
    lines = {line.split()[0]: line for line in out.splitlines() if "@" in line and line.startswith("  ")}
    assert "site admin" in lines["admin@demo.test"]
    assert "site moderator" in lines["moderator@demo.test"]
    assert "owner of Acme Robotics (company)" in lines["owner@acme.test"]
    assert "admin of Acme Robotics (company)" in lines["admin@acme.test"]
    assert "member of Acme Robotics (company)" in lines["member@acme.test"]
    assert "owner of North Sea Energy Cluster (cluster)" in lines["curator@cluster.test"]
    assert "owner of Techville University (university)" in lines["researcher@uni.test"]
    assert "invited contributor: has a grant on an invited challenge" in lines["invited@contributor.test"]
    assert "outsider: registered, no grants" in lines["outsider@contributor.test"]


def test_demo_load_if_empty_skips_loading_but_still_lists_accounts(app, runner):
    run(runner, "users", "create", "someone@example.test", "--name", "Someone", "--password", "a-long-password")
    before = table_counts(app)
    out = run(runner, "demo", "load", "--if-empty").output
    assert "demo load skipped" in out
    assert table_counts(app) == before
    run(runner, "demo", "load")
    out = run(runner, "demo", "load", "--if-empty").output
    assert "demo load skipped" in out and "owner@acme.test" in out


def test_demo_accounts_can_sign_in(app, runner, client):
    run(runner, "demo", "load")
    r = client.post("/auth/login", data={"email": "invited@contributor.test", "password": "demo-password-1"})
    assert r.status_code == 302
    assert b"Confidential: next-generation lidar fusion" in client.get("/challenges/").data


# --------------------------------------------------------------------------- help


@pytest.mark.parametrize("args,expected", [
    ([], ["users", "Manage accounts.", "orgs", "Manage organisations.", "demo", "Demo data."]),
    (["users"], ["create", "set-role"]),
    (["users", "create"], ["Create an account", "--name", "--password", "--role", "moderator", "admin"]),
    (["users", "set-role"], ["Grant or remove a site role", "user", "moderator", "admin"]),
    (["orgs", "create"], ["Create an organisation owned by an existing account", "--kind", "company", "cluster",
                          "university", "public-body", "--owner"]),
    (["demo", "load"], ["Load demo data (idempotent)", "--if-empty"]),
])
def test_help_texts(runner, args, expected):
    r = runner.invoke(args=[*args, "--help"])
    assert r.exit_code == 0
    for text in expected:
        assert text in r.output, text
