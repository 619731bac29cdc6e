"""Dashboards and the transparency page (issue 11): the small-count rule and attempts to
single out one private item, an organisation's figures against hand-computed values, a
cluster's participation, the audit chain's verification page and an organisation's
governance events (who may reach them)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from marketplace import audit, policy
from marketplace.extensions import db
from marketplace.models import Answer, AuditEvent, Idea, IdeaAward, Question, utcnow
from marketplace.services import insights

from .factories import PASSWORD
from .factories_ideas import IdeaFactories


def _login(client, user):
    client.post("/auth/login", data={"email": user.email, "password": PASSWORD})


def _set(idea, **fields):
    for k, v in fields.items():
        setattr(idea, k, v)
    db.session.commit()


# --------------------------------------------------------------------------- the small-count rule


@pytest.mark.parametrize("n, shown", [(0, "fewer than 5"), (1, "fewer than 5"), (4, "fewer than 5"), (5, 5), (37, 37),
                                      (None, "fewer than 5")])
def test_shown_count_hides_every_count_below_five(n, shown):
    assert policy.shown_count(n) == shown


def test_disclosed_withholds_a_figure_over_fewer_than_five_rows():
    assert policy.disclosed(4, "12 days") == "not shown (fewer than 5 behind it)"
    assert policy.disclosed(5, "12 days") == "12 days"
    assert policy.is_withheld(policy.disclosed(0, 1)) and not policy.is_withheld(policy.disclosed(9, 1))


# --------------------------------------------------------------------------- transparency


def _page(client, query: str = "") -> str:
    html = client.get("/transparency" + query).data.decode()
    return re.sub(r'name="csrf_token"[^>]*>', "", html)


def _figures(html: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, v in re.findall(r'<th scope="row">(.*?)</th><td>(.*?)</td>', html)}


@pytest.fixture
def world(f):
    """A public challenge with 1 idea, a private (organisation-only) challenge with 2 ideas."""
    I = IdeaFactories(f)
    pub = I.challenge(visibility="public", confidentiality="open")
    priv = I.challenge(visibility="organisation", confidentiality="sealed",
                       rules={"who_may_submit": "organisation", "org_members_may_participate": True})
    insiders = [f.make_user() for _ in range(4)]
    for u in insiders:
        f.add_member(priv.org, u)
    I.submit(f.make_user(), pub.challenge)
    for u in insiders[:2]:
        I.submit(u, priv.challenge, title="Secret plan")
    return I, pub, priv, insiders


def test_counts_public_challenges_exactly_and_the_rest_as_aggregates(world, client):
    figs = _figures(_page(client))
    assert figs["Public challenges run"] == "1"
    assert figs["Other challenges run (for registered users, invited people or one organisation)"] == "fewer than 5"
    assert figs["Ideas received"] == "fewer than 5"
    assert figs["Awards made"] == "fewer than 5"
    assert figs["Median time from submission to decision"] == "not shown (fewer than 5 behind it)"
    assert figs["Reports received"] == "fewer than 5"


def test_adding_one_private_idea_cannot_be_seen_by_differencing_the_page(world, client):
    I, _pub, priv, insiders = world
    year = utcnow().year
    before = [_page(client), _page(client, f"?year={year}")]
    idea = I.submit(insiders[2], priv.challenge, title="Another secret")
    after = [_page(client), _page(client, f"?year={year}")]
    assert before == after
    # Deciding on it (a private decision) changes nothing either.
    _set(idea, status="declined", decided_at=utcnow())
    assert [_page(client), _page(client, f"?year={year}")] == before
    assert "secret" not in after[0].lower() and priv.challenge.title not in after[0]


def test_above_the_threshold_a_difference_names_no_challenge_organisation_or_idea(world, f, client):
    """With enough ideas the site-wide total is exact, so one more reads as one more; but
    only that total moves: nothing names or counts the private challenge or organisation."""
    I, pub, priv, insiders = world
    for _ in range(3):
        I.submit(f.make_user(), pub.challenge)
    before = _page(client)
    I.submit(insiders[2], priv.challenge, title="Another secret")
    after = _page(client)
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert changed == [('  <tr><th scope="row">Ideas received</th><td>6</td></tr>',
                        '  <tr><th scope="row">Ideas received</th><td>7</td></tr>')]
    for word in (priv.challenge.title, priv.org.name, "Another secret"):
        assert word not in after


def test_filtering_to_a_year_with_one_private_idea_does_not_single_it_out(world, client):
    I, _pub, priv, insiders = world
    idea = I.submit(insiders[3], priv.challenge)
    last_year = utcnow().year - 1
    _set(idea, submitted_at=datetime(last_year, 6, 1, tzinfo=timezone.utc))
    figs = _figures(_page(client, f"?year={last_year}"))
    assert figs["Ideas received"] == "fewer than 5"
    assert figs["Public challenges run"] == "0"  # public figures stay exact


def test_a_single_payment_in_a_currency_gets_no_row_of_its_own(world, f, client):
    _I, _pub, priv, _insiders = world
    one = db.session.execute(select(Idea).where(Idea.challenge_id == priv.challenge.id)).scalars().first()
    _set(one, status="awarded", decided_at=utcnow())
    db.session.add(IdeaAward(idea_id=one.id, challenge_id=priv.challenge.id, terms_id=one.terms_id,
                             incentive_index=0, paid_at=utcnow(),
                             incentive_json='{"amount":"12345.00","currency":"CHF","kind":"cash-prize","winners":1}'))
    db.session.commit()
    html = _page(client)
    assert "CHF" not in html and "12" + "345" not in html and "12,300" not in html
    assert _figures(html)["Payments"] == "fewer than 5"


def test_five_payments_in_a_currency_show_a_rounded_total(world, f, client):
    I, pub, _priv, _insiders = world
    ideas = [I.submit(f.make_user(), pub.challenge) for _ in range(5)]
    for i, idea in enumerate(ideas):
        _set(idea, status="awarded", decided_at=utcnow())
        db.session.add(IdeaAward(idea_id=idea.id, challenge_id=pub.challenge.id, terms_id=idea.terms_id,
                                 incentive_index=0, paid_at=utcnow(),
                                 incentive_json='{"amount":"1000.40","currency":"EUR","kind":"cash-prize","winners":1}'))
    db.session.commit()
    figs = _figures(_page(client))
    assert figs["Paid in EUR"] == "about 5,000"   # 5 x 1000.40 = 5002.00, to the nearest hundred
    assert figs["Payments in other currencies"] == "fewer than 5"
    assert figs["Awards made"] == "5"


def test_median_time_to_decision_is_computed_over_the_decided_ideas(world, f):
    I, pub, _priv, _insiders = world
    base = utcnow() - timedelta(days=60)
    for days in (1, 2, 10, 20, 30):   # median 10 days
        idea = I.submit(f.make_user(), pub.challenge)
        _set(idea, submitted_at=base, decided_at=base + timedelta(days=days), status="declined")
    t = insights.transparency()
    fig = {x.label: x.value for x in t["ideas"]}
    assert fig["Median time from submission to decision"] == "10 days"
    assert fig["Ideas decided (shortlisted, declined or awarded)"] == 5


@pytest.mark.parametrize("query", ["?year=1999", "?year=abc", "?year=99999999999999999999"])
def test_bad_year_is_a_clear_400(client, query):
    r = client.get("/transparency" + query)
    assert r.status_code == 400
    assert b"year" in r.data.lower()


# --------------------------------------------------------------------------- the organisation dashboard


@pytest.fixture
def dash(f):
    I = IdeaFactories(f)
    s = I.challenge(visibility="public", confidentiality="open")
    admin, member = f.make_user(), f.make_user()
    f.add_member(s.org, admin, "admin")
    f.add_member(s.org, member, "member")
    states = ["submitted"] * 3 + ["under-review", "shortlisted", "shortlisted", "awarded", "declined"]
    months = [datetime(2026, 1, 10, tzinfo=timezone.utc)] * 2 + [datetime(2026, 3, 5, tzinfo=timezone.utc)] * 6
    for status, when in zip(states, months):
        idea = I.submit(f.make_user(), s.challenge)
        _set(idea, status=status, submitted_at=when)
    # One withdrawn idea: the organisation may not see it, so it is not counted.
    w = I.submit(f.make_user(), s.challenge)
    _set(w, status="withdrawn")
    asked = utcnow() - timedelta(days=30)
    for hours in (2, 48, 240, None):
        q = Question(item_id=s.challenge.id, author_id=member.id, body="Why?", body_html="Why?", created_at=asked)
        db.session.add(q)
        db.session.flush()
        if hours is not None:
            db.session.add(Answer(question_id=q.id, item_id=s.challenge.id, author_id=s.owner.id, body="So.",
                                  body_html="So.", created_at=asked + timedelta(hours=hours)))
    db.session.commit()
    return s, admin, member


def test_dashboard_figures_match_hand_computed_values(dash):
    s, admin, _member = dash
    d = insights.dashboard(admin, s.org)
    assert [c["ideas"] for c in d.challenges] == [8]
    assert d.submissions.rows == [("2026-01", 2), ("2026-02", 0), ("2026-03", 6)]
    assert d.funnel.rows == [("Submitted", 8), ("Under review", 4), ("Shortlisted", 3), ("Awarded", 1)]
    assert d.response.rows == [("Within a day", 1), ("1 to 3 days", 1), ("3 to 7 days", 0), ("Over a week", 1),
                               ("Not answered yet", 1)]
    assert (d.answered, d.unanswered, d.median_hours) == (3, 1, 48.0)


def test_dashboard_page_has_svg_charts_with_titles_and_tables(dash, client):
    s, admin, _member = dash
    _login(client, admin)
    r = client.get(f"/orgs/{s.org.slug}/dashboard")
    html = r.data.decode()
    assert r.status_code == 200
    assert html.count('<svg role="img"') == 3
    assert "<title id=\"chart-funnel-title\">Ideas per stage: Submitted, 8; Under review, 4; Shortlisted, 3; Awarded, 1</title>" in html
    assert '<th scope="row">2026-03</th><td>6</td>' in html
    assert "<script" not in html.split("<main", 1)[-1].split("</main>")[0]


def test_dashboard_of_one_challenge_and_refusals(dash, f, client):
    s, admin, member = dash
    other = IdeaFactories(f).challenge(visibility="public")
    _login(client, admin)
    assert client.get(f"/orgs/{s.org.slug}/dashboard?challenge={s.challenge.id}").status_code == 200
    assert client.get(f"/orgs/{s.org.slug}/dashboard?challenge={other.challenge.id}").status_code == 404
    assert client.get(f"/orgs/{s.org.slug}/dashboard?challenge=abc").status_code == 404
    assert client.get(f"/orgs/{other.org.slug}/dashboard").status_code == 403
    client.post("/auth/logout")
    _login(client, member)
    assert client.get(f"/orgs/{s.org.slug}/dashboard").status_code == 403
    client.post("/auth/logout")
    r = client.get(f"/orgs/{s.org.slug}/dashboard")
    assert r.status_code == 302 and "/auth/login" in r.headers["Location"]


def test_cluster_participation(f, client):
    I = IdeaFactories(f)
    curator = f.make_user()
    cluster = f.make_org(kind="cluster", owner=curator)
    s = I.challenge(visibility="public", confidentiality="open", owner=curator, org=cluster)
    company = f.make_org()
    worker = f.make_user()
    f.add_member(company, worker)
    lst, other = f.make_list(cluster, name="Robotics"), f.make_list(cluster, name="Energy")
    f.add_to_list(lst, org=company)
    f.add_to_list(lst, user=f.make_user())
    f.add_to_list(lst, user=f.make_user(), expires_at=utcnow() - timedelta(days=1))   # expired: not counted
    f.add_to_list(other, org=company)
    f.attach_list(s.challenge, lst)
    I.submit(worker, s.challenge)
    p = insights.participation(curator, cluster)
    assert [(x["name"], x["people"], x["orgs"], x["items"]) for x in p.lists] == [("Energy", 0, 1, 0),
                                                                                  ("Robotics", 1, 1, 1)]
    assert [(o["name"], o["lists"], o["ideas"]) for o in p.member_orgs] == [(company.name, 2, 1)]
    _login(client, curator)
    assert client.get(f"/orgs/{cluster.slug}/participation").status_code == 200
    assert client.get(f"/orgs/{company.slug}/participation").status_code == 403


# --------------------------------------------------------------------------- governance events and the audit page


def test_governance_events_show_only_the_organisations_own_items(dash, f, client):
    s, admin, member = dash
    other = IdeaFactories(f).challenge(visibility="public", confidentiality="open")
    _login(client, admin)
    html = client.get(f"/orgs/{s.org.slug}/governance").data.decode()
    ours = db.session.execute(select(AuditEvent.id).where(AuditEvent.item_id == s.challenge.id,
                                                          AuditEvent.action == "terms.version_created")).scalar()
    theirs = db.session.execute(select(AuditEvent.id).where(AuditEvent.item_id == other.challenge.id)).scalars().all()
    assert f'id="event-{ours}"' in html
    assert theirs and not any(f'id="event-{t}"' in html for t in theirs)
    assert other.challenge.title not in html
    # Filters: one item, one kind; another organisation's item is 404, an unknown kind 400.
    r = client.get(f"/orgs/{s.org.slug}/governance?item={s.challenge.id}&kind=terms.version_created")
    assert r.status_code == 200 and f'id="event-{ours}"' in r.data.decode()
    assert "challenge.rules_set" not in r.data.decode().split("<table", 1)[1]
    assert client.get(f"/orgs/{s.org.slug}/governance?item={other.challenge.id}").status_code == 404
    assert client.get(f"/orgs/{s.org.slug}/governance?kind=idea.submitted").status_code == 400
    assert client.get(f"/orgs/{s.org.slug}/governance?page=99").status_code == 400
    assert client.get(f"/orgs/{other.org.slug}/governance").status_code == 403
    client.post("/auth/logout")
    _login(client, member)
    assert client.get(f"/orgs/{s.org.slug}/governance").status_code == 403


def test_governance_events_are_paginated(f, client):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, kind="failure")
    for i in range(60):
        audit.record("item.visibility_changed", "failure", item.id, actor_id=owner.id, item_id=item.id,
                     data={"from": "public", "to": "registered", "reason": f"r{i}"})
    db.session.commit()
    _login(client, owner)
    one = client.get(f"/orgs/{org.slug}/governance").data.decode()
    two = client.get(f"/orgs/{org.slug}/governance?page=2").data.decode()
    assert one.count('id="event-') == 50 and two.count('id="event-') == 10
    assert "Page 1 of 2" in one


@pytest.mark.parametrize("who, status", [("site_admin", 200), ("moderator", 403), ("user", 403), ("org_owner", 403)])
def test_audit_verification_page_is_for_site_admins(f, client, who, status):
    user = f.make_user(site_role={"site_admin": "admin", "moderator": "moderator"}.get(who, "user"))
    if who == "org_owner":
        f.make_org(owner=user)
    _login(client, user)
    assert client.get("/admin/audit").status_code == status


def test_audit_verification_page_reports_a_broken_chain(f, client):
    admin = f.make_user(site_role="admin")
    owner = f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org)
    for _ in range(3):
        audit.record("item.status_changed", "challenge", item.id, actor_id=owner.id, item_id=item.id,
                     data={"from": "open", "to": "closed"})
    db.session.commit()
    _login(client, admin)
    assert "The chain is intact: 3 rows checked" in client.get("/admin/audit").data.decode()
    db.session.execute(text("UPDATE audit_events SET data = '{\"from\":\"draft\"}' WHERE id = 2"))
    db.session.commit()
    html = client.get("/admin/audit").data.decode()
    assert "The chain is broken: row 2 was altered" in html
    client.post("/auth/logout")
    assert client.get("/admin/audit").status_code == 302
