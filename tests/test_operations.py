"""Running it for real: the client address behind a proxy (rate limits per visitor), Redis as
an optional extra, configuration errors in one line, text XML cannot carry kept out of the
feeds, the distribution's name, and every environment variable documented."""
from __future__ import annotations

import importlib.metadata
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from sqlalchemy import select, text

from marketplace import create_app
from marketplace.config import ConfigError, TestingConfig
from marketplace.extensions import db, limiter
from marketplace.models import Item, Organisation

from .factories import Factories

ROOT = Path(__file__).resolve().parent.parent
ATOM = "{http://www.w3.org/2005/Atom}"


def make_app(tmp_path, **overrides):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'test.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        UPLOAD_DIR = str(tmp_path / "uploads")

    for k, v in overrides.items():
        setattr(Cfg, k, v)
    app = create_app(Cfg)
    app.instance_path = str(tmp_path)
    with app.app_context():
        db.create_all()
    return app


# --------------------------------------------------------------------------- proxies and rate limits


def _signup_attempts(client, visitor: str, n: int) -> list[int]:
    # Sign-up is limited to 20 POSTs an hour per client address; invalid forms count too.
    return [client.post("/auth/register", data={"email": "x"}, headers={"X-Forwarded-For": visitor},
                        environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code for _ in range(n)]


@pytest.mark.parametrize("proxies,separate", [(1, True), (0, False)])
def test_rate_limits_count_per_visitor_behind_the_trusted_proxy(tmp_path, proxies, separate):
    app = make_app(tmp_path, TRUSTED_PROXIES=proxies, RATELIMIT_ENABLED=True)
    client = app.test_client()
    first = _signup_attempts(client, "203.0.113.7", 21)
    assert first[:20] == [400] * 20 and first[20] == 429
    other = _signup_attempts(client, "198.51.100.9", 1)
    # Behind one trusted proxy, another visitor has a count of their own; with no proxy
    # trusted the header is ignored and everyone behind 127.0.0.1 shares one.
    assert other == ([400] if separate else [429])


def test_only_the_trusted_number_of_hops_is_believed(tmp_path):
    app = make_app(tmp_path, TRUSTED_PROXIES=1)
    seen = []

    @app.get("/probe/addr")
    def addr():
        from flask import request

        seen.append((request.remote_addr, request.scheme, request.host))
        return "ok"

    client = app.test_client()
    # A visitor claims an address of their own; nginx appends the real one.
    client.get("/probe/addr", headers={"X-Forwarded-For": "10.0.0.1, 203.0.113.7",
                                       "X-Forwarded-Proto": "https", "X-Forwarded-Host": "market.example.org"},
               environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert seen == [("203.0.113.7", "https", "market.example.org")]


@pytest.mark.parametrize("key,value,message", [
    ("TRUSTED_PROXIES", "two", "TRUSTED_PROXIES='two' is not a whole number."),
    ("TRUSTED_PROXIES", -1, "TRUSTED_PROXIES=-1 must be 0"),
    ("MAX_CONTENT_LENGTH", "10MB", "MAX_UPLOAD_BYTES='10MB' is not a whole number."),
    ("LOG_LEVEL", "LOUD", "LOG_LEVEL='LOUD' is not a level"),
    ("SECRET_KEY", "short", "SECRET_KEY is too short"),
])
def test_a_bad_setting_is_one_clear_sentence(tmp_path, key, value, message):
    extra = {"TESTING": False, "SECRET_KEY": "a-long-enough-secret-key-for-this", "LOG_CONFIGURE": True,
             "SEARCH_WORKER": "off"}
    extra[key] = value
    with pytest.raises(ConfigError) as e:
        make_app(tmp_path, **extra)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


# --------------------------------------------------------------------------- Redis


def test_redis_without_its_client_is_refused_with_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)  # as if the extra were not installed
    with pytest.raises(ConfigError) as e:
        make_app(tmp_path, RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/0")
    assert "pip install -e '.[redis]'" in str(e.value)


def test_redis_with_its_client_is_the_rate_limit_storage(tmp_path):
    import redis  # noqa: F401  (in the test extras: a missing client fails here, never skips)

    make_app(tmp_path, RATELIMIT_STORAGE_URI="redis://127.0.0.1:6379/0", RATELIMIT_ENABLED=True)
    assert type(limiter.storage).__name__ == "RedisStorage"
    (tmp_path / "again").mkdir()
    # The limiter is one object per process: put memory storage back for the tests after this.
    make_app(tmp_path / "again", RATELIMIT_ENABLED=True)
    assert type(limiter.storage).__name__ == "MemoryStorage"


# --------------------------------------------------------------------------- text XML cannot carry


def _feed_titles(client, name="failures") -> list[str]:
    r = client.get(f"/feeds/{name}.atom")
    assert r.status_code == 200
    root = ET.fromstring(r.data)  # raises on an ill-formed feed
    return [e.find(f"{ATOM}title").text for e in root.findall(f"{ATOM}entry")]


def test_a_title_with_a_form_feed_gives_a_well_formed_feed(app, client, auth):
    with app.app_context():
        f = Factories()
        owner = f.make_user(email="owner@feed.test")
        org = f.make_org(name="Feed\x0c Org", owner=owner)
        org_id = org.id
    auth.login("owner@feed.test")
    r = client.post(f"/failures/new?org={org_id}", data={
        "title": "Vacuum\x0c gripper\x01 lessons", "body": "Page one\x0cpage two.\x1b[31m", "went_wrong": "Leaks\x08",
        "lessons": "Measure porosity", "visibility": "public", "tags": "grip\x0bpers", "publish": "Publish"})
    assert r.status_code == 302, r.data
    with app.app_context():
        item = db.session.execute(select(Item)).scalar_one()
        assert (item.title, item.body, item.tags) == ("Vacuum gripper lessons", "Page onepage two.[31m", ["grippers"])
    assert _feed_titles(client) == ["Vacuum gripper lessons"]


def test_rows_written_before_the_check_do_not_break_the_feed(app, client):
    with app.app_context():
        f = Factories()
        org = f.make_org(owner=f.make_user())
        item = f.make_item(org, kind="failure", title="Old title", body="Old body")
        # As written before input was cleaned: straight into the database.
        db.session.execute(text("UPDATE items SET title = :t, summary = :s WHERE id = :i"),
                           {"t": "Old\x0c title\x00", "s": "Sum\x1fmary", "i": item.id})
        db.session.execute(text("UPDATE organisations SET name = :n"), {"n": "Org\x07 name"})
        db.session.commit()
    assert _feed_titles(client) == ["Old title"]
    assert _feed_titles(client, "items") == ["Old title"]


def test_nul_in_a_form_is_refused_and_json_with_control_characters_too(client):
    r = client.post("/auth/login", data={"email": "a\x00@example.test", "password": "x"})
    assert r.status_code == 400 and b"NUL characters" in r.data
    r = client.post("/auth/login", json={"email": "a@example.test", "nested": [{"k": "form\x0cfeed"}]})
    assert r.status_code == 400 and r.json["error"].startswith("Text may not contain control characters")
    ok = client.post("/auth/login", json={"text": "tab\tnewline\ncarriage\r"})
    assert b"control characters" not in ok.data


def test_orgs_created_on_the_web_lose_the_characters_too(app, client, auth):
    with app.app_context():
        Factories().make_user(email="maker@feed.test")
    auth.login("maker@feed.test")
    r = client.post("/orgs/new", data={"name": "Bell\x07 Labs", "kind": "company", "description": "Ring\x07"})
    assert r.status_code == 302, r.data
    with app.app_context():
        org = db.session.execute(select(Organisation)).scalar_one()
        assert (org.name, org.description) == ("Bell Labs", "Ring")


# --------------------------------------------------------------------------- packaging and documentation


def test_the_distribution_has_its_own_name():
    assert importlib.metadata.metadata("open-innovation-marketplace")["Name"] == "open-innovation-marketplace"
    assert 'name = "open-innovation-marketplace"' in (ROOT / "pyproject.toml").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "The Open Innovation Marketplace authors" in (ROOT / "LICENSE").read_text()


def environment_variables() -> set[str]:
    names: set[str] = set()
    sources = [*(ROOT / "marketplace").rglob("*.py"), ROOT / "gunicorn.conf.py", ROOT / "scripts/dev_server.py"]
    for path in sources:
        src = path.read_text(encoding="utf-8")
        names |= set(re.findall(r"os\.environ(?:\.get)?\(\s*\"([A-Z][A-Z0-9_]+)\"", src))
        names |= set(re.findall(r"os\.environ\[\"([A-Z][A-Z0-9_]+)\"\]", src))
        names |= set(re.findall(r"\b_(?:bool|int|list)\(\"([A-Z][A-Z0-9_]+)\"", src))
    from marketplace.services.moderation import DEFAULTS  # read from the environment by name

    return names | set(DEFAULTS)


def test_every_environment_variable_is_documented():
    names = environment_variables()
    assert {"SECRET_KEY", "DATABASE_URL", "TRUSTED_PROXIES", "LOG_FILE", "GUNICORN_BIND", "PORT"} <= names
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert sorted(n for n in names if f"`{n}`" not in readme) == []
    assert sorted(n for n in names if not re.search(rf"^#? ?{n}=", example, re.M)) == []
