"""Every route of the foundation blueprints, requested by every kind of viewer.

Expected codes follow from the rules (tests/factories_foundation.py): pages behind a login
send anonymous visitors to sign in (302) whatever the target, so the redirect says nothing;
an item the viewer may not see answers 404 (never 403) and the error page never names it;
an action on an item the viewer may see but not change answers 403.
"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.models import AccessGrant, Item, Membership

from .factories_foundation import PROFILES, World, dispose, expected, make_app

PASSWORD = "correct-horse-battery"
VIEWERS = ["anonymous", "outsider", "granted", "expired_grant", "list_active", "member", "admin",
           "owner", "other_admin", "moderator", "site_admin"]
PLURAL = {"challenge": "challenges", "failure": "failures", "asset": "assets"}

# key -> (kind, visibility, status, hidden)
ITEMS = {
    "pub_open": ("challenge", "public", "open", False),
    "reg_open": ("failure", "registered", "open", False),
    "inv_open": ("asset", "invited", "open", False),
    "inv_closed": ("challenge", "invited", "closed", False),
    "org_open": ("challenge", "organisation", "open", False),
    "draft": ("failure", "public", "draft", False),
    "draft_challenge": ("challenge", "invited", "draft", False),
    "hidden": ("failure", "public", "open", True),
    "archived": ("asset", "public", "archived", False),
}
# Items used for the write routes (each test gets a fresh one), and the viewers who try them:
# one of each outcome (sign in first, 404, 403, allowed); the policy matrix covers the rest.
WRITE_ITEMS = ["pub_open", "inv_open", "org_open", "draft", "hidden", "archived"]
WRITE_VIEWERS = ["anonymous", "outsider", "granted", "member", "admin", "owner", "other_admin", "moderator"]


class Site:
    def __init__(self, app, world, items):
        self.app = app
        self.world = world
        self.items = items  # key -> (id, kind, title)
        self.clients = {}

    def client(self, viewer):
        if viewer not in self.clients:
            c = self.app.test_client()
            if viewer != "anonymous":
                with self.app.app_context():
                    email = self.world.rebind().users[viewer].email
                r = c.post("/auth/login", data={"email": email, "password": PASSWORD})
                assert r.status_code == 302, f"{viewer} could not sign in"
            self.clients[viewer] = c
        return self.clients[viewer]

    def fresh_item(self, key):
        kind, vis, status, hidden = ITEMS[key]
        with self.app.app_context():
            item = self.world.rebind().add_item(kind=kind, visibility=vis, status=status, hidden=hidden,
                                                title=f"Fresh {key} secret-title")
            return item.id, kind, item.title


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("routes"))
    with app.app_context():
        world = World()
        items = {}
        for key, (kind, vis, status, hidden) in ITEMS.items():
            it = world.add_item(kind=kind, visibility=vis, status=status, hidden=hidden,
                                title=f"Route item {key} secret-title", tags=("route-base",))
            items[key] = (it.id, kind, it.title)
    yield Site(app, world, items)
    dispose(app)


def _code(viewer, key, action, ok, login_first=True):
    p = PROFILES[viewer]
    _kind, vis, status, hidden = ITEMS[key]
    if login_first and not p.signed_in:
        return 302
    if not expected(p, vis, status, hidden, "view"):
        return 404
    if not expected(p, vis, status, hidden, action):
        return 403
    return ok


def _allowed(viewer, key, action):
    _kind, vis, status, hidden = ITEMS[key]
    return expected(PROFILES[viewer], vis, status, hidden, action)


def _assert_reveals_nothing(r, title):
    if r.status_code in (302, 403, 404):
        assert title.encode() not in r.data
        assert title.encode() not in (r.headers.get("Location") or "").encode()


# --------------------------------------------------------------------------- item pages (GET)


@pytest.mark.parametrize("key", list(ITEMS))
@pytest.mark.parametrize("viewer", VIEWERS)
def test_item_detail(site, viewer, key):
    iid, kind, title = site.items[key]
    r = site.client(viewer).get(f"/{PLURAL[kind]}/{iid}")
    want = _code(viewer, key, "view", 200, login_first=False)
    assert r.status_code == want
    if want == 200:
        assert title.encode() in r.data
    _assert_reveals_nothing(r, title)


@pytest.mark.parametrize("key", list(ITEMS))
@pytest.mark.parametrize("viewer", VIEWERS)
def test_item_edit_page(site, viewer, key):
    iid, kind, title = site.items[key]
    r = site.client(viewer).get(f"/{PLURAL[kind]}/{iid}/edit")
    assert r.status_code == _code(viewer, key, "edit", 200)
    _assert_reveals_nothing(r, title)


@pytest.mark.parametrize("key", list(ITEMS))
@pytest.mark.parametrize("viewer", VIEWERS)
def test_item_access_page(site, viewer, key):
    iid, kind, title = site.items[key]
    r = site.client(viewer).get(f"/{PLURAL[kind]}/{iid}/access")
    assert r.status_code == _code(viewer, key, "manage_access", 200)
    _assert_reveals_nothing(r, title)


@pytest.mark.parametrize("viewer", VIEWERS)
def test_hidden_is_indistinguishable_from_missing(site, viewer):
    """The 404 for an item one may not see is byte-for-byte the 404 for no item at all."""
    c = site.client(viewer)
    c.get("/about")  # show (and so drop) any flashed message left by an earlier test
    missing = c.get("/challenges/987654")
    assert missing.status_code == 404
    for key in ITEMS:
        iid, kind, _title = site.items[key]
        r = c.get(f"/{PLURAL[kind]}/{iid}")
        if r.status_code == 404:
            assert _no_token(r.data) == _no_token(missing.data)


def _no_token(html: bytes) -> bytes:
    """The sign-out form's CSRF token is time-stamped; everything else must be identical."""
    return re.sub(rb'name="csrf_token" value="[^"]*"', b"", html)


@pytest.mark.parametrize("viewer", ["anonymous", "owner", "moderator"])
def test_wrong_kind_or_non_integer_ids_are_404(site, viewer):
    c = site.client(viewer)
    iid, _kind, title = site.items["pub_open"]  # a challenge
    for url in (f"/failures/{iid}", f"/assets/{iid}", "/challenges/abc", "/challenges/1.5",
                "/challenges/-1", f"/challenges/{iid}abc"):
        r = c.get(url)
        assert r.status_code == 404, url
        assert title.encode() not in r.data
    for url in ("/challenges/abc/edit", "/challenges/abc/access"):
        assert c.get(url).status_code == 404


# --------------------------------------------------------------------------- JSON API and feeds


@pytest.mark.parametrize("viewer", VIEWERS)
def test_api_lists_and_loads_exactly_what_the_viewer_may_see(site, viewer):
    c = site.client(viewer)
    want = {key for key in ITEMS if _allowed(viewer, key, "view")}
    listed = c.get("/api/v1/items?tag=route-base&per_page=100").get_json()
    ids = {i["id"] for i in listed["items"]}
    assert ids == {site.items[k][0] for k in want}
    assert listed["total"] == len(want)
    for kind in PLURAL.values():
        of_kind = {i["id"] for i in c.get(f"/api/v1/{kind}?tag=route-base&per_page=100").get_json()["items"]}
        assert of_kind == {site.items[k][0] for k in want if PLURAL[ITEMS[k][0]] == kind}
    for key in ITEMS:
        iid, _kind, title = site.items[key]
        r = c.get(f"/api/v1/items/{iid}")
        assert r.status_code == (200 if key in want else 404)
        assert (title in r.text) is (key in want)
    with site.app.app_context():
        slug = site.world.rebind().org.slug
    org_ids = {i["id"] for i in c.get(f"/api/v1/orgs/{slug}").get_json()["items"]}
    assert org_ids & {v[0] for v in site.items.values()} == {site.items[k][0] for k in want}


@pytest.mark.parametrize("viewer", VIEWERS)
def test_feeds_carry_exactly_what_the_viewer_may_see(site, viewer):
    c = site.client(viewer)
    r = c.get("/feeds/items.atom?tag=route-base")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/atom+xml")
    for key in ITEMS:
        assert (site.items[key][2] in r.text) is _allowed(viewer, key, "view"), key
    assert r.headers["Cache-Control"] == ("private, no-store" if _signed_in(viewer) else "public, max-age=300")


@pytest.mark.parametrize("viewer", VIEWERS)
def test_api_me_and_orgs(site, viewer):
    c = site.client(viewer)
    me = c.get("/api/v1/me").get_json()
    assert me["authenticated"] is _signed_in(viewer)
    if _signed_in(viewer):
        with site.app.app_context():
            world = site.world.rebind()
            assert me["id"] == world.users[viewer].id
            assert {o["id"] for o in me["organisations"]} == {m.org_id for m in world.users[viewer].memberships}
    assert c.get("/api/v1/orgs").status_code == 200
    r = c.get("/api/v1/orgs/no-such-organisation")
    assert r.status_code == 404 and r.get_json()["status"] == 404


@pytest.mark.parametrize("url", ["/api/v1/items?status=pending", "/api/v1/items?sort=sideways",
                                 "/api/v1/items?page=zero", "/api/v1/items?kind=idea",
                                 "/feeds/items.atom?status=pending", "/feeds/challenges.atom?page=-1"])
def test_api_and_feed_bad_arguments_are_400(site, url):
    r = site.client("anonymous").get(url)
    assert r.status_code == 400
    if url.startswith("/api/"):
        assert r.get_json()["status"] == 400 and r.get_json()["error"]


# --------------------------------------------------------------------------- item writes (POST)


def _item_row(site, iid):
    with site.app.app_context():
        it = db.session.get(Item, iid)
        return None if it is None else (it.visibility, it.status)


@pytest.mark.parametrize("key", WRITE_ITEMS)
@pytest.mark.parametrize("viewer", WRITE_VIEWERS)
def test_change_visibility_route(site, viewer, key):
    iid, kind, title = site.fresh_item(key)
    before = _item_row(site, iid)
    target = "registered" if before[0] != "registered" else "public"
    r = site.client(viewer).post(f"/{PLURAL[kind]}/{iid}/visibility", data={"visibility": target})
    assert r.status_code == _code(viewer, key, "change_visibility", 302)
    allowed = _allowed(viewer, key, "change_visibility")
    assert _item_row(site, iid) == ((target, before[1]) if allowed else before)
    _assert_reveals_nothing(r, title)


NEXT_STATUS = {"draft": "open", "open": "closed", "closed": "open", "archived": "open"}


@pytest.mark.parametrize("key", WRITE_ITEMS)
@pytest.mark.parametrize("viewer", WRITE_VIEWERS)
def test_change_status_route(site, viewer, key):
    iid, kind, title = site.fresh_item(key)
    before = _item_row(site, iid)
    target = NEXT_STATUS[before[1]]
    # confirmed=yes: what the page's confirmation dialog adds (tests/test_walkthrough.py
    # covers the confirmation page itself).
    r = site.client(viewer).post(f"/{PLURAL[kind]}/{iid}/status", data={"status": target, "confirmed": "yes"})
    want = _code(viewer, key, "change_status", 302)
    allowed = _allowed(viewer, key, "change_status")
    if allowed and before[1] == "archived":
        want, allowed = 303, False  # archived is final: refused with a message on the item page
    assert r.status_code == want
    assert _item_row(site, iid) == ((before[0], target) if allowed else before)
    _assert_reveals_nothing(r, title)


@pytest.mark.parametrize("key", WRITE_ITEMS)
@pytest.mark.parametrize("viewer", WRITE_VIEWERS)
def test_delete_route(site, viewer, key):
    iid, kind, title = site.fresh_item(key)
    r = site.client(viewer).post(f"/{PLURAL[kind]}/{iid}/delete")
    want = _code(viewer, key, "delete", 302)
    allowed = _allowed(viewer, key, "delete")
    if allowed and ITEMS[key][2] != "draft":
        want, allowed = 409, False  # published items are archived, never deleted
    assert r.status_code == want
    assert (_item_row(site, iid) is None) is allowed
    _assert_reveals_nothing(r, title)


@pytest.mark.parametrize("key", WRITE_ITEMS)
@pytest.mark.parametrize("viewer", WRITE_VIEWERS)
def test_grant_access_route(site, viewer, key):
    iid, kind, title = site.fresh_item(key)
    with site.app.app_context():
        newcomer = site.world.rebind().f.make_user()
        email, uid = newcomer.email, newcomer.id
    r = site.client(viewer).post(f"/{PLURAL[kind]}/{iid}/access", data={"email": email})
    assert r.status_code == _code(viewer, key, "manage_access", 302)
    with site.app.app_context():
        made = db.session.execute(select(AccessGrant).where(AccessGrant.item_id == iid,
                                                            AccessGrant.user_id == uid)).scalar()
    assert (made is not None) is _allowed(viewer, key, "manage_access")
    _assert_reveals_nothing(r, title)


@pytest.mark.parametrize("key", WRITE_ITEMS)
@pytest.mark.parametrize("viewer", WRITE_VIEWERS)
def test_revoke_route(site, viewer, key):
    iid, kind, title = site.fresh_item(key)
    with site.app.app_context():
        world = site.world.rebind()
        gid = db.session.execute(select(AccessGrant.id).where(
            AccessGrant.item_id == iid, AccessGrant.user_id == world.users["granted"].id)).scalar()
    r = site.client(viewer).post(f"/{PLURAL[kind]}/{iid}/access/{gid}/revoke")
    assert r.status_code == _code(viewer, key, "manage_access", 302)
    with site.app.app_context():
        assert (db.session.get(AccessGrant, gid).revoked_at is not None) is _allowed(viewer, key, "manage_access")
    _assert_reveals_nothing(r, title)


@pytest.mark.parametrize("viewer", ["owner", "admin"])
def test_revoke_a_grant_of_another_item_is_404(site, viewer):
    """A forged grant id (belonging to another organisation's item) changes nothing."""
    iid, kind, _title = site.fresh_item("inv_open")
    with site.app.app_context():
        world = site.world.rebind()
        foreign = world.add_item(org=world.other_org, visibility="invited")
        gid = db.session.execute(select(AccessGrant.id).where(AccessGrant.item_id == foreign.id)).scalars().first()
    r = site.client(viewer).post(f"/{PLURAL[kind]}/{iid}/access/{gid}/revoke")
    assert r.status_code == 404
    with site.app.app_context():
        assert db.session.get(AccessGrant, gid).revoked_at is None


# --------------------------------------------------------------------------- other pages


def _signed_in(viewer):
    return PROFILES[viewer].signed_in


@pytest.mark.parametrize("viewer", VIEWERS)
@pytest.mark.parametrize("url", ["/", "/about", "/healthz", "/challenges/", "/failures/", "/assets/",
                                 "/orgs/", "/orgs/?kind=cluster", "/.well-known/receipt-keys.json"])
def test_public_pages(site, viewer, url):
    assert site.client(viewer).get(url).status_code == 200


@pytest.mark.parametrize("viewer", VIEWERS)
@pytest.mark.parametrize("kind", list(PLURAL))
def test_new_item_page(site, viewer, kind):
    r = site.client(viewer).get(f"/{PLURAL[kind]}/new")
    if not _signed_in(viewer):
        want = 302
    elif viewer in ("admin", "owner", "other_admin"):  # owners/admins of some organisation
        want = 200
    else:
        want = 403
    assert r.status_code == want


@pytest.mark.parametrize("viewer", VIEWERS)
def test_new_item_for_an_organisation_one_does_not_run_is_403(site, viewer):
    with site.app.app_context():
        org_id = site.world.rebind().org.id
    r = site.client(viewer).post(f"/challenges/new?org={org_id}", data={"title": "Forged", "body": "x"})
    want = 302 if not _signed_in(viewer) else (302 if viewer in ("admin", "owner") else 403)
    assert r.status_code == want
    if viewer == "other_admin":
        assert b"cannot post for that organisation" in r.data


@pytest.mark.parametrize("viewer", VIEWERS)
def test_org_pages(site, viewer):
    with site.app.app_context():
        slug = site.world.rebind().org.slug
    c = site.client(viewer)
    signed_in, org_admin = _signed_in(viewer), PROFILES[viewer].org_admin
    assert c.get(f"/orgs/{slug}").status_code == 200
    assert c.get("/orgs/no-such-organisation").status_code == 404
    assert c.get("/orgs/new").status_code == (200 if signed_in else 302)
    for url in (f"/orgs/{slug}/edit", f"/orgs/{slug}/members"):
        assert c.get(url).status_code == (302 if not signed_in else 200 if org_admin else 403), url
    assert c.get("/orgs/no-such-organisation/edit").status_code == (404 if signed_in else 302)


def _fresh_membership(site):
    with site.app.app_context():
        world = site.world.rebind()
        m = world.f.add_member(world.org, world.f.make_user(), "member")
        return world.org.slug, m.id


@pytest.mark.parametrize("viewer", VIEWERS)
def test_member_role_route(site, viewer):
    slug, mid = _fresh_membership(site)
    r = site.client(viewer).post(f"/orgs/{slug}/members/{mid}/role", data={"role": "admin"})
    p = PROFILES[viewer]
    want = 302 if not p.signed_in else (302 if p.org_admin else 403)
    assert r.status_code == want
    with site.app.app_context():
        role = db.session.get(Membership, mid).role
    assert role == ("admin" if p.org_admin else "member")


@pytest.mark.parametrize("viewer", VIEWERS)
def test_member_remove_route(site, viewer):
    slug, mid = _fresh_membership(site)
    r = site.client(viewer).post(f"/orgs/{slug}/members/{mid}/remove")
    p = PROFILES[viewer]
    want = 302 if not p.signed_in else (302 if p.org_admin else 403)
    assert r.status_code == want
    with site.app.app_context():
        assert (db.session.get(Membership, mid) is None) is p.org_admin


@pytest.mark.parametrize("viewer", ["owner", "admin"])
def test_membership_of_another_organisation_is_404(site, viewer):
    with site.app.app_context():
        world = site.world.rebind()
        foreign = world.f.add_member(world.other_org, world.f.make_user(), "member")
        slug, mid = world.org.slug, foreign.id
    c = site.client(viewer)
    assert c.post(f"/orgs/{slug}/members/{mid}/role", data={"role": "admin"}).status_code == 404
    assert c.post(f"/orgs/{slug}/members/{mid}/remove").status_code == 404
    assert c.post(f"/orgs/{slug}/members/abc/remove").status_code == 404
    with site.app.app_context():
        assert db.session.get(Membership, mid).role == "member"


@pytest.mark.parametrize("viewer", VIEWERS)
def test_auth_pages(site, viewer):
    c = site.client(viewer)
    signed_in = _signed_in(viewer)
    assert c.get("/auth/register").status_code == (302 if signed_in else 200)
    assert c.get("/auth/login").status_code == (302 if signed_in else 200)
    assert c.get("/auth/account").status_code == (200 if signed_in else 302)
    r = c.get("/auth/logout")  # signing out is a POST (CSRF-protected)
    assert r.status_code == 405 and r.headers["Allow"].startswith(("POST", "OPTIONS"))


@pytest.mark.parametrize("viewer", VIEWERS)
def test_logout(site, viewer):
    c = site.app.test_client()  # its own client: the shared one stays signed in
    if viewer != "anonymous":
        with site.app.app_context():
            email = site.world.rebind().users[viewer].email
        assert c.post("/auth/login", data={"email": email, "password": PASSWORD}).status_code == 302
    r = c.post("/auth/logout")
    assert r.status_code == 302
    assert c.get("/auth/account").status_code == 302


@pytest.mark.parametrize("viewer", VIEWERS)
def test_notification_pages(site, viewer):
    c = site.client(viewer)
    signed_in = _signed_in(viewer)
    assert c.get("/notifications/").status_code == (200 if signed_in else 302)
    assert c.post("/notifications/read").status_code == 302
    assert c.get("/notifications/mail-log").status_code == (
        302 if not signed_in else 200 if viewer == "site_admin" else 403)


@pytest.mark.parametrize("viewer", VIEWERS)
def test_account_and_notification_pages(site, viewer):
    """Mailed-link pages answer a bad link with a clear 404 (never a 500), whoever asks;
    choices and follows need a sign-in; the mail failures page is for site admins."""
    c = site.client(viewer)
    signed_in = _signed_in(viewer)
    assert c.get("/auth/reset").status_code == 200
    for path in ("/auth/verify/x", "/auth/reset/x", "/auth/email/x", "/notifications/unsubscribe/x"):
        assert c.get(path).status_code == 404, path
    assert c.post("/auth/reset/x").status_code == 404
    assert c.post("/auth/email/x").status_code == 404
    assert c.post("/notifications/unsubscribe/x").status_code == 404
    assert c.get("/notifications/settings").status_code == (200 if signed_in else 302)
    assert c.get("/following").status_code == (200 if signed_in else 302)
    assert c.post("/auth/verify/resend").status_code == 302
    assert c.post("/auth/email", data={"e-email": "not-an-address", "e-password": "x"}).status_code == (
        400 if signed_in else 302)
    assert c.get("/mail/failures").status_code == (
        302 if not signed_in else 200 if viewer == "site_admin" else 403)
    assert c.post("/mail/999999/retry").status_code == (302 if not signed_in else 404)


def test_every_foundation_route_is_covered(site):
    """A new route in a foundation blueprint must be added to this module."""
    covered = {
        "main.index", "main.about", "main.healthz", "main.receipt_keys_jwks",
        "auth.register", "auth.login", "auth.logout", "auth.account",
        "auth.verify_email", "auth.resend_verification", "auth.forgot_password", "auth.reset_password",
        "auth.change_email", "auth.confirm_email_change",
        "auth.account_timezone",  # tests/test_timezones.py
        "orgs.index", "orgs.new", "orgs.detail", "orgs.edit", "orgs.members", "orgs.member_role",
        "orgs.member_remove",
        "items.list_kind", "items.new", "items.detail", "items.edit", "items.visibility", "items.status",
        "items.delete", "items.access", "items.revoke",
        "notifications.index", "notifications.mark_read", "notifications.mail_log",
        "notifications.settings", "notifications.unsubscribe",
    }
    covered |= {"api.items", "api.items_of_kind", "api.item", "api.orgs", "api.org", "api.me", "feeds.feed"}
    foundation = {"main", "auth", "orgs", "items", "notifications", "api", "feeds"}
    endpoints = {r.endpoint for r in site.app.url_map.iter_rules()
                 if r.endpoint.split(".")[0] in foundation}
    assert endpoints - covered == set()
