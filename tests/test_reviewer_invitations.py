"""Outside judges invited by e-mail: the organisation gets the same answer whether or not the
address has an account; the mailed single-use link lets its owner register (the address is
then verified), accept and land on the reviewer NDA; expiry, reuse, the wrong account,
revoking and declining; members of the organisation are still appointed at once."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace import audit, policy
from marketplace.extensions import db
from marketplace.models import OutgoingMail, ReviewerAppointment, ReviewerInvitation, User
from marketplace.services import ideas as svc
from marketplace.services.common import ServiceError
from marketplace.services.invitations import hash_token

from .factories import PASSWORD
from .factories_ideas import IdeaFactories

NDA = "I keep every idea confidential."


@pytest.fixture
def s(f):
    return IdeaFactories(f).challenge(visibility="invited", confidentiality="sealed",
                                      rules={"who_may_submit": "invited"})


def _token(address: str) -> str:
    body = db.session.execute(select(OutgoingMail.body).where(OutgoingMail.to_email == address)
                              .order_by(OutgoingMail.id.desc())).scalars().first()
    return re.search(r"/invitations/r/([A-Za-z0-9_-]+)", body).group(1)


def _appointments() -> int:
    return db.session.execute(select(func.count(ReviewerAppointment.id))).scalar_one()


def _strip(html: str, address: str) -> str:
    html = html.replace(address, "ADDRESS")
    html = re.sub(r'name="csrf_token"[^>]*>', "", html)
    html = re.sub(r"reviewer-invitations/\d+/", "reviewer-invitations/N/", html)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d \w+", "TIME", html)


def test_answer_is_the_same_with_and_without_account(f, s, client, auth):
    existing = f.make_user(name="Has Account")
    auth.login(s.owner.email)
    client.get("/")
    answers = []
    for address in (existing.email, "nobody.yet@judge.test"):
        r = client.post(f"/challenges/{s.challenge.id}/reviewers",
                        data={"r-email": address, "r-nda_text": NDA, "r-submit": "y"})
        page = client.get(r.headers["Location"]).data.decode()
        flash = re.search(r'flash-success" role="status">(.*?)</div>', page).group(1)
        row = re.search(r'<tr data-state="pending"><td>' + re.escape(address) + r"</td>.*?</tr>", page, re.S).group(0)
        answers.append((r.status_code, r.headers["Location"], _strip(flash, address), _strip(row, address)))
    assert answers[0] == answers[1]
    assert "Invitation mailed to ADDRESS" in answers[0][2]
    assert _appointments() == 0  # nobody is a reviewer before accepting
    for address in (existing.email, "nobody.yet@judge.test"):
        inv = db.session.execute(select(ReviewerInvitation).where(ReviewerInvitation.email == address)).scalar_one()
        assert inv.token_hash == hash_token(_token(address))
    mail = db.session.execute(select(OutgoingMail).where(OutgoingMail.to_email == "nobody.yet@judge.test")).scalar_one()
    assert mail.secret and mail.kind == "invitation.reviewer"
    assert s.challenge.title in mail.body and s.org.name in mail.body
    # A second invitation to a pending address is refused, the same way for both.
    with pytest.raises(ServiceError) as ei:
        svc.appoint_reviewer(s.owner, s.challenge, "nobody.yet@judge.test", NDA)
    assert ei.value.status == 409


def test_members_are_appointed_at_once(f, s):
    member = f.make_user()
    f.add_member(s.org, member)
    appt = svc.appoint_reviewer(s.owner, s.challenge, member.email)
    assert isinstance(appt, ReviewerAppointment) and appt.kind == "member"
    assert db.session.execute(select(func.count(ReviewerInvitation.id))).scalar_one() == 0


def test_draft_challenge_is_not_named_in_the_mail(f, s):
    s.challenge.status = "draft"
    db.session.commit()
    svc.appoint_reviewer(s.owner, s.challenge, "judge@judge.test", NDA)
    mail = db.session.execute(select(OutgoingMail)).scalar_one()
    assert s.challenge.title not in mail.body and s.challenge.title not in (mail.html_body or "")
    assert s.challenge.title not in mail.subject and s.org.name in mail.body


def test_new_person_registers_from_the_link_and_lands_on_the_nda(s, client):
    svc.appoint_reviewer(s.owner, s.challenge, "brand.new@judge.test", NDA)
    token = _token("brand.new@judge.test")
    page = client.get(f"/invitations/r/{token}").data.decode()
    assert f"/auth/register?next=/invitations/r/{token}" in page
    assert s.challenge.title not in page  # not before the invitee is signed in
    r = client.post(f"/auth/register?next=/invitations/r/{token}",
                    data={"email": "brand.new@judge.test", "display_name": "Brand New",
                          "password": PASSWORD, "confirm": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/invitations/r/{token}")
    user = db.session.execute(select(User).where(User.email == "brand.new@judge.test")).scalar_one()
    assert user.email_verified_at is not None
    assert db.session.execute(select(func.count(OutgoingMail.id)).where(
        OutgoingMail.to_email == "brand.new@judge.test")).scalar_one() == 1  # no verification mail
    page = client.get(f"/invitations/r/{token}").data.decode()
    assert "Accept invitation" in page and s.challenge.title in page
    r = client.post(f"/invitations/r/{token}/accept")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/challenges/{s.challenge.id}/reviewer-nda")
    assert NDA in client.get(r.headers["Location"]).data.decode()
    policy.forget_viewer()
    appt = policy.reviewer_appointment(policy.viewer_for(user), s.challenge.id)
    assert appt.kind == "judge" and appt.nda_text == NDA and appt.appointed_by_id == s.owner.id
    assert policy.can(user, "view", s.challenge)
    # Reused: the link works once.
    r = client.post(f"/invitations/r/{token}/accept")
    assert r.status_code == 410 and "already been used" in r.data.decode()
    assert audit.verify_chain().ok


def test_existing_account_signs_in_and_accepts(f, s, client, auth):
    judge = f.make_user(name="Jude")
    svc.appoint_reviewer(s.owner, s.challenge, judge.email.upper(), NDA)
    token = _token(judge.email)
    r = client.post(f"/invitations/r/{token}/accept")
    assert r.status_code == 302 and f"/auth/login?next=/invitations/r/{token}" in r.headers["Location"]
    auth.login(judge.email)
    r = client.post(f"/invitations/r/{token}/accept")
    assert r.headers["Location"].endswith(f"/challenges/{s.challenge.id}/reviewer-nda")
    assert _appointments() == 1


def test_wrong_account_expired_revoked_and_declined(f, s, client, auth):
    other = f.make_user()
    svc.appoint_reviewer(s.owner, s.challenge, "a@judge.test", NDA)
    token = _token("a@judge.test")
    auth.login(other.email)
    r = client.post(f"/invitations/r/{token}/accept")
    assert r.status_code == 403 and "a•••@judge.test" in r.data.decode()
    assert _appointments() == 0
    auth.logout()

    inv = db.session.execute(select(ReviewerInvitation).where(ReviewerInvitation.email == "a@judge.test")).scalar_one()
    inv.expires_at = inv.created_at - timedelta(seconds=1)
    db.session.commit()
    assert client.get(f"/invitations/r/{token}").status_code == 410
    assert svc.reviewer_link_address(token) is None  # an expired link proves nothing

    svc.appoint_reviewer(s.owner, s.challenge, "b@judge.test", NDA)
    token_b = _token("b@judge.test")
    inv_b = db.session.execute(select(ReviewerInvitation).where(ReviewerInvitation.email == "b@judge.test")).scalar_one()
    auth.login(s.owner.email)
    assert client.post(f"/challenges/{s.challenge.id}/reviewer-invitations/{inv_b.id}/revoke").status_code == 302
    auth.logout()
    r = client.get(f"/invitations/r/{token_b}")
    assert r.status_code == 410 and "withdrawn" in r.data.decode()

    svc.appoint_reviewer(s.owner, s.challenge, "c@judge.test", NDA)
    token_c = _token("c@judge.test")
    assert client.post(f"/invitations/r/{token_c}/decline").status_code == 302  # no account needed
    assert client.post(f"/invitations/r/{token_c}/accept").status_code == 302  # to sign in
    assert client.get(f"/invitations/r/{token_c}").status_code == 410
    assert _appointments() == 0


def test_revoking_an_accepted_invitation_removes_the_judge(f, s):
    judge = f.make_user()
    inv = svc.appoint_reviewer(s.owner, s.challenge, judge.email, NDA)
    appt = svc.accept_reviewer_invitation(judge, _token(judge.email))
    svc.revoke_reviewer_invitation(s.owner, db.session.get(ReviewerInvitation, inv.id))
    assert db.session.get(ReviewerAppointment, appt.id).revoked_at is not None
    policy.forget_viewer()
    assert not policy.can(judge, "view", s.challenge)
    with pytest.raises(ServiceError) as ei:
        svc.revoke_reviewer_invitation(s.owner, db.session.get(ReviewerInvitation, inv.id))
    assert ei.value.status == 409


def test_my_invitations_lists_a_pending_reviewer_invitation_to_its_invitee_only(f, s, client, auth):
    """The invitee sees it on "My invitations" (the challenge named only where the invitation
    may reveal it); the rule's SQL form agrees with its check for the invitee, the challenge's
    admin and an outsider."""
    judge, outsider = f.make_user(name="Jo Judge"), f.make_user()
    inv = svc.appoint_reviewer(s.owner, s.challenge, judge.email, NDA)
    for user, expected in ((judge, True), (s.owner, True), (outsider, False)):
        listed = db.session.execute(policy.visible(user, ReviewerInvitation)).scalars().all()
        assert (inv in listed) is expected and policy.can(user, "view", inv) is expected
    auth.login(judge.email)
    page = client.get("/invitations/").data.decode()
    assert "invited you to review" in page and s.challenge.organisation.name in page
    assert (s.challenge.title in page) is svc.reviewer_invitation_names_challenge(judge, inv)
    auth.logout()
    auth.login(outsider.email)
    assert "invited you to review" not in client.get("/invitations/").data.decode()
    auth.logout()
    svc.accept_reviewer_invitation(judge, inv.token)  # accepted: no longer pending
    auth.login(judge.email)
    assert "invited you to review" not in client.get("/invitations/").data.decode()


def test_an_invited_judge_with_a_confirmed_account_accepts_on_the_site(f, s, client, auth):
    """Signed in with the invited, confirmed address, "Challenges you review" offers the
    invitation; accepting leads to the reviewer NDA. An unconfirmed address needs the link,
    and nobody else can accept it."""
    judge, other = f.make_user(name="Jo Judge"), f.make_user()
    inv = svc.appoint_reviewer(s.owner, s.challenge, judge.email, NDA)
    auth.login(other.email)
    client.get("/ideas/reviewing")
    assert client.post(f"/ideas/reviewing/invitations/{inv.id}/accept").status_code == 404
    auth.logout()
    judge.email_verified_at = None
    db.session.commit()
    auth.login(judge.email)
    page = client.get("/ideas/reviewing").data.decode()
    assert "Confirm your e-mail address first" in page and "Accept the invitation to review" not in page
    assert client.post(f"/ideas/reviewing/invitations/{inv.id}/accept").status_code == 403
    assert _appointments() == 0
    from marketplace.models import utcnow
    db.session.get(User, judge.id).email_verified_at = utcnow()
    db.session.commit()
    page = client.get("/ideas/reviewing").data.decode()
    assert "Accept the invitation to review" in page
    r = client.post(f"/ideas/reviewing/invitations/{inv.id}/accept")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/challenges/{s.challenge.id}/reviewer-nda")
    assert _appointments() == 1 and db.session.get(ReviewerInvitation, inv.id).accepted_at is not None
    assert "Accept the invitation to review" not in client.get("/ideas/reviewing").data.decode()
