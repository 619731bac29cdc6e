"""Co-authors through the API: the lead names them by e-mail when submitting; each named
co-author accepts (under the current terms digest: 409 with the current digest otherwise) or
declines, through the same services as the co-author page."""
from __future__ import annotations

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import Idea

from .factories_ideas import IdeaFactories
from .test_api_tokens import bearer, make_token


def _submit(client, fi, f):
    s = fi.challenge()
    lead, c1, c2 = f.make_user(), f.make_user(), f.make_user()
    body = {"title": "Robots", "body": "Long text", "accept_terms_digest": s.terms.digest,
            "confirm_eligibility": True, "confirm_coi": True, "coauthors": [c1.email, c2.email]}
    r = client.post(f"/api/v1/challenges/{s.challenge.id}/ideas", json=body,
                    headers=bearer(make_token(lead, ("read", "ideas:write"))))
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["status"] == "awaiting-coauthors"
    return s, lead, c1, c2, r.get_json()["id"]


def _accept(digest):
    return {"accept_terms_digest": digest, "confirm_eligibility": True, "confirm_coi": True}


def test_coauthors_accept_under_the_current_digest_and_decline(client, f):
    fi = IdeaFactories(f)
    s, _lead, c1, c2, idea_id = _submit(client, fi, f)
    t1 = make_token(c1, ("read", "ideas:write"))
    r = client.post(f"/api/v1/ideas/{idea_id}/coauthorship/accept", json=_accept("0" * 64), headers=bearer(t1))
    assert r.status_code == 409
    err = r.get_json()["error"]
    assert err["code"] == "terms_changed" and err["current_terms_digest"] == s.terms.digest
    r = client.post(f"/api/v1/ideas/{idea_id}/coauthorship/accept", json=_accept(s.terms.digest), headers=bearer(t1))
    assert r.status_code == 200 and r.get_json()["status"] == "awaiting-coauthors"
    # Accepting again changes nothing.
    again = client.post(f"/api/v1/ideas/{idea_id}/coauthorship/accept", json=_accept(s.terms.digest),
                        headers=bearer(t1))
    assert again.status_code == 200
    t2 = make_token(c2, ("read", "ideas:write"))
    r = client.post(f"/api/v1/ideas/{idea_id}/coauthorship/decline", headers=bearer(t2))
    assert r.status_code == 204 and r.get_data() == b""
    db.session.expire_all()
    idea = db.session.get(Idea, idea_id)
    assert idea.status == "submitted" and not policy.can(c2, "view", idea)
    # Having declined, the idea is gone for them, exactly like a missing one.
    assert client.post(f"/api/v1/ideas/{idea_id}/coauthorship/decline", headers=bearer(t2)).status_code == 404


def test_only_named_coauthors_may_answer_and_the_scope_is_needed(client, f):
    fi = IdeaFactories(f)
    s, lead, c1, _c2, idea_id = _submit(client, fi, f)
    stranger = make_token(f.make_user(), ("read", "ideas:write"))
    r = client.post(f"/api/v1/ideas/{idea_id}/coauthorship/accept", json=_accept(s.terms.digest),
                    headers=bearer(stranger))
    assert r.status_code == 404
    r = client.post(f"/api/v1/ideas/{idea_id}/coauthorship/accept", json=_accept(s.terms.digest),
                    headers=bearer(make_token(lead, ("read", "ideas:write"))))
    assert r.status_code == 403 and r.get_json()["error"]["message"]
    r = client.post(f"/api/v1/ideas/{idea_id}/coauthorship/decline", headers=bearer(make_token(c1, ("read",))))
    assert r.status_code == 403 and r.get_json()["error"]["code"] == "insufficient_scope"
    r = client.post(f"/api/v1/ideas/{idea_id}/coauthorship/accept", json={**_accept(s.terms.digest), "user_id": 1},
                    headers=bearer(make_token(c1, ("read", "ideas:write"))))
    assert r.status_code == 422 and "user_id" in r.get_json()["error"]["fields"]
    db.session.expire_all()
    assert db.session.get(Idea, idea_id).status == "awaiting-coauthors"
