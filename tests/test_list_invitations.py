"""Invitation lists by e-mail: a curator invites an address (account or not), a single-use
expiring link is mailed (its token kept only hashed); registering from it confirms the
address and the person accepts; declining, revoking, expiry, reuse and the wrong account."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace import audit, policy
from marketplace.extensions import db
from marketplace.models import AuditEvent, Item, ListInvitation, ListMember, ListShare, OutgoingMail, User, utcnow
from marketplace.services import lists as svc
from marketplace.services.common import ServiceError
from marketplace.services.invitations import hash_token

from .factories import PASSWORD
from .factories_invitations import make_world


@pytest.fixture
def w(f):
    return make_world(f)


@pytest.fixture
def shared(w, f):
    lst = f.make_list(w.cluster, name="Trusted experts")
    db.session.add(ListShare(list_id=lst.id, org_id=w.acme.id))
    db.session.commit()
    f.attach_list(w.item, lst)
    return lst


def _token(address: str) -> str:
    body = db.session.execute(select(OutgoingMail.body).where(OutgoingMail.to_email == address)
                              .order_by(OutgoingMail.id.desc())).scalars().first()
    return re.search(r"/invitations/l/([A-Za-z0-9_-]+)", body).group(1)


def _sees(user, item) -> bool:
    policy.forget_viewer()
    return policy.can(user, "view", item)


def _strip_volatile(html: str, address: str) -> str:
    html = html.replace(address, "ADDRESS")
    html = re.sub(r'name="csrf_token"[^>]*>', "", html)
    html = re.sub(r"/invitations/\d+/", "/invitations/N/", html)
    return re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d \w+", "TIME", html)


def test_curator_answer_is_the_same_for_an_address_with_and_without_account(w, client, auth, shared):
    auth.login(w.curator.email)
    client.get("/")  # the sign-in message is shown and gone
    answers = []
    for address in (w.guest.email, "nobody.yet@expert.test"):
        r = client.post(f"/lists/{shared.id}/members", data={"email": address})
        page = client.get(r.headers["Location"]).data.decode()
        flash = re.search(r'flash-success" role="status">(.*?)</div>', page).group(1)
        row = re.search(r"<tr data-state[^>]*>\s*<td>" + re.escape(address) + r"</td>.*?</tr>", page, re.S).group(0)
        answers.append((r.status_code, r.headers["Location"], _strip_volatile(flash, address),
                        _strip_volatile(row, address)))
    assert answers[0] == answers[1]
    assert "Invitation mailed to ADDRESS" in answers[0][2] and "not answered yet" in answers[0][3]
    # Nobody is on the list before accepting, and only hashes are stored.
    assert db.session.execute(select(func.count(ListMember.id))).scalar_one() == 0
    for address in (w.guest.email, "nobody.yet@expert.test"):
        token = _token(address)
        inv = db.session.execute(select(ListInvitation).where(ListInvitation.email == address)).scalar_one()
        assert inv.token_hash == hash_token(token)
        assert token not in " ".join(db.session.execute(select(AuditEvent.data)).scalars())
        assert address not in " ".join(db.session.execute(select(AuditEvent.data)).scalars())


def test_mail_names_the_list_never_the_items_it_opens(w, ctx, shared):
    svc.invite_to_list(w.curator, shared, "new.person@expert.test")
    mail = db.session.execute(select(OutgoingMail)).scalar_one()
    assert mail.secret and mail.kind == "invitation.list"
    assert "Trusted experts" in mail.body and w.cluster.name in mail.body
    assert w.item.title not in mail.body and w.item.title not in mail.html_body


def test_new_person_registers_from_the_link_verified_and_joins(w, client, shared, ctx):
    svc.invite_to_list(w.curator, shared, "brand.new@expert.test")
    token = _token("brand.new@expert.test")
    page = client.get(f"/invitations/l/{token}").data.decode()
    assert f"/auth/register?next=/invitations/l/{token}" in page
    r = client.post(f"/auth/register?next=/invitations/l/{token}",
                    data={"email": "brand.new@expert.test", "display_name": "Brand New",
                          "password": PASSWORD, "confirm": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/invitations/l/{token}")
    user = db.session.execute(select(User).where(User.email == "brand.new@expert.test")).scalar_one()
    assert user.email_verified_at is not None
    # No verification mail: the link proved the address.
    assert db.session.execute(select(func.count(OutgoingMail.id)).where(
        OutgoingMail.to_email == "brand.new@expert.test")).scalar_one() == 1
    assert "Accept invitation" in client.get(f"/invitations/l/{token}").data.decode()
    assert not _sees(user, w.item)
    r = client.post(f"/invitations/l/{token}/accept")
    assert r.status_code == 302 and r.headers["Location"].endswith("/invitations/")
    assert _sees(user, w.item)
    assert w.item.title.encode() in client.get("/invitations/").data
    # Reused: the link works once.
    r = client.post(f"/invitations/l/{token}/accept")
    assert r.status_code == 410 and "already been used" in r.data.decode()
    assert audit.verify_chain().ok


def test_existing_account_signs_in_and_accepts(w, client, auth, shared, ctx):
    svc.invite_to_list(w.curator, shared, w.guest.email.upper())
    token = _token(w.guest.email)
    r = client.post(f"/invitations/l/{token}/accept")
    assert r.status_code == 302 and f"/auth/login?next=/invitations/l/{token}" in r.headers["Location"]
    auth.login(w.guest.email)
    assert client.post(f"/invitations/l/{token}/accept").status_code == 302
    assert _sees(w.guest, w.item)


def test_wrong_account_expired_revoked_and_unknown_links(w, f, client, auth, shared, ctx):
    inv = svc.invite_to_list(w.curator, shared, "someone@expert.test")
    token = _token("someone@expert.test")
    auth.login(w.guest.email)
    r = client.get(f"/invitations/l/{token}")
    assert r.status_code == 403 and "s•••@expert.test" in r.data.decode() and "someone@" not in r.data.decode()
    assert client.post(f"/invitations/l/{token}/accept").status_code == 403
    assert client.post(f"/invitations/l/{token}/decline").status_code == 403
    auth.logout()
    assert client.get("/invitations/l/not-a-token").status_code == 404
    inv.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    r = client.get(f"/invitations/l/{token}")
    assert r.status_code == 410 and "expired" in r.data.decode()
    with pytest.raises(ServiceError):
        svc.accept_list_invitation(f.make_user(email="someone@expert.test"), token)
    # Revoked: the link stops working.
    svc.invite_to_list(w.curator, shared, "other@expert.test")
    token2 = _token("other@expert.test")
    inv2 = svc.find_list_invitation(token2)
    svc.revoke_list_invitation(w.curator, inv2)
    r = client.get(f"/invitations/l/{token2}")
    assert r.status_code == 410 and "withdrawn" in r.data.decode()
    assert svc.list_link_address(token2) is None  # registering from it proves nothing now


def test_decline_without_account_and_duplicate_refused(w, client, shared, ctx):
    svc.invite_to_list(w.curator, shared, "twice@expert.test")
    with pytest.raises(ServiceError) as e:
        svc.invite_to_list(w.curator, shared, "TWICE@expert.test")
    assert e.value.status == 409
    token = _token("twice@expert.test")
    assert client.post(f"/invitations/l/{token}/decline").status_code == 302
    assert client.get(f"/invitations/l/{token}").status_code == 410
    # Once declined, a new invitation may be sent.
    svc.invite_to_list(w.curator, shared, "twice@expert.test")


def test_revoking_an_accepted_invitation_takes_them_off_the_list(w, client, auth, shared, ctx):
    inv = svc.invite_to_list(w.curator, shared, w.guest.email)
    svc.accept_list_invitation(w.guest, _token(w.guest.email))
    assert _sees(w.guest, w.item)
    auth.login(w.curator.email)
    page = client.get(f"/lists/{shared.id}").data.decode()
    assert w.guest.email in page and "Revoke" in page
    assert client.post(f"/lists/{shared.id}/invitations/{inv.id}/revoke").status_code == 302
    assert not _sees(w.guest, w.item)
    assert client.post(f"/lists/{shared.id}/invitations/{inv.id}/revoke").status_code == 409


def test_who_sees_and_revokes_a_list_invitation(w, f, client, auth, shared, ctx):
    inv = svc.invite_to_list(w.curator, shared, "pending@expert.test")
    # Acme's admin (the list is shared with Acme) sees the list, not the invitations.
    auth.login(w.admin.email)
    page = client.get(f"/lists/{shared.id}")
    assert page.status_code == 200 and b"pending@expert.test" not in page.data
    assert client.post(f"/lists/{shared.id}/invitations/{inv.id}/revoke").status_code == 404
    assert not policy.can(w.admin, "view", inv) and not policy.can(w.admin, "revoke", inv)
    assert policy.can(w.curator, "revoke", inv)
    invitee = f.make_user(email="pending@expert.test")
    assert policy.can(invitee, "view", inv) and policy.can(invitee, "accept", inv)
    assert not policy.can(invitee, "revoke", inv)
    for u in (w.admin, w.curator, invitee, w.guest):
        ids = set(db.session.execute(policy.visible(u, ListInvitation).with_only_columns(ListInvitation.id)).scalars())
        assert (inv.id in ids) == policy.can(u, "view", inv)
    with pytest.raises(ServiceError) as e:
        svc.invite_to_list(w.admin, shared, "x@expert.test")
    assert e.value.status == 403


def test_api_add_member_by_email_mails_an_invitation_with_the_same_answer(w, client, shared):
    from marketplace.services import tokens as token_svc

    _t, text = token_svc.create_personal_token(w.curator, "ci", ["read", "lists:write"], None)
    headers = {"Authorization": f"Bearer {text}"}
    answers = []
    for address in (w.guest.email, "api.nobody@expert.test"):
        r = client.post(f"/api/v1/lists/{shared.id}/members", json={"email": address}, headers=headers)
        body = r.get_json()
        answers.append((r.status_code, sorted(body), body["state"], body["message"].replace(address, "ADDRESS")))
        assert db.session.execute(select(ListInvitation).where(ListInvitation.email == address)).scalar_one()
    assert answers[0] == answers[1] and answers[0][0] == 202
    assert db.session.execute(select(func.count(ListMember.id))).scalar_one() == 0
    r = client.post(f"/api/v1/lists/{shared.id}/members", json={"email": "api.nobody@expert.test"}, headers=headers)
    assert r.status_code == 409
