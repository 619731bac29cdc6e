"""The insights rules (dashboards, participation, governance events, audit verification,
after-action reviews, starting from a past challenge) against their oracle
(tests/oracles/insights.py): every viewer x every organisation / challenge / review, on
can() and, for reviews, visible()."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import inspect, select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import ChallengeReview, Item, Organisation, User, utcnow

from .factories import Factories
from .factories_foundation import dispose, make_app
from .oracles import insights as oracle
from .oracles.facts import Facts

VIEWERS = ("anonymous", "outsider", "acme_owner", "acme_admin", "acme_member", "cluster_owner", "cluster_member",
           "other_admin", "site_mod", "site_admin", "banned_admin")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("insights"))
    with app.app_context():
        f = Factories()
        now = utcnow()
        U = {n: f.make_user(name=n, site_role={"site_mod": "moderator", "site_admin": "admin"}.get(n, "user"))
             for n in VIEWERS if n != "anonymous"}
        U["banned_admin"].banned = True
        db.session.commit()
        acme = f.make_org(name="Acme", owner=U["acme_owner"], admins=(U["acme_admin"], U["banned_admin"]),
                          members=(U["acme_member"],))
        cluster = f.make_org(name="Cluster", kind="cluster", owner=U["cluster_owner"],
                             members=(U["cluster_member"],))
        f.make_org(name="Other", owner=U["other_admin"])
        for org in (acme, cluster):
            for vis in ("public", "organisation"):
                for status, deadline in (("draft", None), ("open", now + timedelta(days=5)),
                                         ("open", now - timedelta(days=5)), ("closed", None), ("archived", None)):
                    ch = f.make_item(org, kind="challenge", visibility=vis, status=status,
                                     title=f"{org.name} {vis} {status}", deadline=deadline)
                    if status in ("closed", "open"):
                        db.session.add(ChallengeReview(
                            challenge_id=ch.id, submitted_at=now - timedelta(days=1) if vis == "public" else None))
            f.make_item(org, kind="failure", visibility="public", status="open")
        db.session.commit()
        hidden = db.session.execute(select(Item).where(Item.title == "Acme public closed")).scalar()
        hidden.hidden_at = now
        db.session.commit()
        facts = Facts()
        facts.reviews = {r.id: SimpleNamespace(**{a.key: getattr(r, a.key)
                                                  for a in inspect(ChallengeReview).column_attrs})
                         for r in db.session.execute(select(ChallengeReview)).scalars()}
        ids = {n: (U[n].id if n != "anonymous" else None) for n in VIEWERS}
    yield app, facts, ids
    dispose(app)


def _user(uid):
    return db.session.get(User, uid) if uid is not None else None


@pytest.mark.parametrize("viewer", VIEWERS)
def test_organisation_and_site_actions_match_the_oracle(world, viewer):
    app, facts, ids = world
    p = facts.person(viewer, ids[viewer])
    with app.test_request_context():
        user = _user(ids[viewer])
        for org in db.session.execute(select(Organisation)).scalars():
            o = facts.orgs[org.id]
            assert policy.can(user, "view_dashboard", org) == oracle.sees_dashboard(p, o, facts), org.name
            assert policy.can(user, "view_participation", org) == oracle.sees_participation(p, o, facts), org.name
            assert policy.can(user, "browse_governance", org) == oracle.browses_governance(p, o, facts), org.name
        assert policy.can(user, "verify_audit") == oracle.verifies_audit(p, facts)


@pytest.mark.parametrize("viewer", VIEWERS)
def test_challenge_actions_match_the_oracle(world, viewer):
    app, facts, ids = world
    p = facts.person(viewer, ids[viewer])
    with app.test_request_context():
        user = _user(ids[viewer])
        for item in db.session.execute(select(Item)).scalars():
            row = facts.items[item.id]
            assert policy.can(user, "write_review", item) == oracle.writes_review(p, row, facts), item.title
            assert policy.can(user, "start_from", item) == oracle.starts_from(p, row, facts), item.title


@pytest.mark.parametrize("viewer", VIEWERS)
def test_reviews_match_the_oracle_on_can_and_visible(world, viewer):
    app, facts, ids = world
    p = facts.person(viewer, ids[viewer])
    with app.test_request_context():
        user = _user(ids[viewer])
        want = set()
        for review in db.session.execute(select(ChallengeReview)).scalars():
            row = facts.reviews[review.id]
            sees = oracle.sees_review(p, row, facts)
            if sees:
                want.add(review.id)
            label = review.challenge.title
            assert policy.can(user, "view", review) == sees, label
            assert policy.can(user, "edit", review) == oracle.edits_review(p, row, facts), label
            assert policy.can(user, "publish", review) == oracle.publishes_review(p, row, facts), label
        got = set(db.session.execute(select(ChallengeReview.id).where(
            policy.visible_clause(user, ChallengeReview))).scalars())
        assert got == want


def test_the_world_has_both_answers_for_every_rule(world):
    """Guard against a vacuous matrix: each rule is granted to someone and refused to someone."""
    app, facts, ids = world
    with app.test_request_context():
        seen = {name: set() for name in ("write_review", "start_from", "view", "publish")}
        for viewer in VIEWERS:
            p = facts.person(viewer, ids[viewer])
            for row in facts.items.values():
                seen["write_review"].add(oracle.writes_review(p, row, facts))
                seen["start_from"].add(oracle.starts_from(p, row, facts))
            for row in facts.reviews.values():
                seen["view"].add(oracle.sees_review(p, row, facts))
                seen["publish"].add(oracle.publishes_review(p, row, facts))
        assert all(v == {True, False} for v in seen.values()), seen
