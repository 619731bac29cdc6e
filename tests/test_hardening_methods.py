"""State changes need POST and a CSRF token (issue 15).

* Every GET (and HEAD) of every route, with a world's ids (tests/hardening_world.py), by
  every kind of viewer, leaves the database as it was: every row of every table, compared
  before and after, but for the columns listed in GET_MAY_WRITE with their reason.
* Routes that only change state (POST-only) answer GET with 405, and no route named like an
  action (delete, revoke, accept, ...) accepts GET.
* Every POST/PUT/PATCH/DELETE route refuses a request without a valid CSRF token (cookie
  sessions, signed in or not) and changes nothing; the only exemptions from Flask-WTF's
  automatic check are the ones listed in marketplace/extensions.py (CSRF_EXEMPT_BLUEPRINTS,
  CSRF_EXEMPT_VIEWS), each with its reason. The exempt API checks CSRF itself: every API
  write by a cookie session without the session's token is refused (400 csrf_failed) and
  changes nothing, while a bearer-token request needs no CSRF token. The exempt views act
  only on the signed token in their URL (one-click unsubscribe), never on the cookie.
"""
from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from marketplace.extensions import CSRF_EXEMPT_BLUEPRINTS, CSRF_EXEMPT_VIEWS, csrf, db
from marketplace.models import Item

from .factories_foundation import dispose, make_app
from .hardening_world import VIEWERS, build_world, concrete_urls, login

# What a GET may change, each with its reason. Nothing else may change.
GET_MAY_WRITE = {
    ("user_sessions", "last_seen_at"): "the idle timeout needs to know when a session was last used",
}
GET_MAY_APPEND = {
    "sealed_view_log": "every read of a sealed idea is logged (who read it, when): by design, append-only",
    "agreement_access_log": "every download of a file shared under an agreement is logged: by design, append-only",
}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
ACTION_WORDS = {"delete", "remove", "revoke", "accept", "decline", "withdraw", "logout", "act", "appeal",
                "decide", "resolve", "award", "paid", "score", "notes", "shortlist", "disqualify", "pin",
                "unpin", "close", "reopen", "read", "detach", "attach", "share", "shares", "members", "role",
                "respond", "status", "visibility"}


def snapshot() -> dict[str, str]:
    """A digest of every table's rows (but GET_MAY_WRITE's columns), by table."""
    out = {}
    for table in db.metadata.sorted_tables:
        if table.name in GET_MAY_APPEND:
            first = list(table.primary_key.columns)[0]
            out[table.name] = db.session.execute(select(first).order_by(first)).scalars().all()
            continue
        cols = [c for c in table.columns if (table.name, c.name) not in GET_MAY_WRITE]
        rows = db.session.execute(select(*cols).order_by(*table.primary_key.columns)).all()
        out[table.name] = hashlib.sha256(repr(rows).encode()).hexdigest() + f" ({len(rows)} rows)"
    return out


def _changed(before: dict, after: dict) -> list[str]:
    out = []
    for t in before:
        if t in GET_MAY_APPEND:
            if after[t][:len(before[t])] != before[t]:  # rows may be added, never changed or removed
                out.append(f"{t}: rows removed")
        elif before[t] != after[t]:
            out.append(f"{t}: {before[t]} -> {after[t]}")
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("methods"), PROPAGATE_UNHANDLED=False)
    with app.app_context():
        world = build_world()
    yield app, world
    dispose(app)


# --------------------------------------------------------------------------- GET changes nothing


def test_get_on_every_route_changes_nothing_for_every_viewer(site):
    app, world = site
    urls = concrete_urls(app, world, {"GET"})
    clients = {}
    for name, email in VIEWERS.items():  # signing in writes a session row: before the snapshot
        c = app.test_client()
        if email:
            login(c, email)
        clients[name] = c
    with app.app_context():
        before = snapshot()
    codes = set()
    for name, c in clients.items():
        for _m, endpoint, url in urls:
            r = c.get(url)
            codes.add(r.status_code)
            assert r.status_code < 500, (name, url)
            c.head(url)
        with app.app_context():
            after = snapshot()
        assert not _changed(before, after), (name, _changed(before, after))
    assert {200, 302, 403, 404} <= codes  # the walk reached views, not only the router


def test_routes_that_change_state_do_not_answer_get(site):
    app, world = site
    c = app.test_client()
    login(c, VIEWERS["site_admin"])
    post_only = [(m, e, u) for m, e, u in concrete_urls(app, world, {"POST"})
                 if "GET" not in next(r for r in app.url_map.iter_rules(e)).methods]
    assert len(post_only) > 40
    adapter = app.url_map.bind("localhost")
    for _m, endpoint, url in post_only:
        try:
            other = adapter.match(url.split("?", 1)[0], method="GET")[0]
        except HTTPException:
            other = None
        if other is not None:
            # A GET route of the same shape answers instead (/auth/verify/resend is also
            # /auth/verify/<token>): the walk above holds it to changing nothing.
            assert other != endpoint
            continue
        r = c.get(url)
        assert r.status_code == 405, (endpoint, url, r.status_code)
        assert "GET" not in r.headers["Allow"]
    for rule in app.url_map.iter_rules():
        words = set(re.split(r"[/<>:().,\s-]+", rule.rule))
        verbs = words & ACTION_WORDS
        if verbs and "GET" in rule.methods:
            # A page showing a form under an action's name is fine only while its GET is a
            # plain page: the walk above proves it changes nothing. List them here knowingly.
            assert rule.endpoint in GET_PAGES_NAMED_LIKE_ACTIONS, (rule.rule, rule.endpoint, verbs)


# Pages whose URL names an action but whose GET only shows the form (the POST acts).
GET_PAGES_NAMED_LIKE_ACTIONS = {
    "orgs.members",          # /orgs/<slug>/members: the member list and the add form
    "people.delete_account",  # /settings/delete: what deletion removes and keeps, and its form
    "moderation.appeal_by_token",  # /moderation/appeal/<token>: the appeal form of a mailed link
    "api.org_members",       # GET /api/v1/orgs/<slug>/members: the member list (POST adds one)
    "api.list_members",      # GET /api/v1/lists/<list_id>/members: the list's members (POST adds one)
}


# --------------------------------------------------------------------------- CSRF


@pytest.fixture(scope="module")
def csrf_site(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("csrf"), PROPAGATE_UNHANDLED=False, WTF_CSRF_ENABLED=True)
    with app.app_context():
        world = build_world()
    yield app, world
    dispose(app)


def _token(client, path="/auth/login") -> str:
    html = client.get(path).text
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def _signed_in(app, email):
    c = app.test_client()
    login(c, email, csrf=_token(c))
    return c


def test_every_state_changing_route_refuses_a_missing_or_forged_csrf_token(csrf_site):
    app, world = csrf_site
    targets = [(m, e, u) for m, e, u in concrete_urls(app, world, WRITE_METHODS)
               if e.split(".")[0] not in CSRF_EXEMPT_BLUEPRINTS and e not in CSRF_EXEMPT_VIEWS]
    assert len(targets) > 100
    viewers = {"anonymous": app.test_client(), "site_admin": _signed_in(app, VIEWERS["site_admin"]),
               "owner": _signed_in(app, VIEWERS["owner"]), "curator": _signed_in(app, VIEWERS["curator"])}
    forged = {"anonymous": "", "site_admin": "", "owner": "", "curator": ""}
    for name, c in viewers.items():
        if name != "anonymous":
            forged[name] = _token(app.test_client())  # a real token of another session
    with app.app_context():
        before = snapshot()
    for name, c in viewers.items():
        for method, endpoint, url in targets:
            for data in ({"title": "x", "body": "x", "reason": "x"},
                         {"csrf_token": "forged", "title": "x"},
                         {"csrf_token": forged[name]} if forged[name] else {"csrf_token": "x" * 91}):
                r = c.open(url, method=method, data=data)
                assert r.status_code == 400, (name, method, url, r.status_code)
                assert "Your form expired or was sent from elsewhere" in r.text, (name, url)
    with app.app_context():
        after = snapshot()
    assert not _changed(before, after)


def test_with_its_token_a_post_goes_through(csrf_site):
    """The refusals above are CSRF refusals, not a broken form: with the token it works."""
    app, _world = csrf_site
    c = _signed_in(app, VIEWERS["outsider"])
    token = _token(c, "/auth/account")
    assert c.post("/notifications/read", data={"csrf_token": token}).status_code == 302
    assert c.post("/auth/logout", data={"csrf_token": token}).status_code == 302


def test_csrf_exemptions_are_the_listed_ones_and_change_nothing(csrf_site):
    app, _world = csrf_site
    exempt_blueprints = {bp.name for bp in csrf._exempt_blueprints}
    assert exempt_blueprints == set(CSRF_EXEMPT_BLUEPRINTS) == set(API_CHECKS_CSRF_ITSELF)
    # No view exempts itself (@csrf.exempt): the exempt views are exactly the listed ones.
    listed = {f"{app.view_functions[e].__module__}.{app.view_functions[e].__name__}" for e in CSRF_EXEMPT_VIEWS}
    assert csrf._exempt_views == listed
    reasons = list(CSRF_EXEMPT_BLUEPRINTS.values()) + list(CSRF_EXEMPT_VIEWS.values())
    assert all(len(reason) > 40 for reason in reasons)  # each says why
    assert "CSRF checked by the API itself for cookie sessions" in CSRF_EXEMPT_BLUEPRINTS["api"]
    assert "bearer tokens are not ambient credentials" in CSRF_EXEMPT_BLUEPRINTS["api"]
    for rule in app.url_map.iter_rules():
        if rule.endpoint in CSRF_EXEMPT_VIEWS:
            assert "token" in rule.arguments, rule.rule  # the credential is in the URL
    # The exempt blueprints' writes are held to their own check by the next test.
    writes = {e for e in app.view_functions if e.split(".")[0] in CSRF_EXEMPT_BLUEPRINTS
              and any(r.methods & WRITE_METHODS for r in app.url_map.iter_rules(e))}
    assert len(writes) > 20


# Exempt blueprints that check CSRF themselves, with the check: marketplace/api/auth.py
# (authenticate) calls csrf.protect() on every write of a cookie session.
API_CHECKS_CSRF_ITSELF = {"api"}


def test_the_api_refuses_cookie_session_writes_without_csrf_and_bearer_writes_need_none(csrf_site):
    """Every API write (POST/PUT/PATCH/DELETE, with the world's ids), by cookie sessions of
    several roles, with no CSRF token, a forged one or another session's real one (header
    and form field): 400 csrf_failed in the API's error shape, and nothing changes.
    Anonymous callers have no session to abuse: 401, nothing changes. Then a bearer-token
    write goes through with no CSRF token, also from a client holding a session cookie."""
    app, world = csrf_site
    targets = [(m, e, u) for m, e, u in concrete_urls(app, world, WRITE_METHODS)
               if e.split(".")[0] in API_CHECKS_CSRF_ITSELF]
    assert len(targets) > 40
    viewers = {"site_admin": _signed_in(app, VIEWERS["site_admin"]), "owner": _signed_in(app, VIEWERS["owner"]),
               "outsider": _signed_in(app, VIEWERS["outsider"])}
    other_session = _token(app.test_client())  # a real token, of another (anonymous) session
    with app.app_context():
        before = snapshot()
    body = {"title": "x", "body": "x", "reason": "x", "kind": "failure", "email": "someone@example.test"}
    for name, c in viewers.items():
        for method, endpoint, url in targets:
            for headers, data in (({}, None), ({"X-CSRFToken": "forged"}, None),
                                  ({"X-CSRFToken": other_session}, None), ({}, {"csrf_token": other_session})):
                if data is None:
                    r = c.open(url, method=method, json=body, headers=headers)
                else:
                    r = c.open(url, method=method, data={**body, **data}, headers=headers)
                assert r.status_code == 400, (name, method, url, headers, r.status_code)
                assert r.get_json()["error"]["code"] == "csrf_failed", (name, url)
    anonymous = app.test_client()
    for method, endpoint, url in targets:
        r = anonymous.open(url, method=method, json=body)
        assert r.status_code == 401 and r.get_json()["error"]["code"] == "unauthenticated", (method, url)
    with app.app_context():
        after = snapshot()
    assert not _changed(before, after)
    # With the session's own token the same cookie write goes through (the refusals above
    # were CSRF refusals, not a broken request).
    owner = viewers["owner"]
    token = _token(owner, "/auth/account")
    r = owner.post("/api/v1/orgs/acme-robotics/items", json={"kind": "failure", "title": "By cookie, with token"},
                   headers={"X-CSRFToken": token})
    assert r.status_code == 201, r.get_json()
    # A bearer token is no ambient credential: no CSRF token needed, cookie or not.
    auth = {"Authorization": f"Bearer {world.api_token}"}
    for c, title in ((app.test_client(), "By bearer"), (viewers["outsider"], "By bearer, beside a cookie")):
        r = c.post("/api/v1/orgs/acme-robotics/items", json={"kind": "failure", "title": title}, headers=auth)
        assert r.status_code == 201, r.get_json()
        assert r.get_json()["title"] == title
    with app.app_context():
        titles = set(db.session.execute(select(Item.title)).scalars())
    assert {"By cookie, with token", "By bearer", "By bearer, beside a cookie"} <= titles


def test_the_exempt_unsubscribe_link_acts_only_on_its_own_token(csrf_site):
    """notifications.unsubscribe takes a POST without a CSRF token (RFC 8058 one-click): a
    forged or foreign token changes nothing, whoever is signed in; the real one stops one
    kind of mail for the account it names, and nothing else."""
    from marketplace.models import NotificationPref, User

    app, world = csrf_site
    signed = _signed_in(app, VIEWERS["owner"])  # a signed-in cookie lends the link nothing
    with app.app_context():
        before = snapshot()
    for c in (app.test_client(), signed):
        for bad in ("not-a-token", world.invitation_token, world.unsubscribe_token[:-2] + "xx"):
            r = c.post(f"/notifications/unsubscribe/{bad}")
            assert r.status_code == 404
        assert c.get(f"/notifications/unsubscribe/{world.unsubscribe_token}").status_code == 200
    with app.app_context():
        assert not _changed(before, snapshot())
    r = signed.post(f"/notifications/unsubscribe/{world.unsubscribe_token}")
    assert r.status_code == 200
    with app.app_context():
        after = snapshot()
        assert [t.split(":")[0] for t in _changed(before, after)] == ["notification_prefs"]
        outsider = db.session.execute(select(User).where(User.email == VIEWERS["outsider"])).scalar_one()
        owner = db.session.execute(select(User).where(User.email == VIEWERS["owner"])).scalar_one()
        assert db.session.get(NotificationPref, (outsider.id, "announcements")).channel == "site"
        assert db.session.get(NotificationPref, (owner.id, "announcements")) is None  # not the cookie's account
