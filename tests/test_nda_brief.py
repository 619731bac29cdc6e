"""A challenge whose terms carry an NDA shows its full brief only after acceptance, on
every surface: page, API and feed."""
from __future__ import annotations

from marketplace.services import terms as terms_svc

from .factories_ideas import IdeaFactories

BRIEF = "Top-secret-brief-words"


def test_nda_gates_the_brief_everywhere(client, auth, f):
    idf = IdeaFactories(f)
    setup = idf.challenge(visibility="public", nda_text="Keep everything you read here confidential.")
    ch = setup.challenge
    ch.body_html = f"<p>{BRIEF}</p>"
    from marketplace.extensions import db
    db.session.commit()
    outsider = f.make_user(email="nda-reader@example.test")

    for surface in (f"/challenges/{ch.id}", f"/api/v1/items/{ch.id}", "/feeds/challenges.atom"):
        r = client.get(surface)
        assert r.status_code == 200, surface
        assert BRIEF not in r.get_data(as_text=True), surface
    assert ch.title in client.get(f"/challenges/{ch.id}").get_data(as_text=True)

    auth.login("nda-reader@example.test")
    assert BRIEF not in client.get(f"/challenges/{ch.id}").get_data(as_text=True)
    terms = setup.terms
    terms_svc.accept_nda(outsider, ch, str(terms.version), terms.digest)
    assert BRIEF in client.get(f"/challenges/{ch.id}").get_data(as_text=True)
    assert BRIEF in client.get(f"/api/v1/items/{ch.id}").get_data(as_text=True)
    auth.logout()
    # the owner's members always see it
    auth.login(setup.owner.email)
    assert BRIEF in client.get(f"/challenges/{ch.id}").get_data(as_text=True)
