"""Time zones: each person's zone (from the browser at registration, changeable), every time
shown in the viewer's zone with its abbreviation, times organisations enter read in the
organisation's zone and stored in UTC, daylight-saving gaps and repeats."""
from __future__ import annotations

import html
import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from marketplace import create_app, timezones
from marketplace.config import ConfigError, TestingConfig
from marketplace.extensions import db
from marketplace.models import AuditEvent, Item, Organisation, User, utcnow

from .factories import Factories
from .factories_ideas import IdeaFactories

PARIS = ZoneInfo("Europe/Paris")
YEAR = utcnow().year + 1  # always in the future, so deadlines are accepted


def last_sunday(year: int, month: int) -> datetime:
    d = datetime(year, month + 1, 1) - timedelta(days=1)
    return d - timedelta(days=(d.weekday() + 1) % 7)


SPRING = last_sunday(YEAR, 3)   # Europe/Paris skips 02:00-03:00 that night
AUTUMN = last_sunday(YEAR, 10)  # and repeats 02:00-03:00 that night


# --------------------------------------------------------------------------- the rules


def test_format_shows_the_zone_abbreviation():
    summer = datetime(YEAR, 7, 1, 15, 0, tzinfo=timezone.utc)
    winter = datetime(YEAR, 1, 15, 15, 0, tzinfo=timezone.utc)
    assert timezones.format_dt(summer, "Europe/Paris") == f"{YEAR}-07-01 17:00 CEST"
    assert timezones.format_dt(winter, "Europe/Paris") == f"{YEAR}-01-15 16:00 CET"
    assert timezones.format_dt(winter, "America/New_York") == f"{YEAR}-01-15 10:00 EST"
    assert timezones.format_dt(winter, "UTC") == f"{YEAR}-01-15 15:00 UTC"
    # Zones without a letter abbreviation get their offset.
    assert timezones.format_dt(winter, "America/Sao_Paulo") == f"{YEAR}-01-15 12:00 UTC-03"
    assert timezones.format_dt(winter, "Asia/Kolkata") == f"{YEAR}-01-15 20:30 IST"
    assert timezones.format_dt(winter, "Asia/Kathmandu") == f"{YEAR}-01-15 20:45 UTC+05:45"
    # Naive values are UTC (as stored on SQLite); None shows nothing.
    assert timezones.format_dt(winter.replace(tzinfo=None), "Europe/Paris") == f"{YEAR}-01-15 16:00 CET"
    assert timezones.format_dt(None, "Europe/Paris") == ""
    # A time quoted from a signed receipt (ISO 8601, UTC) reads the same way.
    assert timezones.format_dt(f"{YEAR}-01-15T15:00:00.000000Z", "Europe/Paris") == f"{YEAR}-01-15 16:00 CET"
    assert timezones.format_dt("not a time", "Europe/Paris") == "not a time"


@pytest.mark.parametrize("name, ok", [
    ("Europe/Paris", True), ("UTC", True), ("America/Argentina/Buenos_Aires", True),
    ("Mars/Olympus_Mons", False), ("", False), (None, False), ("../../etc/passwd", False),
    ("/usr/share/zoneinfo/UTC", False), ("Europe/Paris\x00", False), ("x" * 100, False),
])
def test_only_iana_names_are_zones(name, ok):
    assert timezones.is_valid_zone(name) is ok


def test_local_times_become_utc():
    assert timezones.local_to_utc(datetime(YEAR, 7, 1, 17, 0), "Europe/Paris") == \
        datetime(YEAR, 7, 1, 15, 0, tzinfo=timezone.utc)
    assert timezones.local_to_utc(datetime(YEAR, 1, 1, 17, 0), "Europe/Paris") == \
        datetime(YEAR, 1, 1, 16, 0, tzinfo=timezone.utc)
    assert timezones.local_to_utc(datetime(YEAR, 1, 1, 17, 0), "UTC") == \
        datetime(YEAR, 1, 1, 17, 0, tzinfo=timezone.utc)


def test_a_skipped_local_time_is_refused():
    gap = SPRING.replace(hour=2, minute=30)
    with pytest.raises(timezones.LocalTimeError, match="does not exist in Europe/Paris"):
        timezones.local_to_utc(gap, "Europe/Paris")
    # Either side of the gap is fine.
    assert timezones.local_to_utc(SPRING.replace(hour=1, minute=59), "Europe/Paris").hour == 0
    assert timezones.local_to_utc(SPRING.replace(hour=3, minute=0), "Europe/Paris").hour == 1


def test_a_repeated_local_time_is_refused_unless_it_is_the_stored_one():
    repeated = AUTUMN.replace(hour=2, minute=30)
    with pytest.raises(timezones.LocalTimeError, match="happens twice in Europe/Paris .CEST and then CET."):
        timezones.local_to_utc(repeated, "Europe/Paris")
    first = repeated.replace(tzinfo=PARIS, fold=0).astimezone(timezone.utc)
    second = repeated.replace(tzinfo=PARIS, fold=1).astimezone(timezone.utc)
    assert second - first == timedelta(hours=1)
    # Re-saving a form unchanged keeps whichever instant was stored.
    assert timezones.local_to_utc(repeated, "Europe/Paris", keep=first) == first
    assert timezones.local_to_utc(repeated, "Europe/Paris", keep=second) == second
    with pytest.raises(timezones.LocalTimeError):
        timezones.local_to_utc(repeated, "Europe/Paris", keep=first + timedelta(days=1))


def test_an_unknown_default_zone_stops_the_site(tmp_path):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 't.db'}"
        DEFAULT_TIMEZONE = "Atlantis/Capital"

    with pytest.raises(ConfigError, match="DEFAULT_TIMEZONE='Atlantis/Capital'"):
        create_app(Cfg)


# --------------------------------------------------------------------------- people


def _user(app, email) -> User:
    with app.app_context():
        return db.session.execute(select(User).where(User.email == email)).scalar_one()


@pytest.mark.parametrize("posted, stored", [
    ("Asia/Tokyo", "Asia/Tokyo"),
    ("", "UTC"),                      # no JavaScript: the site default
    ("Not/A_Zone", "UTC"),            # never an error on a field nobody can see
    ("../../../etc/passwd", "UTC"),
])
def test_registration_takes_the_browsers_zone(app, client, posted, stored):
    r = client.post("/auth/register", data={"email": "new@example.test", "display_name": "New Person",
                                            "password": "long-enough-pw", "confirm": "long-enough-pw",
                                            "timezone": posted})
    assert r.status_code == 200 and b"Check your inbox" in r.data  # registration mails a link
    assert _user(app, "new@example.test").timezone == stored


def test_registration_form_carries_the_hidden_zone_field_for_the_script(client):
    html = client.get("/auth/register").get_data(as_text=True)
    assert 'name="timezone"' in html and "data-browser-timezone" in html
    assert "<script>" not in html and " on" + "click=" not in html  # no inline script (CSP)


def test_the_site_default_zone_applies_to_new_accounts_and_visitors(tmp_path):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 't.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        DEFAULT_TIMEZONE = "Europe/Paris"

    app = create_app(Cfg)
    with app.app_context():
        db.create_all()
        f = Factories()
        owner = f.make_user()
        org = f.make_org(owner=owner)
        f.make_item(org, title="Paris default", deadline=datetime(YEAR, 7, 1, 15, 0, tzinfo=timezone.utc))
        item_id = db.session.execute(select(Item.id)).scalar_one()
    c = app.test_client()
    html = c.get(f"/challenges/{item_id}").get_data(as_text=True)
    assert f"{YEAR}-07-01 17:00 CEST" in html
    c.post("/auth/register", data={"email": "d@example.test", "display_name": "Dee Fault",
                                   "password": "long-enough-pw", "confirm": "long-enough-pw"})
    with app.app_context():
        assert db.session.execute(select(User.timezone).where(User.email == "d@example.test")).scalar_one() \
            == "Europe/Paris"
        db.session.remove()
        db.engine.dispose()


def test_people_change_their_zone_on_the_account_page(app, client, auth):
    with app.app_context():
        Factories().make_user(email="tz@example.test")
    auth.login("tz@example.test")
    page = client.get("/auth/account").get_data(as_text=True)
    assert 'action="/auth/account/timezone"' in page and '<option selected value="UTC">' in page
    r = client.post("/auth/account/timezone", data={"timezone": "America/New_York"})
    assert r.status_code == 302 and r.headers["Location"].endswith("/auth/account")
    assert _user(app, "tz@example.test").timezone == "America/New_York"
    r = client.post("/auth/account/timezone", data={"timezone": "Nowhere/Land"})
    assert r.status_code == 400 and b"Not a valid choice" in r.data
    assert _user(app, "tz@example.test").timezone == "America/New_York"
    assert client.get("/auth/account/timezone").status_code == 200


def test_every_time_is_shown_in_the_viewers_zone(app, client, auth):
    deadline = datetime(YEAR, 1, 15, 15, 0, tzinfo=timezone.utc)
    with app.app_context():
        f = Factories()
        owner = f.make_user(email="o@example.test", timezone="Europe/Paris")
        f.make_user(email="ny@example.test", timezone="America/New_York")
        org = f.make_org(owner=owner)
        item = f.make_item(org, title="Zoned", deadline=deadline)
        iid = item.id
    anon = client.get(f"/challenges/{iid}").get_data(as_text=True)
    assert f"{YEAR}-01-15 15:00 UTC" in anon
    auth.login("ny@example.test")
    page = client.get(f"/challenges/{iid}").get_data(as_text=True)
    assert f"{YEAR}-01-15 10:00 EST" in page and "15:00 UTC" not in page
    listing = client.get("/challenges/").get_data(as_text=True)
    assert f"deadline {YEAR}-01-15 10:00 EST" in listing
    auth.logout()
    auth.login("o@example.test")
    assert f"{YEAR}-01-15 16:00 CET" in client.get(f"/challenges/{iid}").get_data(as_text=True)


# --------------------------------------------------------------------------- organisations


@pytest.fixture
def paris(app):
    """An organisation in Europe/Paris, its owner (who reads times in New York)."""
    with app.app_context():
        f = Factories()
        owner = f.make_user(email="owner@paris.test", timezone="America/New_York")
        org = f.make_org(name="Paris Labs", owner=owner)
        org.timezone = "Europe/Paris"
        db.session.commit()
        return org.id


def _challenge(**over) -> dict:
    data = {"title": "Zoned challenge", "summary": "", "body": "A problem.", "tags": "", "visibility": "public",
            "context": "", "expected_outcome": "", "incentive_summary": "", "opens_at": "",
            "deadline": f"{YEAR}-07-01T17:00", "save": "Save as draft"}
    data.update(over)
    return data


def test_new_organisations_take_their_creators_zone_and_can_change_it(app, client, auth):
    with app.app_context():
        Factories().make_user(email="founder@example.test", timezone="Asia/Tokyo")
    auth.login("founder@example.test")
    form = client.get("/orgs/new").get_data(as_text=True)
    assert '<option selected value="Asia/Tokyo">' in form
    assert client.post("/orgs/new", data={"name": "Tokyo Works", "kind": "company"}).status_code == 302
    with app.app_context():
        org = db.session.execute(select(Organisation).where(Organisation.name == "Tokyo Works")).scalar_one()
        assert org.timezone == "Asia/Tokyo"
        slug = org.slug
    assert b"Asia/Tokyo (JST)" in client.get(f"/orgs/{slug}").data
    r = client.post(f"/orgs/{slug}/edit", data={"description": "", "website": "", "timezone": "Europe/Lisbon"})
    assert r.status_code == 302
    r = client.post(f"/orgs/{slug}/edit", data={"description": "", "website": "", "timezone": "Moon/Base"})
    assert r.status_code == 400 and b"Not a valid choice" in r.data
    with app.app_context():
        org = db.session.execute(select(Organisation).where(Organisation.slug == slug)).scalar_one()
        assert org.timezone == "Europe/Lisbon"
        ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "org.timezone_changed")).scalar_one()
        assert json.loads(ev.data) == {"from": "Asia/Tokyo", "to": "Europe/Lisbon"}


def test_deadlines_are_entered_in_the_organisations_zone_and_stored_in_utc(app, client, auth, paris):
    auth.login("owner@paris.test")
    form = client.get(f"/challenges/new?org={paris}").get_data(as_text=True)
    assert "Deadline (Europe/Paris)" in form and "Opens at (Europe/Paris)" in form
    r = client.post(f"/challenges/new?org={paris}", data=_challenge())
    assert r.status_code == 302
    with app.app_context():
        item = db.session.execute(select(Item)).scalar_one()
        assert item.deadline == datetime(YEAR, 7, 1, 15, 0, tzinfo=timezone.utc)
        iid = item.id
    # The owner reads it in New York time; the edit form shows it as entered, in Paris time.
    assert f"{YEAR}-07-01 11:00 EDT" in client.get(f"/challenges/{iid}").get_data(as_text=True)
    assert f'value="{YEAR}-07-01T17:00"' in client.get(f"/challenges/{iid}/edit").get_data(as_text=True)


def test_a_skipped_deadline_is_a_form_error(app, client, auth, paris):
    auth.login("owner@paris.test")
    gap = SPRING.replace(hour=2, minute=30).strftime("%Y-%m-%dT%H:%M")
    r = client.post(f"/challenges/new?org={paris}", data=_challenge(deadline=gap))
    assert r.status_code == 400
    html = r.get_data(as_text=True)
    assert "does not exist in Europe/Paris" in html and 'href="#deadline"' in html
    with app.app_context():
        assert db.session.execute(select(Item)).first() is None


def test_a_repeated_deadline_is_refused_but_an_unchanged_one_is_kept(app, client, auth, paris):
    auth.login("owner@paris.test")
    repeated = AUTUMN.replace(hour=2, minute=30)
    local = repeated.strftime("%Y-%m-%dT%H:%M")
    r = client.post(f"/challenges/new?org={paris}", data=_challenge(deadline=local))
    assert r.status_code == 400 and "happens twice in Europe/Paris" in r.get_data(as_text=True)
    # A deadline stored at the second 02:30 (entered before a change of zone, say) survives
    # an edit that leaves the field as it is shown.
    second = repeated.replace(tzinfo=PARIS, fold=1).astimezone(timezone.utc)
    with app.app_context():
        f = Factories()
        item = f.make_item(db.session.get(Organisation, paris), status="draft", deadline=second)
        iid = item.id
    shown = client.get(f"/challenges/{iid}/edit").get_data(as_text=True)
    assert f'value="{local}"' in shown
    r = client.post(f"/challenges/{iid}/edit", data=_challenge(title="Renamed", deadline=local))
    assert r.status_code == 302
    with app.app_context():
        item = db.session.get(Item, iid)
        assert item.title == "Renamed" and item.deadline == second


def test_other_entered_times_use_the_organisations_zone(app, client, auth, paris):
    """Access grants' end: the same field everywhere an organisation types a time."""
    with app.app_context():
        f = Factories()
        f.make_user(email="guest@example.test")
        item = f.make_item(db.session.get(Organisation, paris), visibility="invited")
        iid = item.id
    auth.login("owner@paris.test")
    assert "Access ends (Europe/Paris, optional)" in client.get(f"/challenges/{iid}/access").get_data(as_text=True)
    r = client.post(f"/challenges/{iid}/access", data={"email": "guest@example.test",
                                                       "expires_at": f"{YEAR}-01-10T09:00"})
    assert r.status_code == 302
    with app.app_context():
        from marketplace.models import AccessGrant

        grant = db.session.execute(select(AccessGrant)).scalar_one()
        assert grant.expires_at == datetime(YEAR, 1, 10, 8, 0, tzinfo=timezone.utc)


def test_the_terms_sheet_shows_the_deadline_with_its_zone(app, client, auth, paris):
    deadline = datetime(YEAR, 7, 1, 15, 0, tzinfo=timezone.utc)
    with app.app_context():
        f = Factories()
        owner = db.session.execute(select(User).where(User.email == "owner@paris.test")).scalar_one()
        item = f.make_item(db.session.get(Organisation, paris), deadline=deadline)
        IdeaFactories(f).set_terms(owner, item)
        iid = item.id
    sheet = html.unescape(client.get(f"/challenges/{iid}/terms").get_data(as_text=True))
    assert (f"{YEAR}-07-01 15:00 UTC ({YEAR}-07-01 17:00 CEST in Paris Labs's time zone, Europe/Paris)"
            in sheet)
    auth.login("owner@paris.test")
    sheet = html.unescape(client.get(f"/challenges/{iid}/terms").get_data(as_text=True))
    assert f"{YEAR}-07-01 11:00 EDT ({YEAR}-07-01 17:00 CEST in Paris Labs" in sheet
