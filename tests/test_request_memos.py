"""The rule book computes a viewer's roles, visibility clauses and search principals once per
request (flask.g), and a memo never outlives a change that the request itself makes: an
accepted invitation shows the item at once, and a membership, grant or list place taken away
in the same request hides it at once, even when no service told the policy (a write of any
kind drops the request's memos). A stale memo that still grants is a leak."""
from __future__ import annotations

from sqlalchemy import delete, insert, select, update

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import AccessGrant, Asset, Challenge, Item, ListMember, Membership, utcnow
from marketplace.services import invitations as inv_svc
from marketplace.services import lists as lists_svc


def _sees(user, item_id: int) -> bool:
    """Both forms of the rule, as the pages ask them: the list query and the object check."""
    listed = db.session.execute(policy.visible(user, Item).where(Item.id == item_id)).first() is not None
    assert listed == policy.can(user, "view", db.session.get(Item, item_id)), "the two forms disagree"
    return listed


def test_the_clause_and_principals_are_built_once_per_request(app, f):
    user = f.make_user()
    with app.test_request_context("/"):
        first = policy.visible_clause(user, Item)
        assert policy.visible_clause(user, Item) is first
        # The home page's three lists (challenges, failures, assets) share the item rule's clause.
        assert policy.visible_clause(user, Challenge) is first and policy.visible_clause(user, Asset) is first
        assert policy.principals(user) == policy.principals(user)
        sent = []
        from sqlalchemy import event

        def count(*_a):
            sent.append(1)
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            policy.principals(user)
            policy.visible_clause(user, Item)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert sent == []  # memoised: no statement at all
    with app.test_request_context("/"):  # a new request starts afresh
        pass


def test_a_hand_made_viewer_never_gets_anothers_memo(app, f):
    """Two Viewers of one user id that differ in roles get their own clauses."""
    owner = f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, visibility="organisation")
    with app.test_request_context("/"):
        member = policy.viewer_for(owner)
        stranger = policy.Viewer(user_id=owner.id)
        assert db.session.execute(select(Item.id).where(Item.id == item.id,
                                                        policy.visible_clause(member, Item))).first()
        assert not db.session.execute(select(Item.id).where(Item.id == item.id,
                                                            policy.visible_clause(stranger, Item))).first()


def test_accepting_an_invitation_shows_the_item_in_the_same_request(app, f):
    owner, guest = f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, visibility="invited")
    _inv, token = inv_svc.create_invitation(owner, item, guest.email)
    with app.test_request_context("/"):
        assert not _sees(guest, item.id)
        before = policy.principals(guest)
        inv_svc.accept(guest, token)
        assert _sees(guest, item.id)
        assert policy.principals(guest) == before  # a grant is not a search principal (the item's doc names the user)


def test_a_membership_removed_by_hand_in_the_request_hides_at_once(app, f):
    """No service, no forget_viewer(): the write itself drops the memos."""
    owner, member = f.make_user(), f.make_user()
    org = f.make_org(owner=owner, members=(member,))
    item = f.make_item(org, visibility="organisation")
    with app.test_request_context("/"):
        assert _sees(member, item.id)
        assert f"org:{org.id}" in policy.principals(member)
        db.session.execute(delete(Membership).where(Membership.user_id == member.id, Membership.org_id == org.id))
        assert not _sees(member, item.id)
        assert f"org:{org.id}" not in policy.principals(member)


def test_a_grant_revoked_by_hand_in_the_request_hides_at_once(app, f):
    owner, guest = f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, visibility="invited")
    db.session.execute(insert(AccessGrant).values(item_id=item.id, user_id=guest.id))
    db.session.commit()
    with app.test_request_context("/"):
        assert _sees(guest, item.id)
        db.session.execute(update(AccessGrant).where(AccessGrant.item_id == item.id).values(revoked_at=utcnow()))
        assert not _sees(guest, item.id)


def test_a_list_place_taken_away_in_the_request_drops_the_list_principal(app, f):
    curator = f.make_user()
    cluster = f.make_org(kind="cluster", owner=curator)
    lst = f.make_list(cluster)
    listed = f.make_user()
    f.add_to_list(lst, user=listed)
    member = db.session.execute(select(ListMember).where(ListMember.user_id == listed.id)).scalar_one()
    with app.test_request_context("/"):
        assert f"list:{lst.id}" in policy.principals(listed)
        lists_svc.remove_member(curator, member)
        assert f"list:{lst.id}" not in policy.principals(listed)


def test_a_role_raised_in_the_request_is_seen(app, f):
    """The other direction of the same rule: a new membership counts at once."""
    owner, newcomer = f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, visibility="organisation")
    with app.test_request_context("/"):
        assert not _sees(newcomer, item.id)
        db.session.execute(insert(Membership).values(user_id=newcomer.id, org_id=org.id, role="member"))
        assert _sees(newcomer, item.id)
