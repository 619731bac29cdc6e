"""Invitation lists: curating, members (people and organisations) with expiry, sharing,
attaching to items; access follows the list at once, on pages and in policy.visible()."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace import audit, policy
from marketplace.extensions import db
from marketplace.models import (
    AuditEvent,
    InvitationList,
    Item,
    ItemList,
    ListMember,
    ListShare,
    Notification,
    utcnow,
)
from marketplace.services import lists as svc
from marketplace.services.common import ServiceError

from .factories_invitations import make_world


@pytest.fixture
def w(f):
    return make_world(f)


def _sees(user, item) -> tuple[bool, bool]:
    """(per-object rule, SQL filter): the two faces of the rule, which must agree."""
    policy.forget_viewer()
    one = policy.can(user, "view", item)
    many = item.id in db.session.execute(policy.visible(user, Item).with_only_columns(Item.id)).scalars().all()
    return one, many


def _actions():
    return db.session.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars().all()


def _page(client, item) -> int:
    return client.get(f"/{item.kind}s/{item.id}").status_code


@pytest.fixture
def shared(w, f):
    """A cluster list shared with Acme and attached to Acme's invited challenge."""
    lst = f.make_list(w.cluster, name="Trusted experts")
    db.session.add(ListShare(list_id=lst.id, org_id=w.acme.id))
    db.session.commit()
    f.attach_list(w.item, lst)
    return lst


# ------------------------------------------------------------------------- curating


def test_cluster_admin_creates_and_edits_a_list(w, client, auth):
    auth.login(w.curator.email)
    r = client.post(f"/lists/new?org={w.cluster.id}", data={"name": "  Energy   experts ", "description": "Trusted."})
    assert r.status_code == 302
    lst = db.session.execute(select(InvitationList)).scalar_one()
    assert (lst.name, lst.org_id, lst.created_by_id) == ("Energy experts", w.cluster.id, w.curator.id)
    r = client.post(f"/lists/{lst.id}/edit", data={"name": "Offshore experts", "description": "<b>x</b>"})
    assert r.status_code == 302
    page = client.get(f"/lists/{lst.id}").data.decode()
    assert "Offshore experts" in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert _actions() == ["list.created", "list.updated"]


@pytest.mark.parametrize("data, message", [
    ({"name": "", "description": ""}, "Give the list a name."),
    ({"name": "x" * 121, "description": ""}, "At most 120 characters."),
    ({"name": "ok", "description": "y" * 2001}, "At most 2000 characters."),
    ({"name": "TAKEN", "description": ""}, "already has a list with this name"),
])
def test_bad_list_input_gets_a_form_error(w, f, client, auth, data, message):
    f.make_list(w.cluster, name="Taken")
    auth.login(w.curator.email)
    r = client.post(f"/lists/new?org={w.cluster.id}", data=data)
    assert r.status_code == 400 and message in r.data.decode()
    assert db.session.execute(select(func.count(InvitationList.id))).scalar_one() == 1


@pytest.mark.parametrize("who", ["company_owner", "cluster_member", "outsider"])
def test_only_cluster_admins_may_create_lists(w, client, auth, who):
    user = {"company_owner": w.owner, "cluster_member": w.cluster_member, "outsider": w.outsider}[who]
    auth.login(user.email)
    assert client.get("/lists/new").status_code == 403
    r = client.post(f"/lists/new?org={w.cluster.id}", data={"name": "Mine"})
    assert r.status_code == 403
    assert db.session.execute(select(func.count(InvitationList.id))).scalar_one() == 0
    with pytest.raises(ServiceError):
        svc.create_list(user, w.cluster, "Mine")


def test_cluster_page_links_to_its_lists_for_members_only(w, client, auth):
    assert b"Invitation lists" not in client.get(f"/orgs/{w.cluster.slug}").data
    auth.login(w.cluster_member.email)
    assert b"Invitation lists" in client.get(f"/orgs/{w.cluster.slug}").data


# ------------------------------------------------------------------------- members and access


def test_adding_grants_and_removing_revokes_at_once(w, f, client, auth, shared):
    assert _sees(w.guest, w.item) == (False, False)
    m = f.add_to_list(shared, user=w.guest)  # (by e-mail: test_list_invitations.py)
    assert _sees(w.guest, w.item) == (True, True)
    auth.login(w.guest.email)
    assert _page(client, w.item) == 200
    assert b"Secret gripper brief" in client.get("/invitations/").data
    auth.logout()
    auth.login(w.curator.email)
    assert client.post(f"/lists/{shared.id}/members/{m.id}/remove").status_code == 302
    assert _sees(w.guest, w.item) == (False, False)
    auth.logout()
    auth.login(w.guest.email)
    assert _page(client, w.item) == 404
    assert b"Secret gripper brief" not in client.get("/invitations/").data
    assert _actions()[-1] == "list.member_removed"
    assert audit.verify_chain().ok


def test_membership_expiry_revokes_at_once(w, f, client, auth, shared):
    m = f.add_to_list(shared, user=w.guest, expires_at=utcnow() + timedelta(days=1))
    auth.login(w.guest.email)
    assert _page(client, w.item) == 200 and _sees(w.guest, w.item) == (True, True)
    m.expires_at = utcnow() - timedelta(seconds=1)  # time passes; nobody touches anything else
    db.session.commit()
    assert _page(client, w.item) == 404 and _sees(w.guest, w.item) == (False, False)


def test_member_organisation_gives_access_to_all_its_members(w, f, client, auth, shared):
    uni_person = f.make_user()
    uni = f.make_org(kind="university", owner=uni_person)
    auth.login(w.curator.email)
    assert client.post(f"/lists/{shared.id}/members", data={"org": uni.slug}).status_code == 302
    assert _sees(uni_person, w.item) == (True, True)
    m = db.session.execute(select(ListMember).where(ListMember.member_org_id == uni.id)).scalar_one()
    client.post(f"/lists/{shared.id}/members/{m.id}/remove")
    assert _sees(uni_person, w.item) == (False, False)


def test_readding_sets_a_new_expiry_and_past_expiry_is_refused(w, f, client, auth, shared):
    uni = f.make_org(kind="university", owner=f.make_user())
    auth.login(w.curator.email)
    client.post(f"/lists/{shared.id}/members", data={"org": uni.slug})
    r = client.post(f"/lists/{shared.id}/members", data={"org": uni.slug, "expires_at": "2999-01-01T10:00"})
    assert r.status_code == 302
    rows = db.session.execute(select(ListMember).where(ListMember.member_org_id == uni.id)).scalars().all()
    assert len(rows) == 1 and rows[0].expires_at.year == 2999
    r = client.post(f"/lists/{shared.id}/members", data={"org": uni.slug, "expires_at": "2001-01-01T10:00"})
    assert r.status_code == 400 and "must be in the future" in r.data.decode()
    db.session.refresh(rows[0])
    assert rows[0].expires_at.year == 2999
    assert _actions() == ["list.member_added", "list.member_updated"]


@pytest.mark.parametrize("data, message", [
    ({"email": "not-an-address"}, "e-mail address"),
    ({"org": "no-such-org"}, "No organisation has this name."),
    ({}, "Give either a person"),
    ({"email": "a@x.test", "org": "org-1"}, "Give either a person"),
    ({"email": "a@x.test", "expires_at": "tomorrow"}, "Not a valid datetime value."),
])
def test_bad_member_input_gets_a_form_error(w, client, auth, shared, data, message):
    auth.login(w.curator.email)
    r = client.post(f"/lists/{shared.id}/members", data=data)
    assert r.status_code == 400 and message in r.data.decode()
    assert db.session.execute(select(func.count(ListMember.id))).scalar_one() == 0


def test_added_person_is_notified(w, client, auth, shared):
    auth.login(w.curator.email)
    client.post(f"/lists/{shared.id}/members", data={"email": w.guest.email})
    assert db.session.execute(select(Notification).where(Notification.user_id == w.guest.id)).first() is None
    token = _mailed_list_token(w.guest.email)
    svc.accept_list_invitation(w.guest, token)
    n = db.session.execute(select(Notification).where(Notification.user_id == w.curator.id)).scalar_one()
    assert "Trusted experts" in n.message and w.guest.display_name in n.message


def _mailed_list_token(address: str) -> str:
    import re
    from marketplace.models import OutgoingMail
    body = db.session.execute(select(OutgoingMail.body).where(OutgoingMail.to_email == address)
                              .order_by(OutgoingMail.id.desc())).scalars().first()
    return re.search(r"/invitations/l/([A-Za-z0-9_-]+)", body).group(1)


# ------------------------------------------------------------------------- sharing and attaching


def test_shared_org_admin_may_attach_to_own_invited_item(w, f, client, auth):
    lst = f.make_list(w.cluster, name="Experts")
    f.add_to_list(lst, user=w.guest)
    auth.login(w.owner.email)
    # Not shared yet: the list is invisible to Acme, and attaching it is refused.
    assert client.get(f"/lists/{lst.id}").status_code == 404
    assert client.post(f"/lists/attach/{w.item.id}", data={"list_id": lst.id}).status_code == 404
    auth.logout()
    auth.login(w.curator.email)
    assert client.post(f"/lists/{lst.id}/shares", data={"org": w.acme.slug}).status_code == 302
    auth.logout()
    auth.login(w.owner.email)
    assert client.get(f"/lists/{lst.id}").status_code == 200
    page = client.get(f"/challenges/{w.item.id}").data.decode()
    assert "Attach list" in page and "Experts" in page
    r = client.post(f"/lists/attach/{w.item.id}", data={"list_id": lst.id})
    assert r.status_code == 302
    assert _sees(w.guest, w.item) == (True, True)
    assert db.session.execute(select(Notification).where(Notification.user_id == w.guest.id,
                                                         Notification.kind == "list.invited")).scalar()
    assert _actions() == ["list.shared", "list.attached"]


def test_shared_org_admins_see_names_but_not_addresses(w, f, client, auth, shared):
    f.add_to_list(shared, user=w.guest)
    auth.login(w.owner.email)
    page = client.get(f"/lists/{shared.id}").data.decode()
    assert w.guest.display_name in page and w.guest.email not in page
    assert "Shared with" not in page and "Add to the list" not in page
    auth.logout()
    auth.login(w.curator.email)
    assert w.guest.email in client.get(f"/lists/{shared.id}").data.decode()


def test_unsharing_detaches_the_list_from_that_orgs_items(w, f, client, auth, shared):
    f.add_to_list(shared, user=w.guest)
    assert _sees(w.guest, w.item) == (True, True)
    s = db.session.execute(select(ListShare)).scalar_one()
    auth.login(w.curator.email)
    assert client.post(f"/lists/{shared.id}/shares/{s.id}/remove").status_code == 302
    assert db.session.execute(select(func.count(ItemList.id))).scalar_one() == 0
    assert _sees(w.guest, w.item) == (False, False)
    assert _actions() == ["list.detached", "list.unshared"]


@pytest.mark.parametrize("data, message", [
    ({"org": "no-such-org"}, "No organisation has this name."),
    ({"org": ""}, "Give the name of the organisation."),
])
def test_bad_share_input(w, f, client, auth, data, message):
    lst = f.make_list(w.cluster)
    auth.login(w.curator.email)
    r = client.post(f"/lists/{lst.id}/shares", data=data)
    assert r.status_code == 400 and message in r.data.decode()


def test_sharing_twice_or_with_itself_is_refused(w, client, auth, shared):
    auth.login(w.curator.email)
    r = client.post(f"/lists/{shared.id}/shares", data={"org": w.acme.slug})
    assert r.status_code == 400 and "already shared" in r.data.decode()
    r = client.post(f"/lists/{shared.id}/shares", data={"org": w.cluster.slug})
    assert r.status_code == 400 and "own organisation" in r.data.decode()


def test_attach_refusals_are_clear(w, f, client, auth, shared):
    auth.login(w.owner.email)
    r = client.post(f"/lists/attach/{w.item.id}", data={"list_id": shared.id})
    assert r.status_code == 409 and "already attached" in r.data.decode()
    public = f.make_item(w.acme, visibility="public")
    r = client.post(f"/lists/attach/{public.id}", data={"list_id": shared.id})
    assert r.status_code == 409 and "visibility is “invited”" in r.data.decode()
    r = client.post(f"/lists/attach/{w.item.id}", data={"list_id": "abc"})
    assert r.status_code == 400
    archived = f.make_item(w.acme, visibility="invited", status="archived")
    assert client.post(f"/lists/attach/{archived.id}", data={"list_id": shared.id}).status_code == 403
    assert db.session.execute(select(func.count(ItemList.id))).scalar_one() == 1


def test_curator_attaches_own_list_to_cluster_item(w, f, client, auth):
    lst = f.make_list(w.cluster)
    f.add_to_list(lst, user=w.guest)
    own = f.make_item(w.cluster, visibility="invited")
    auth.login(w.curator.email)
    assert client.post(f"/lists/attach/{own.id}", data={"list_id": lst.id}).status_code == 302
    assert _sees(w.guest, own) == (True, True)


def test_detach_ends_access_at_once(w, f, client, auth, shared):
    f.add_to_list(shared, user=w.guest)
    a = db.session.execute(select(ItemList)).scalar_one()
    auth.login(w.admin.email)
    assert client.post(f"/lists/attachments/{a.id}/detach").status_code == 302
    assert _sees(w.guest, w.item) == (False, False)
    assert _actions() == ["list.detached"]


# ------------------------------------------------------------------------- who may not


@pytest.mark.parametrize("who, expected", [
    ("anonymous", 302), ("outsider", 404), ("cluster_member", 403), ("acme_owner", 403),
    ("list_member", 404),
])
@pytest.mark.parametrize("path, data", [
    ("/lists/{lst}/edit", {"name": "Hacked"}),
    ("/lists/{lst}/members", {"email": "guest@invitee.test"}),
    ("/lists/{lst}/members/{member}/remove", {}),
    ("/lists/{lst}/shares", {"org": "org-x"}),
    ("/lists/{lst}/shares/{share}/remove", {}),
])
def test_who_may_not_curate(w, f, client, auth, shared, who, expected, path, data):
    member = f.add_to_list(shared, user=w.outsider if who == "list_member" else w.member)
    s = db.session.execute(select(ListShare)).scalar_one()
    user = {"outsider": w.other_admin, "cluster_member": w.cluster_member, "acme_owner": w.owner,
            "list_member": w.outsider}.get(who)
    if user:
        auth.login(user.email)
    r = client.post(path.format(lst=shared.id, member=member.id, share=s.id), data=data)
    assert r.status_code == expected
    db.session.expire_all()
    assert shared.name == "Trusted experts"
    assert db.session.execute(select(func.count(ListMember.id)).where(ListMember.removed_at.is_(None))).scalar_one() == 1
    assert db.session.execute(select(func.count(ListShare.id))).scalar_one() == 1


# A plain member sees the item (403 on attaching) but not which lists it uses (404).
@pytest.mark.parametrize("who, on_attach, on_detach", [
    ("anonymous", 302, 302), ("outsider", 404, 404), ("acme_member", 403, 404), ("curator", 404, 404),
    ("other_admin", 404, 404),
])
@pytest.mark.parametrize("action", ["attach", "detach"])
def test_who_may_not_attach_or_detach(w, f, client, auth, shared, who, on_attach, on_detach, action):
    expected = on_attach if action == "attach" else on_detach
    user = {"outsider": w.outsider, "acme_member": w.member, "curator": w.curator,
            "other_admin": w.other_admin}.get(who)
    second = f.make_list(w.cluster, name="Second")
    db.session.add(ListShare(list_id=second.id, org_id=w.acme.id))
    db.session.commit()
    a = db.session.execute(select(ItemList)).scalar_one()
    if user:
        auth.login(user.email)
    if action == "attach":
        r = client.post(f"/lists/attach/{w.item.id}", data={"list_id": second.id})
    else:
        r = client.post(f"/lists/attachments/{a.id}/detach")
    assert r.status_code == expected
    assert db.session.execute(select(func.count(ItemList.id))).scalar_one() == 1


def test_other_company_cannot_use_a_list_not_shared_with_it(w, f, client, auth, shared):
    theirs = f.make_item(w.other_co, visibility="invited")
    auth.login(w.other_admin.email)
    assert client.post(f"/lists/attach/{theirs.id}", data={"list_id": shared.id}).status_code == 404
    assert not policy.can(w.other_admin, "attach", policy.ListUse(shared, theirs))
    with pytest.raises(ServiceError) as e:
        svc.attach(w.other_admin, theirs, shared)
    assert e.value.status == 403


# ------------------------------------------------------------------------- the two faces agree


def test_list_rules_and_sql_filters_agree(w, f, shared):
    own = f.make_list(w.cluster, name="Private")
    other_cluster_admin = f.make_user()
    other_cluster = f.make_org(kind="cluster", owner=other_cluster_admin)
    theirs = f.make_list(other_cluster, name="Theirs")
    m1 = f.add_to_list(shared, user=w.guest)
    m2 = f.add_to_list(own, user=w.outsider)
    site_admin = f.make_user(site_role="admin")
    viewers = [None, w.owner, w.admin, w.member, w.curator, w.cluster_member, w.guest, w.outsider,
               w.other_admin, other_cluster_admin, site_admin]
    for user in viewers:
        policy.forget_viewer()
        lists = set(db.session.execute(policy.visible(user, InvitationList).with_only_columns(InvitationList.id)).scalars())
        for lst in (shared, own, theirs):
            assert policy.can(user, "view", lst) == (lst.id in lists), (user, lst.name)
        members = set(db.session.execute(policy.visible(user, ListMember).with_only_columns(ListMember.id)).scalars())
        for m in (m1, m2):
            assert policy.can(user, "view", m) == (m.id in members), (user, m.id)
        attachments = set(db.session.execute(policy.visible(user, ItemList).with_only_columns(ItemList.id)).scalars())
        for a in db.session.execute(select(ItemList)).scalars():
            assert policy.can(user, "view", a) == (a.id in attachments), (user, a.id)
    # Spot checks of what the faces say.
    assert policy.can(w.owner, "view", shared) and not policy.can(w.member, "view", shared)
    assert policy.can(w.cluster_member, "view", own) and not policy.can(w.owner, "view", own)
    assert policy.can(w.guest, "view", m1) and not policy.can(w.guest, "view", shared)


def test_usable_lists_follow_the_rule(w, f, shared):
    not_shared = f.make_list(w.cluster, name="Not shared")
    second = f.make_list(w.cluster, name="Also shared")
    db.session.add(ListShare(list_id=second.id, org_id=w.acme.id))
    db.session.commit()
    usable = svc.usable_lists(w.owner, w.item)
    assert [lst.name for lst in usable] == ["Also shared"]  # shared is already attached
    for lst in (shared, not_shared, second):
        expected = lst.id == second.id
        assert (lst in usable) == expected
        assert policy.can(w.owner, "attach", policy.ListUse(lst, w.item)) == (lst.id != not_shared.id)
    assert svc.usable_lists(w.member, w.item) == []
