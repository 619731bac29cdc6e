"""The policy matrix: every kind of viewer x visibility x status x hidden x action.

Expected values come from the rules of issue 2 written out in tests/factories_foundation.py
(not from marketplace/policy.py). For every cell `can` must match them, and for `view` the
three faces of the rule must agree: `can`, the SQL filter `visible()`, and the search twin
(`item_doc_principals(item)` meets `principals(viewer)`).
"""
from __future__ import annotations

import itertools

import pytest
from sqlalchemy import update

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import MODEL_BY_KIND, Item, Organisation, User
from marketplace.policy import PolicyError

from .factories_foundation import (
    ITEM_ACTIONS,
    KINDS,
    PROFILES,
    STATUSES,
    VISIBILITIES,
    World,
    dispose,
    expected,
    make_app,
)

CELLS = list(itertools.product(VISIBILITIES, STATUSES, (False, True)))


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """One database for the whole module: a World and one item per (visibility, status,
    hidden) cell, the kinds taking turns so per-kind queries are exercised too."""
    app = make_app(tmp_path_factory.mktemp("matrix"))
    with app.app_context():
        world = World()
        cells = {}
        for n, (vis, status, hidden) in enumerate(CELLS):
            item = world.add_item(kind=KINDS[n % 3], visibility=vis, status=status, hidden=hidden,
                                  title=f"Cell {vis}/{status}/{'hidden' if hidden else 'shown'}")
            cells[item.id] = (vis, status, hidden)
        user_ids = {name: u.id for name, u in world.users.items()}
    yield app, cells, user_ids
    dispose(app)


@pytest.fixture
def mctx(matrix):
    app, cells, user_ids = matrix
    with app.app_context():
        users = {name: db.session.get(User, uid) for name, uid in user_ids.items()}
        users["anonymous"] = None
        items = {iid: db.session.get(Item, iid) for iid in cells}
        yield users, items, cells


def _label(profile, spec, action):
    vis, status, hidden = spec
    return f"{profile} {action} {vis}/{status}/{'hidden' if hidden else 'shown'}"


@pytest.mark.parametrize("action", ITEM_ACTIONS)
@pytest.mark.parametrize("profile", list(PROFILES))
def test_can_matches_the_rules(mctx, profile, action):
    users, items, cells = mctx
    user = users[profile]
    wrong = []
    for iid, spec in cells.items():
        want = expected(PROFILES[profile], *spec, action)
        got = policy.can(user, action, items[iid])
        if got is not want:
            wrong.append(f"{_label(profile, spec, action)}: expected {want}, got {got}")
    assert wrong == []


@pytest.mark.parametrize("profile", list(PROFILES))
def test_view_has_three_faces_that_agree(mctx, profile):
    """can(view) == row in visible() == search principals meet, for every item."""
    users, items, cells = mctx
    user = users[profile]
    listed = set(db.session.execute(policy.visible(user, Item)).scalars().all())
    listed_ids = {i.id for i in listed}
    mine = set(policy.principals(user))
    wrong = []
    for iid, spec in cells.items():
        item = items[iid]
        by_can = policy.can(user, "view", item)
        by_sql = iid in listed_ids
        by_search = bool(set(policy.item_doc_principals(item)) & mine)
        want = expected(PROFILES[profile], *spec, "view")
        if not (by_can == by_sql == by_search == want):
            wrong.append(f"{_label(profile, spec, 'view')}: rules {want}, can {by_can}, "
                         f"visible() {by_sql}, search {by_search}")
    assert wrong == []


@pytest.mark.parametrize("profile", ["anonymous", "outsider", "granted", "member", "admin", "moderator"])
@pytest.mark.parametrize("kind", KINDS)
def test_visible_per_kind_is_the_same_rule(mctx, profile, kind):
    """visible(user, Challenge) lists exactly the challenges the user may view."""
    users, items, cells = mctx
    user = users[profile]
    model = MODEL_BY_KIND[kind]
    listed = {i.id for i in db.session.execute(policy.visible(user, model)).scalars()}
    want = {iid for iid, it in items.items() if it.kind == kind and policy.can(user, "view", it)}
    assert listed == want
    assert all(items[i].kind == kind for i in listed)


@pytest.mark.parametrize("profile", ["outsider", "granted", "admin", "moderator", "suspended_member"])
def test_viewer_object_and_user_answer_alike(mctx, profile):
    users, items, cells = mctx
    user = users[profile]
    viewer = policy.viewer_for(user)
    for item in items.values():
        for action in ITEM_ACTIONS:
            assert policy.can(viewer, action, item) == policy.can(user, action, item)


def test_blocked_accounts_have_only_public_principals(mctx):
    users, _items, _cells = mctx
    for name in ("suspended_member", "banned_admin"):
        assert policy.principals(users[name]) == ["public"]
        assert not policy.viewer_for(users[name]).is_authenticated


def test_the_matrix_covers_every_level_status_and_action(mctx):
    """Guard against a silently shrinking matrix."""
    _users, _items, cells = mctx
    assert {s[0] for s in cells.values()} == set(VISIBILITIES)
    assert {s[1] for s in cells.values()} == set(STATUSES)
    assert {s[2] for s in cells.values()} == {False, True}
    for action in ITEM_ACTIONS:
        assert (Item, action) in policy.RULES


# --------------------------------------------------------------------------- fail closed


@pytest.fixture
def fctx(app):
    with app.app_context():
        yield World()


@pytest.mark.parametrize("column,value", [("visibility", "secret"), ("visibility", ""),
                                          ("status", "pending"), ("status", "")])
def test_unknown_state_fails_closed(fctx, column, value):
    """A row with an unknown level or status is refused to everyone: `can` raises, no list
    shows it, the search twin raises."""
    world = fctx
    item = world.add_item(visibility="public", status="open")
    draft = world.add_item(visibility="public", status="draft")
    for it in (item, draft):
        db.session.execute(update(Item).where(Item.id == it.id).values(**{column: value}))
    db.session.commit()
    db.session.expire_all()
    for name in PROFILES:
        user = world.user(name)
        for it in (item, draft):
            for action in ITEM_ACTIONS:
                with pytest.raises(PolicyError):
                    policy.can(user, action, db.session.get(Item, it.id))
            with pytest.raises(PolicyError):
                policy.item_doc_principals(db.session.get(Item, it.id))
        listed = {i.id for i in db.session.execute(policy.visible(user, Item)).scalars()}
        assert item.id not in listed and draft.id not in listed, name


def test_unknown_action_model_and_site_action_fail_closed(fctx):
    world = fctx
    item = world.add_item()
    for name in ("anonymous", "owner", "site_admin"):
        user = world.user(name)
        with pytest.raises(PolicyError):
            policy.can(user, "frobnicate", item)
        with pytest.raises(PolicyError):
            policy.can(user, "view", object())
        with pytest.raises(PolicyError):
            policy.can(user, "rule_the_world")
        with pytest.raises(PolicyError):
            policy.visible(user, User)  # no visibility rule for accounts: never "everything"


def test_organisation_rules(fctx):
    world = fctx
    org = db.session.get(Organisation, world.org.id)
    for name in PROFILES:
        user = world.user(name)
        p = PROFILES[name]
        assert policy.can(user, "view", org) is True  # profiles are public; items filtered
        assert policy.can(user, "edit", org) is p.org_admin
        assert policy.can(user, "manage_members", org) is p.org_admin
        assert policy.can(user, "create_item", org) is p.org_admin
    assert policy.can(world.user("site_admin"), "administer") is True
    assert policy.can(world.user("moderator"), "administer") is False
    assert policy.can(world.user("moderator"), "moderate") is True
    assert policy.can(world.user("site_admin"), "moderate") is True
    for name in ("anonymous", "outsider", "owner", "suspended_member"):
        assert policy.can(world.user(name), "moderate") is False
        assert policy.can(world.user(name), "administer") is False


def test_grant_changes_take_effect_at_once(fctx):
    """Revoking a grant or a list place, or letting it expire, ends access on the next check."""
    from marketplace.models import AccessGrant, ListMember, utcnow

    world = fctx
    f = world.f
    item = f.make_item(world.org, visibility="invited", title="Lidar fusion")
    newcomer = f.make_user()
    assert not policy.can(newcomer, "view", item)
    g = f.grant(item, user=newcomer)
    assert policy.can(newcomer, "view", item)
    assert item.id in {i.id for i in db.session.execute(policy.visible(newcomer, Item)).scalars()}
    g.revoked_at = utcnow()
    db.session.commit()
    assert not policy.can(newcomer, "view", item)
    assert item.id not in {i.id for i in db.session.execute(policy.visible(newcomer, Item)).scalars()}
    assert f"user:{newcomer.id}" not in policy.item_doc_principals(item)

    f.attach_list(item, world.lst)
    place = f.add_to_list(world.lst, user=newcomer)
    assert policy.can(newcomer, "view", item)
    assert f"list:{world.lst.id}" in policy.principals(newcomer)
    place.expires_at = world.past
    db.session.commit()
    assert not policy.can(newcomer, "view", item)
    assert f"list:{world.lst.id}" not in policy.principals(newcomer)
    assert db.session.get(ListMember, place.id) is not None
    assert db.session.get(AccessGrant, g.id).revoked_at is not None
