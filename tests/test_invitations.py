"""E-mail invitations: sending, the token link, single use, expiry, revocation, wrong
account, decline, the grants they create and end, "My invitations", and the race."""
from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace import audit, policy
from marketplace.extensions import db
from marketplace.models import AccessGrant, AuditEvent, Invitation, Item, Notification, OutgoingMail, utcnow
from marketplace.services import invitations as svc
from marketplace.services.common import ServiceError

from .factories import PASSWORD
from .factories_invitations import make_invitation, make_world


@pytest.fixture
def w(f):
    return make_world(f)


def _link_token(text: str) -> str:
    return re.search(r"/invitations/t/([A-Za-z0-9_\-]+)", text).group(1)


def _grants(item, user, reason="invitation"):
    return db.session.execute(
        select(AccessGrant).where(AccessGrant.item_id == item.id, AccessGrant.user_id == user.id,
                                  AccessGrant.reason == reason)
    ).scalars().all()


def _sees(user, item) -> tuple[bool, bool]:
    """(per-object rule, SQL filter) for one user and item: they must always agree."""
    policy.forget_viewer()
    one = policy.can(user, "view", item)
    many = item.id in db.session.execute(policy.visible(user, Item).with_only_columns(Item.id)).scalars().all()
    return one, many


def _actions(item_id=None):
    q = select(AuditEvent.action)
    if item_id is not None:
        q = q.where(AuditEvent.item_id == item_id)
    return db.session.execute(q.order_by(AuditEvent.id)).scalars().all()


# ------------------------------------------------------------------------- sending


def test_admin_sends_invitation_link_shown_once_and_mailed_token_only_hashed(w, client, auth):
    auth.login(w.admin.email)
    r = client.post(f"/invitations/item/{w.item.id}", data={"email": " New.Person@Example.TEST ", "days": "14"})
    assert r.status_code == 201
    page = r.data.decode()
    token = _link_token(page)
    assert "only time the link is shown" in page
    inv = db.session.execute(select(Invitation)).scalar_one()
    assert inv.email == "new.person@example.test"
    assert inv.token_hash == svc.hash_token(token) and token not in inv.token_hash
    assert timedelta(days=13, hours=23) < inv.expires_at - inv.created_at <= timedelta(days=14)
    mail = db.session.execute(select(OutgoingMail)).scalar_one()
    assert mail.to_email == "new.person@example.test"
    assert f"/invitations/t/{token}" in mail.body and w.item.title in mail.body
    # The token is stored nowhere in the database: not on the row, not in the audit chain.
    assert token not in " ".join(db.session.execute(select(AuditEvent.data)).scalars())
    assert "invitation.sent" in _actions(w.item.id)
    assert "new.person@example.test" not in " ".join(db.session.execute(select(AuditEvent.data)).scalars())
    # Shown once: the management page lists the invitation but never the link again.
    again = client.get(f"/invitations/item/{w.item.id}").data.decode()
    assert "new.person@example.test" in again and token not in again


def test_item_page_shows_invitation_panel_only_to_managers(w, client, auth):
    auth.login(w.owner.email)
    assert b"Manage invitations" in client.get(f"/challenges/{w.item.id}").data
    auth.logout()
    f_member = w.member
    auth.login(f_member.email)
    page = client.get(f"/challenges/{w.item.id}")
    assert page.status_code == 200 and b"Manage invitations" not in page.data


@pytest.mark.parametrize("data, message", [
    ({"email": "not-an-address", "days": "14"}, "Enter a valid e-mail address."),
    ({"email": "", "days": "14"}, "Enter the e-mail address to invite."),
    ({"email": "a@b.test", "days": "0"}, "Use 1 to 90 days."),
    ({"email": "a@b.test", "days": "91"}, "Use 1 to 90 days."),
    ({"email": "a@b.test", "days": "soon"}, "Not a valid integer value."),
    ({"email": "a@b.test", "days": "14", "access_until": "2001-01-01T10:00"}, "The end of access must be in the future."),
])
def test_bad_invitation_input_gets_a_form_error_and_writes_nothing(w, client, auth, data, message):
    auth.login(w.owner.email)
    r = client.post(f"/invitations/item/{w.item.id}", data=data)
    assert r.status_code == 400
    assert message in r.data.decode()
    assert db.session.execute(select(func.count(Invitation.id))).scalar_one() == 0
    assert db.session.execute(select(func.count(OutgoingMail.id))).scalar_one() == 0


def test_second_pending_invitation_to_same_address_is_refused(w, client, auth):
    make_invitation(w.item, "twice@x.test", invited_by=w.owner)
    auth.login(w.owner.email)
    r = client.post(f"/invitations/item/{w.item.id}", data={"email": "TWICE@x.test", "days": "3"})
    assert r.status_code == 400 and "already has a pending invitation" in r.data.decode()
    assert db.session.execute(select(func.count(Invitation.id))).scalar_one() == 1


def test_archived_item_takes_no_new_invitations_but_revoking_still_works(w, client, auth):
    inv, _ = make_invitation(w.item, "a@x.test", invited_by=w.owner)
    w.item.status = "archived"
    db.session.commit()
    auth.login(w.owner.email)
    r = client.post(f"/invitations/item/{w.item.id}", data={"email": "b@x.test", "days": "3"})
    assert r.status_code == 400 and "Archived items are frozen" in r.data.decode()
    assert client.post(f"/invitations/{inv.id}/revoke").status_code == 302
    db.session.refresh(inv)
    assert inv.revoked_at is not None


# ------------------------------------------------------------------------- the link


def test_anonymous_link_asks_to_sign_in_without_revealing_the_item(w, client):
    inv, token = make_invitation(w.item, w.guest.email, invited_by=w.owner)
    r = client.get(f"/invitations/t/{token}")
    page = r.data.decode()
    assert r.status_code == 200
    assert w.item.title not in page
    assert "g•••@invitee.test" in page and w.acme.name in page
    assert f"/auth/login?next=/invitations/t/{token}" in page
    assert f"/auth/register?next=/invitations/t/{token}" in page
    assert r.headers["Cache-Control"] == "no-store" and r.headers["Referrer-Policy"] == "no-referrer"
    # Accepting without an account sends them to sign in and back here.
    r = client.post(f"/invitations/t/{token}/accept")
    assert r.status_code == 302 and "/auth/login?next=/invitations/t/" in r.headers["Location"]
    assert _grants(w.item, w.guest) == []


def test_person_without_account_registers_lands_back_and_accepts(w, client):
    _, token = make_invitation(w.item, "brand.new@expert.test", invited_by=w.owner)
    r = client.post(f"/auth/register?next=/invitations/t/{token}",
                    data={"email": "brand.new@expert.test", "display_name": "Brand New",
                          "password": PASSWORD, "confirm": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/invitations/t/{token}")
    page = client.get(f"/invitations/t/{token}").data.decode()
    assert w.item.title in page and "Accept invitation" in page
    assert client.get(f"/challenges/{w.item.id}").status_code == 404
    r = client.post(f"/invitations/t/{token}/accept")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/challenges/{w.item.id}")
    assert client.get(f"/challenges/{w.item.id}").status_code == 200


def test_person_with_account_signs_in_and_lands_back(w, client):
    _, token = make_invitation(w.item, w.guest.email, invited_by=w.owner)
    r = client.post(f"/auth/login?next=/invitations/t/{token}", data={"email": w.guest.email, "password": PASSWORD})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/invitations/t/{token}")
    assert "Accept invitation" in client.get(f"/invitations/t/{token}").data.decode()


def test_deleting_a_draft_takes_its_invitations_with_it(w, f, ctx):
    from marketplace.services import items as item_svc
    draft = f.make_item(w.acme, visibility="invited", status="draft")
    inv, token = svc.create_invitation(w.owner, draft, w.guest.email)
    svc.accept(w.guest, token)
    item_svc.delete_item(w.owner, draft)
    db.session.expire_all()
    assert db.session.execute(select(func.count(Invitation.id))).scalar_one() == 0
    assert svc.find_by_token(token) is None


def test_accept_creates_grant_notifies_inviter_and_is_single_use(w, client, auth):
    inv, token = make_invitation(w.item, w.guest.email, invited_by=w.owner)
    assert _sees(w.guest, w.item) == (False, False)
    auth.login(w.guest.email)
    assert client.post(f"/invitations/t/{token}/accept").status_code == 302
    db.session.refresh(inv)
    grants = _grants(w.item, w.guest)
    assert len(grants) == 1 and grants[0].is_active() and inv.grant_id == grants[0].id
    assert inv.accepted_by_id == w.guest.id and policy.invitation_state(inv) == "accepted"
    assert _sees(w.guest, w.item) == (True, True)
    assert db.session.execute(select(Notification).where(Notification.user_id == w.owner.id,
                                                         Notification.kind == "invitation.accepted")).scalar()
    assert {"invitation.accepted", "access.granted"} <= set(_actions(w.item.id))
    # Single use: the same link again is refused, however it is used.
    r = client.get(f"/invitations/t/{token}")
    assert r.status_code == 410 and "already been used" in r.data.decode()
    r = client.post(f"/invitations/t/{token}/accept")
    assert r.status_code == 410 and "already been used" in r.data.decode()
    assert len(_grants(w.item, w.guest)) == 1


def test_expired_link_is_refused_and_grants_nothing(w, client, auth):
    inv, token = make_invitation(w.item, w.guest.email, invited_by=w.owner)
    inv.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    auth.login(w.guest.email)
    r = client.get(f"/invitations/t/{token}")
    assert r.status_code == 410 and "This invitation expired on" in r.data.decode()
    assert w.item.title not in r.data.decode()
    r = client.post(f"/invitations/t/{token}/accept")
    assert r.status_code == 410
    assert _grants(w.item, w.guest) == [] and _sees(w.guest, w.item) == (False, False)


def test_revoked_pending_link_is_refused(w, client, auth):
    inv, token = make_invitation(w.item, w.guest.email, invited_by=w.owner)
    auth.login(w.admin.email)
    assert client.post(f"/invitations/{inv.id}/revoke").status_code == 302
    auth.logout()
    auth.login(w.guest.email)
    r = client.post(f"/invitations/t/{token}/accept")
    assert r.status_code == 410 and "withdrawn" in r.data.decode()
    assert _grants(w.item, w.guest) == []
    assert "invitation.revoked" in _actions(w.item.id)


def test_revoking_an_accepted_invitation_ends_its_grant_at_once(w, client, auth):
    inv, token = make_invitation(w.item, w.guest.email, invited_by=w.owner)
    auth.login(w.guest.email)
    client.post(f"/invitations/t/{token}/accept")
    assert client.get(f"/challenges/{w.item.id}").status_code == 200
    auth.logout()
    auth.login(w.owner.email)
    r = client.post(f"/invitations/{inv.id}/revoke")
    assert r.status_code == 302
    auth.logout()
    db.session.refresh(inv)
    grant = db.session.get(AccessGrant, inv.grant_id)
    db.session.refresh(grant)
    assert grant.revoked_at is not None and policy.invitation_state(inv) == "revoked"
    assert _sees(w.guest, w.item) == (False, False)
    auth.login(w.guest.email)
    assert client.get(f"/challenges/{w.item.id}").status_code == 404
    assert {"invitation.revoked", "access.revoked"} <= set(_actions(w.item.id))
    # Revoking twice is a clear conflict, not a 500.
    auth.logout()
    auth.login(w.owner.email)
    r = client.post(f"/invitations/{inv.id}/revoke")
    assert r.status_code == 409 and "already revoked" in r.data.decode()


def test_link_opened_by_a_different_signed_in_account_is_refused(w, client, auth):
    inv, token = make_invitation(w.item, w.guest.email, invited_by=w.owner)
    auth.login(w.outsider.email)
    r = client.get(f"/invitations/t/{token}")
    page = r.data.decode()
    assert r.status_code == 403
    assert "was sent to g•••@invitee.test, not to the account you are signed in with" in page
    assert w.item.title not in page and w.guest.email not in page
    assert client.post(f"/invitations/t/{token}/accept").status_code == 403
    assert client.post(f"/invitations/t/{token}/decline").status_code == 403
    db.session.refresh(inv)
    assert policy.invitation_state(inv) == "pending"
    assert _grants(w.item, w.outsider) == [] and _sees(w.outsider, w.item) == (False, False)


def test_invitee_matches_case_insensitively(w, client, auth):
    _, token = make_invitation(w.item, "GUEST@Invitee.test", invited_by=w.owner)
    auth.login(w.guest.email)
    assert client.post(f"/invitations/t/{token}/accept").status_code == 302
    assert len(_grants(w.item, w.guest)) == 1


def test_decline_ends_the_invitation(w, client, auth):
    inv, token = make_invitation(w.item, w.guest.email, invited_by=w.owner)
    auth.login(w.guest.email)
    assert client.post(f"/invitations/t/{token}/decline").status_code == 302
    db.session.refresh(inv)
    assert policy.invitation_state(inv) == "declined"
    r = client.post(f"/invitations/t/{token}/accept")
    assert r.status_code == 410 and "declined" in r.data.decode()
    assert _grants(w.item, w.guest) == []
    assert "invitation.declined" in _actions(w.item.id)


def test_decline_without_an_account(w, client):
    inv, token = make_invitation(w.item, "no.account@x.test", invited_by=w.owner)
    assert client.post(f"/invitations/t/{token}/decline").status_code == 302
    db.session.refresh(inv)
    assert inv.declined_at is not None
    assert client.get(f"/invitations/t/{token}").status_code == 410


@pytest.mark.parametrize("token", ["nope", "x" * 43, "a" * 300])
def test_unknown_token_is_a_clear_404(client, ctx, token):
    r = client.get(f"/invitations/t/{token}")
    assert r.status_code == 404 and "This invitation link is not valid" in r.data.decode()


def test_access_until_becomes_the_grant_expiry(w, ctx):
    until = utcnow() + timedelta(days=3)
    inv, token = svc.create_invitation(w.owner, w.item, w.guest.email, days=5, access_until=until)
    svc.accept(w.guest, token)
    grant = db.session.get(AccessGrant, inv.grant_id)
    assert abs((grant.expires_at - until).total_seconds()) < 1
    # When that end passes, the access ends with no one touching anything.
    grant.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert _sees(w.guest, w.item) == (False, False)


# ------------------------------------------------------------------------- who may


# Those who may see the item but not manage it get 403 on its invitations page; an
# invitation itself is invisible (404) to everyone but the item's managers and the invitee.
@pytest.mark.parametrize("who, on_item, on_invitation", [
    ("anonymous", 302, 302), ("outsider", 404, 404), ("member", 403, 404), ("guest_with_grant", 403, 404),
    ("other_admin", 404, 404),
])
@pytest.mark.parametrize("method, path", [
    ("get", "/invitations/item/{item}"),
    ("post", "/invitations/item/{item}"),
    ("post", "/invitations/{inv}/revoke"),
])
def test_who_may_not_manage_invitations(w, f, client, auth, who, on_item, on_invitation, method, path):
    expected = on_invitation if "{inv}" in path else on_item
    inv, _ = make_invitation(w.item, "someone@x.test", invited_by=w.owner)
    f.grant(w.item, user=w.guest)
    user = {"outsider": w.outsider, "member": w.member, "guest_with_grant": w.guest,
            "other_admin": w.other_admin}.get(who)
    if user:
        auth.login(user.email)
    r = getattr(client, method)(path.format(item=w.item.id, inv=inv.id), data={"email": "z@x.test", "days": "3"})
    assert r.status_code == expected
    if expected == 302:
        assert "/auth/login" in r.headers["Location"]
    db.session.refresh(inv)
    assert policy.invitation_state(inv) == "pending"
    assert db.session.execute(select(func.count(Invitation.id))).scalar_one() == 1


def test_invitee_may_see_but_not_revoke_their_invitation(w, client, auth):
    inv, _ = make_invitation(w.item, w.guest.email, invited_by=w.owner)
    assert policy.can(w.guest, "view", inv) and not policy.can(w.guest, "revoke", inv)
    auth.login(w.guest.email)
    assert client.post(f"/invitations/{inv.id}/revoke").status_code == 403


def test_services_check_the_policy_themselves(w, ctx):
    with pytest.raises(ServiceError) as e:
        svc.create_invitation(w.member, w.item, "a@x.test")
    assert e.value.status == 403
    inv, token = svc.create_invitation(w.owner, w.item, "a@x.test")
    with pytest.raises(ServiceError) as e:
        svc.revoke(w.outsider, inv)
    assert e.value.status == 403
    with pytest.raises(ServiceError) as e:
        svc.accept(w.outsider, token)
    assert e.value.status == 403


def test_invitation_rule_and_sql_filter_agree(w, ctx):
    pending, _ = make_invitation(w.item, w.guest.email, invited_by=w.owner)
    other, _ = make_invitation(w.item, "someone.else@x.test", invited_by=w.owner)
    org_inv, _ = make_invitation(w.org_item, w.guest.email, invited_by=w.owner)
    invs = [pending, other, org_inv]
    for user in (None, w.owner, w.admin, w.member, w.guest, w.outsider, w.other_admin):
        policy.forget_viewer()
        listed = set(db.session.execute(policy.visible(user, Invitation).with_only_columns(Invitation.id)).scalars())
        for inv in invs:
            assert policy.can(user, "view", inv) == (inv.id in listed), (user, inv)
    assert policy.can(w.guest, "view", pending) and not policy.can(w.guest, "view", other)
    assert policy.can(w.admin, "view", other) and not policy.can(w.member, "view", other)


def test_corrupt_invitation_state_fails_closed(w, ctx):
    # A row without an expiry is never written by the app (the column is NOT NULL); if one
    # ever appeared, the rules must refuse loudly rather than treat it as open-ended.
    inv = Invitation(id=999, item=w.item, email=w.guest.email, token_hash="0" * 64, expires_at=None)
    for action in ("view", "accept", "decline", "revoke"):
        with pytest.raises(policy.PolicyError):
            policy.can(w.owner if action == "revoke" else w.guest, action, inv)


# ------------------------------------------------------------------------- my invitations


def test_my_invitations_lists_pending_accepted_lists_and_grants(w, f, client, auth):
    pending_inv, _ = make_invitation(w.item, w.guest.email, invited_by=w.owner)
    other_item = f.make_item(w.acme, kind="failure", visibility="invited", title="Accepted failure story")
    _, token2 = make_invitation(other_item, w.guest.email, invited_by=w.owner)
    listed = f.make_item(w.acme, kind="asset", visibility="invited", title="Listed asset")
    hidden_draft = f.make_item(w.acme, kind="asset", visibility="invited", status="draft", title="Draft asset")
    granted = f.make_item(w.acme, kind="challenge", visibility="invited", title="Manually granted")
    lst = f.make_list(w.cluster, name="Experts")
    f.add_to_list(lst, user=w.guest)
    f.attach_list(listed, lst)
    f.attach_list(hidden_draft, lst)
    f.grant(granted, user=w.guest)
    auth.login(w.guest.email)
    client.post(f"/invitations/t/{token2}/accept")
    page = client.get("/invitations/").data.decode()
    pending_section = page.split("Waiting for your answer")[1].split("Through invitations")[0]
    # Pending: who and what kind, but not the title (addresses are not verified; the token is).
    assert w.acme.name in pending_section and "challenge" in pending_section
    assert w.item.title not in page
    assert "Accepted failure story" in page and "Manually granted" in page
    assert "Listed asset" in page and "“Experts”" in page
    assert "Draft asset" not in page  # the policy decides, not the list


def test_my_invitations_needs_sign_in(client, ctx):
    r = client.get("/invitations/")
    assert r.status_code == 302 and "/auth/login" in r.headers["Location"]


def test_nav_link_for_signed_in_users(w, client, auth):
    assert b"My invitations" not in client.get("/").data
    auth.login(w.guest.email)
    assert b"My invitations" in client.get("/").data


def test_audit_chain_stays_valid(w, ctx):
    inv, token = svc.create_invitation(w.owner, w.item, w.guest.email)
    svc.accept(w.guest, token)
    svc.revoke(w.owner, inv)
    assert audit.verify_chain().ok
    assert _actions(w.item.id) == ["invitation.sent", "access.granted", "invitation.accepted",
                                   "access.revoked", "invitation.revoked"]


# ------------------------------------------------------------------------- the race


def test_accepting_the_same_token_twice_in_parallel_gives_one_grant(app, w):
    _, token = make_invitation(w.item, w.guest.email, invited_by=w.owner)
    item_id, guest_id = w.item.id, w.guest.id
    clients = [app.test_client() for _ in range(2)]
    barrier = threading.Barrier(len(clients))
    codes: list[int] = []
    errors: list[BaseException] = []

    def run(c):
        try:
            r = c.post("/auth/login", data={"email": w_guest_email, "password": PASSWORD})
            assert r.status_code == 302
            barrier.wait(timeout=30)
            codes.append(c.post(f"/invitations/t/{token}/accept").status_code)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    w_guest_email = w.guest.email
    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(codes) == [302, 410]
    db.session.expire_all()
    n = db.session.execute(select(func.count(AccessGrant.id)).where(
        AccessGrant.item_id == item_id, AccessGrant.user_id == guest_id, AccessGrant.reason == "invitation")
    ).scalar_one()
    assert n == 1
    assert _actions(item_id).count("invitation.accepted") == 1
    assert audit.verify_chain().ok
