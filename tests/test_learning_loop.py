"""The learning loop (issue 11): a closed challenge's admins are asked for an after-action
review (notification and page prompt), write it (validation), publish it as a lesson item
at a visibility they choose; "start from a past challenge" copies the brief, rules and terms
(a new version with its own digest) in one transaction and shows the earlier review."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import (
    ChallengeReview, ChallengeRules, ChallengeTerms, Failure, Idea, Item, Notification, OutgoingMail, utcnow,
)
from marketplace.services import items as items_svc
from marketplace.services import reviews as svc
from marketplace.services.common import ServiceError

from .factories import PASSWORD
from .factories_ideas import IdeaFactories


def _login(client, user):
    client.post("/auth/login", data={"email": user.email, "password": PASSWORD})


@pytest.fixture
def s(f):
    """A sealed organisation-only challenge of Acme with two awarded ideas and one declined."""
    I = IdeaFactories(f)
    s = I.challenge(visibility="organisation", confidentiality="sealed",
                    rules={"who_may_submit": "organisation", "org_members_may_participate": True})
    s.admin, s.member = f.make_user(name="Ada Admin"), f.make_user(name="Mo Member")
    f.add_member(s.org, s.admin, "admin")
    f.add_member(s.org, s.member, "member")
    s.ideas = []
    for title, status in (("Secret robot arm", "awarded"), ("Secret gripper", "awarded"), ("Meh", "declined")):
        author = f.make_user()
        f.add_member(s.org, author)
        idea = I.submit(author, s.challenge, title=title)
        idea.status = status
        s.ideas.append(idea)
    db.session.commit()
    return s


def _close(s):
    items_svc.change_status(s.owner, s.challenge, "closed")


def test_closing_a_challenge_asks_its_admins_once(s):
    _close(s)
    asked = db.session.execute(select(Notification.user_id).where(
        Notification.kind == "challenge.review_requested")).scalars().all()
    assert sorted(asked) == sorted([s.owner.id, s.admin.id])
    mails = db.session.execute(select(OutgoingMail.to_email).where(
        OutgoingMail.subject.like("After-action review%"))).scalars().all()
    assert sorted(mails) == sorted([s.owner.email, s.admin.email])
    review = svc.review_of(s.challenge)
    assert review is not None and review.submitted_at is None
    # Reopening and closing again does not ask twice.
    items_svc.change_status(s.owner, s.challenge, "open")
    _close(s)
    assert db.session.execute(select(func.count(Notification.id)).where(
        Notification.kind == "challenge.review_requested")).scalar_one() == 2


def test_challenges_left_open_past_their_deadline_are_asked_by_the_daily_job(s, f, runner):
    s.challenge.deadline = utcnow() - timedelta(hours=1)
    db.session.commit()
    result = runner.invoke(args=["insights", "ask-reviews"])
    assert "Asked for 1 review(s)." in result.output
    assert svc.review_of(s.challenge) is not None
    assert runner.invoke(args=["insights", "ask-reviews"]).output.strip() == "Asked for 0 review(s)."


def test_the_challenge_page_prompts_its_admins_only(s, client):
    url = f"/challenges/{s.challenge.id}"
    _login(client, s.admin)
    assert "Write its after-action review" not in client.get(url).data.decode()  # still open
    _close(s)
    assert "Write its after-action review" in client.get(url).data.decode()
    client.post("/auth/logout")
    _login(client, s.member)
    page = client.get(url).data.decode()
    assert "after-action review" not in page
    assert client.get(f"/challenges/{s.challenge.id}/after-action").status_code == 403


def test_an_open_challenge_cannot_be_reviewed_yet(s, client):
    _login(client, s.admin)
    r = client.get(f"/challenges/{s.challenge.id}/after-action")
    assert r.status_code == 403 and b"once it has closed" in r.data
    with pytest.raises(ServiceError) as e:
        svc.save_review(s.admin, s.challenge, {"achieved": "x", "differently": "y"})
    assert e.value.status == 403


def test_review_form_validation_shows_every_problem_and_saves_nothing(s, client):
    _close(s)
    _login(client, s.admin)
    a, b = s.ideas[0].id, s.ideas[1].id
    r = client.post(f"/challenges/{s.challenge.id}/after-action",
                    data={"achieved": "", "differently": "More time.", f"fate-{a}": "dropped", f"note-{a}": "",
                          f"fate-{b}": "teleported"})
    html = r.data.decode()
    assert r.status_code == 400
    assert "Say what the challenge achieved." in html
    r = client.post(f"/challenges/{s.challenge.id}/after-action",
                    data={"achieved": "Two pilots.", "differently": "More time.", f"fate-{a}": "dropped",
                          f"note-{a}": "", f"fate-{b}": "teleported", f"note-{b}": "x" * 1001})
    html = r.data.decode()
    assert r.status_code == 400
    assert "Say why the idea was dropped." in html
    assert "Choose piloted, licensed, dropped or not decided yet." in html
    assert "At most 1,000 characters." in html
    assert svc.review_of(s.challenge).submitted_at is None


def test_review_is_saved_revised_and_published_as_a_lesson(s, f, client):
    _close(s)
    _login(client, s.admin)
    a, b = s.ideas[0].id, s.ideas[1].id
    url = f"/challenges/{s.challenge.id}/after-action"
    page = client.get(url).data.decode()
    assert "Secret robot arm" in page and "Meh" not in page  # awarded ideas only
    r = client.post(url, data={"achieved": "Two pilots in the warehouse.", "differently": "Ask for prototypes.",
                               f"fate-{a}": "piloted", f"note-{a}": "Runs in hall 3.",
                               f"fate-{b}": "dropped", f"note-{b}": "Too costly to make."})
    assert r.status_code == 302
    review = svc.review_of(s.challenge)
    assert review.achieved == "Two pilots in the warehouse."
    assert sorted((o.idea_id, o.fate) for o in review.outcomes) == [(a, "piloted"), (b, "dropped")]
    # Revising keeps one outcome per idea.
    client.post(url, data={"achieved": "Two pilots.", "differently": "Ask for prototypes.",
                           f"fate-{a}": "licensed", f"note-{a}": "Licensed to a partner.",
                           f"fate-{b}": "dropped", f"note-{b}": "Too costly to make."})
    db.session.expire_all()
    review = svc.review_of(s.challenge)
    assert sorted((o.idea_id, o.fate) for o in review.outcomes) == [(a, "licensed"), (b, "dropped")]

    # Publish publicly: a failure item through the item service (audited, searchable).
    r = client.post(f"/challenges/{s.challenge.id}/after-action/publish",
                    data={"title": "What our robot challenge taught us", "summary": "Prototypes first.",
                          "visibility": "public"})
    assert r.status_code == 302
    lesson = db.session.execute(select(Failure).where(Failure.title == "What our robot challenge taught us")).scalar()
    assert lesson is not None and lesson.visibility == "public" and lesson.status == "open"
    assert "Licensed to a partner." in lesson.went_wrong_html and "Too costly" in lesson.went_wrong_html
    assert "Ask for prototypes." in lesson.lessons
    for secret in ("Secret robot arm", "Secret gripper"):
        assert secret not in lesson.body + lesson.went_wrong + lesson.lessons
    db.session.expire_all()
    assert svc.review_of(s.challenge).lesson_item_id == lesson.id
    # Publishing twice is refused with a clear message.
    r = client.post(f"/challenges/{s.challenge.id}/after-action/publish",
                    data={"title": "Again", "visibility": "public"})
    assert r.status_code == 409 and b"already published" in r.data

    # The lesson names its challenge only to those who may see the challenge.
    lesson_url = f"/failures/{lesson.id}"
    assert f"/challenges/{s.challenge.id}" in client.get(lesson_url).data.decode()
    client.post("/auth/logout")
    anon = client.get(lesson_url).data.decode()
    assert "What our robot challenge taught us" in anon
    assert s.challenge.title not in anon and f"/challenges/{s.challenge.id}" not in anon
    # The lesson is found by search for everyone.
    assert "What our robot challenge taught us" in client.get("/search?q=prototypes").data.decode()


def test_publish_form_validation(s, client):
    _close(s)
    svc.save_review(s.admin, s.challenge, {"achieved": "A.", "differently": "B."})
    _login(client, s.admin)
    url = f"/challenges/{s.challenge.id}/after-action/publish"
    r = client.post(url, data={"title": "", "visibility": "public"})
    assert r.status_code == 400 and b"Give the lesson a title." in r.data
    r = client.post(url, data={"title": "T", "visibility": "everyone"})
    assert r.status_code == 400
    assert db.session.execute(select(func.count(Failure.id))).scalar_one() == 0


def test_publishing_an_unwritten_review_is_refused(s, client):
    _close(s)
    _login(client, s.admin)
    r = client.post(f"/challenges/{s.challenge.id}/after-action/publish", data={"title": "T", "visibility": "public"})
    assert r.status_code == 409 and b"Write the review before publishing it." in r.data


# --------------------------------------------------------------------------- start from a past challenge


def test_start_from_copies_brief_rules_and_terms_as_a_new_version(s, client):
    _close(s)
    svc.save_review(s.admin, s.challenge, {"achieved": "Two pilots.", "differently": "Ask for prototypes.",
                                           f"fate-{s.ideas[0].id}": "piloted"})
    s.challenge.context = "The warehouse context."
    db.session.commit()
    _login(client, s.admin)
    page = client.get(f"/challenges/{s.challenge.id}/start-from").data.decode()
    assert "review said" in page and "Ask for prototypes." in page
    r = client.post(f"/challenges/{s.challenge.id}/start-from", data={"title": "Robots, round two",
                                                                      "visibility": "registered"})
    assert r.status_code == 302
    new = db.session.execute(select(Item).where(Item.title == "Robots, round two")).scalar()
    assert (new.status, new.visibility, new.org_id, new.deadline) == ("draft", "registered", s.org.id, None)
    assert (new.body, new.context) == (s.challenge.body, "The warehouse context.")
    old_terms, new_terms = policy.current_terms(s.challenge.id), policy.current_terms(new.id)
    assert new_terms.version == 1 and new_terms.digest != old_terms.digest
    assert json.loads(new_terms.canonical)["challenge_id"] == new.id
    for f_ in ("ip_model", "confidentiality", "field_of_use", "incentives_json", "governing_law"):
        assert getattr(new_terms, f_) == getattr(old_terms, f_)
    old_rules = db.session.execute(select(ChallengeRules).where(ChallengeRules.challenge_id == s.challenge.id)).scalar()
    new_rules = db.session.execute(select(ChallengeRules).where(ChallengeRules.challenge_id == new.id)).scalar()
    assert (new_rules.who_may_submit, new_rules.max_ideas_per_contributor, new_rules.org_members_may_participate) == \
        (old_rules.who_may_submit, old_rules.max_ideas_per_contributor, old_rules.org_members_may_participate)
    # The new challenge's page shows where it came from and what the review said.
    page = client.get(f"/challenges/{new.id}").data.decode()
    assert "Started from" in page and "Ask for prototypes." in page


def test_a_refused_copy_step_leaves_nothing_behind(s, monkeypatch):
    def refuse(user, source, new):
        raise ServiceError("Rounds cannot be copied.")

    monkeypatch.setattr(svc, "COPY_STEPS", svc.COPY_STEPS + [("rounds", refuse)])
    items_before = db.session.execute(select(func.count(Item.id))).scalar_one()
    terms_before = db.session.execute(select(func.count(ChallengeTerms.id))).scalar_one()
    with pytest.raises(ServiceError):
        svc.start_from(s.admin, s.challenge, {"title": "Copy"})
    assert db.session.execute(select(func.count(Item.id))).scalar_one() == items_before
    assert db.session.execute(select(func.count(ChallengeTerms.id))).scalar_one() == terms_before


def test_start_from_refusals(s, f, client):
    other = IdeaFactories(f).challenge(visibility="public")
    _login(client, s.admin)
    # Another organisation's private challenge: 404; its public one: 403 (not theirs to copy).
    hidden = f.make_item(other.org, kind="challenge", visibility="organisation")
    assert client.get(f"/challenges/{hidden.id}/start-from").status_code == 404
    assert client.post(f"/challenges/{hidden.id}/start-from", data={"title": "x"}).status_code == 404
    assert client.get(f"/challenges/{other.challenge.id}/start-from").status_code == 403
    assert client.get("/challenges/999999/start-from").status_code == 404
    # A member of the organisation may not.
    client.post("/auth/logout")
    _login(client, s.member)
    assert client.get(f"/challenges/{s.challenge.id}/start-from").status_code == 403
    # Bad input: a clear form error, no item.
    client.post("/auth/logout")
    _login(client, s.admin)
    before = db.session.execute(select(func.count(Item.id))).scalar_one()
    r = client.post(f"/challenges/{s.challenge.id}/start-from", data={"title": "", "visibility": "public"})
    assert r.status_code == 400 and b"Give the new challenge a title." in r.data
    r = client.post(f"/challenges/{s.challenge.id}/start-from", data={"title": "x" * 201, "visibility": "public"})
    assert r.status_code == 400 and b"At most 200 characters." in r.data
    assert db.session.execute(select(func.count(Item.id))).scalar_one() == before


def test_a_past_reveal_date_is_not_copied(s, f):
    I = IdeaFactories(f)
    ch = f.make_item(s.org, kind="challenge", visibility="public")
    I.set_terms(s.owner, ch, reveal_at=utcnow() + timedelta(minutes=5))
    row = policy.current_terms(ch.id)
    db.session.execute(ChallengeTerms.__table__.update().where(ChallengeTerms.id == row.id)
                       .values(reveal_at=utcnow() - timedelta(days=1)))
    db.session.commit()
    new = svc.start_from(s.owner, ch, {"title": "Copy"})
    assert policy.current_terms(new.id).reveal_at is None
