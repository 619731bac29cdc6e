"""Automatic participation-rule flags: raised when an idea is submitted (through the real
ideas service), shown to moderators in scope, confirmed or dismissed with a note."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models.moderation import BlockedDomain, ModerationFlag
from marketplace.moderation import flags
from marketplace.services import moderation as svc
from marketplace.services.common import ServiceError

from .factories_ideas import IdeaFactories
from .factories_moderation import audit_actions, notes, scope

BODY = ("Use a soft silicone gripper with embedded pressure sensors and a learned grasp policy that "
        "adapts the closing force to the parcel stiffness measured in the first fifty milliseconds of contact.")


@pytest.fixture
def ideas(f):
    return IdeaFactories(f)


def flags_on(idea) -> dict[str, ModerationFlag]:
    return {fl.kind: fl for fl in db.session.execute(
        select(ModerationFlag).where(ModerationFlag.target_type == "idea", ModerationFlag.target_id == idea.id)
    ).scalars()}


def test_shingles_and_jaccard():
    a = flags.shingles("The quick brown fox jumps over the lazy dog")
    b = flags.shingles("the QUICK brown fox jumps over the lazy dog!")
    c = flags.shingles("An entirely different sentence about robots and parcels")
    assert flags.jaccard(a, b) == 1.0
    assert flags.jaccard(a, c) == 0.0
    assert flags.jaccard(frozenset(), a) == 0.0
    assert flags.shingles("two words") == frozenset({("two", "words")})


def test_near_duplicate_idea_is_flagged_on_submission(f, ideas):
    s = ideas.challenge()
    alice = f.make_user(email="alice@alpha.test")
    bob = f.make_user(email="bob@beta.test")
    first = ideas.submit(alice, s.challenge, title="Soft gripper", body=BODY)
    # One word changed in a long text: well above 0.8.
    second = ideas.submit(bob, s.challenge, title="Soft gripper", body=BODY.replace("fifty", "sixty"))
    other = ideas.submit(f.make_user(email="carol@gamma.test"), s.challenge, title="Vacuum cups",
                         body="Suction cups with a porosity sensor and a fallback mechanical clamp for soft boxes.")
    assert flags_on(first) == {}
    fl = flags_on(second)["near-duplicate"]
    assert f"idea #{first.id}" in fl.detail and fl.related_data["ideas"] == [first.id]
    assert fl.context_item_id == s.challenge.id and fl.org_id == s.org.id and fl.status == "open"
    assert "near-duplicate" not in flags_on(other)
    # Idempotent: running the checks again adds nothing.
    assert flags.check_idea(second) == []


def test_blocked_domain_is_flagged_including_subdomains(f, ideas):
    db.session.add(BlockedDomain(domain="spam.example", reason="Spam farm."))
    db.session.commit()
    s = ideas.challenge()
    spammer = f.make_user(email="x@mail.spam.example")
    fine = f.make_user(email="y@good.example")
    bad = ideas.submit(spammer, s.challenge, title="Buy now", body="Cheap grippers for sale, click here.")
    good = ideas.submit(fine, s.challenge, title="Real idea", body="A real and well argued proposal for robots.")
    assert "spam.example" in flags_on(bad)["blocked-domain"].detail
    assert "blocked-domain" not in flags_on(good)


def test_over_limit_through_a_second_account_sharing_a_domain(f, ideas):
    s = ideas.challenge(rules={"max_ideas_per_contributor": 1})
    first = f.make_user(email="eve@shady.test", name="Eve One")
    second = f.make_user(email="eve2@shady.test", name="Eve Two")
    ideas.submit(first, s.challenge, title="Idea one", body="Magnetic levitation of parcels through the aisle.")
    dup = ideas.submit(second, s.challenge, title="Idea two", body="A conveyor made of soft rollers with sensors.")
    fl = flags_on(dup)["over-limit"]
    assert "shares the e-mail domain shady.test" in fl.detail and "the limit is 1" in fl.detail
    assert set(fl.related_data["users"]) == {first.id, second.id}


def test_webmail_domains_do_not_link_accounts(f, ideas):
    s = ideas.challenge(rules={"max_ideas_per_contributor": 1})
    ideas.submit(f.make_user(email="one@gmail.com"), s.challenge, title="One",
                 body="Pneumatic fingers that conform to any parcel shape.")
    other = ideas.submit(f.make_user(email="two@gmail.com"), s.challenge, title="Two",
                         body="A camera that estimates parcel fragility from its label.")
    assert "over-limit" not in flags_on(other)


def test_over_limit_through_co_authors(f, ideas):
    """Limit 2: A and B write idea 1 together, A writes idea 2, B writes idea 3. Each account
    is within the limit (the ideas service allows it), but the linked pair holds 3 ideas."""
    s = ideas.challenge(rules={"max_ideas_per_contributor": 2})
    a = f.make_user(email="a@one.test", name="Ann")
    b = f.make_user(email="b@two.test", name="Ben")
    idea1 = ideas.submit(a, s.challenge, title="Joint idea", body="Gecko-inspired dry adhesive pads on grippers.")
    from marketplace.models import IdeaAuthor
    db.session.add(IdeaAuthor(idea_id=idea1.id, user_id=b.id, status="accepted"))
    db.session.commit()
    idea2 = ideas.submit(a, s.challenge, title="Second", body="Tactile skins made from conductive foam layers.")
    assert "over-limit" not in flags_on(idea2)  # A alone: 2 ideas, B's co-authored one among them
    idea3 = ideas.submit(b, s.challenge, title="Third", body="Grip force feedback from motor current alone.")
    fl = flags_on(idea3)["over-limit"]
    assert "Ann co-authored an idea with them" in fl.detail and "submitted 3 ideas" in fl.detail
    assert set(fl.related_data["ideas"]) == {idea1.id, idea2.id, idea3.id}


def test_conflict_of_interest_member_of_posting_org(f, ideas):
    s = ideas.challenge()
    insider = f.make_user(email="insider@corp.test")
    idea = ideas.submit(insider, s.challenge, title="Inside view", body="We already tried this internally, but...")
    assert "conflict-of-interest" not in flags_on(idea)
    # They join the posting organisation, whose rules do not let members take part.
    f.add_member(s.org, insider)
    made = flags.check_idea(idea)
    db.session.commit()
    assert [fl.kind for fl in made] == ["conflict-of-interest"]
    assert "whose rules do not let its members take part" in flags_on(idea)["conflict-of-interest"].detail


def test_conflict_of_interest_must_be_declared_when_members_may_take_part(f, ideas):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    declared_member = f.make_user(email="d@corp.test")
    silent_member = f.make_user(email="s@corp.test")
    f.add_member(org, declared_member)
    f.add_member(org, silent_member)
    s = ideas.challenge(owner=owner, org=org, rules={"org_members_may_participate": True})
    a = ideas.submit(declared_member, s.challenge, title="Declared", body="I work here; my idea is a new sorter.",
                     coi_note="I am an employee of the posting organisation.")
    b = ideas.submit(silent_member, s.challenge, title="Silent", body="Another idea about label reading robots.")
    assert "conflict-of-interest" not in flags_on(a)
    assert "did not declare" in flags_on(b)["conflict-of-interest"].detail


def test_flags_are_seen_and_resolved_by_moderators_in_scope(f, ideas, client, auth):
    s = ideas.challenge()
    scoped = f.make_user(name="Scoped Mod")
    other_scoped = f.make_user(name="Other Scoped")
    scope(scoped, s.org)
    scope(other_scoped, f.make_org())
    site_mod = f.make_user(site_role="moderator")
    ideas.submit(f.make_user(email="a@x1.test"), s.challenge, title="One", body=BODY)
    dup = ideas.submit(f.make_user(email="b@x2.test"), s.challenge, title="Two", body=BODY)
    fl = flags_on(dup)["near-duplicate"]
    assert any("Automatic check" in m for m in notes(site_mod)) and any("Automatic check" in m for m in notes(scoped))
    assert policy.can(scoped, "resolve", fl) and policy.can(site_mod, "resolve", fl)
    assert not policy.can(other_scoped, "view", fl) and not policy.can(s.owner, "view", fl)
    # The scoped moderator may now open the flagged (sealed) idea to judge it.
    assert policy.can(scoped, "view", dup) and not policy.can(other_scoped, "view", dup)
    auth.login(other_scoped.email)
    assert f"Near-duplicate".encode() not in client.get("/moderation/flags").data
    assert client.post(f"/moderation/flags/{fl.id}/resolve", data={"outcome": "confirm", "note": "x"}).status_code == 404
    auth.logout()
    auth.login(scoped.email)
    page = client.get("/moderation/flags").data
    assert b"Near-duplicate of another idea" in page
    r = client.post(f"/moderation/flags/{fl.id}/resolve", data={"outcome": "confirm", "note": ""})
    assert r.status_code == 400
    r = client.post(f"/moderation/flags/{fl.id}/resolve", data={"outcome": "confirm", "note": "Same text."})
    assert r.status_code == 302 and f"/moderation/case/idea/{dup.id}" in r.headers["Location"]
    db.session.expire_all()
    assert db.session.get(ModerationFlag, fl.id).status == "confirmed"
    assert "moderation.flag_confirmed" in audit_actions()
    with pytest.raises(ServiceError) as e:
        svc.resolve_flag(site_mod, db.session.get(ModerationFlag, fl.id), "dismiss", "Changed my mind.")
    assert e.value.status == 409


def test_disqualify_an_idea_naming_the_rule(f, ideas):
    s = ideas.challenge()
    author = f.make_user(email="auth@a.test")
    idea = ideas.submit(author, s.challenge, title="Copied", body=BODY)
    site_mod = f.make_user(site_role="moderator")
    scoped_elsewhere = f.make_user()
    scope(scoped_elsewhere, f.make_org())
    with pytest.raises(ServiceError) as e:
        svc.take_action(site_mod, "idea", idea.id, "disqualify", "Copied from a patent.")
    assert e.value.field == "rule"
    with pytest.raises(ServiceError):
        svc.take_action(scoped_elsewhere, "idea", idea.id, "disqualify", "x", rule="Originality")
    with pytest.raises(ServiceError):  # the organisation's admins review; they do not moderate ideas
        svc.take_action(s.owner, "idea", idea.id, "disqualify", "x", rule="Originality")
    action = svc.take_action(site_mod, "idea", idea.id, "disqualify", "Copied from EP123.",
                             rule="Rule 4: original work only")
    db.session.expire_all()
    assert db.session.get(type(idea), idea.id).status == "disqualified"
    assert action.rule == "Rule 4: original work only" and action.payload["previous_status"] == "submitted"
    assert any("Rule 4: original work only" in m for m in notes(author))
    assert "moderation.disqualify" in audit_actions()
    # Appeal overturned by another moderator: back to where it was.
    appeal = svc.file_appeal(author, action, "It is my own patent, see the attachment.")
    svc.decide_appeal(f.make_user(site_role="moderator"), appeal, "overturn", "The author owns the patent.")
    db.session.expire_all()
    assert db.session.get(type(idea), idea.id).status == "submitted"


def test_scoped_moderator_disqualifies_in_its_organisation(f, ideas):
    s = ideas.challenge()
    scoped = f.make_user()
    scope(scoped, s.org)
    idea = ideas.submit(f.make_user(email="z@z.test"), s.challenge, title="Off topic", body="Unrelated spam text here.")
    # A sealed idea nobody reported stays sealed, from scoped moderators too.
    assert not policy.can(scoped, "view", idea)
    with pytest.raises(ServiceError) as e:
        svc.take_action(scoped, "idea", idea.id, "disqualify", "Not an idea.", rule="Rule 1: on topic")
    assert e.value.status == 404
    # The organisation (which may read it) reports it; now it is the scoped moderator's case.
    svc.file_report(s.owner, "idea", idea.id, "participation-rules", "Not an idea at all.")
    assert policy.can(scoped, "view", idea)
    svc.take_action(scoped, "idea", idea.id, "disqualify", "Not an idea.", rule="Rule 1: on topic")
    db.session.expire_all()
    assert db.session.get(type(idea), idea.id).status == "disqualified"
