"""API tokens: created on the settings pages (shown once, stored as a hash), sent as a bearer
token, scoped, revoked and expired with effect on the next request; organisation tokens act
with a role no higher than their creator's; CSRF for cookie sessions only; the HTTP contract
(error shape, pagination, Link, ETag, rate limits)."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from marketplace import create_app
from marketplace.config import TestingConfig
from marketplace.extensions import db
from marketplace.models import ApiToken, Item, Membership, utcnow
from marketplace.services import tokens as token_svc
from marketplace.services.common import ServiceError

from .factories import Factories
from .factories_ideas import IdeaFactories


def bearer(text: str) -> dict:
    return {"Authorization": f"Bearer {text}"}


def make_token(user, scopes=("read", "write"), expires_at=None, name="test"):
    _t, text = token_svc.create_personal_token(user, name, list(scopes), expires_at)
    return text


@pytest.fixture
def world(f):
    owner = f.make_user(email="owner@acme.test", name="Owner")
    admin = f.make_user(email="admin@acme.test", name="Admin")
    outsider = f.make_user(email="out@else.test", name="Outsider")
    org = f.make_org(name="Acme", owner=owner, admins=(admin,))
    items = {v: f.make_item(org, visibility=v, title=f"T-{v}") for v in ("public", "registered", "organisation")}
    return {"owner": owner, "admin": admin, "outsider": outsider, "org": org, "items": items}


# --------------------------------------------------------------------------- the pages


def test_settings_page_shows_the_token_once_and_stores_only_its_hash(client, auth, world):
    auth.login("out@else.test")
    r = client.post("/settings/tokens", data={"name": "CI bot", "scopes": ["read", "ideas:write"],
                                              "expires": "30"})
    assert r.status_code == 200
    text = re.search(r'id="new-token">(oim_[^<]+)<', r.get_data(as_text=True)).group(1)
    row = db.session.execute(select(ApiToken).where(ApiToken.name == "CI bot")).scalar_one()
    assert row.token_hash == token_svc.hash_token(text) and text not in (row.token_hash, row.prefix)
    assert row.scope_list == ["read", "ideas:write"]
    assert timedelta(days=29) < row.expires_at - utcnow() <= timedelta(days=30)
    # The list never shows the token again; it shows when it was last used.
    page = client.get("/settings/tokens").get_data(as_text=True)
    assert text not in page and "CI bot" in page and "never" in page
    assert client.get("/api/v1/me", headers=bearer(text)).get_json()["id"] == world["outsider"].id
    db.session.expire_all()
    assert db.session.get(ApiToken, row.id).last_used_at is not None


def test_settings_page_refuses_bad_input_with_a_form_error(client, auth, world):
    auth.login("out@else.test")
    r = client.post("/settings/tokens", data={"name": "", "scopes": ["read"], "expires": "30"})
    assert r.status_code == 400
    r = client.post("/settings/tokens", data={"name": "x", "scopes": ["root"], "expires": "30"})
    assert r.status_code == 400
    assert db.session.execute(select(ApiToken)).first() is None


def test_tokens_page_needs_sign_in_and_tokens_of_others_are_404(client, auth, world):
    assert client.get("/settings/tokens").status_code == 302
    t, _ = token_svc.create_personal_token(world["owner"], "mine", ["read"], None)
    auth.login("out@else.test")
    assert client.post(f"/settings/tokens/{t.id}/revoke").status_code == 404
    db.session.expire_all()
    assert db.session.get(ApiToken, t.id).revoked_at is None


def test_revocation_takes_effect_on_the_next_request(client, auth, world):
    t, text = token_svc.create_personal_token(world["outsider"], "bot", ["read"], None)
    assert client.get("/api/v1/me", headers=bearer(text)).status_code == 200
    auth.login("out@else.test")
    assert client.post(f"/settings/tokens/{t.id}/revoke").status_code == 302
    auth.logout()
    r = client.get("/api/v1/me", headers=bearer(text))
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "invalid_token"


def test_expiry_takes_effect_on_the_next_request(client, world):
    t, text = token_svc.create_personal_token(world["outsider"], "bot", ["read"], utcnow() + timedelta(days=1))
    assert client.get("/api/v1/me", headers=bearer(text)).status_code == 200
    t.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert client.get("/api/v1/me", headers=bearer(text)).status_code == 401


def test_a_blocked_account_s_tokens_stop_working(client, world):
    text = make_token(world["outsider"])
    world["outsider"].banned = True
    db.session.commit()
    assert client.get("/api/v1/me", headers=bearer(text)).status_code == 401


@pytest.mark.parametrize("header", ["Bearer", "Bearer oim_not-a-token", "Basic dXNlcjpwYXNz", "Token abc"])
def test_malformed_or_unknown_tokens_are_401_in_the_error_shape(client, world, header):
    r = client.get("/api/v1/items", headers={"Authorization": header})
    assert r.status_code == 401
    err = r.get_json()["error"]
    assert set(err) >= {"code", "message", "fields"} and err["code"] == "invalid_token"


def test_expiry_must_be_in_the_future_and_scopes_known(ctx, world):
    with pytest.raises(ServiceError):
        token_svc.create_personal_token(world["outsider"], "x", ["read"], utcnow() - timedelta(days=1))
    with pytest.raises(ServiceError):
        token_svc.create_personal_token(world["outsider"], "x", ["admin"], None)
    with pytest.raises(ServiceError):
        token_svc.create_personal_token(world["outsider"], "x", [], None)


# --------------------------------------------------------------------------- scopes


def test_scopes_limit_what_a_token_may_do(client, world):
    org, item = world["org"], world["items"]["public"]
    read_only = make_token(world["owner"], ("read",))
    items_only = make_token(world["owner"], ("items:write",))
    new = {"kind": "failure", "title": "Lesson", "body": "What went wrong."}
    r = client.post(f"/api/v1/orgs/{org.slug}/items", json=new, headers=bearer(read_only))
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "insufficient_scope"
    assert r.get_json()["error"]["required_scope"] == "items:write"
    # items:write may write items, but not read (every GET needs `read`).
    assert client.post(f"/api/v1/orgs/{org.slug}/items", json=new, headers=bearer(items_only)).status_code == 201
    r = client.get(f"/api/v1/items/{item.id}", headers=bearer(items_only))
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "insufficient_scope"
    # ...nor write elsewhere.
    r = client.post(f"/api/v1/items/{item.id}/questions", json={"body": "Why?"}, headers=bearer(items_only))
    assert r.status_code == 403


def test_anonymous_reads_what_a_visitor_sees_and_writes_need_auth(client, world):
    r = client.get("/api/v1/items")
    assert {i["title"] for i in r.get_json()["items"]} == {"T-public"}
    r = client.post(f"/api/v1/orgs/{world['org'].slug}/items", json={"kind": "failure", "title": "x"})
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthenticated"


def test_a_token_sees_what_its_account_sees(client, world):
    text = make_token(world["owner"])
    titles = {i["title"] for i in client.get("/api/v1/items", headers=bearer(text)).get_json()["items"]}
    assert titles == {"T-public", "T-registered", "T-organisation"}
    other = make_token(world["outsider"])
    titles = {i["title"] for i in client.get("/api/v1/items", headers=bearer(other)).get_json()["items"]}
    assert titles == {"T-public", "T-registered"}
    assert client.get(f"/api/v1/items/{world['items']['organisation'].id}", headers=bearer(other)).status_code == 404


# --------------------------------------------------------------------------- organisation tokens


def test_org_token_acts_with_the_chosen_role_through_its_own_account(client, auth, world):
    org = world["org"]
    auth.login("admin@acme.test")
    r = client.post(f"/orgs/{org.slug}/tokens", data={"name": "PLM sync", "role": "member",
                                                     "scopes": ["read", "write"], "expires": "90"})
    assert r.status_code == 200
    text = re.search(r'id="new-token">(oim_[^<]+)<', r.get_data(as_text=True)).group(1)
    auth.logout()
    me = client.get("/api/v1/me", headers=bearer(text)).get_json()
    assert me["organisations"] == [{"id": org.id, "role": "member"}]
    assert me["id"] not in (world["admin"].id, world["owner"].id)
    assert me["token"]["organisation"]["slug"] == org.slug
    # A member sees the organisation's items but may not post for it.
    r = client.get(f"/api/v1/items/{world['items']['organisation'].id}", headers=bearer(text))
    assert r.status_code == 200
    r = client.post(f"/api/v1/orgs/{org.slug}/items", json={"kind": "failure", "title": "x"}, headers=bearer(text))
    assert r.status_code == 403
    # The integration account cannot sign in.
    integration = db.session.execute(select(ApiToken).where(ApiToken.name == "PLM sync")).scalar_one().acting_user
    assert token_svc.is_integration(integration)
    assert auth.login(integration.email, "anything-at-all").status_code != 302  # refused: not signed in
    assert client.get("/api/v1/me").get_json()["authenticated"] is False


def test_org_token_role_is_at_most_the_creator_s(ctx, world):
    org = world["org"]
    with pytest.raises(ServiceError) as e:
        token_svc.create_org_token(world["admin"], org, "x", ["read"], "owner", None)
    assert e.value.status == 403
    t, _ = token_svc.create_org_token(world["owner"], org, "x", ["read"], "owner", None)
    assert token_svc.token_role(t) == "owner"
    with pytest.raises(ServiceError) as e:
        token_svc.create_org_token(world["outsider"], org, "x", ["read"], "member", None)
    assert e.value.status == 403


def test_revoking_an_org_token_removes_its_account_from_the_organisation(client, world):
    t, text = token_svc.create_org_token(world["admin"], world["org"], "sync", ["read", "write"], "admin", None)
    bot_id = t.acting_user_id
    token_svc.revoke_token(world["owner"], t)  # another admin of the organisation may revoke it
    assert client.get("/api/v1/me", headers=bearer(text)).status_code == 401
    assert db.session.execute(select(Membership).where(Membership.user_id == bot_id)).first() is None


def test_org_tokens_page_is_for_the_organisation_s_admins(client, auth, world):
    slug = world["org"].slug
    auth.login("out@else.test")
    assert client.get(f"/orgs/{slug}/tokens").status_code == 403
    assert client.get(f"/orgs/{slug}/webhooks").status_code == 403
    auth.logout()
    auth.login("admin@acme.test")
    assert client.get(f"/orgs/{slug}/tokens").status_code == 200
    r = client.post(f"/orgs/{slug}/tokens", data={"name": "x", "role": "owner", "scopes": ["read"], "expires": "7"})
    assert r.status_code == 400 and "your own role" in r.get_data(as_text=True)


# --------------------------------------------------------------------------- CSRF


@pytest.fixture
def csrf_app(tmp_path):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'csrf.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        UPLOAD_DIR = str(tmp_path / "uploads")
        WTF_CSRF_ENABLED = True

    app = create_app(Cfg)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _login_with_csrf(client, email):
    page = client.get("/auth/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    r = client.post("/auth/login", data={"email": email, "password": "correct-horse-battery", "csrf_token": token})
    assert r.status_code == 302
    # Signing in starts a new server-side session, so the page's CSRF token is the one a page
    # shows after sign-in (the login page's token belonged to the anonymous session).
    page = client.get("/auth/account").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def test_csrf_applies_to_cookie_sessions_and_never_to_bearer_requests(csrf_app):
    with csrf_app.app_context():
        f = Factories()
        owner = f.make_user(email="owner@acme.test")
        outsider = f.make_user(email="out@else.test")
        org = f.make_org(owner=owner)
        slug, owner_id, outsider_id = org.slug, owner.id, outsider.id
        text = make_token(outsider, ("read", "write"))
    c = csrf_app.test_client()
    token = _login_with_csrf(c, "owner@acme.test")
    new = {"kind": "failure", "title": "By cookie"}
    r = c.post(f"/api/v1/orgs/{slug}/items", json=new)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "csrf_failed"
    assert c.post(f"/api/v1/orgs/{slug}/items", json=new, headers={"X-CSRFToken": token}).status_code == 201
    # Cookie and bearer together: the token's account acts (the outsider, who may not post
    # for the organisation), never the cookie's, and no CSRF token is asked for.
    r = c.post(f"/api/v1/orgs/{slug}/items", json={"kind": "failure", "title": "Both"}, headers=bearer(text))
    assert r.status_code == 403 and r.get_json()["error"]["code"] != "csrf_failed"
    assert c.get("/api/v1/me", headers=bearer(text)).get_json()["id"] == outsider_id
    assert c.get("/api/v1/me").get_json()["id"] == owner_id
    with csrf_app.app_context():
        titles = set(db.session.execute(select(Item.title)).scalars())
    assert titles == {"By cookie"}
    # A bad bearer token is refused even with a valid session cookie.
    assert c.get("/api/v1/me", headers=bearer("oim_nope")).status_code == 401


# --------------------------------------------------------------------------- the HTTP contract


def test_pagination_has_totals_link_headers_and_bounds(client, f, world):
    for n in range(5):
        f.make_item(world["org"], visibility="public", title=f"P{n}")
    r = client.get("/api/v1/items?per_page=2&page=2")
    body = r.get_json()
    assert (body["total"], body["page"], body["per_page"], body["pages"]) == (6, 2, 2, 3)
    assert len(body["items"]) == 2 and r.headers["X-Total-Count"] == "6"
    links = dict((rel, url) for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', r.headers["Link"]))
    assert set(links) == {"first", "prev", "next", "last"}
    assert "page=3" in links["next"] and "page=1" in links["prev"] and "per_page=2" in links["last"]
    for bad in ("per_page=101", "per_page=0", "page=0", "page=10001", "per_page=x"):
        r = client.get(f"/api/v1/items?{bad}")
        assert r.status_code == 400 and r.get_json()["error"]["fields"], bad


def test_reads_carry_an_etag_and_answer_304(client, world):
    r = client.get(f"/api/v1/items/{world['items']['public'].id}")
    etag = r.headers["ETag"]
    assert r.status_code == 200 and etag
    r2 = client.get(f"/api/v1/items/{world['items']['public'].id}", headers={"If-None-Match": etag})
    assert r2.status_code == 304 and not r2.data
    assert "Authorization" in r.headers["Vary"] and "private" in r.headers["Cache-Control"]


def test_errors_have_one_shape(client, world):
    for r, code in ((client.get("/api/v1/nothing"), "not_found"),
                    (client.get("/api/v1/items/999999"), "not_found"),
                    (client.delete("/api/v1/items"), "method_not_allowed"),
                    (client.get("/api/v1/items?sort=x"), "bad_request")):
        err = r.get_json()["error"]
        assert set(err) >= {"code", "message", "fields"} and err["code"] == code, r.status_code


@pytest.fixture
def limited_app(tmp_path):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'rl.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        UPLOAD_DIR = str(tmp_path / "uploads")
        RATELIMIT_ENABLED = True
        API_RATE_LIMIT = "3/minute"

    app = create_app(Cfg)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_rate_limits_count_per_token_with_ratelimit_headers(limited_app):
    with limited_app.app_context():
        f = Factories()
        a, b = make_token(f.make_user()), make_token(f.make_user())
    c = limited_app.test_client()
    seen = [c.get("/api/v1/me", headers=bearer(a)) for _ in range(3)]
    assert [r.headers["RateLimit-Remaining"] for r in seen] == ["2", "1", "0"]
    assert all(r.headers["RateLimit-Limit"] == "3" and int(r.headers["RateLimit-Reset"]) <= 60 for r in seen)
    r = c.get("/api/v1/me", headers=bearer(a))
    assert r.status_code == 429 and r.get_json()["error"]["code"] == "rate_limited" and "Retry-After" in r.headers
    # Another token has its own count.
    assert c.get("/api/v1/me", headers=bearer(b)).status_code == 200


def test_idea_submission_needs_the_current_terms_digest(client, f, world):
    setup = IdeaFactories(f).challenge()
    ch = setup.challenge
    text = make_token(world["outsider"], ("read", "ideas:write"))
    idea = {"title": "Robots", "summary": "Short", "body": "Long text", "accept_terms_digest": "0" * 64,
            "confirm_eligibility": True, "confirm_coi": True}
    r = client.post(f"/api/v1/challenges/{ch.id}/ideas", json=idea, headers=bearer(text))
    assert r.status_code == 409
    err = r.get_json()["error"]
    assert err["code"] == "terms_changed" and err["current_terms_digest"] == setup.terms.digest
    terms = client.get(f"/api/v1/challenges/{ch.id}/terms", headers=bearer(text)).get_json()
    assert terms["current_digest"] == setup.terms.digest
    idea["accept_terms_digest"] = terms["current_digest"]
    idea["submission_key"] = "k" * 20
    r = client.post(f"/api/v1/challenges/{ch.id}/ideas", json=idea, headers=bearer(text))
    assert r.status_code == 201, r.get_json()
    again = client.post(f"/api/v1/challenges/{ch.id}/ideas", json=idea, headers=bearer(text))
    assert again.status_code == 200 and again.get_json()["id"] == r.get_json()["id"]
