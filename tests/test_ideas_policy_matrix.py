"""The policy matrix for ideas: viewer x challenge visibility x confidentiality x idea state.

For every cell: the per-object rule (can), the SQL filter (visible) and the search
principals (principals / idea_doc_principals) agree, and all three match the expectation
written out here from the issue's rules.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import Idea, IdeaAttachment, IdeaAuthor, utcnow
from marketplace.policy import PolicyError
from marketplace.services import ideas as svc

from .factories import appoint_reviewer
from .factories_ideas import IdeaFactories

VIEWERS = ["anonymous", "outsider", "other_contributor", "author", "coauthor", "pending_coauthor",
           "member_reviewer", "judge_no_nda", "judge", "org_admin", "org_member", "moderator"]
STATES = ["awaiting-coauthors", "submitted", "under-review", "declined", "withdrawn", "hidden", "disqualified"]
CONFS = ["sealed", "open", "revealed"]


def expected(viewer: str, vis: str, conf: str, state: str) -> bool:
    if viewer in ("author", "coauthor", "pending_coauthor"):
        return True
    if state == "awaiting-coauthors":
        return False
    if viewer == "moderator":
        return True
    if state in ("withdrawn", "hidden"):
        return False
    sees_challenge = {
        "anonymous": vis == "public", "outsider": vis == "public",
        # invited challenge: granted contributors, judges (granted on appointment), members
    }.get(viewer, True)
    if not sees_challenge:
        return False
    if conf in ("open", "revealed"):
        return True
    return viewer in ("org_admin", "member_reviewer", "judge")


def build(f, combos=None):
    """Users and ideas for every (visibility, confidentiality, state), or just `combos`."""
    fi = IdeaFactories(f)
    owner = f.make_user()
    org = f.make_org(owner=owner)
    people = {name: f.make_user(name=name) for name in VIEWERS if name not in ("anonymous", "org_admin")}
    people["org_admin"] = owner
    people["moderator"].site_role = "moderator"
    f.add_member(org, people["member_reviewer"])
    f.add_member(org, people["org_member"])
    db.session.commit()
    ideas = {}
    combos = set(combos) if combos else {(v, c, st) for v in ("public", "invited") for c in CONFS for st in STATES}
    for vis in sorted({c[0] for c in combos}):
        s = fi.challenge(visibility=vis, confidentiality="sealed", owner=owner, org=org,
                         rules={"who_may_submit": "registered", "team_allowed": True, "max_team_size": 5,
                                "max_ideas_per_contributor": 50})
        if vis == "invited":
            for name in ("other_contributor", "author", "coauthor", "pending_coauthor"):
                f.grant(s.challenge, user=people[name])
        svc.appoint_reviewer(owner, s.challenge, people["member_reviewer"].email)
        appoint_reviewer(owner, s.challenge, people["judge"], "NDA text")
        appoint_reviewer(owner, s.challenge, people["judge_no_nda"], "NDA text")
        appt = policy.reviewer_appointment(policy.viewer_for(people["judge"]), s.challenge.id)
        svc.accept_reviewer_nda(people["judge"], appt, appt.nda_digest)
        fi.submit(people["other_contributor"], s.challenge, title="Someone else's")
        for conf in CONFS:
            for state in STATES:
                if (vis, conf, state) not in combos:
                    continue
                idea = fi.submit(people["author"], s.challenge, title=f"{vis}/{conf}/{state}",
                                 coauthors=f"{people['coauthor'].email}\n{people['pending_coauthor'].email}")
                svc.accept_coauthorship(people["coauthor"], idea, fi.submission(s.challenge))
                idea = db.session.get(Idea, idea.id)
                idea.confidentiality = "open" if conf == "open" else "sealed"
                idea.reveal_at = utcnow() - timedelta(hours=1) if conf == "revealed" else None
                idea.status = "submitted" if state == "hidden" else state
                idea.hidden_at = utcnow() if state == "hidden" else None
                ideas[(vis, conf, state)] = idea
        db.session.commit()
    users = {name: people.get(name) for name in VIEWERS}
    return users, ideas


@pytest.fixture
def matrix(f):
    return build(f)


@pytest.fixture
def small(f):
    return build(f, [("public", "sealed", "submitted"), ("public", "open", "submitted"),
                     ("invited", "sealed", "submitted")])


def test_matrix_can_visible_and_principals_agree(matrix):
    users, ideas = matrix
    failures = []
    for viewer, user in users.items():
        seen_ids = set(db.session.execute(policy.visible(user, Idea).with_only_columns(Idea.id)).scalars())
        mine = set(policy.principals(user))
        for (vis, conf, state), idea in ideas.items():
            want = expected(viewer, vis, conf, state)
            got_can = policy.can(user, "view", idea)
            got_sql = idea.id in seen_ids
            got_search = bool(mine & set(policy.idea_doc_principals(idea)))
            if not (want == got_can == got_sql == got_search):
                failures.append((viewer, vis, conf, state, want, got_can, got_sql, got_search))
    assert not failures, "\n".join(map(str, failures))


def test_attachments_follow_their_idea(f, small):
    users, ideas = small
    idea = ideas[("public", "sealed", "submitted")]
    att = IdeaAttachment(idea_id=idea.id, filename="a.txt", stored_name="ab" * 16, content_type="text/plain",
                         size=1, sha256="0" * 64)
    db.session.add(att)
    db.session.commit()
    for viewer, user in users.items():
        want = expected(viewer, "public", "sealed", "submitted")
        seen = att.id in set(db.session.execute(
            policy.visible(user, IdeaAttachment).with_only_columns(IdeaAttachment.id)).scalars())
        assert policy.can(user, "view", att) == seen == want, viewer


ALLOWED_ON_SUBMITTED_SEALED = {
    "revise": {"author", "coauthor"},
    "withdraw": {"author"},
    "score": {"member_reviewer", "judge"},
    "shortlist": {"member_reviewer", "judge", "org_admin"},
    "decline": {"member_reviewer", "judge", "org_admin"},
    "award": set(),  # only shortlisted ideas are awarded
    "confirm_payment": set(),  # only awarded ideas
    "disqualify": {"moderator"},
    "view_review": {"member_reviewer", "judge", "org_admin"},
    "view_view_log": {"author", "coauthor", "pending_coauthor"},
    "answer_coauthorship": {"pending_coauthor"},
}


def test_actions_on_a_submitted_sealed_idea(small):
    users, ideas = small
    idea = ideas[("invited", "sealed", "submitted")]
    for action, allowed in ALLOWED_ON_SUBMITTED_SEALED.items():
        got = {name for name, user in users.items() if policy.can(user, action, idea)}
        assert got == allowed, action
    idea.status = "shortlisted"
    db.session.commit()
    assert {n for n, u in users.items() if policy.can(u, "award", idea)} == {"member_reviewer", "judge", "org_admin"}
    idea.status = "awarded"
    db.session.commit()
    assert {n for n, u in users.items() if policy.can(u, "confirm_payment", idea)} == {"org_admin"}


def test_unknown_states_fail_closed(small):
    users, ideas = small
    idea = ideas[("public", "open", "submitted")]
    idea.status = "limbo"
    with pytest.raises(PolicyError):
        policy.can(users["outsider"], "view", idea)
    idea.status = "submitted"
    idea.confidentiality = "translucent"
    with pytest.raises(PolicyError):
        policy.can(users["outsider"], "view", idea)
    db.session.rollback()
    # ...and the SQL filter never shows a row in an unknown state to a non-author.
    db.session.execute(Idea.__table__.update().where(Idea.id == idea.id).values(confidentiality="translucent"))
    db.session.commit()
    ids = set(db.session.execute(policy.visible(users["outsider"], Idea).with_only_columns(Idea.id)).scalars())
    assert idea.id not in ids


def test_removed_coauthor_and_revoked_reviewer_lose_access(small):
    users, ideas = small
    idea = ideas[("invited", "sealed", "submitted")]
    row = db.session.execute(select(IdeaAuthor).where(IdeaAuthor.idea_id == idea.id,
                                                      IdeaAuthor.user_id == users["pending_coauthor"].id)).scalar_one()
    row.status = "declined"
    db.session.commit()
    assert not policy.can(users["pending_coauthor"], "view", idea)
    appt = policy.reviewer_appointment(policy.viewer_for(users["judge"]), idea.challenge_id)
    appt.revoked_at = utcnow()
    db.session.commit()
    assert not policy.can(users["judge"], "view", idea)
    assert f"reviewers:{idea.challenge_id}" not in policy.principals(users["judge"])
