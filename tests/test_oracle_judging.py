"""The judging rules (marketplace/policy/judging.py) against their oracle
(tests/oracles/judging.py, written from the issue over plain rows): every viewer x every
idea state x every judging action, every round, score, comment, declaration and assignment,
and the challenge-level actions (set up rounds, export, panel progress, the judge's queue)
on a visible, an organisation-only and an archived challenge.

The world goes through the services where they exist (rounds, assignments, conflicts,
scores, decisions, moderation); the states no service makes on purpose (a judge who has not
accepted the NDA, a stale assignment under a conflict) are written as rows.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import (
    ConflictDeclaration,
    Idea,
    Item,
    JudgingRound,
    PanelComment,
    ReviewerAppointment,
    RoundAssignment,
    RoundScore,
    User,
    utcnow,
)
from marketplace.services import ideas as ideas_svc
from marketplace.services import judging as svc
from marketplace.services import moderation as mod_svc

from .factories_ideas import IdeaFactories
from .oracles import judging as oracle
from .oracles.items import may_see_item

VIEWERS = ("anonymous", "owner", "admin", "member", "j1", "j2", "j3_no_nda", "j4_revoked", "j5_conflicted",
           "ann", "bob", "cy", "dee", "site_mod", "outsider")


@pytest.fixture
def world(f):
    fi = IdeaFactories(f)
    U = {n: f.make_user(name=n, site_role="moderator" if n == "site_mod" else "user") for n in VIEWERS
         if n != "anonymous"}
    org = f.make_org(name="Posting org", owner=U["owner"], admins=(U["admin"],),
                     members=(U["member"], U["j1"], U["j2"], U["j4_revoked"], U["j5_conflicted"]))
    f.make_org(name="Acme", owner=U["ann"], members=(U["bob"],))
    s = fi.challenge(visibility="public", confidentiality="sealed", owner=U["owner"], org=org)
    ch = s.challenge
    for n in ("j1", "j2", "j4_revoked", "j5_conflicted"):
        ideas_svc.appoint_reviewer(U["owner"], ch, U[n].email)
    db.session.add(ReviewerAppointment(challenge_id=ch.id, user_id=U["j3_no_nda"].id, kind="judge",
                                       nda_text="Secret.", nda_digest="x" * 64))
    db.session.commit()
    ideas = {
        "A": fi.submit(U["ann"], ch, title="A"), "B": fi.submit(U["bob"], ch, title="B"),
        "C": fi.submit(U["cy"], ch, title="C"), "D": fi.submit(U["cy"], ch, title="D"),
        "E": fi.submit(U["dee"], ch, title="E"),
        "F": fi.submit(U["dee"], ch, title="F", coauthors=U["cy"].email),
    }
    # An open idea: seen by everyone who sees the challenge, so only the judging rules
    # (not the sealed-idea rule) keep inactive panelists (no NDA, revoked) out.
    fi.set_terms(U["owner"], ch, confidentiality="open")
    ideas["G"] = fi.submit(U["cy"], ch, title="G")
    now = utcnow()
    j = lambda n: U[n].id  # noqa: E731
    r1 = svc.create_round(U["owner"], ch, {"name": "One", "starts_at": now - timedelta(days=2),
                                           "ends_at": now + timedelta(days=2), "advance_count": 3,
                                           "criteria": "Merit: 1",
                                           "panel": [j("j1"), j("j2"), j("j3_no_nda"), j("j4_revoked"),
                                                     j("j5_conflicted")]})
    r2 = svc.create_round(U["owner"], ch, {"name": "Two", "starts_at": now + timedelta(days=3),
                                           "ends_at": now + timedelta(days=9), "advance_count": 1,
                                           "criteria": "Merit: 1", "panel": [j("j1")]})
    for idea, judges in (("A", ("j1", "j2", "j5_conflicted", "j4_revoked")), ("B", ("j1", "j5_conflicted")),
                         ("D", ("j2",)), ("E", ("j1",)), ("C", ("j2",)),
                         ("G", ("j1", "j3_no_nda", "j4_revoked"))):
        for n in judges:
            svc.assign(U["owner"], r1, ideas[idea], j(n))
    svc.score_in_round(U["j1"], ideas["A"], {r1.criteria[0].id: 7})
    svc.add_comment(U["j2"], ideas["A"], "Round one talk.")
    svc.declare_conflict(U["j5_conflicted"], ideas["A"], "organisations", "I advise Acme.")
    # A stale assignment the conflict covers (as if written before the declaration's check).
    stale = db.session.query(RoundAssignment).filter_by(idea_id=ideas["B"].id, judge_id=j("j5_conflicted")).one()
    stale.removed_at = stale.removed_reason = None
    db.session.commit()
    svc.advance_ideas(U["owner"], ch, [ideas["C"].id])
    svc.add_comment(U["owner"], ideas["C"], "Round two talk.")
    ideas_svc.decline_idea(U["owner"], ideas["D"], "No.")
    mod_svc.take_action(U["site_mod"], "idea", ideas["E"].id, "hide", "Spam.", rule="No spam")
    ideas_svc.revoke_reviewer(U["owner"], db.session.query(ReviewerAppointment).filter_by(
        challenge_id=ch.id, user_id=j("j4_revoked")).one())
    private = f.make_item(org, kind="challenge", visibility="organisation")
    archived = f.make_item(org, kind="challenge", visibility="public", status="archived")
    other = fi.challenge(visibility="public", confidentiality="open").challenge
    db.session.expire_all()
    return U, [ch.id, private.id, archived.id, other.id]


def _mismatches(U, check):
    facts = oracle.JudgingFacts()
    wrong, allowed = [], 0
    for name in VIEWERS:
        uid = U[name].id if name != "anonymous" else None
        user = db.session.get(User, uid) if uid else None
        p = facts.person(name, uid)
        policy.forget_viewer()
        for label, want, got in check(user, p, facts):
            allowed += bool(want)
            if want != got:
                wrong.append(f"{name} {label}: policy {got}, oracle {want}")
    return wrong, allowed


IDEA_ACTIONS = {"judge": oracle.judge, "declare_conflict": oracle.declare_conflict, "discuss": oracle.discuss,
                "advance": oracle.advance}


def test_idea_actions_match_the_oracle(world):
    U, _ = world

    def check(user, p, facts):
        for idea in db.session.query(Idea).order_by(Idea.id):
            fi = facts.ideas[idea.id]
            for action, fn in IDEA_ACTIONS.items():
                yield f"{action} idea {idea.title}", fn(p, fi, facts), policy.can(user, action, idea)

    wrong, allowed = _mismatches(U, check)
    assert wrong == []
    assert allowed > 20  # the world grants enough for the comparison to mean something


def test_rows_match_the_oracle(world):
    U, _ = world

    def check(user, p, facts):
        for c in db.session.query(PanelComment):
            yield f"view comment {c.id}", oracle.sees_comment(p, facts.comments_[c.id], facts), policy.can(user, "view", c)
        for s in db.session.query(RoundScore):
            yield f"view score {s.id}", oracle.sees_score(p, facts.scores[s.id], facts), policy.can(user, "view", s)
        for d in db.session.query(ConflictDeclaration):
            yield (f"view conflict {d.id}", oracle.sees_own_or_admin(p, facts.conflicts[d.id], facts, d.challenge_id),
                   policy.can(user, "view", d))
        for a in db.session.query(RoundAssignment):
            rnd = facts.rounds[a.round_id]
            yield (f"view assignment {a.id}", oracle.sees_own_or_admin(p, facts.assignments[a.id], facts,
                                                                       rnd.challenge_id), policy.can(user, "view", a))
        for r in db.session.query(JudgingRound):
            fr = facts.rounds[r.id]
            yield f"view round {r.name}", oracle.sees_round(p, fr, facts), policy.can(user, "view", r)
            yield f"results of round {r.name}", oracle.round_results(p, fr, facts), policy.can(user, "view_results", r)
            listed = r.id in {x.id for x in db.session.execute(policy.visible(user, JudgingRound)).scalars()}
            yield f"list round {r.name}", oracle.sees_round(p, fr, facts), listed

    wrong, allowed = _mismatches(U, check)
    assert wrong == [] and allowed > 10


def test_challenge_actions_match_the_oracle(world):
    U, challenges = world
    spec = {"manage_rounds": oracle.manage_rounds, "export_ideas": oracle.export,
            "view_panel_progress": oracle.export, "judge_queue": oracle.queue}

    def check(user, p, facts):
        for cid in challenges:
            item = db.session.get(Item, cid)
            fi = facts.items[cid]
            for action, fn in spec.items():
                want = may_see_item(p, fi, facts) and fn(p, fi, facts)
                yield f"{action} on challenge {cid}", want, policy.can(user, action, item)

    wrong, allowed = _mismatches(U, check)
    assert wrong == [] and allowed > 8
