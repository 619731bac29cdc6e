"""Judging rounds (issue 11): round set-ups and their refusals, balanced and manual
assignment with conflicts of interest, scores per round, per-judge normalisation against
hand-computed values, bulk decisions through rounds to an award, the panel discussion, the
panel's progress, copy_rounds, and the pages' answers to bad input."""
from __future__ import annotations

import json
import math
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import (
    AuditEvent,
    ConflictDeclaration,
    Idea,
    JudgingRound,
    PanelComment,
    RoundAssignment,
    RoundEntry,
    RoundScore,
    utcnow,
)
from marketplace.moderation import decisions
from marketplace.policy.judging import current_round
from marketplace.services import ideas as ideas_svc
from marketplace.services import judging as svc
from marketplace.services.common import ServiceError

from .factories_ideas import IdeaFactories, reload


def count(model, *where) -> int:
    return db.session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def events(action):
    return db.session.execute(select(AuditEvent).where(AuditEvent.action == action)
                              .order_by(AuditEvent.id)).scalars().all()


class World:
    pass


@pytest.fixture
def w(f):
    """A public challenge with sealed terms, three member reviewers (judges), and five ideas:
    two by Ann (of Acme), one by Bob (also of Acme), two by Cy (no organisation)."""
    fi = IdeaFactories(f)
    s = fi.challenge(visibility="public", confidentiality="sealed")
    x = World()
    x.s, x.fi, x.owner, x.ch = s, fi, s.owner, s.challenge
    x.judges = []
    for n in ("Jo", "Kim", "Lee"):
        u = f.make_user(name=f"Judge {n}")
        f.add_member(s.org, u)
        ideas_svc.appoint_reviewer(s.owner, s.challenge, u.email)
        x.judges.append(u)
    x.outsider_reviewer = f.make_user(name="Not On Panel")
    f.add_member(s.org, x.outsider_reviewer)
    ideas_svc.appoint_reviewer(s.owner, s.challenge, x.outsider_reviewer.email)
    x.ann, x.bob, x.cy = (f.make_user(name=n) for n in ("Ann", "Bob", "Cy"))
    x.acme = f.make_org(name="Acme", owner=x.ann, members=(x.bob,))
    x.ideas = [fi.submit(x.ann, x.ch, title="Ann one"), fi.submit(x.ann, x.ch, title="Ann two"),
               fi.submit(x.bob, x.ch, title="Bob one"), fi.submit(x.cy, x.ch, title="Cy one"),
               fi.submit(x.cy, x.ch, title="Cy two")]
    now = utcnow()
    x.now = now
    x.r1_data = {"name": "Screening", "starts_at": now - timedelta(days=10), "ends_at": now - timedelta(days=5),
                 "advance_count": 3, "criteria": "Feasibility: 3\nCost: 1", "panel": [u.id for u in x.judges]}
    x.r2_data = {"name": "Final", "starts_at": now - timedelta(days=4), "ends_at": now + timedelta(days=5),
                 "advance_count": 1, "criteria": [("Impact", 2)], "panel": [x.judges[0].id, x.judges[1].id]}
    return x


def two_rounds(w):
    r1 = svc.create_round(w.owner, w.ch, w.r1_data)
    r2 = svc.create_round(w.owner, w.ch, w.r2_data)
    return r1, r2


# --------------------------------------------------------------------------- set-up


@pytest.mark.parametrize("change,field,words", [
    ({"criteria": ""}, "criteria", "at least one criterion"),
    ({"criteria": "Feasibility: 0"}, "criteria", "must be positive"),
    ({"criteria": "Feasibility: -2"}, "criteria", "must be positive"),
    ({"criteria": [("Cost", 0)]}, "criteria", "must be positive"),
    ({"criteria": "Feasibility: 1.5"}, "criteria", "whole number"),
    ({"criteria": "Feasibility 3"}, "criteria", "Name: weight"),
    ({"criteria": "A: 1\na: 2"}, "criteria", "Two criteria"),
    ({"ends_at": "start"}, "ends_at", "ends after it starts"),
    ({"panel": []}, "panel", "at least one judge"),
    ({"advance_count": 0}, "advance_count", "whole number from 1"),
    ({"name": " "}, "name", "Name the round"),
])
def test_invalid_round_set_ups_are_refused_and_write_nothing(w, change, field, words):
    data = dict(w.r1_data, **change)
    if data.get("ends_at") == "start":
        data["ends_at"] = data["starts_at"]
    with pytest.raises(ServiceError) as ei:
        svc.create_round(w.owner, w.ch, data)
    db.session.rollback()
    assert any(f == field and words in m for f, m in ei.value.errors), ei.value.errors
    assert count(JudgingRound) == 0 and not events("judging.round_created")


def test_overlapping_rounds_and_outsiders_on_the_panel_are_refused(w, f):
    svc.create_round(w.owner, w.ch, w.r1_data)
    overlap = dict(w.r2_data, starts_at=w.r1_data["ends_at"] - timedelta(hours=1))
    with pytest.raises(ServiceError) as ei:
        svc.create_round(w.owner, w.ch, overlap)
    db.session.rollback()
    assert "overlap round “Screening”" in ei.value.message
    stranger = f.make_user()
    with pytest.raises(ServiceError) as ei:
        svc.create_round(w.owner, w.ch, dict(w.r2_data, panel=[stranger.id]))
    db.session.rollback()
    assert "appointed reviewers" in ei.value.message
    assert count(JudgingRound) == 1


def test_only_the_challenges_admins_set_up_rounds(w):
    with pytest.raises(ServiceError) as ei:
        svc.create_round(w.judges[0], w.ch, w.r1_data)
    assert ei.value.status == 403 and count(JudgingRound) == 0


def test_rounds_are_ordered_by_date_and_their_set_up_is_in_the_decision_log(w):
    r2 = svc.create_round(w.owner, w.ch, w.r2_data)
    r1 = svc.create_round(w.owner, w.ch, w.r1_data)  # earlier dates: becomes round 1
    assert [r.id for r in policy.judging.rounds_of(w.ch.id)] == [r1.id, r2.id]
    assert (reload(r1).position, reload(r2).position) == (1, 2)
    log = [e.what for e in decisions.decision_log(w.owner, w.ch)]
    assert "Judging round “Screening” set up" in log and "Judging round “Final” set up" in log
    assert [(c.name, c.weight) for c in r1.criteria] == [("Feasibility", 3), ("Cost", 1)]


def test_a_challenge_without_rounds_keeps_the_flat_review(w):
    idea = w.ideas[0]
    assert current_round(idea) is None
    assert not policy.can(w.judges[0], "judge", idea) and not policy.can(w.owner, "advance", idea)
    ideas_svc.shortlist_idea(w.owner, idea)  # the flat flow still works
    assert reload(idea).status == "shortlisted"
    # Bulk decisions work without rounds too: putting through shortlists (one implicit step).
    assert svc.advance_ideas(w.judges[0], w.ch, [w.ideas[1].id, w.ideas[2].id], "Both promising") == 2
    assert {reload(w.ideas[1]).status, reload(w.ideas[2]).status} == {"shortlisted"}
    with pytest.raises(ServiceError) as ei:
        svc.advance_ideas(w.ann, w.ch, [w.ideas[0].id])  # her own idea, already shortlisted
    assert ei.value.status == 409


def test_the_flat_review_has_a_bulk_page_too(w, app, client, auth):
    app.config["WTF_CSRF_ENABLED"] = False
    auth.login(w.owner.email)
    html = client.get(f"/challenges/{w.ch.id}/judging").get_data(as_text=True)
    assert "Ideas under review" in html and "Cy one" in html
    r = client.post(f"/challenges/{w.ch.id}/judging/decide",
                    data={"decision": "decline", "reason": "Not now.", "ideas": [str(w.ideas[3].id)],
                          "confirmed": "yes"})
    assert r.status_code == 302 and reload(w.ideas[3]).decision_reason == "Not now."


# --------------------------------------------------------------------------- assignment


def active(rnd):
    return sorted((a.idea_id, a.judge_id) for a in svc.assignments_of(rnd))


def test_balanced_assignment_is_even_and_deterministic(w):
    r1, _ = two_rounds(w)
    assert svc.auto_assign(w.owner, r1, 2) == 10
    j1, j2, j3 = sorted(u.id for u in w.judges)
    i = sorted(x.id for x in w.ideas)
    # By hand: each idea takes the two least-loaded judges (ties to the lowest id).
    expected = sorted([(i[0], j1), (i[0], j2), (i[1], j3), (i[1], j1), (i[2], j2), (i[2], j3),
                       (i[3], j1), (i[3], j2), (i[4], j3), (i[4], j1)])
    assert active(r1) == expected
    loads = {j: sum(1 for _, jj in expected if jj == j) for j in (j1, j2, j3)}
    assert loads == {j1: 4, j2: 3, j3: 3}
    # Run again: nothing to add, nothing changes.
    assert svc.auto_assign(w.owner, r1, 2) == 0 and active(r1) == expected
    assert events("judging.auto_assigned")


def test_balanced_assignment_skips_conflicts_and_authors(w):
    r1, _ = two_rounds(w)
    jo = w.judges[0]
    svc.declare_conflict(jo, w.ideas[0], "organisations", "I advise Acme.")
    svc.auto_assign(w.owner, r1, 2)
    acme = {w.ideas[0].id, w.ideas[1].id, w.ideas[2].id}  # Ann's two and Bob's (Acme)
    assert not [p for p in active(r1) if p[1] == jo.id and p[0] in acme]
    assert len(active(r1)) == 10


def test_balanced_assignment_is_all_or_nothing(w):
    r1, _ = two_rounds(w)
    for j in w.judges[:2]:
        svc.declare_conflict(j, w.ideas[3], "idea", "")
    with pytest.raises(ServiceError) as ei:
        svc.auto_assign(w.owner, r1, 2)
    db.session.rollback()
    assert ei.value.status == 409 and f"#{w.ideas[3].id}" in ei.value.message
    assert count(RoundAssignment) == 0
    with pytest.raises(ServiceError):
        svc.auto_assign(w.owner, r1, 4)  # more than the panel
    with pytest.raises(ServiceError):
        svc.auto_assign(w.owner, r1, "two")


def test_a_declared_conflict_unassigns_and_blocks_assignment(w):
    r1, _ = two_rounds(w)
    lee = w.judges[2]
    a = svc.assign(w.owner, r1, w.ideas[0], lee.id)
    svc.assign(w.owner, r1, w.ideas[1], lee.id)
    svc.assign(w.owner, r1, w.ideas[3], lee.id)
    assert policy.can(lee, "judge", w.ideas[0])
    decl = svc.declare_conflict(lee, w.ideas[0], "authors", "Ann is my sister.")
    assert decl.author_ids == [w.ann.id]
    # Both of Ann's ideas are covered: unassigned, with the reason kept; Cy's stays.
    rows = {r.idea_id: r for r in db.session.execute(select(RoundAssignment).where(
        RoundAssignment.judge_id == lee.id)).scalars()}
    assert rows[w.ideas[0].id].removed_reason == "conflict of interest declared"
    assert rows[w.ideas[1].id].removed_at is not None and rows[w.ideas[3].id].removed_at is None
    ev = events("judging.conflict_declared")[-1]
    assert json.loads(ev.data)["unassigned_idea_ids"] == sorted([w.ideas[0].id, w.ideas[1].id])
    assert not policy.can(lee, "judge", reload(w.ideas[0]))
    with pytest.raises(ServiceError) as ei:
        svc.assign(w.owner, r1, w.ideas[1], lee.id)
    db.session.rollback()
    assert ei.value.status == 409 and "conflict of interest" in ei.value.message
    assert reload(a).removed_at is not None
    # Once per idea; an author cannot declare (nor be assigned).
    assert not policy.can(lee, "declare_conflict", w.ideas[0])
    assert not policy.can(w.ann, "declare_conflict", w.ideas[0])
    with pytest.raises(ServiceError):
        svc.declare_conflict(lee, w.ideas[0], "idea", "")
    db.session.rollback()
    with pytest.raises(ServiceError) as ei:
        svc.declare_conflict(w.judges[0], w.ideas[0], "everyone", "")
    assert ei.value.field == "scope"
    assert count(ConflictDeclaration) == 1


def test_manual_assignment_refusals(w, f):
    r1, r2 = two_rounds(w)
    with pytest.raises(ServiceError) as ei:
        svc.assign(w.owner, r1, w.ideas[0], w.outsider_reviewer.id)
    assert "panel" in ei.value.message
    db.session.rollback()
    with pytest.raises(ServiceError) as ei:
        svc.assign(w.owner, r2, w.ideas[0], w.judges[0].id)  # not in round 2 yet
    assert "not in this round" in ei.value.message
    db.session.rollback()
    svc.assign(w.owner, r1, w.ideas[0], w.judges[0].id)
    with pytest.raises(ServiceError) as ei:
        svc.assign(w.owner, r1, w.ideas[0], w.judges[0].id)
    assert ei.value.status == 409
    db.session.rollback()
    with pytest.raises(ServiceError) as ei:
        svc.assign(w.judges[1], r1, w.ideas[0], w.judges[1].id)
    assert ei.value.status == 403
    db.session.rollback()
    assert count(RoundAssignment) == 1


# --------------------------------------------------------------------------- scores and normalisation


def test_scores_out_of_range_or_incomplete_are_refused(w):
    r1, _ = two_rounds(w)
    jo = w.judges[0]
    svc.assign(w.owner, r1, w.ideas[0], jo.id)
    feas, cost = r1.criteria
    for bad in ({feas.id: 11, cost.id: 3}, {feas.id: -1, cost.id: 3}, {feas.id: "x", cost.id: 3},
                {feas.id: 5}, {feas.id: 5, cost.id: 5, 999999: 1}):
        with pytest.raises(ServiceError) as ei:
            svc.score_in_round(jo, w.ideas[0], bad)
        db.session.rollback()
        assert ei.value.status == 400
    with pytest.raises(ServiceError) as ei:
        svc.score_in_round(w.judges[1], w.ideas[0], {feas.id: 5, cost.id: 5})  # not assigned
    assert ei.value.status == 403
    db.session.rollback()
    assert count(RoundScore) == 0
    svc.score_in_round(jo, w.ideas[0], {feas.id: 5, cost.id: 5})
    svc.score_in_round(jo, w.ideas[0], {feas.id: 6, cost.id: 5})  # changed, not added
    assert count(RoundScore) == 2 and svc.my_round_scores(jo, r1, w.ideas[0]) == {feas.id: 6, cost.id: 5}
    assert reload(w.ideas[0]).status == "under-review"


def test_normalisation_matches_hand_computed_z_scores(w):
    r1, _ = two_rounds(w)
    jo, kim, lee = w.judges
    i1, i2, i3 = w.ideas[0], w.ideas[1], w.ideas[3]
    feas, cost = r1.criteria  # weights 3 and 1
    for judge, idea in ((jo, i1), (jo, i2), (jo, i3), (kim, i1), (kim, i2), (lee, i1), (lee, i2)):
        svc.assign(w.owner, r1, idea, judge.id)
    sc = lambda j, i, a, b: svc.score_in_round(j, i, {feas.id: a, cost.id: b})  # noqa: E731
    sc(jo, i1, 8, 4)    # (3*8 + 4) / 4 = 7
    sc(jo, i2, 6, 2)    # 5
    sc(jo, i3, 4, 0)    # 3 -> Jo: mean 5, population SD sqrt(8/3)
    sc(kim, i1, 10, 10)  # 10
    sc(kim, i2, 8, 8)    # 8 -> Kim: mean 9, SD 1
    sc(lee, i1, 5, 5)    # 5
    sc(lee, i2, 5, 5)    # 5 -> Lee: SD 0, z 0 for both
    res = {r.idea.id: r for r in svc.round_results(r1, [i1, i2, i3])}
    zj = 2 / math.sqrt(8 / 3)  # 1.224744871...
    assert res[i1.id].per_judge == {jo.id: 7.0, kim.id: 10.0, lee.id: 5.0}
    assert res[i1.id].z == pytest.approx({jo.id: zj, kim.id: 1.0, lee.id: 0.0})
    assert res[i2.id].z == pytest.approx({jo.id: 0.0, kim.id: -1.0, lee.id: 0.0})
    assert res[i3.id].z == pytest.approx({jo.id: -zj})
    assert res[i1.id].raw_mean == pytest.approx((7 + 10 + 5) / 3)
    assert res[i1.id].z_mean == pytest.approx((zj + 1 + 0) / 3)
    assert res[i2.id].raw_mean == pytest.approx((5 + 8 + 5) / 3) and res[i2.id].z_mean == pytest.approx(-1 / 3)
    assert res[i3.id].raw_mean == 3.0 and res[i3.id].z_mean == pytest.approx(-zj)
    assert [r.idea.id for r in svc.round_results(r1, [i1, i2, i3])] == [i1.id, i2.id, i3.id]


def test_results_page_names_the_method_and_shows_raw_next_to_normalised(w, client, auth):
    r1, _ = two_rounds(w)
    jo = w.judges[0]
    feas, cost = r1.criteria
    for idea, (a, b) in ((w.ideas[0], (8, 4)), (w.ideas[1], (6, 2))):
        svc.assign(w.owner, r1, idea, jo.id)
        svc.score_in_round(jo, idea, {feas.id: a, cost.id: b})
    auth.login(w.owner.email)
    r = client.get(f"/challenges/{w.ch.id}/judging/results?round={r1.id}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "z-score per judge within the round" in html
    assert "7.00 / 1.00" in html and "5.00 / -1.00" in html
    auth.logout()
    auth.login(w.outsider_reviewer.email)  # a reviewer, not on this round's panel
    assert client.get(f"/challenges/{w.ch.id}/judging/results?round={r1.id}").status_code == 403
    auth.logout()
    auth.login(w.ann.email)
    assert client.get(f"/challenges/{w.ch.id}/judging/results?round={r1.id}").status_code == 403


# --------------------------------------------------------------------------- decisions


def test_two_rounds_to_an_award_with_each_move_in_the_decision_log(w):
    r1, r2 = two_rounds(w)
    kept = [w.ideas[0].id, w.ideas[3].id]
    # More than the round lets through: refused, nothing changed.
    with pytest.raises(ServiceError) as ei:
        svc.advance_ideas(w.owner, w.ch, [i.id for i in w.ideas])
    db.session.rollback()
    assert ei.value.status == 409 and "lets 3 idea(s) through" in ei.value.message
    assert count(RoundEntry) == 0
    assert svc.advance_ideas(w.owner, w.ch, kept, "Strongest screening scores") == 2
    assert {i.id for i in svc.ideas_in_round(r2)} == set(kept)
    assert current_round(reload(w.ideas[0])).id == r2.id
    assert svc.decline_ideas(w.owner, w.ch, [w.ideas[1].id, w.ideas[2].id], "Out of scope for us.") == 2
    assert {reload(w.ideas[1]).decision_reason, reload(w.ideas[2]).decision_reason} == {"Out of scope for us."}
    # Final round: one goes through, to the shortlist, then the award (the flat award step).
    with pytest.raises(ServiceError):
        svc.advance_ideas(w.owner, w.ch, kept)
    db.session.rollback()
    svc.advance_ideas(w.owner, w.ch, [w.ideas[3].id])
    assert reload(w.ideas[3]).status == "shortlisted"
    ideas_svc.award_idea(w.owner, reload(w.ideas[3]), 0)
    assert reload(w.ideas[3]).status == "awarded"
    log = [e.what for e in decisions.decision_log(w.owner, w.ch)]
    assert any(e.startswith("Put through from “Screening” to “Final”") for e in log)
    ev = json.loads(events("idea.shortlisted")[-1].data)
    assert ev["round"] == "Final"


def test_bulk_decline_is_all_or_nothing(w):
    two_rounds(w)
    ideas_svc.decline_idea(w.owner, w.ideas[0], "Already gone.")
    with pytest.raises(ServiceError) as ei:
        svc.decline_ideas(w.owner, w.ch, [w.ideas[0].id, w.ideas[1].id], "One reason")
    db.session.rollback()
    assert ei.value.status == 409 and reload(w.ideas[1]).status == "submitted"
    with pytest.raises(ServiceError) as ei:
        svc.decline_ideas(w.owner, w.ch, [w.ideas[1].id], "  ")
    assert ei.value.field == "reason"
    db.session.rollback()
    with pytest.raises(ServiceError) as ei:
        svc.decline_ideas(w.ann, w.ch, [w.ideas[3].id], "no")  # not the panel: Cy's sealed idea is unseen
    assert ei.value.status == 404 and reload(w.ideas[3]).status == "submitted"
    db.session.rollback()
    with pytest.raises(ServiceError) as ei:
        svc.decline_ideas(w.ann, w.ch, [w.ideas[1].id], "no")  # her own idea: seen, not hers to decide
    assert ei.value.status == 409 and reload(w.ideas[1]).status == "submitted"


# --------------------------------------------------------------------------- discussion, queue, progress


def test_panel_discussion_is_for_the_rounds_panel_and_admins(w, f):
    r1, r2 = two_rounds(w)
    idea = w.ideas[0]
    svc.add_comment(w.judges[2], idea, "Cheap to pilot.")
    assert [c.body for c in svc.discussion(w.owner, idea)] == ["Cheap to pilot."]
    assert [c.body for c in svc.discussion(w.judges[0], idea)] == ["Cheap to pilot."]
    c = db.session.execute(select(PanelComment)).scalar_one()
    for who in (w.ann, w.outsider_reviewer, w.cy, f.make_user()):
        assert not policy.can(who, "discuss", idea)
        assert not policy.can(who, "view", c)
        with pytest.raises(ServiceError):
            svc.add_comment(who, idea, "hello")
        db.session.rollback()
    # In round 2, Lee (not on its panel) no longer discusses the idea; round 1's discussion
    # stays with round 1's panel, and round 2's discussion starts empty.
    svc.advance_ideas(w.owner, w.ch, [idea.id])
    assert not policy.can(w.judges[2], "discuss", reload(idea))
    assert policy.can(w.judges[2], "view", c) and policy.can(w.owner, "view", c)
    assert svc.discussion(w.judges[0], reload(idea)) == []
    svc.add_comment(w.judges[0], reload(idea), "Round two thoughts.")
    c2 = db.session.execute(select(PanelComment).where(PanelComment.round_id == r2.id)).scalar_one()
    assert not policy.can(w.judges[2], "view", c2) and policy.can(w.judges[1], "view", c2)


def test_queue_progress_and_overdue(w, client, auth):
    r1, r2 = two_rounds(w)
    svc.auto_assign(w.owner, r1, 1)  # ends in the past: unscored work is overdue
    jo = w.judges[0]
    mine = [e for rnd, entries in svc.judge_queue(jo, w.ch) for e in entries if rnd.id == r1.id]
    assert len(mine) == 2
    feas, cost = r1.criteria
    svc.score_in_round(jo, mine[0].idea, {feas.id: 5, cost.id: 5})
    prog = {rnd.id: {p.judge.id: (p.assigned, p.scored, p.overdue) for p in rows}
            for rnd, rows in svc.panel_progress(w.ch)}
    assert prog[r1.id][jo.id] == (2, 1, 1)
    assert prog[r1.id][w.judges[1].id] == (2, 0, 2) and prog[r1.id][w.judges[2].id] == (1, 0, 1)
    assert prog[r2.id] == {jo.id: (0, 0, 0), w.judges[1].id: (0, 0, 0)}
    auth.login(jo.email)
    html = client.get(f"/challenges/{w.ch.id}/judging").get_data(as_text=True)
    assert "1 of 2 scored" in html and "overdue" in html
    assert client.get(f"/challenges/{w.ch.id}/judging/progress").status_code == 403
    auth.logout()
    auth.login(w.owner.email)
    r = client.get(f"/challenges/{w.ch.id}/judging/progress")
    assert r.status_code == 200 and "Judge Jo" in r.get_data(as_text=True)


def test_compare_shows_only_ideas_the_judge_may_open(w, f, client, auth):
    two_rounds(w)
    other = IdeaFactories(f).challenge(confidentiality="sealed")
    foreign = w.fi.submit(w.cy, other.challenge, title="Elsewhere")
    auth.login(w.judges[0].email)
    r = client.get(f"/challenges/{w.ch.id}/judging/compare?ideas={w.ideas[0].id}&ideas={w.ideas[3].id}"
                   f"&ideas={foreign.id}")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and "Ann one" in html and "Cy one" in html and "Elsewhere" not in html
    assert client.get(f"/challenges/{w.ch.id}/judging/compare?ideas={w.ideas[0].id}&ideas={foreign.id}"
                      ).status_code == 400
    assert client.get(f"/challenges/{w.ch.id}/judging/compare?ideas=abc&ideas=1").status_code == 400
    auth.logout()
    auth.login(w.cy.email)  # an author: not the panel
    assert client.get(f"/challenges/{w.ch.id}/judging/compare?ideas={w.ideas[0].id}&ideas={w.ideas[3].id}"
                      ).status_code == 403


# --------------------------------------------------------------------------- pages and bad input


def _csrf_off(app):
    app.config["WTF_CSRF_ENABLED"] = False


def test_round_form_errors_are_shown_and_nothing_is_written(w, app, client, auth):
    _csrf_off(app)
    auth.login(w.owner.email)
    base = {"r-name": "Screening", "r-starts_at": "2030-01-01T09:00", "r-ends_at": "2030-01-10T09:00",
            "r-advance_count": "3", "r-criteria": "Feasibility: 3", "r-panel": [str(w.judges[0].id)]}
    for change, words in (({"r-criteria": "Feasibility: 0"}, "must be positive"),
                          ({"r-criteria": ""}, "at least one criterion"),
                          ({"r-ends_at": "2029-12-01T09:00"}, "ends after it starts"),
                          ({"r-advance_count": "-1"}, "whole number from 1"),
                          ({"r-starts_at": "not a date"}, "")):
        r = client.post(f"/challenges/{w.ch.id}/rounds", data={**base, **change})
        assert r.status_code == 400, change
        assert words in r.get_data(as_text=True)
    assert count(JudgingRound) == 0
    assert client.post(f"/challenges/{w.ch.id}/rounds", data=base).status_code == 302
    r = client.post(f"/challenges/{w.ch.id}/rounds", data={**base, "r-name": "Overlap"})
    assert r.status_code == 400 and "overlap" in r.get_data(as_text=True)
    assert count(JudgingRound) == 1


def test_pages_answer_bad_input_with_4xx(w, app, client, auth):
    _csrf_off(app)
    r1, _ = two_rounds(w)
    svc.declare_conflict(w.judges[2], w.ideas[0], "idea", "")
    auth.login(w.owner.email)
    r = client.post(f"/challenges/{w.ch.id}/rounds/assign",
                    data={"a-round_id": str(r1.id), "a-idea_id": str(w.ideas[0].id), "a-judge_id": str(w.judges[2].id)})
    assert r.status_code == 409 and "conflict of interest" in r.get_data(as_text=True)
    r = client.post(f"/challenges/{w.ch.id}/rounds/assign",
                    data={"a-round_id": "999999", "a-idea_id": str(w.ideas[0].id), "a-judge_id": str(w.judges[0].id)})
    assert r.status_code == 404
    r = client.post(f"/challenges/{w.ch.id}/rounds/auto-assign", data={"x-round_id": str(r1.id), "x-per_idea": "9"})
    assert r.status_code == 400
    assert client.post(f"/challenges/{w.ch.id}/rounds/unassign", data={"round": "x", "idea": "1", "judge": "1"}
                       ).status_code == 404
    assert client.post(f"/challenges/{w.ch.id}/judging/decide", data={"decision": "advance", "ideas": ["zz"]}
                       ).status_code == 400
    assert client.post(f"/challenges/{w.ch.id}/judging/decide", data={"decision": "advance"}).status_code == 400
    assert count(RoundAssignment) == 0
    auth.logout()
    svc.assign(w.owner, r1, w.ideas[1], w.judges[0].id)
    auth.login(w.judges[0].email)
    feas, cost = r1.criteria
    r = client.post(f"/ideas/{w.ideas[1].id}/judging/score", data={f"score-{feas.id}": "11", f"score-{cost.id}": "2"})
    assert r.status_code == 400 and "0 to 10" in r.get_data(as_text=True)
    r = client.post(f"/ideas/{w.ideas[1].id}/judging/score", data={f"score-{feas.id}": "7", f"score-{cost.id}": "2"})
    assert r.status_code == 302 and count(RoundScore) == 2
    r = client.post(f"/ideas/{w.ideas[1].id}/judging/conflict", data={"scope": "nonsense"})
    assert r.status_code == 400
    assert client.get(f"/ideas/{w.ideas[1].id}/judging").status_code == 200
    auth.logout()
    auth.login(w.ann.email)
    assert client.get(f"/ideas/{w.ideas[0].id}/judging").status_code == 403
    assert client.get(f"/challenges/{w.ch.id}/rounds").status_code == 403


# --------------------------------------------------------------------------- copy_rounds


def test_copy_rounds_copies_set_ups_not_panels_or_work(w, f):
    r1, r2 = two_rounds(w)
    target = w.fi.challenge(owner=w.owner, org=w.s.org).challenge
    judge = w.judges[1]
    ideas_svc.appoint_reviewer(w.owner, target, judge.email)
    copies = svc.copy_rounds(w.ch, target, actor=w.owner)
    db.session.commit()
    assert [(c.name, c.advance_count, [(k.name, k.weight) for k in c.criteria]) for c in copies] == [
        ("Screening", 3, [("Feasibility", 3), ("Cost", 1)]), ("Final", 1, [("Impact", 2)])]
    assert copies[0].starts_at == target.deadline
    assert copies[1].starts_at - copies[0].starts_at == r2.starts_at - r1.starts_at
    assert copies[1].ends_at - copies[1].starts_at == r2.ends_at - r2.starts_at
    assert all(c.panel_ids == [judge.id] for c in copies)
    with pytest.raises(ServiceError):
        svc.copy_rounds(w.ch, target, actor=w.owner)
    db.session.rollback()
    stranger = f.make_user()
    other = w.fi.challenge().challenge
    with pytest.raises(ServiceError) as ei:
        svc.copy_rounds(w.ch, other, actor=stranger)
    assert ei.value.status in (403, 404)
    assert svc.copy_rounds(other, target) == []
    _ = Idea


def test_start_from_a_past_challenge_copies_its_rounds(w):
    """The learning loop's "start from a past challenge" runs copy_rounds as one of its
    copy steps: the new draft has the earlier challenge's rounds and criteria."""
    from marketplace.services import reviews as reviews_svc

    two_rounds(w)
    new = reviews_svc.start_from(w.owner, w.ch, {"title": "Second edition"})
    rounds = db.session.execute(select(JudgingRound).where(JudgingRound.challenge_id == new.id)
                                .order_by(JudgingRound.starts_at)).scalars().all()
    assert [(r.name, r.advance_count, [(k.name, k.weight) for k in r.criteria]) for r in rounds] == [
        ("Screening", 3, [("Feasibility", 3), ("Cost", 1)]), ("Final", 1, [("Impact", 2)])]


def test_the_dashboard_funnel_has_a_stage_per_later_round(w):
    """The organisation dashboard for one challenge: under review (round 1), then one stage
    per later round with the ideas that went through to it, then shortlisted and awarded."""
    from marketplace.services import insights

    two_rounds(w)
    assert svc.advance_ideas(w.owner, w.ch, [w.ideas[0].id, w.ideas[3].id], "Strongest screening scores") == 2
    rows = dict(insights.dashboard(w.owner, w.s.org, w.ch).funnel.rows)
    assert list(rows) == ["Submitted", "Under review", "Round 2: Final", "Shortlisted", "Awarded"]
    assert rows["Submitted"] == 5 and rows["Round 2: Final"] == 2
