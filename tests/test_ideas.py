"""Submitting ideas: participation rules, terms acceptance, co-authors, revisions, withdrawal."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import (
    AuditEvent,
    Idea,
    IdeaAttachment,
    IdeaRevision,
    Notification,
    TermsAcceptance,
    utcnow,
)
from marketplace.services import ideas as svc
from marketplace.services import terms as terms_svc
from marketplace.services.common import ServiceError

from .factories_ideas import PDF, IdeaFactories, reload


@pytest.fixture
def fi(f):
    return IdeaFactories(f)


def count(model, *where):
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


# --------------------------------------------------------------------------- the happy path over HTTP


def test_submit_over_http_records_idea_revision_acceptance_and_audit(f, fi, client, auth):
    s = fi.challenge(confidentiality="open")
    alice = f.make_user(email="alice@example.test")
    auth.login(alice.email)
    page = client.get(f"/challenges/{s.challenge.id}/ideas/new")
    assert page.status_code == 200
    assert s.terms.digest.encode() in page.data  # the digest is shown with the terms being accepted
    key = re.search(rb'name="submission_key" type="hidden" value="([^"]+)"', page.data).group(1).decode()
    form = fi.form(s.challenge, submission_key=key, title="Soft fingers", body="Use *air*.")
    form["attachments"] = (io.BytesIO(PDF), "design.pdf")
    r = client.post(f"/challenges/{s.challenge.id}/ideas/new", data=form, content_type="multipart/form-data")
    assert r.status_code == 302, r.data
    idea = db.session.execute(select(Idea)).scalar_one()
    assert idea.status == "submitted" and idea.author_id == alice.id and idea.submitted_at is not None
    assert idea.body_html.strip() == "<p>Use <em>air</em>.</p>"
    assert [a.filename for a in idea.current_attachments] == ["design.pdf"]
    rev = db.session.execute(select(IdeaRevision)).scalar_one()
    assert rev.number == 1 and rev.content_hash == idea.content_hash
    acc = db.session.execute(select(TermsAcceptance)).scalar_one()
    assert (acc.user_id, acc.terms_version, acc.terms_digest, acc.idea_id, acc.content_hash) == \
        (alice.id, 1, s.terms.digest, idea.id, idea.content_hash)
    assert acc.accepted_at.tzinfo is not None
    ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "idea.submitted")).scalar_one()
    assert ev.item_id == s.challenge.id and ev.subject_id == idea.id
    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "terms.accepted")).scalar_one()
    page = client.get(f"/ideas/{idea.id}")
    assert page.status_code == 200 and b"Soft fingers" in page.data and f"/ideas/receipts/{acc.id}".encode() in page.data


def test_content_hash_covers_text_and_files():
    a = svc.content_hash("t", "s", "b", [{"name": "x.pdf", "sha256": "1" * 64, "size": 3}])
    assert a == svc.content_hash("t", "s", "b", [{"name": "x.pdf", "sha256": "1" * 64, "size": 3}])
    assert a != svc.content_hash("t", "s", "b!", [{"name": "x.pdf", "sha256": "1" * 64, "size": 3}])
    assert a != svc.content_hash("t", "s", "b", [{"name": "x.pdf", "sha256": "2" * 64, "size": 3}])


def test_double_post_of_the_same_form_makes_one_idea(f, fi):
    s = fi.challenge()
    u = f.make_user()
    data = fi.submission(s.challenge)
    first, created1 = svc.submit_idea(u, s.challenge, data)
    again, created2 = svc.submit_idea(u, s.challenge, dict(data))
    assert created1 and not created2 and first.id == again.id
    assert count(Idea) == 1 and count(TermsAcceptance) == 1


# --------------------------------------------------------------------------- bad input: each refused, nothing written


def _refused(fi, user, challenge, **over) -> ServiceError:
    with pytest.raises(ServiceError) as ei:
        fi.submit(user, challenge, **over)
    db.session.rollback()
    assert count(Idea) == 0 and count(TermsAcceptance) == 0 and count(IdeaRevision) == 0
    return ei.value


def test_deadline_passed(f, fi):
    s = fi.challenge()
    s.challenge.deadline = utcnow() - timedelta(minutes=1)
    db.session.commit()
    e = _refused(fi, f.make_user(), s.challenge)
    assert "deadline passed" in e.message and e.status == 403


def test_not_yet_open(f, fi):
    s = fi.challenge()
    s.challenge.opens_at = utcnow() + timedelta(days=1)
    db.session.commit()
    assert "Submissions open at" in _refused(fi, f.make_user(), s.challenge).message


def test_closed_challenge(f, fi):
    s = fi.challenge()
    s.challenge.status = "closed"
    db.session.commit()
    assert "not open for ideas (it is closed)" in _refused(fi, f.make_user(), s.challenge).message


def test_without_accepting_the_terms(f, fi):
    s = fi.challenge()
    e = _refused(fi, f.make_user(), s.challenge, accept_terms=False)
    assert "accept the terms (version 1)" in e.message and e.field == "accept_terms"


def test_stale_terms_version(f, fi):
    s = fi.challenge()
    u = f.make_user()
    stale = fi.submission(s.challenge)
    fi.set_terms(s.owner, s.challenge, territory="Europe only.")  # version 2
    with pytest.raises(ServiceError) as ei:
        svc.submit_idea(u, s.challenge, stale)
    db.session.rollback()
    assert ei.value.status == 409 and "version 1" in ei.value.message and "version 2" in ei.value.message
    assert count(Idea) == 0


def test_forged_terms_version_and_digest(f, fi):
    s = fi.challenge()
    u = f.make_user()
    assert _refused(fi, u, s.challenge, terms_version="7").status == 409
    assert _refused(fi, u, s.challenge, terms_digest="0" * 64).status == 409
    assert _refused(fi, u, s.challenge, terms_version="one").status == 400


def test_terms_of_another_challenge_are_refused(f, fi):
    a = fi.challenge()
    b = fi.challenge(territory="Elsewhere.")
    u = f.make_user()
    e = _refused(fi, u, a.challenge, terms_digest=b.terms.digest)
    assert e.status == 409


def test_forged_challenge_id_in_form(f, fi):
    a = fi.challenge()
    b = fi.challenge()
    e = _refused(fi, f.make_user(), a.challenge, challenge_id=str(b.challenge.id))
    assert "different challenge" in e.message


def test_forged_challenge_id_in_url(f, fi, client, auth):
    s = fi.challenge()
    private = fi.challenge(visibility="organisation")
    failure = f.make_item(s.org, kind="failure")
    u = f.make_user()
    auth.login(u.email)
    for target in (private.challenge.id, failure.id, 999999):
        r = client.post(f"/challenges/{target}/ideas/new", data=fi.form(s.challenge, challenge_id=str(target)))
        assert r.status_code == 404
    assert count(Idea) == 0


def test_over_the_limit(f, fi):
    s = fi.challenge(rules={"max_ideas_per_contributor": 1})
    u = f.make_user()
    fi.submit(u, s.challenge)
    with pytest.raises(ServiceError) as ei:
        fi.submit(u, s.challenge)
    db.session.rollback()
    assert "limit of 1 idea per contributor" in ei.value.message
    assert count(Idea) == 1


def test_withdrawn_ideas_do_not_count_against_the_limit(f, fi):
    s = fi.challenge(rules={"max_ideas_per_contributor": 1})
    u = f.make_user()
    idea = fi.submit(u, s.challenge)
    svc.withdraw_idea(u, idea)
    assert fi.submit(u, s.challenge).status == "submitted"


@pytest.mark.parametrize("rules, email, member, expected", [
    ({"who_may_submit": "invited"}, "x@example.test", False, "Only people invited"),
    ({"who_may_submit": "organisation", "org_members_may_participate": True}, "x@example.test", False,
     "Only members of"),
    ({"org_members_may_participate": False}, "x@example.test", True, "may not take part in its own challenge"),
    ({"blocked_domains": "rival.test"}, "x@lab.rival.test", False, "lab.rival.test may not take part"),
    ({"allowed_domains": "uni.test"}, "x@example.test", False, "Only e-mail addresses at uni.test"),
])
def test_participation_rules_name_the_rule(f, fi, rules, email, member, expected):
    s = fi.challenge(rules=rules)
    u = f.make_user(email=email)
    if member:
        f.add_member(s.org, u)
    e = _refused(fi, u, s.challenge)
    assert expected in e.message
    assert policy.participation_refusal(u, s.challenge) == e.message


def test_rules_that_let_people_in(f, fi):
    s = fi.challenge(rules={"who_may_submit": "invited", "allowed_domains": "uni.test",
                            "org_members_may_participate": True})
    invited = f.make_user(email="ok@dept.uni.test")
    f.grant(s.challenge, user=invited)
    member = f.make_user(email="m@uni.test")
    f.add_member(s.org, member)
    assert fi.submit(invited, s.challenge).status == "submitted"
    assert fi.submit(member, s.challenge).status == "submitted"


def test_eligibility_and_coi_must_be_confirmed(f, fi):
    s = fi.challenge(rules={"eligibility_statement": "I am over 18.", "coi_declaration": "No conflicts."})
    u = f.make_user()
    assert _refused(fi, u, s.challenge, confirm_eligibility=False).field == "confirm_eligibility"
    assert _refused(fi, u, s.challenge, confirm_coi=False).field == "confirm_coi"
    idea = fi.submit(u, s.challenge, coi_note="I consulted for a supplier in 2019.")
    acc = db.session.execute(select(TermsAcceptance).where(TermsAcceptance.idea_id == idea.id)).scalar_one()
    assert acc.eligibility_confirmed and acc.coi_confirmed and "supplier" in acc.coi_note


def test_no_terms_or_no_rules_means_no_ideas(f, fi):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    ch = f.make_item(org, kind="challenge", visibility="public")
    u = f.make_user()
    assert "no terms sheet" in policy.participation_refusal(u, ch)
    with pytest.raises(ServiceError):
        svc.submit_idea(u, ch, {"submission_key": "k" * 20, "title": "t", "body": "b"})
    db.session.rollback()
    assert count(Idea) == 0


def test_nda_must_be_accepted_before_taking_part_and_reading_the_brief(f, fi):
    s = fi.challenge(nda_text="Keep the brief secret.")
    u = f.make_user()
    assert not policy.can(u, "view_brief", s.challenge)
    e = _refused(fi, u, s.challenge)
    assert "Accept the challenge's NDA" in e.message
    terms_svc.accept_nda(u, s.challenge, s.terms.version, s.terms.digest)
    assert policy.can(u, "view_brief", s.challenge)
    assert fi.submit(u, s.challenge).status == "submitted"
    assert policy.can(s.owner, "view_brief", s.challenge)  # members need no NDA


def test_reviewers_may_not_take_part(f, fi):
    s = fi.challenge()
    member = f.make_user()
    f.add_member(s.org, member)
    svc.appoint_reviewer(s.owner, s.challenge, member.email)
    assert "Reviewers of this challenge may not take part" in _refused(fi, member, s.challenge).message


def test_bad_input_over_http_gives_form_errors_not_500(f, fi, client, auth):
    s = fi.challenge()
    u = f.make_user()
    auth.login(u.email)
    url = f"/challenges/{s.challenge.id}/ideas/new"
    r = client.post(url, data={k: v for k, v in fi.form(s.challenge).items() if k != "accept_terms"})
    assert r.status_code == 400 and b"accept the terms" in r.data
    r = client.post(url, data=fi.form(s.challenge, title=""))
    assert r.status_code == 400 and b"Give the idea a title." in r.data
    r = client.post(url, data=fi.form(s.challenge, submission_key=""))
    assert r.status_code == 400 and b"reload the page" in r.data
    r = client.post(url, data=fi.form(s.challenge, terms_version="2"))
    assert r.status_code == 409 and b"not the current terms" in r.data
    assert count(Idea) == 0


def test_refusal_is_shown_up_front_on_the_challenge_page(f, fi, client, auth):
    s = fi.challenge(rules={"blocked_domains": "blocked.test"})
    u = f.make_user(email="me@blocked.test")
    auth.login(u.email)
    page = client.get(f"/challenges/{s.challenge.id}")
    assert b"You cannot submit an idea" in page.data and b"blocked e-mail domains" in page.data
    assert s.terms.digest.encode() in page.data


# --------------------------------------------------------------------------- co-authors


def test_coauthors_must_each_accept_before_the_idea_counts(f, fi):
    s = fi.challenge()
    lead, c1, c2 = f.make_user(), f.make_user(), f.make_user()
    idea = fi.submit(lead, s.challenge, coauthors=f"{c1.email}\n{c2.email}")
    assert idea.status == "awaiting-coauthors" and idea.submitted_at is None
    assert count(Notification, Notification.user_id == c1.id) == 1
    assert not policy.can(s.owner, "view", idea)  # not submitted: not even the organisation sees it
    assert policy.can(c1, "view", idea)  # a named co-author sees what they are asked to accept
    data = fi.submission(s.challenge)
    svc.accept_coauthorship(c1, idea, data)
    assert reload(idea).status == "awaiting-coauthors"
    svc.accept_coauthorship(c2, idea, data)
    idea = reload(idea)
    assert idea.status == "submitted" and idea.submitted_at is not None
    accs = db.session.execute(select(TermsAcceptance).where(TermsAcceptance.idea_id == idea.id)).scalars().all()
    assert sorted(a.purpose for a in accs) == ["co-author", "co-author", "submission"]
    assert all(a.content_hash == idea.content_hash for a in accs)
    assert policy.can(s.owner, "view", idea)


def test_coauthor_decline_completes_the_submission(f, fi):
    s = fi.challenge()
    lead, c1 = f.make_user(), f.make_user()
    idea = fi.submit(lead, s.challenge, coauthors=c1.email)
    svc.decline_coauthorship(c1, idea)
    idea = reload(idea)
    assert idea.status == "submitted" and not policy.can(c1, "view", idea)


def test_coauthor_must_accept_the_current_terms(f, fi):
    s = fi.challenge()
    lead, c1 = f.make_user(), f.make_user()
    idea = fi.submit(lead, s.challenge, coauthors=c1.email)
    old = fi.submission(s.challenge)
    fi.set_terms(s.owner, s.challenge, territory="EU.")
    with pytest.raises(ServiceError) as ei:
        svc.accept_coauthorship(c1, idea, old)
    db.session.rollback()
    assert ei.value.status == 409
    svc.accept_coauthorship(c1, idea, fi.submission(s.challenge))
    assert reload(idea).status == "submitted"


@pytest.mark.parametrize("rules, expected", [
    ({"team_allowed": False}, "takes no team submissions"),
    ({"team_allowed": True, "max_team_size": 2}, "at most 2 people"),
])
def test_team_rules(f, fi, rules, expected):
    s = fi.challenge(rules=rules)
    lead, c1, c2 = f.make_user(), f.make_user(), f.make_user()
    e = _refused(fi, lead, s.challenge, coauthors=f"{c1.email}, {c2.email}")
    assert expected in e.message


def test_coauthor_addresses_are_checked_by_what_the_address_shows(f, fi):
    s = fi.challenge(rules={"blocked_domains": "rival.test"})
    lead = f.make_user()
    bad = f.make_user(email="spy@rival.test")
    assert "cannot be a co-author" in _refused(fi, lead, s.challenge, coauthors=bad.email).message
    # The same refusal whether or not the blocked address has an account.
    assert "cannot be a co-author" in _refused(fi, lead, s.challenge, coauthors="ghost@rival.test").message
    assert "not an e-mail address" in _refused(fi, lead, s.challenge, coauthors="not-an-address").message
    assert "lead author" in _refused(fi, lead, s.challenge, coauthors=lead.email).message


# --------------------------------------------------------------------------- revisions and withdrawal


def test_revision_keeps_history_and_needs_current_terms(f, fi, client, auth):
    s = fi.challenge(confidentiality="open")
    u = f.make_user()
    idea = fi.submit(u, s.challenge, title="First")
    fi.set_terms(s.owner, s.challenge, territory="EU.")  # v2: the revision must accept it
    with pytest.raises(ServiceError) as ei:
        svc.revise_idea(u, idea, {**fi.submission(s.challenge, title="Second"), "terms_version": "1",
                                  "terms_digest": s.terms.digest})
    db.session.rollback()
    assert ei.value.status == 409
    svc.revise_idea(u, reload(idea), fi.submission(s.challenge, title="Second"))
    idea = reload(idea)
    assert idea.revision == 2 and idea.title == "Second" and idea.terms.version == 2
    revs = svc.revisions_of(idea)
    assert [(r.number, r.title, r.terms.version) for r in revs] == [(2, "Second", 2), (1, "First", 1)]
    accs = db.session.execute(select(TermsAcceptance).where(TermsAcceptance.idea_id == idea.id)
                              .order_by(TermsAcceptance.id)).scalars().all()
    assert [(a.purpose, a.idea_revision, a.terms_version) for a in accs] == [("submission", 1, 1), ("revision", 2, 2)]
    auth.login(u.email)
    r = client.get(f"/ideas/{idea.id}/revisions/1")
    assert r.status_code == 200 and b"First" in r.data
    with pytest.raises(ServiceError) as ei:
        svc.revise_idea(u, idea, fi.submission(s.challenge, title="Second"))
    db.session.rollback()
    assert "Nothing changed" in ei.value.message


def test_no_revision_or_withdrawal_after_the_deadline(f, fi):
    s = fi.challenge()
    u = f.make_user()
    idea = fi.submit(u, s.challenge)
    s.challenge.deadline = utcnow() - timedelta(seconds=1)
    db.session.commit()
    with pytest.raises(ServiceError) as ei:
        svc.revise_idea(u, idea, fi.submission(s.challenge, title="Late"))
    db.session.rollback()
    assert "deadline passed" in ei.value.message
    with pytest.raises(ServiceError) as ei:
        svc.withdraw_idea(u, idea)
    db.session.rollback()
    assert "deadline passed" in ei.value.message
    assert reload(idea).status == "submitted" and reload(idea).revision == 1


def test_sealed_stays_sealed_when_terms_open_up(f, fi):
    s = fi.challenge(confidentiality="sealed")
    u = f.make_user()
    idea = fi.submit(u, s.challenge)
    fi.set_terms(s.owner, s.challenge, confidentiality="open")
    svc.revise_idea(u, idea, fi.submission(s.challenge, title="Changed"))
    idea = reload(idea)
    assert idea.confidentiality == "sealed"
    assert not policy.can(f.make_user(), "view", idea)


def test_terms_change_notifies_those_who_accepted(f, fi):
    s = fi.challenge()
    u = f.make_user()
    fi.submit(u, s.challenge)
    fi.set_terms(s.owner, s.challenge, territory="EU.")
    n = db.session.execute(select(Notification).where(Notification.user_id == u.id,
                                                      Notification.kind == "terms.changed")).scalar_one()
    assert "version 2" in n.message


def test_withdraw_by_lead_only(f, fi, client, auth):
    s = fi.challenge()
    lead, co = f.make_user(), f.make_user()
    idea = fi.submit(lead, s.challenge, coauthors=co.email)
    svc.accept_coauthorship(co, idea, fi.submission(s.challenge))
    auth.login(co.email)
    assert client.post(f"/ideas/{idea.id}/withdraw").status_code == 403
    auth.logout()
    auth.login(lead.email)
    assert client.post(f"/ideas/{idea.id}/withdraw").status_code == 302
    assert reload(idea).status == "withdrawn"
    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "idea.withdrawn")).scalar_one()


def test_mine_lists_ideas_and_receipts(f, fi, client, auth):
    s = fi.challenge()
    u = f.make_user()
    idea = fi.submit(u, s.challenge, title="Mine for sure")
    auth.login(u.email)
    r = client.get("/ideas/mine")
    assert r.status_code == 200 and b"Mine for sure" in r.data and b"receipts/" in r.data
    assert count(IdeaAttachment) == 0 and idea.id
