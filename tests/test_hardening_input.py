"""Malformed numbers, dates and redirect targets (issue 15): never a 500.

Every route of the app, with real ids (tests/hardening_world.py), is requested with numbers
the database cannot hold in every query parameter a view reads, and every form found on every
page is posted back with such numbers (and impossible dates) in its numeric and date fields.
Nothing may answer 5xx; the parameters a view reads answer 400 (or 404 for an id) saying what
is wrong. `next=` targets lead only to same-site paths. A number that still reached the
database would be a 400 from the safety net in errors.py, logged at WARNING.
"""
from __future__ import annotations

import logging
import re
from collections import Counter

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.models import Item, Organisation, User
from marketplace.params import is_safe_next, parse_int

from .factories_foundation import dispose, make_app
from .hardening_world import VIEWERS, build_world, concrete_urls, fill, forms_on, login

HUGE = "9223372036854775808"  # 2**63: one beyond the largest id
DATES = ["9999-12-31T23:59", "0001-01-01T00:00", "2024-13-45T99:99", "99999-01-01T00:00", "yesterday"]
FORM_NUMBERS = [HUGE, "-9223372036854775809", "1" + "0" * 40, "abc", "-1"]
FORM_DATES = DATES[:3]
QUERY_NUMBERS = ("page", "per_page", "org", "reply_to", "list_id", "parent_id", "user_id", "version", "days",
                 "limit", "offset", "id", "round")
WALKERS = ["anonymous", "owner", "site_admin", "researcher", "curator"]


def _site(tmp_dir):
    app = make_app(tmp_dir, PROPAGATE_UNHANDLED=False)
    with app.app_context():
        world = build_world()
    clients = {}
    for name in WALKERS:
        c = app.test_client()
        if VIEWERS[name]:
            login(c, VIEWERS[name])
        clients[name] = c
    return app, world, clients


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A world the tests below only read from (or change in ways they do not share)."""
    s = _site(tmp_path_factory.mktemp("input"))
    yield s
    dispose(s[0])


@pytest.fixture(scope="module")
def walked_site(tmp_path_factory):
    """A world of its own for the walks: posting every form changes it (names, states...)."""
    s = _site(tmp_path_factory.mktemp("walk"))
    yield s
    dispose(s[0])


def _no_5xx(results):
    bad = [r for r in results if r[0] >= 500]
    assert not bad, f"{len(bad)} server errors, e.g. {bad[:10]}"


# --------------------------------------------------------------------------- every route


def test_bad_numbers_in_query_strings_never_give_a_5xx(walked_site):
    """Each view a walker can open (once per view: parameters are read by the view, whatever
    the ids), with each numeric query parameter alone set to a number beyond 64 bits, then
    with all of them set to other malformed numbers."""
    app, world, clients = walked_site
    urls = concrete_urls(app, world, {"GET"})
    results, codes = [], Counter()
    for viewer in ("anonymous", "owner", "site_admin"):
        c, done = clients[viewer], set()
        for _m, endpoint, url in urls:
            if endpoint in done or c.get(url).status_code != 200:
                continue
            done.add(endpoint)
            tries = [{name: HUGE} for name in QUERY_NUMBERS]
            tries += [{name: value for name in QUERY_NUMBERS} for value in ("-9223372036854775809", "1" + "0" * 40,
                                                                           "abc", "-1")]
            for params in tries:
                r = c.get(url, query_string=params)
                codes[r.status_code] += 1
                results.append((r.status_code, viewer, url, params))
    _no_5xx(results)
    assert codes[400] > 0  # the parameters views read were refused, not ignored


def test_bad_numbers_and_dates_in_every_form_never_give_a_5xx(walked_site):
    """Each form found on each page the walkers can see, posted with bad numbers in its
    numeric fields (ids, counts, hidden ids, numeric selects) and with bad dates."""
    app, world, clients = walked_site
    urls = concrete_urls(app, world, {"GET"})
    results, posted = [], set()
    for viewer in ("owner", "site_admin", "researcher", "curator"):
        c = clients[viewer]
        for _m, _endpoint, url in urls:
            page = c.get(url)
            if page.status_code != 200 or page.mimetype != "text/html":
                continue
            for form in forms_on(page.text, url):
                if form.action.endswith("/auth/logout") or form.key in posted:
                    continue
                posted.add(form.key)
                has_numbers = any(f.kind in ("number", "hidden", "select") or "id" in f.name for f in form.fields)
                has_dates = any(f.kind == "datetime-local" for f in form.fields)
                for value in (FORM_NUMBERS if has_numbers else []):
                    r = c.post(form.action, data=fill(form, number=value))
                    results.append((r.status_code, viewer, form.action, value))
                for value in (FORM_DATES if has_dates else []):
                    r = c.post(form.action, data=fill(form, date=value))
                    results.append((r.status_code, viewer, form.action, value))
    _no_5xx(results)
    assert len(posted) > 40, "the walk should find the site's forms"


# --------------------------------------------------------------------------- what the views say


@pytest.mark.parametrize("viewer,url,code,message", [
    ("site_admin", f"/moderation/?org={HUGE}", 400, "The organisation must be a whole number from 1"),
    ("site_admin", "/moderation/?org=abc", 400, "The organisation must be a whole number"),
    ("site_admin", "/moderation/?page=0", 400, "The page number must be a whole number from 1 to 10,000"),
    ("site_admin", f"/moderation/?page={HUGE}", 400, "The page number must be a whole number"),
    ("owner", f"/challenges/new?org={HUGE}", 404, "There is nothing here"),
    ("owner", "/challenges/new?org=abc", 404, "There is nothing here"),
    ("owner", "/challenges/new?org=-5", 404, "There is nothing here"),
    ("curator", f"/lists/new?org={HUGE}", 404, "There is nothing here"),
    # The API says the same in its own error shape (error.message and error.fields).
    ("anonymous", "/api/v1/items?per_page=abc", 400, "per_page must be a whole number from 1 to 100"),
    ("anonymous", "/api/v1/items?per_page=101", 400, "per_page must be a whole number from 1 to 100"),
    ("anonymous", f"/api/v1/items?per_page={HUGE}", 400, "per_page must be a whole number from 1 to 100"),
    ("anonymous", "/api/v1/items?per_page=1_0", 400, "per_page must be a whole number from 1 to 100"),
    ("anonymous", f"/api/v1/items?page={HUGE}", 400, "page must be a whole number from 1 to 10000"),
    ("anonymous", "/api/v1/items?page=%D9%A1", 400, "page must be a whole number from 1 to 10000"),
    ("anonymous", "/api/v1/items?page=1.0", 400, "page must be a whole number from 1 to 10000"),
    ("anonymous", "/api/v1/search?q=x&page=0", 400, "page must be a whole number from 1 to 10000"),
    ("anonymous", f"/api/v1/ideas?challenge_id={HUGE}", 400, "challenge_id must be a whole number from 1 to"),
    ("anonymous", f"/challenges/?page={HUGE}", 400, "The page number is out of range."),
    ("anonymous", f"/challenges/{HUGE}", 404, "There is nothing here"),
])
def test_bad_parameters_get_a_clear_4xx(site, viewer, url, code, message):
    _app, _world, clients = site
    r = clients[viewer].get(url)
    assert r.status_code == code, r.text[:300]
    if url.startswith("/api/"):
        err = r.get_json()["error"]
        name = message.split()[0]
        assert err["message"].startswith(message) and err["fields"][name].startswith(message), err
        assert err["code"] == "bad_request"
    else:
        assert message in r.text


def test_good_parameters_still_work(site):
    app, _world, clients = site
    with app.app_context():
        acme = db.session.execute(select(Organisation).where(Organisation.name == "Acme Robotics")).scalar_one()
    assert clients["anonymous"].get("/api/v1/items?per_page=100").status_code == 200
    assert clients["anonymous"].get("/api/v1/items?per_page=1").get_json()["per_page"] == 1
    assert clients["site_admin"].get(f"/moderation/?org={acme.id}&page=1").status_code == 200
    assert clients["owner"].get(f"/challenges/new?org={acme.id}").status_code == 200


def test_a_reply_to_a_comment_id_beyond_64_bits_is_a_400(site):
    app, _world, clients = site
    with app.app_context():
        failure = db.session.execute(select(Item).where(Item.title == "Suction grippers on recycled cardboard")
                                     ).scalar_one()
    r = clients["researcher"].post(f"/engage/failures/{failure.id}/comment",
                                   data={"body": "A reply.", "parent_id": HUGE})
    assert r.status_code == 400 and "does not exist in this discussion" in r.text
    r = clients["researcher"].get(f"/engage/failures/{failure.id}/comment?reply_to={HUGE}")
    assert r.status_code == 400


def test_attaching_a_list_id_beyond_64_bits_is_a_400(site):
    app, _world, clients = site
    with app.app_context():
        item = db.session.execute(select(Item).where(Item.title == "Warehouse motion data set (2 TB)")).scalar_one()
    r = clients["owner"].post(f"/lists/attach/{item.id}", data={"list_id": HUGE})
    assert r.status_code == 400 and "Choose a list to attach." in r.text


def test_dates_out_of_range_are_a_form_error(site):
    app, _world, clients = site
    with app.app_context():
        acme = db.session.execute(select(Organisation).where(Organisation.name == "Acme Robotics")).scalar_one()
        before = db.session.execute(select(func.count()).select_from(Item)).scalar_one()
    for when in ("9999-12-31T23:59", "0001-01-01T00:00"):
        r = clients["owner"].post(f"/challenges/new?org={acme.id}", data={
            "title": "Far future", "body": "When?", "visibility": "public", "deadline": when, "save": "Save"})
        assert r.status_code == 400 and "Give a date between the years 1900 and 9000." in r.text
    with app.app_context():
        assert db.session.execute(select(func.count()).select_from(Item)).scalar_one() == before


def test_parse_int():
    assert parse_int("42") == 42 and parse_int(" -7 ", -10, 10) == -7
    for bad in ("", None, "4.2", "1e3", "0x10", "1_000", "\u0661", "abc", True, "9" * 31):
        assert parse_int(bad) is None, bad
    assert parse_int(HUGE, 1, 2**63 - 1) is None and parse_int(str(2**63 - 1), 1, 2**63 - 1) == 2**63 - 1


# --------------------------------------------------------------------------- the safety net


@pytest.fixture
def probe_app(tmp_path):
    app = make_app(tmp_path, PROPAGATE_UNHANDLED=False)

    @app.post("/probe/overflow")
    def overflow():
        db.session.add(User(email="half-written@example.test", display_name="Half", password_hash="x"))
        db.session.flush()
        db.session.get(User, 2**64)  # SQLite: OverflowError
        return "unreachable"

    @app.get("/probe/date")
    def date_overflow():
        from datetime import datetime, timedelta

        return str(datetime(9999, 12, 31) + timedelta(days=2))

    yield app
    dispose(app)


def test_an_overflow_that_reaches_the_database_is_a_400_after_a_rollback(probe_app, caplog):
    c = probe_app.test_client()
    with caplog.at_level(logging.WARNING, logger="marketplace.errors"):
        r = c.post("/probe/overflow", headers={"X-Request-ID": "probe-overflow-1"})
    assert r.status_code == 400 and "out of range" in r.text
    assert "Traceback" not in r.text
    with probe_app.app_context():
        assert db.session.execute(select(User).where(User.email == "half-written@example.test")).first() is None
    (record,) = [rec for rec in caplog.records if "out-of-range" in rec.getMessage()]
    assert record.levelno == logging.WARNING
    assert "OverflowError" in record.getMessage() and "request_id=probe-overflow-1" in record.getMessage()
    r = c.get("/probe/date", headers={"Accept": "application/json"})
    assert r.status_code == 400 and r.get_json()["status"] == 400 and "out of range" in r.get_json()["error"]


# --------------------------------------------------------------------------- next=


UNSAFE_NEXT = ["//evil.example", "//evil.example/x", "/\\evil.example", "/\\/evil.example", "\\\\evil.example",
               "/\t/evil.example", "/%09/evil.example".replace("%09", "\t"), "/\n/evil.example",
               "https:evil.example", "https://evil.example/", "http://evil.example", "HTTPS://evil.example",
               "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)", "data:text/html,x",
               "evil.example", "", "/\r\nX-Injected: 1", "/x\rSet-Cookie: a=b", "/\u2028evil", "/\u00a0/evil",
               "/\u200b/evil", "/" + "a" * 3000, "\x00/", "/\x00"]


@pytest.mark.parametrize("target", UNSAFE_NEXT)
def test_unsafe_next_targets_are_refused(target):
    assert not is_safe_next(target)


@pytest.mark.parametrize("target", ["/", "/challenges/", "/challenges/3?tab=ideas#q-1",
                                    "/invitations/t/AbC-123_xyz", "/search?q=a%20b", "/%2F%2Fevil.example"])
def test_same_site_paths_are_kept(target):
    assert is_safe_next(target)


@pytest.mark.parametrize("raw", ["/%0d%0aX-Injected:%201", "//evil.example", "/%5Cevil.example".replace("%5C", "\\"),
                                 "/%09/evil.example", "https:evil.example", "javascript:alert(1)",
                                 "https://evil.example/", "/%E2%80%A8x"])
def test_sign_in_and_registration_never_redirect_off_site(site, raw):
    app, _world, _clients = site
    c = app.test_client()
    r = c.post(f"/auth/login?next={raw}", data={"email": VIEWERS["outsider"], "password": "demo-password-1"})
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert "X-Injected" not in r.headers
    c = app.test_client()
    r = c.post(f"/auth/register?next={raw}", data={
        "email": f"reg{abs(hash(raw))}@example.test", "display_name": "Reg Person",
        "password": "a-long-password", "confirm": "a-long-password"})
    # Registration answers "check your inbox"; its sign-in link keeps only a same-site next=.
    assert r.status_code == 200 and "Check your inbox" in r.text
    assert "X-Injected" not in r.headers
    link = re.search(r'<a href="([^"]*)">sign in</a> now', r.text)
    assert link and link.group(1) == "/auth/login"


def test_a_same_site_next_is_followed(site):
    app, _world, _clients = site
    c = app.test_client()
    r = c.post("/auth/login?next=/challenges/%3Fsort%3Dtitle", data={"email": VIEWERS["outsider"],
                                                                     "password": "demo-password-1"})
    assert r.status_code == 302 and r.headers["Location"] == "/challenges/?sort=title"
