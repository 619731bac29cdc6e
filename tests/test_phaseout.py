"""Partner phase-out and "what remains" (issue 17): a cluster organisation sees what a member
organisation is part of, ends all of it in one step (grants, list memberships, reviewer
appointments, agreements), each end audited with the reason; the post-termination duties of
both sides are listed with dates, and reminders go out before each date, once."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import (
    AccessGrant,
    AuditEvent,
    ListMember,
    Notification,
    ReviewerAppointment,
    utcnow,
)
from marketplace.models.agreements import DataAgreement, DutyReminder
from marketplace.services import phaseout
from marketplace.services.common import ServiceError

from .factories import appoint_reviewer, sign_in_client
from .test_agreements import accept, make_world


@pytest.fixture
def world(f, app):
    """A cluster organisation (the data owner) and a partner that is on its list, holds a
    grant, reviews one of its challenges and has a data-sharing agreement in force."""
    w = make_world(f, app)
    w.org.kind = "cluster"
    db.session.commit()
    accept(w)
    w.challenge = f.make_item(w.org, kind="challenge", visibility="invited", title="Cluster challenge")
    w.grant_org = f.grant(w.challenge, org=w.partner)
    w.grant_person = f.grant(w.challenge, user=w.scientist)
    w.list = f.make_list(w.org, name="Cluster members")
    w.on_list = f.add_to_list(w.list, org=w.partner)
    w.person_on_list = f.add_to_list(w.list, user=w.intern)
    w.reviewer = appoint_reviewer(w.owner, w.challenge, w.intern, nda_text="Keep the ideas confidential.")
    # Unrelated rows that must survive: another organisation's grant and list membership.
    w.other = f.make_org(name="Bystander", owner=f.make_user())
    w.other_grant = f.grant(w.challenge, org=w.other)
    w.other_member = f.add_to_list(w.list, org=w.other)
    return w


def test_the_cluster_sees_per_member_what_it_is_part_of(world):
    w = world
    p = phaseout.participation(w.org, w.partner)
    assert {g.id for g in p.grants} == {w.grant_org.id, w.grant_person.id}
    assert {m.id for m in p.list_members} == {w.on_list.id, w.person_on_list.id}
    assert [r.id for r in p.reviewers] == [w.reviewer.id]
    assert [a.id for a in p.agreements] == [w.agreement.id]
    assert [c.id for c in p.challenges] == [w.challenge.id]
    assert {o.name for o, _p in phaseout.partners(w.org)} == {"Partner Labs", "Bystander"}


def test_phase_out_ends_everything_at_once_with_audit_entries(world):
    w = world
    assert policy.can(w.scientist, "view", w.file) and policy.can(w.scientist, "view", w.challenge)
    with pytest.raises(ServiceError) as e:
        phaseout.phase_out(w.owner, w.org, w.partner, "")
    assert e.value.field == "reason"
    with pytest.raises(ServiceError) as e:
        phaseout.phase_out(w.owner_member, w.org, w.partner, "Leaving the cluster.")
    assert e.value.status == 403
    phaseout.phase_out(w.owner, w.org, w.partner, "Leaving the cluster.")
    db.session.expire_all()
    assert db.session.get(AccessGrant, w.grant_org.id).revoked_at is not None
    assert db.session.get(AccessGrant, w.grant_person.id).revoked_at is not None
    assert db.session.get(ListMember, w.on_list.id).removed_at is not None
    assert db.session.get(ListMember, w.person_on_list.id).removed_at is not None
    assert db.session.get(ReviewerAppointment, w.reviewer.id).revoked_at is not None
    a = db.session.get(DataAgreement, w.agreement.id)
    assert policy.agreement_state(a) == "ended" and a.end_reason == "Leaving the cluster."
    # The bystander keeps its grant and its place on the list.
    assert db.session.get(AccessGrant, w.other_grant.id).revoked_at is None
    assert db.session.get(ListMember, w.other_member.id).removed_at is None
    assert not policy.can(w.scientist, "view", w.file)
    assert not policy.can(w.scientist, "view", w.challenge)
    events = db.session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars().all()
    ends = [(e.action, e.subject_id) for e in events if e.action.startswith(("partner.", "agreement.ended"))]
    assert sorted(ends) == sorted([
        ("partner.grant_revoked", w.grant_org.id), ("partner.grant_revoked", w.grant_person.id),
        ("partner.list_member_removed", w.on_list.id), ("partner.list_member_removed", w.person_on_list.id),
        ("partner.reviewer_revoked", w.reviewer.id), ("agreement.ended_by_phase_out", w.agreement.id),
        ("partner.phased_out", w.partner.id)])
    assert all(json.loads(e.data)["reason"] == "Leaving the cluster." for e in events
               if e.action.startswith(("partner.", "agreement.ended")))
    assert phaseout.participation(w.org, w.partner).empty
    with pytest.raises(ServiceError) as e:
        phaseout.phase_out(w.owner, w.org, w.partner, "Again.")
    assert e.value.status == 409


def test_what_remains_lists_both_sides_duties_with_dates(world):
    w = world
    phaseout.phase_out(w.owner, w.org, w.partner, "Leaving the cluster.")
    a = db.session.get(DataAgreement, w.agreement.id)
    duties = {d.key: d for d in phaseout.duties(w.org)}
    data = duties[f"a{a.id}:data"]
    assert data.side == "partner" and data.due == a.ended_at + timedelta(days=30)
    assert "Delete all copies" in data.what
    assert duties[f"a{a.id}:conf"].due == a.ended_at + timedelta(days=365)
    assert duties[f"a{a.id}:survive"].what.endswith("Confidentiality and publication rules survive.")
    # The partner sees the same duties on its own page.
    assert {d.key for d in phaseout.duties(w.partner)} >= {f"a{a.id}:data", f"a{a.id}:conf"}


def test_the_pages_show_participation_phase_out_and_what_remains(world, app, client):
    w = world
    slug, partner_id, a_id = w.org.slug, w.partner.id, w.agreement.id
    sign_in_client(client, app, w.owner.id)
    page = client.get(f"/orgs/{slug}/partners").get_data(as_text=True)
    assert "Partner Labs" in page and "Bystander" in page
    page = client.get(f"/orgs/{slug}/partners?partner={partner_id}").get_data(as_text=True)
    assert "Cluster members" in page and "Cluster challenge" in page and f"#{a_id}" in page
    assert client.post(f"/orgs/{slug}/partners/phase-out", data={"partner": partner_id, "reason": ""}).status_code == 400
    r = client.post(f"/orgs/{slug}/partners/phase-out", data={"partner": partner_id, "reason": "Leaving."})
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/orgs/{slug}/remains")
    page = client.get(f"/orgs/{slug}/remains").get_data(as_text=True)
    assert "Delete all copies of the data" in page and "Confidentiality of what was shared ends" in page
    member = app.test_client()
    sign_in_client(member, app, w.owner_member.id)
    for url in (f"/orgs/{slug}/partners", f"/orgs/{slug}/remains"):
        assert member.get(url).status_code == 403


def test_reminders_go_out_before_each_date_once(world, runner, app):
    w = world
    phaseout.phase_out(w.owner, w.org, w.partner, "Leaving the cluster.")
    a = db.session.get(DataAgreement, w.agreement.id)
    # Nothing is due within a week yet: the deletion is due in 30 days.
    assert phaseout.send_reminders(7) == 0
    later = utcnow() + timedelta(days=25)
    admins = 2  # the owner of each side
    assert phaseout.send_reminders(7, now=later) == admins
    assert phaseout.send_reminders(7, now=later) == 0  # idempotent
    notes = db.session.execute(select(Notification).where(Notification.kind == "agreement.duty")).scalars().all()
    assert {n.user_id for n in notes} == {w.owner.id, w.partner_admin.id}
    assert all("Delete all copies" in n.message for n in notes)
    assert db.session.execute(select(DutyReminder)).scalars().all().__len__() == admins
    # The CLI entry (cron) runs the same, and sends nothing twice.
    result = runner.invoke(args=["agreements", "remind", "--days", "400"])
    assert result.exit_code == 0, result.output
    assert "duty reminders sent: 2" in result.output  # the confidentiality end, to both sides
    result = runner.invoke(args=["agreements", "remind", "--days", "400"])
    assert "duty reminders sent: 0" in result.output
    assert a.id
