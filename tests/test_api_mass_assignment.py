"""Fields a caller may not set are refused with 422 naming the field, and nothing is applied:
an organisation id other than the one in the path, visibility or status on an idea, a status
no item can have (`awarded`), roles and site roles, user ids, authorship."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.models import Idea, Item, Membership, Organisation, User

from .factories_ideas import IdeaFactories
from .test_api_tokens import bearer, make_token


@pytest.fixture
def w(f):
    fi = IdeaFactories(f)
    owner = f.make_user(email="owner@acme.test", name="Owner")
    contributor = f.make_user(email="c@else.test", name="Contributor")
    org = f.make_org(name="Acme", owner=owner)
    other = f.make_org(name="Other", owner=f.make_user(name="Other owner"))
    setup = fi.challenge(owner=owner, org=org, confidentiality="open")
    idea = fi.submit(contributor, setup.challenge)
    return {"owner": owner, "contributor": contributor, "org": org, "other": other, "setup": setup, "idea": idea,
            "owner_token": make_token(owner), "contributor_token": make_token(contributor)}


def _snapshot():
    rows = lambda model: db.session.execute(select(func.count()).select_from(model)).scalar_one()  # noqa: E731
    db.session.expire_all()
    return ({m.__name__: rows(m) for m in (Idea, Item, Membership, Organisation, User)},
            sorted((i.id, i.org_id, i.visibility, i.status, i.title) for i in db.session.execute(select(Item)).scalars()),
            sorted((i.id, i.status, i.title) for i in db.session.execute(select(Idea)).scalars()),
            sorted((m.org_id, m.user_id, m.role) for m in db.session.execute(select(Membership)).scalars()),
            sorted((u.id, u.site_role) for u in db.session.execute(select(User)).scalars()))


CASES = [
    # (who, method, path, body, refused field)
    ("owner", "post", "/api/v1/orgs/{slug}/items",
     {"kind": "failure", "title": "T", "org_id": "{other_id}"}, "org_id"),
    ("owner", "patch", "/api/v1/items/{item_id}", {"org_id": "{other_id}"}, "org_id"),
    ("owner", "patch", "/api/v1/items/{item_id}", {"status": "archived"}, "status"),
    ("owner", "patch", "/api/v1/items/{item_id}", {"visibility": "public"}, "visibility"),
    ("owner", "patch", "/api/v1/items/{item_id}", {"created_by_id": "{contributor_id}"}, "created_by_id"),
    ("owner", "post", "/api/v1/items/{item_id}/status", {"status": "awarded"}, "status"),
    ("contributor", "post", "/api/v1/challenges/{item_id}/ideas",
     {"title": "T", "body": "B", "accept_terms_digest": "{digest}", "confirm_eligibility": True,
      "confirm_coi": True, "visibility": "public"}, "visibility"),
    ("contributor", "post", "/api/v1/challenges/{item_id}/ideas",
     {"title": "T", "body": "B", "accept_terms_digest": "{digest}", "confirm_eligibility": True,
      "confirm_coi": True, "status": "awarded"}, "status"),
    ("contributor", "post", "/api/v1/challenges/{item_id}/ideas",
     {"title": "T", "body": "B", "accept_terms_digest": "{digest}", "confirm_eligibility": True,
      "confirm_coi": True, "user_id": "{owner_id}"}, "user_id"),
    ("contributor", "post", "/api/v1/ideas/{idea_id}/revisions",
     {"title": "T", "body": "B", "accept_terms_digest": "{digest}", "status": "awarded"}, "status"),
    ("contributor", "post", "/api/v1/orgs",
     {"name": "Mine", "kind": "company", "owner_id": "{owner_id}"}, "owner_id"),
    ("contributor", "post", "/api/v1/orgs", {"name": "Mine", "kind": "company", "site_role": "admin"}, "site_role"),
    ("owner", "post", "/api/v1/orgs/{slug}/members",
     {"email": "c@else.test", "role": "member", "user_id": "{owner_id}"}, "user_id"),
    ("owner", "post", "/api/v1/orgs/{slug}/members", {"email": "c@else.test", "role": "superuser"}, "role"),
    ("contributor", "post", "/api/v1/items/{item_id}/questions", {"body": "Q?", "author_id": "{owner_id}"},
     "author_id"),
    ("contributor", "post", "/api/v1/items/{item_id}/comments", {"body": "Hi", "user_id": "{owner_id}"}, "user_id"),
]


def _fill(value, ids):
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in ids:
        return ids[value[1:-1]]
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("who, method, path, body, field", CASES, ids=[f"{c[2]}:{c[4]}" for c in CASES])
def test_fields_a_caller_may_not_set_are_422_and_nothing_is_applied(client, w, who, method, path, body, field):
    ids = {"slug": w["org"].slug, "other_id": w["other"].id, "item_id": w["setup"].challenge.id,
           "idea_id": w["idea"].id, "digest": w["setup"].terms.digest, "owner_id": w["owner"].id,
           "contributor_id": w["contributor"].id}
    before = _snapshot()
    r = getattr(client, method)(_fill(path, ids), json=_fill(body, ids), headers=bearer(w[f"{who}_token"]))
    assert r.status_code == 422, r.get_json()
    err = r.get_json()["error"]
    assert field in err["fields"] and err["message"]
    assert _snapshot() == before
