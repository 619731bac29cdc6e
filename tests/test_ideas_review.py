"""Review and award: reviewers, NDA for outside judges, the sealed-view log, scores, private
notes, shortlist/decline/award, payment and the IP transfer event, disqualification."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import (AccessGrant, AuditEvent, IdeaAward, ModerationAction, OutgoingMail,
                                ReviewerAppointment, ReviewerInvitation, SealedViewLog)
from marketplace.services import ideas as svc
from marketplace.services.common import ServiceError

from .factories_ideas import IdeaFactories, reload


@pytest.fixture
def fi(f):
    return IdeaFactories(f)


def _reviewer_token(address: str) -> str:
    body = db.session.execute(select(OutgoingMail.body).where(OutgoingMail.to_email == address)
                              .order_by(OutgoingMail.id.desc())).scalars().first()
    return re.search(r"/invitations/r/([A-Za-z0-9_-]+)", body).group(1)


def events(action):
    return db.session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars().all()


@pytest.fixture
def world(f, fi):
    """An invited, sealed challenge with criteria, a member reviewer and a submitted idea."""
    s = fi.challenge(visibility="invited", confidentiality="sealed",
                     rules={"who_may_submit": "invited"}, ip_model="assignment-on-award")
    author = f.make_user(name="Ann Author")
    f.grant(s.challenge, user=author)
    reviewer = f.make_user(name="Rita Reviewer")
    f.add_member(s.org, reviewer)
    svc.appoint_reviewer(s.owner, s.challenge, reviewer.email)
    c1 = svc.add_criterion(s.owner, s.challenge, "Feasibility", 3)
    c2 = svc.add_criterion(s.owner, s.challenge, "Cost", 1)
    idea = fi.submit(author, s.challenge, title="Sealed idea")
    return s, author, reviewer, idea, (c1, c2)


def test_appointments_are_audited(world):
    s, author, reviewer, idea, _ = world
    ev = events("reviewer.appointed")[0]
    assert ev.item_id == s.challenge.id and json.loads(ev.data)["kind"] == "member"


def test_outside_judge_needs_the_nda_and_gets_access(f, fi, world, client, auth):
    s, author, reviewer, idea, _ = world
    judge = f.make_user(name="Jude Judge")
    with pytest.raises(ServiceError) as ei:
        svc.appoint_reviewer(s.owner, s.challenge, judge.email, "")
    db.session.rollback()
    assert "NDA" in ei.value.message
    inv = svc.appoint_reviewer(s.owner, s.challenge, judge.email, "I keep it all secret.")
    # An outside judge is invited by mail and appointed when they take the invitation up.
    assert isinstance(inv, ReviewerInvitation) and not policy.can(judge, "view", s.challenge)
    appt = svc.accept_reviewer_invitation(judge, _reviewer_token(judge.email))
    policy.forget_viewer()
    assert appt.kind == "judge" and appt.grant_id is not None
    assert policy.can(judge, "view", s.challenge)  # granted access to the invited challenge
    assert not policy.can(judge, "view", idea)  # but no sealed ideas before the NDA
    auth.login(judge.email)
    assert client.get(f"/ideas/{idea.id}").status_code == 404
    # Not a bare 403: the judge is sent to the NDA they have to accept.
    r = client.get(f"/challenges/{s.challenge.id}/review")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/challenges/{s.challenge.id}/reviewer-nda")
    r = client.post(f"/challenges/{s.challenge.id}/reviewer-nda", data={"nda_digest": appt.nda_digest, "accept": "y"})
    assert r.status_code == 302
    assert policy.can(judge, "view", reload(idea))
    assert client.get(f"/ideas/{idea.id}").status_code == 200
    assert events("reviewer.nda_accepted")
    svc.revoke_reviewer(s.owner, reload(appt))
    assert db.session.get(AccessGrant, appt.grant_id).revoked_at is not None
    assert not policy.can(judge, "view", reload(idea)) and not policy.can(judge, "view", reload(s.challenge))


def test_judges_cannot_review_organisation_only_challenges_and_contributors_cannot_review(f, fi, world):
    s, author, reviewer, idea, _ = world
    private = fi.challenge(visibility="organisation", owner=s.owner, org=s.org)
    with pytest.raises(ServiceError) as ei:
        svc.appoint_reviewer(s.owner, private.challenge, f.make_user().email, "NDA")
    db.session.rollback()
    assert "organisation-only" in ei.value.message
    # An author (outside the organisation) is invited like anyone else: refusing at once would
    # tell the organisation the address has an account. Taking the invitation up is refused.
    svc.appoint_reviewer(s.owner, s.challenge, author.email, "NDA")
    with pytest.raises(ServiceError) as ei:
        svc.accept_reviewer_invitation(author, _reviewer_token(author.email))
    db.session.rollback()
    assert "taken part" in ei.value.message
    assert policy.reviewer_appointment(policy.viewer_for(author), s.challenge.id) is None


def test_reviewer_views_of_sealed_ideas_are_logged_and_shown_to_authors(f, world, client, auth):
    s, author, reviewer, idea, _ = world
    auth.login(reviewer.email)
    assert client.get(f"/ideas/{idea.id}").status_code == 200
    auth.logout()
    rows = db.session.execute(select(SealedViewLog)).scalars().all()
    assert [(r.viewer_id, r.role, r.what) for r in rows] == [(reviewer.id, "reviewer", "idea")]
    auth.login(author.email)
    page = client.get(f"/ideas/{idea.id}")
    assert b"Who opened this sealed idea" in page.data and b"Rita Reviewer" in page.data
    assert len(db.session.execute(select(SealedViewLog)).scalars().all()) == 1  # authors' own views are not logged


def test_scores_are_weighted_and_notes_private(f, world, client, auth):
    s, author, reviewer, idea, (c1, c2) = world
    svc.score_idea(reviewer, idea, {c1.id: 10, c2.id: 2})
    assert reload(idea).status == "under-review"
    summary = svc.score_summary(idea)
    assert summary["weighted"] == pytest.approx((3 * 10 + 1 * 2) / 4)
    svc.add_note(reviewer, idea, "Secret thought: the cost is a worry.")
    with pytest.raises(ServiceError):
        svc.score_idea(reviewer, idea, {c1.id: 11})
    db.session.rollback()
    with pytest.raises(ServiceError):
        svc.score_idea(author, idea, {c1.id: 10})  # authors never score their own idea
    db.session.rollback()
    auth.login(author.email)
    page = client.get(f"/ideas/{idea.id}")
    assert b"Secret thought" not in page.data and b"Weighted score" not in page.data
    auth.logout()
    other_reviewer = f.make_user()
    f.add_member(s.org, other_reviewer)
    svc.appoint_reviewer(s.owner, s.challenge, other_reviewer.email)
    auth.login(other_reviewer.email)
    page = client.get(f"/ideas/{idea.id}")
    assert b"Weighted score" in page.data and b"Secret thought" not in page.data
    auth.logout()
    auth.login(reviewer.email)
    page = client.get(f"/ideas/{idea.id}")
    assert b"Secret thought" in page.data


def test_notes_and_scores_are_not_in_the_search_document(world):
    s, author, reviewer, idea, (c1, _) = world
    svc.add_note(reviewer, idea, "Private-note-xyzzy")
    doc = svc.search_document(idea)
    assert "xyzzy" not in json.dumps(doc, default=str)
    assert doc["type"] == "idea" and doc["title"] == "Sealed idea" and doc["org_id"] == s.org.id


def test_shortlist_decline_with_reason(f, fi, world, client, auth):
    s, author, reviewer, idea, _ = world
    auth.login(reviewer.email)
    r = client.post(f"/ideas/{idea.id}/decline", data={"reason": ""})
    assert r.status_code == 400
    # Without the page's confirmation the server asks first, and nothing changes yet.
    r = client.post(f"/ideas/{idea.id}/decline", data={"reason": "Too expensive to build."})
    assert r.status_code == 200 and b"Decline the idea?" in r.data and reload(idea).status == "submitted"
    assert b'name="reason" value="Too expensive to build."' in r.data  # re-posted as it was
    r = client.post(f"/ideas/{idea.id}/decline", data={"reason": "Too expensive to build.", "confirmed": "yes"})
    assert r.status_code == 302
    idea = reload(idea)
    assert idea.status == "declined" and idea.decision_reason == "Too expensive to build."
    ev = events("idea.declined")[0]
    assert ev.item_id == s.challenge.id and json.loads(ev.data)["reason"] == "Too expensive to build."
    assert client.post(f"/ideas/{idea.id}/shortlist").status_code == 403  # a decision stands


def test_award_records_incentive_and_payment_records_ip_transfer(f, world, client, auth):
    s, author, reviewer, idea, _ = world
    auth.login(reviewer.email)
    assert client.post(f"/ideas/{idea.id}/award", data={"incentive": "0"}).status_code == 403  # not shortlisted
    assert client.post(f"/ideas/{idea.id}/shortlist").status_code == 302
    assert client.post(f"/ideas/{idea.id}/award", data={"incentive": "7"}).status_code == 400
    r = client.post(f"/ideas/{idea.id}/award", data={"incentive": "0", "note": "Great."})
    assert r.status_code == 200 and b"Award the idea?" in r.data and reload(idea).status == "shortlisted"
    assert client.post(f"/ideas/{idea.id}/award",
                       data={"incentive": "0", "note": "Great.", "confirmed": "yes"}).status_code == 302
    idea = reload(idea)
    award = db.session.execute(select(IdeaAward)).scalar_one()
    assert idea.status == "awarded" and award.incentive["kind"] == "cash-prize"
    ev = json.loads(events("idea.awarded")[0].data)
    assert ev["incentive"]["amount"] == "1000.00" and ev["ip_model"] == "assignment-on-award"
    assert not events("ip.transferred")  # the IP passes only when the award is paid
    assert client.post(f"/ideas/{idea.id}/paid").status_code == 403  # reviewers do not confirm payment
    auth.logout()
    auth.login(s.owner.email)
    assert client.post(f"/ideas/{idea.id}/paid").status_code == 302
    transfer = events("ip.transferred")
    assert len(transfer) == 1 and transfer[0].item_id == s.challenge.id
    data = json.loads(transfer[0].data)
    assert data["from_user_ids"] == [author.id] and data["to_org_id"] == s.org.id
    assert data["terms_digest"] == s.terms.digest and data["content_sha256"] == idea.content_hash
    assert client.post(f"/ideas/{idea.id}/paid").status_code == 302  # idempotent
    assert len(events("ip.transferred")) == 1


def test_cash_prize_winners_limit(f, fi, world):
    s, author, reviewer, idea, _ = world
    other = f.make_user()
    f.grant(s.challenge, user=other)
    idea2 = fi.submit(other, s.challenge)
    for i in (idea, idea2):
        svc.shortlist_idea(reviewer, reload(i))
    svc.award_idea(reviewer, reload(idea), 0)
    with pytest.raises(ServiceError) as ei:
        svc.award_idea(reviewer, reload(idea2), 0)
    db.session.rollback()
    assert "1 winner" in ei.value.message
    svc.award_idea(reviewer, reload(idea2), 1)  # recognition has no winner limit
    assert reload(idea2).status == "awarded"


def test_moderators_disqualify_with_a_reason(f, world, client, auth):
    s, author, reviewer, idea, _ = world
    mod = f.make_user(site_role="moderator")
    auth.login(reviewer.email)
    assert client.post(f"/ideas/{idea.id}/disqualify", data={"reason": "x", "rule": "Rule 1"}).status_code == 403
    auth.logout()
    auth.login(mod.email)
    # One way to disqualify: a moderation decision, which names the rule broken.
    r = client.post(f"/ideas/{idea.id}/disqualify", data={"reason": "Plagiarised."})
    assert r.status_code == 400 and b"Name the participation rule" in r.data
    assert reload(idea).status != "disqualified"
    r = client.post(f"/ideas/{idea.id}/disqualify", data={"reason": "Plagiarised.", "rule": "Rule 4: original work"})
    assert r.status_code == 302
    assert reload(idea).status == "disqualified"
    data = json.loads(events("moderation.disqualify")[0].data)
    assert data["reason"] == "Plagiarised." and data["rule"] == "Rule 4: original work"
    action = db.session.execute(select(ModerationAction)).scalar_one()
    assert policy.can(author, "appeal", action)


def test_review_dashboard_and_reviewer_list(f, world, client, auth):
    s, author, reviewer, idea, _ = world
    auth.login(reviewer.email)
    r = client.get(f"/challenges/{s.challenge.id}/review")
    assert r.status_code == 200 and b"Sealed idea" in r.data
    assert b"Feasibility" in r.data
    r = client.get("/ideas/reviewing")
    assert r.status_code == 200 and s.challenge.title.encode() in r.data
    auth.logout()
    auth.login(author.email)
    assert client.get(f"/challenges/{s.challenge.id}/review").status_code == 403
    auth.logout()
    auth.login(s.owner.email)
    page = client.get(f"/challenges/{s.challenge.id}/reviewers")
    assert page.status_code == 200 and b"Rita Reviewer" in page.data
    appt = db.session.execute(select(ReviewerAppointment)).scalars().first()
    assert client.post(f"/challenges/{s.challenge.id}/reviewers/{appt.id}/revoke").status_code == 302
    assert events("reviewer.revoked")
