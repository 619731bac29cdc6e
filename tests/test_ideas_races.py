"""Races, for real: parallel requests (threads, each with its own test client and so its own
database session and connection) against the SQLite file of the test app.

The services serialise on a row lock (marketplace.services.common.lock_row) and the tables
carry unique constraints as the last line of defence; these tests check the outcome, never
timings.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from marketplace.extensions import db
from marketplace.models import Idea, TermsAcceptance
from marketplace.services.guards import AppendOnlyViolation

from .factories_ideas import IdeaFactories

N = 4


@pytest.fixture
def fi(f):
    return IdeaFactories(f)


def _parallel(app, email: str, requests: list[tuple[str, dict]]):
    """Each worker thread signs in with its own client, then all fire their request at once.

    Signing in happens inside the worker: the main thread holds the test's app context,
    whose ``g`` would make every client but the first look signed in already.
    """
    barrier = threading.Barrier(len(requests))

    def go(i):
        c = app.test_client()
        login = c.post("/auth/login", data={"email": email, "password": "correct-horse-battery"})
        assert login.status_code == 302 and "session" in {ck.key for ck in c._cookies.values()}
        url, data = requests[i]
        barrier.wait()
        r = c.post(url, data=data)
        return r.status_code, r.headers.get("Location", ""), r.get_data(as_text=True)

    with ThreadPoolExecutor(max_workers=len(requests)) as ex:
        return list(ex.map(go, range(len(requests))))


def _count(model, *where) -> int:
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def test_the_same_form_submitted_twice_in_parallel_makes_one_idea(app, f, fi):
    s = fi.challenge(rules={"max_ideas_per_contributor": 5})
    u = f.make_user()
    form = fi.form(s.challenge)
    url = f"/challenges/{s.challenge.id}/ideas/new"
    results = _parallel(app, u.email, [(url, dict(form)) for _ in range(N)])
    idea = db.session.execute(select(Idea)).scalar_one()
    # every request lands on the one idea
    assert [(code, loc) for code, loc, _ in results] == [(302, f"/ideas/{idea.id}")] * N
    assert _count(Idea) == 1
    assert _count(TermsAcceptance) == 1


def test_parallel_submissions_respect_the_limit(app, f, fi):
    s = fi.challenge(rules={"max_ideas_per_contributor": 1})
    u = f.make_user()
    url = f"/challenges/{s.challenge.id}/ideas/new"
    results = _parallel(app, u.email, [(url, fi.form(s.challenge, title=f"Idea {i}")) for i in range(N)])
    codes = sorted(code for code, _, _ in results)
    assert codes == [302] + [403] * (N - 1)
    assert all(loc.startswith("/ideas/") for code, loc, _ in results if code == 302)
    assert all("limit of 1 idea per contributor" in body for code, _, body in results if code == 403)
    assert _count(Idea) == 1 and _count(TermsAcceptance) == 1


def test_accepting_the_same_terms_twice_concurrently_leaves_one_acceptance(app, f, fi):
    s = fi.challenge()
    lead, co = f.make_user(), f.make_user()
    idea = fi.submit(lead, s.challenge, coauthors=co.email)
    form = fi.form(s.challenge)
    form.pop("submission_key")
    url = f"/ideas/{idea.id}/coauthor"
    results = _parallel(app, co.email, [(url, dict(form)) for _ in range(N)])
    assert [(code, loc) for code, loc, _ in results] == [(302, f"/ideas/{idea.id}")] * N
    assert _count(TermsAcceptance, TermsAcceptance.purpose == "co-author") == 1
    db.session.expire_all()
    assert db.session.get(Idea, idea.id).status == "submitted"


def test_accepting_an_nda_twice_concurrently_leaves_one_acceptance(app, f, fi):
    s = fi.challenge(nda_text="Say nothing.")
    u = f.make_user()
    data = {"terms_version": str(s.terms.version), "terms_digest": s.terms.digest, "accept": "y"}
    results = _parallel(app, u.email, [(f"/challenges/{s.challenge.id}/nda", dict(data)) for _ in range(N)])
    assert [(code, loc) for code, loc, _ in results] == [(302, f"/challenges/{s.challenge.id}")] * N
    assert _count(TermsAcceptance, TermsAcceptance.purpose == "nda") == 1


def test_the_database_itself_refuses_a_duplicate_acceptance(f, fi):
    s = fi.challenge()
    u = f.make_user()
    idea = fi.submit(u, s.challenge)
    acc = db.session.execute(select(TermsAcceptance)).scalar_one()
    dup = TermsAcceptance(dedupe_key=acc.dedupe_key, purpose=acc.purpose, user_id=u.id, challenge_id=acc.challenge_id,
                          terms_id=acc.terms_id, terms_version=1, terms_digest=acc.terms_digest, idea_id=idea.id)
    db.session.add(dup)
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()


def test_acceptances_and_terms_versions_are_append_only(f, fi):
    s = fi.challenge()
    u = f.make_user()
    fi.submit(u, s.challenge)
    acc = db.session.execute(select(TermsAcceptance)).scalar_one()
    acc.terms_version = 2
    with pytest.raises(AppendOnlyViolation):
        db.session.commit()
    db.session.rollback()
    s.terms.territory = "Changed after acceptance"
    with pytest.raises(AppendOnlyViolation):
        db.session.commit()
    db.session.rollback()
    db.session.delete(db.session.execute(select(TermsAcceptance)).scalar_one())
    with pytest.raises(AppendOnlyViolation):
        db.session.commit()
    db.session.rollback()
