"""Organisations: create, edit, members and roles, the profile page, bad input."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.models import AuditEvent, Membership, Organisation, utcnow

from .factories import Factories


def count(app, model):
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def role_of(app, org_id, email):
    from marketplace.models import User

    with app.app_context():
        return db.session.execute(
            select(Membership.role).join(User, User.id == Membership.user_id)
            .where(Membership.org_id == org_id, User.email == email)
        ).scalar()


@pytest.fixture
def acme(app):
    with app.app_context():
        f = Factories()
        owner = f.make_user(email="owner@acme.test", name="Alice Owner")
        admin = f.make_user(email="admin@acme.test", name="Bob Admin")
        member = f.make_user(email="member@acme.test", name="Carol Member")
        f.make_user(email="outsider@example.test", name="Oscar Outsider")
        org = f.make_org(name="Acme Robotics", owner=owner, admins=(admin,), members=(member,))
        f.make_item(org, title="Public challenge of Acme", visibility="public")
        f.make_item(org, title="Members-only challenge of Acme", visibility="organisation")
        f.make_item(org, kind="failure", title="Draft failure of Acme", status="draft")
        f.make_item(org, kind="asset", title="Hidden asset of Acme", visibility="public",
                    hidden_at=utcnow())
        return SimpleNamespace(id=org.id, slug=org.slug,
                               mid={u.email: m.id for u in (owner, admin, member) for m in u.memberships})


@pytest.mark.parametrize("kind", ["company", "cluster", "university", "public-body"])
def test_create_an_organisation_of_each_kind(app, client, auth, kind):
    with app.app_context():
        Factories().make_user(email="founder@example.test")
    auth.login("founder@example.test")
    r = client.post("/orgs/new", data={"name": f"Néw {kind} Org", "kind": kind, "description": "We *do* things.",
                                       "website": "https://example.org"})
    assert r.status_code == 302
    with app.app_context():
        org = db.session.execute(select(Organisation).where(Organisation.kind == kind)).scalar_one()
        assert org.slug == f"new-{kind}-org"
        assert "<em>do</em>" in org.description_html
        assert [(m.user.email, m.role) for m in org.memberships] == [("founder@example.test", "owner")]
        assert db.session.execute(select(AuditEvent.action).where(AuditEvent.subject_id == org.id)).scalar() \
            == "org.created"
    page = client.get(r.headers["Location"])
    assert page.status_code == 200 and kind.encode() in page.data


@pytest.mark.parametrize("data,message", [
    ({"name": "", "kind": "company"}, b"Give the organisation a name."),
    ({"name": "A", "kind": "company"}, b"between 2 and 120 characters"),
    ({"name": "N" * 121, "kind": "company"}, b"between 2 and 120 characters"),
    ({"name": "Fine Name", "kind": "guild"}, b"Not a valid choice"),
    ({"name": "Fine Name", "kind": ""}, b"Not a valid choice"),
    ({"name": "Fine Name", "kind": "company", "website": "javascript://example.com/%0aalert(1)"},
     b"Enter a full web address."),
    ({"name": "Fine Name", "kind": "company", "website": "not a url"}, b"Enter a full web address."),
    ({"name": "Fine Name", "kind": "company", "description": "d" * 20_001}, b"longer than 20000"),
    ({"name": "acme robotics", "kind": "company"}, b"already exists"),
    ({"name": "  ACME Robotics ", "kind": "cluster"}, b"already exists"),
])
def test_bad_organisation_input(app, client, auth, acme, data, message):
    auth.login("outsider@example.test")
    before = (count(app, Organisation), count(app, Membership), count(app, AuditEvent))
    r = client.post("/orgs/new", data=data)
    assert r.status_code == 400 and message in r.data
    assert (count(app, Organisation), count(app, Membership), count(app, AuditEvent)) == before


def test_similar_names_get_distinct_slugs(app, client, auth, acme):
    auth.login("outsider@example.test")
    r = client.post("/orgs/new", data={"name": "Beta Labs", "kind": "company"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/orgs/beta-labs")
    r = client.post("/orgs/new", data={"name": "Beta-Labs!", "kind": "university"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/orgs/beta-labs-2")


def test_the_profile_lists_what_the_viewer_may_see(client, auth, acme):
    def titles():
        html = client.get(f"/orgs/{acme.slug}").text
        return {t for t in ("Public challenge", "Members-only challenge", "Draft failure", "Hidden asset")
                if f"{t} of Acme" in html}, "Carol Member" in html

    assert titles() == ({"Public challenge"}, False)
    auth.login("outsider@example.test")
    assert titles() == ({"Public challenge"}, False)
    auth.logout()
    auth.login("member@acme.test")
    assert titles() == ({"Public challenge", "Members-only challenge", "Hidden asset"}, True)
    auth.logout()
    auth.login("admin@acme.test")
    assert titles() == ({"Public challenge", "Members-only challenge", "Draft failure", "Hidden asset"}, True)


def test_directory_and_kind_filter(app, client, acme):
    with app.app_context():
        Factories().make_org(name="Northern Cluster", kind="cluster")
    html = client.get("/orgs/?kind=cluster").text
    assert "Northern Cluster" in html and "Acme Robotics" not in html
    assert "Acme Robotics" in client.get("/orgs/").text
    r = client.get("/orgs/?kind=guild")
    assert r.status_code == 400 and b"Unknown kind" in r.data


def test_edit_profile(app, client, auth, acme):
    auth.login("member@acme.test")
    assert client.post(f"/orgs/{acme.slug}/edit", data={"description": "Taken over"}).status_code == 403
    auth.logout()
    auth.login("admin@acme.test")
    r = client.post(f"/orgs/{acme.slug}/edit", data={"description": "We build **robots**.",
                                                     "website": "https://acme.example"})
    assert r.status_code == 302
    r = client.post(f"/orgs/{acme.slug}/edit", data={"description": "x", "website": "ftp//broken"})
    assert r.status_code == 400 and b"Enter a full web address." in r.data
    with app.app_context():
        org = db.session.get(Organisation, acme.id)
        assert (org.description, org.website) == ("We build **robots**.", "https://acme.example")
        assert "<strong>robots</strong>" in org.description_html


def test_add_members_and_change_roles(app, client, auth, acme):
    auth.login("owner@acme.test")
    r = client.post(f"/orgs/{acme.slug}/members", data={"email": "OUTSIDER@example.test ", "role": "admin"})
    assert r.status_code == 302
    assert role_of(app, acme.id, "outsider@example.test") == "admin"
    page = client.get(f"/orgs/{acme.slug}/members")
    assert b"Oscar Outsider" in page.data and b"outsider@example.test" in page.data
    r = client.post(f"/orgs/{acme.slug}/members/{acme.mid['member@acme.test']}/role", data={"role": "owner"})
    assert r.status_code == 302 and role_of(app, acme.id, "member@acme.test") == "owner"
    with app.app_context():
        actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.subject_id == acme.id)
                                     .order_by(AuditEvent.id)).scalars().all()
    assert actions == ["org.member_added", "org.role_changed"]


@pytest.mark.parametrize("data,message", [
    ({"email": "nobody@example.test", "role": "member"}, b"Ask them to register first."),
    ({"email": "member@acme.test", "role": "member"}, b"is already a member"),
    ({"email": "outsider@example.test", "role": "king"}, b"Not a valid choice"),
    ({"email": "", "role": "member"}, b"Enter an e-mail address."),
    ({"email": "x" * 255, "role": "member"}, b"longer than 254"),
])
def test_bad_member_input(app, client, auth, acme, data, message):
    auth.login("admin@acme.test")
    before = count(app, Membership)
    r = client.post(f"/orgs/{acme.slug}/members", data=data)
    assert r.status_code == 400 and message in r.data
    assert count(app, Membership) == before


def test_admins_cannot_make_or_unmake_owners(app, client, auth, acme):
    auth.login("admin@acme.test")
    before = count(app, Membership)
    r = client.post(f"/orgs/{acme.slug}/members", data={"email": "outsider@example.test", "role": "owner"})
    assert r.status_code == 400 and b"Only owners can make someone an owner." in r.data
    assert count(app, Membership) == before
    r = client.post(f"/orgs/{acme.slug}/members/{acme.mid['owner@acme.test']}/role", data={"role": "member"})
    assert r.status_code == 403 and b"Only owners can make or unmake owners." in r.data
    r = client.post(f"/orgs/{acme.slug}/members/{acme.mid['admin@acme.test']}/role", data={"role": "owner"})
    assert r.status_code == 403
    r = client.post(f"/orgs/{acme.slug}/members/{acme.mid['owner@acme.test']}/remove")
    assert r.status_code == 403 and b"Only owners can remove an owner." in r.data
    r = client.post(f"/orgs/{acme.slug}/members/{acme.mid['member@acme.test']}/role", data={"role": "emperor"})
    assert r.status_code == 400 and b"Choose one of the roles" in r.data
    assert (role_of(app, acme.id, "owner@acme.test"), role_of(app, acme.id, "admin@acme.test"),
            role_of(app, acme.id, "member@acme.test")) == ("owner", "admin", "member")


def test_an_organisation_keeps_an_owner(app, client, auth, acme):
    auth.login("owner@acme.test")
    r = client.post(f"/orgs/{acme.slug}/members/{acme.mid['owner@acme.test']}/remove")
    assert r.status_code == 409 and b"at least one owner" in r.data
    r = client.post(f"/orgs/{acme.slug}/members/{acme.mid['owner@acme.test']}/role", data={"role": "admin"})
    assert r.status_code == 409
    assert role_of(app, acme.id, "owner@acme.test") == "owner"
    # With a second owner, the first may step down.
    client.post(f"/orgs/{acme.slug}/members/{acme.mid['admin@acme.test']}/role", data={"role": "owner"})
    r = client.post(f"/orgs/{acme.slug}/members/{acme.mid['owner@acme.test']}/remove")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/orgs/{acme.slug}")
    assert role_of(app, acme.id, "owner@acme.test") is None


def test_members_may_leave_and_lose_access_at_once(app, client, auth, acme):
    auth.login("member@acme.test")
    assert b"Members-only challenge of Acme" in client.get(f"/orgs/{acme.slug}").data
    r = client.post(f"/orgs/{acme.slug}/members/{acme.mid['member@acme.test']}/remove")
    assert r.status_code == 302
    assert role_of(app, acme.id, "member@acme.test") is None
    assert b"Members-only challenge of Acme" not in client.get(f"/orgs/{acme.slug}").data
    r = client.post(f"/orgs/{acme.slug}/members/{acme.mid['admin@acme.test']}/remove")
    assert r.status_code == 403  # no longer a member: may not remove others
