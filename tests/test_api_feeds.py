"""The JSON API and Atom feeds list exactly what the viewer may see."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

ATOM = "{http://www.w3.org/2005/Atom}"


@pytest.fixture
def world(f):
    owner = f.make_user(email="owner@acme.test")
    outsider = f.make_user(email="out@else.test")
    org = f.make_org(name="Acme", owner=owner)
    items = {
        vis: f.make_item(org, visibility=vis, title=f"Secret-{vis}-title", tags=("water",))
        for vis in ("public", "registered", "invited", "organisation")
    }
    items["draft"] = f.make_item(org, visibility="public", status="draft", title="Secret-draft-title")
    return {"owner": owner, "outsider": outsider, "org": org, "items": items}


def titles(payload):
    return {i["title"] for i in payload["items"]}


def test_api_lists_only_visible_items(client, auth, world):
    anon = client.get("/api/v1/items").get_json()
    assert titles(anon) == {"Secret-public-title"}
    assert anon["total"] == 1
    auth.login("out@else.test")
    reg = client.get("/api/v1/challenges").get_json()
    assert titles(reg) == {"Secret-public-title", "Secret-registered-title"}
    auth.logout()
    auth.login("owner@acme.test")
    own = client.get("/api/v1/items?per_page=100").get_json()
    assert titles(own) == {f"Secret-{v}-title" for v in ("public", "registered", "invited", "organisation", "draft")}


def test_api_detail_404_for_invisible(client, auth, world):
    org_item = world["items"]["organisation"]
    r = client.get(f"/api/v1/items/{org_item.id}")
    assert r.status_code == 404
    assert r.is_json and "Secret" not in r.get_data(as_text=True)
    r = client.get(f"/api/v1/items/{world['items']['public'].id}")
    assert r.status_code == 200 and r.get_json()["visibility"] == "public"
    assert "html" in r.get_json()


@pytest.mark.parametrize("qs", ["status=bogus", "sort=drop", "page=x", "page=0", "kind=nope"])
def test_api_bad_args_are_400_json(client, world, qs):
    r = client.get(f"/api/v1/items?{qs}")
    assert r.status_code == 400
    assert r.get_json()["error"]


def test_api_unknown_route_is_json_404(client):
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.is_json


def test_api_org_lists_visible_items(client, world):
    r = client.get(f"/api/v1/orgs/{world['org'].slug}")
    assert r.status_code == 200
    assert titles(r.get_json()) == {"Secret-public-title"}
    assert client.get("/api/v1/orgs/no-such-org").status_code == 404


def test_feed_anonymous_has_public_only(client, world):
    r = client.get("/feeds/challenges.atom")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/atom+xml")
    root = ET.fromstring(r.data)
    got = {e.find(f"{ATOM}title").text for e in root.findall(f"{ATOM}entry")}
    assert got == {"Secret-public-title"}
    assert b"Secret-organisation" not in r.data and b"Secret-draft" not in r.data


def test_feed_signed_in_is_private(client, auth, world):
    auth.login("owner@acme.test")
    r = client.get("/feeds/items.atom")
    assert r.status_code == 200
    assert "no-store" in r.headers["Cache-Control"]
    root = ET.fromstring(r.data)
    assert len(root.findall(f"{ATOM}entry")) == 5


def test_feed_escapes_markup(client, f):
    org = f.make_org()
    f.make_item(org, title="<script>alert(1)</script> & co", body="<b>x</b>")
    r = client.get("/feeds/challenges.atom")
    ET.fromstring(r.data)  # well-formed
    assert b"<script>" not in r.data
