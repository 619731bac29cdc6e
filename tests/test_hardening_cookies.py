"""Cookies (ASVS 5.0 3.3.1-3.3.4): over HTTPS the one cookie the site sets is a `__Host-`
cookie (Secure, Path=/, no Domain), HttpOnly and SameSite=Lax; over plain http (make run,
tests) it keeps its plain name, since browsers refuse the prefix without Secure. Flask-Login's
remember cookie is never set, and one presented anyway signs nobody in. Each check reads the
Set-Cookie headers the app really sends."""
from __future__ import annotations

import pytest

from .factories import PASSWORD, Factories
from .factories_foundation import dispose, make_app

EMAIL = "cookie@example.test"


def parse_set_cookie(header: str) -> tuple[str, dict[str, str | bool]]:
    """("name", {"path": "/", "secure": True, ...}) from one Set-Cookie header."""
    first, *attrs = [p.strip() for p in header.split(";")]
    name = first.split("=", 1)[0]
    out: dict[str, str | bool] = {}
    for a in attrs:
        key, _, value = a.partition("=")
        out[key.lower()] = value if value else True
    return name, out


def set_cookies(response) -> list[tuple[str, dict]]:
    return [parse_set_cookie(h) for h in response.headers.getlist("Set-Cookie")]


def journey(client) -> list[tuple[str, dict]]:
    """Every Set-Cookie of: a page, a failed and a good sign-in ("keep me signed in"), the
    account page, sign-out, and an anonymous page after it."""
    seen = []
    seen += set_cookies(client.get("/"))
    r = client.post("/auth/login", data={"email": EMAIL, "password": "not the password"})
    assert r.status_code == 400
    seen += set_cookies(r)
    r = client.post("/auth/login", data={"email": EMAIL, "password": PASSWORD, "remember": "y"})
    assert r.status_code == 302, r.status_code
    signed_in = set_cookies(r)
    assert signed_in, "signing in sets the session cookie"
    seen += signed_in
    assert client.get("/auth/account").status_code == 200  # the cookie really signs in
    seen += set_cookies(client.post("/auth/logout"))
    assert client.get("/auth/account").status_code == 302
    seen += set_cookies(client.get("/"))
    return seen


@pytest.fixture
def make(tmp_path):
    apps = []

    def _make(**config):
        folder = tmp_path / str(len(apps))
        folder.mkdir()
        app = make_app(folder, **config)
        apps.append(app)
        with app.app_context():
            Factories().make_user(email=EMAIL)
        return app

    yield _make
    for app in apps:
        dispose(app)


def test_over_https_the_session_cookie_is_a_host_cookie(make):
    app = make(SESSION_COOKIE_SECURE=True, APPLICATION_ROOT="/somewhere")
    client = app.test_client()
    client.environ_base["wsgi.url_scheme"] = "https"
    cookies = journey(client)
    names = {name for name, _ in cookies}
    assert names == {"__Host-session"}, names
    for name, attrs in cookies:
        assert attrs.get("secure") is True, (name, attrs)
        assert attrs.get("path") == "/", (name, attrs)  # not APPLICATION_ROOT
        assert "domain" not in attrs, (name, attrs)
        assert attrs.get("httponly") is True, (name, attrs)
        assert attrs.get("samesite") == "Lax", (name, attrs)
    # The API description names the cookie the site really uses.
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["components"]["securitySchemes"]["cookieAuth"]["name"] == "__Host-session"


def test_over_plain_http_the_session_cookie_keeps_its_name(make):
    app = make()
    assert not app.config["SESSION_COOKIE_SECURE"]
    cookies = journey(app.test_client())
    assert {name for name, _ in cookies} == {"session"}
    for name, attrs in cookies:
        assert "secure" not in attrs and "domain" not in attrs, attrs
        assert attrs.get("path") == "/" and attrs.get("httponly") is True and attrs.get("samesite") == "Lax"


def test_keep_me_signed_in_dates_the_session_cookie_and_sets_no_remember_cookie(make):
    app = make()
    client = app.test_client()
    r = client.post("/auth/login", data={"email": EMAIL, "password": PASSWORD, "remember": "y"})
    (only,) = set_cookies(r)
    assert only[0] == "session" and "expires" in only[1]
    r = app.test_client().post("/auth/login", data={"email": EMAIL, "password": PASSWORD})
    (only,) = set_cookies(r)
    assert only[0] == "session" and "expires" not in only[1]  # a browser-session cookie


@pytest.mark.parametrize("secure", [False, True])
def test_a_validly_signed_remember_cookie_signs_nobody_in(make, secure):
    """Flask-Login would load a user from its remember cookie: a cookie signed with the
    site's own key (as Flask-Login writes it) still opens nothing without a server-side
    session."""
    from flask_login.utils import encode_cookie

    from marketplace.services import accounts

    app = make(SESSION_COOKIE_SECURE=secure)
    with app.test_request_context():
        uid = accounts.find_user(EMAIL).id
        value = encode_cookie(str(uid))
    client = app.test_client()
    if secure:
        client.environ_base["wsgi.url_scheme"] = "https"
    for name in ("remember_token", "__Host-remember_token"):
        client.set_cookie(name, value)
    r = client.get("/auth/account")
    assert r.status_code == 302 and "/auth/login" in r.headers["Location"]
    assert client.get("/api/v1/me").get_json()["authenticated"] is False
