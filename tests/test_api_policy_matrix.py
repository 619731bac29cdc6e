"""The policy matrix through the API: for every kind of viewer (a bearer token of that
person; anonymous without one) and every item cell (visibility x status x hidden), the API
answers as the rules of tests/factories_foundation.py say: GET /api/v1/items/<id> is 200
exactly when the viewer may view (404 otherwise, like a missing item), the list holds exactly
the items the viewer may view, and an edit succeeds exactly when the viewer may edit (403 when
they may only view, 404 when they may not even view). Blocked accounts' tokens stop working
(tests/test_api_tokens.py), so they are covered by the anonymous row."""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from marketplace.extensions import db
from marketplace.models import Item, utcnow
from marketplace.services import tokens as token_svc

from .factories_foundation import KINDS, PROFILES, STATUSES, VISIBILITIES, World, dispose, expected, make_app

CELLS = list(itertools.product(VISIBILITIES, STATUSES, (False, True)))
API_PROFILES = [name for name, p in PROFILES.items() if p.signed_in or name == "anonymous"]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("api_matrix"))
    with app.app_context():
        world = World()
        cells = {}
        for n, (vis, status, hidden) in enumerate(CELLS):
            item = world.add_item(kind=KINDS[n % 3], visibility=vis, status=status, hidden=hidden,
                                  title=f"Cell {vis}/{status}/{'hidden' if hidden else 'shown'}")
            cells[item.id] = (vis, status, hidden)
        expiry = utcnow() + timedelta(days=30)
        tokens = {name: token_svc.create_personal_token(world.users[name], "matrix", ["read", "items:write"],
                                                        expiry)[1]
                  for name in API_PROFILES if name != "anonymous"}
    yield app, cells, tokens
    dispose(app)


def _headers(tokens, profile):
    return {"Authorization": f"Bearer {tokens[profile]}"} if profile in tokens else {}


def _label(profile, spec):
    vis, status, hidden = spec
    return f"{profile} {vis}/{status}/{'hidden' if hidden else 'shown'}"


@pytest.mark.parametrize("profile", API_PROFILES)
def test_get_and_list_answer_as_the_rules_say(matrix, profile):
    app, cells, tokens = matrix
    client = app.test_client()
    headers = _headers(tokens, profile)
    wrong = []
    for iid, spec in cells.items():
        want = expected(PROFILES[profile], *spec, "view")
        r = client.get(f"/api/v1/items/{iid}", headers=headers)
        if r.status_code != (200 if want else 404):
            wrong.append(f"{_label(profile, spec)}: view {want}, GET answered {r.status_code}")
        elif not want and r.get_json() != client.get("/api/v1/items/999999999", headers=headers).get_json():
            wrong.append(f"{_label(profile, spec)}: the 404 differs from a missing item's")
    listed = set()
    for status in STATUSES:  # the status filter also lists archived items
        r = client.get(f"/api/v1/items?status={status}&per_page=100", headers=headers)
        assert r.status_code == 200
        listed |= {x["id"] for x in r.get_json()["items"]}
    want_listed = {iid for iid, spec in cells.items() if expected(PROFILES[profile], *spec, "view")}
    assert wrong == []
    assert listed == want_listed


@pytest.mark.parametrize("profile", [p for p in API_PROFILES if p != "anonymous"])
def test_edit_answers_as_the_rules_say(matrix, profile):
    app, cells, tokens = matrix
    client = app.test_client()
    wrong = []
    for iid, spec in cells.items():
        may_view = expected(PROFILES[profile], *spec, "view")
        may_edit = expected(PROFILES[profile], *spec, "edit")
        r = client.patch(f"/api/v1/items/{iid}", headers=_headers(tokens, profile),
                         json={"summary": f"Edited by {profile}"})
        want = 200 if may_edit else (403 if may_view else 404)
        if r.status_code != want:
            wrong.append(f"{_label(profile, spec)}: expected {want}, got {r.status_code} {r.get_data(as_text=True)[:200]}")
        if r.status_code >= 400:
            assert {"code", "message"} <= set(r.get_json()["error"])
    with app.app_context():
        edited_by_other = [i.id for i in db.session.query(Item).filter(Item.summary == f"Edited by {profile}")
                           if not expected(PROFILES[profile], *cells[i.id], "edit")]
    assert wrong == []
    assert edited_by_other == []


def test_anonymous_writes_are_401(matrix):
    app, cells, _tokens = matrix
    client = app.test_client()
    iid = next(iter(cells))
    r = client.patch(f"/api/v1/items/{iid}", json={"summary": "x"})
    assert r.status_code == 401 and r.get_json()["error"]["code"]
