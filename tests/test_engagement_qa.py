"""Challenge Q&A: the publication rule, anonymity, the cut-off, answering, notifications,
edits, deletions and tombstones, and bad input."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import Notification, User, utcnow
from marketplace.models.engagement import Answer, Question
from marketplace.services import engagement as svc
from marketplace.services import items as item_svc
from marketplace.services.common import ServiceError

from .factories_engagement import EngagementWorld, backdate


@pytest.fixture
def w(f):
    return EngagementWorld(f)


def _visible_ids(user, model=Question):
    return set(db.session.execute(select(model.id).where(policy.visible_clause(user, model))).scalars())


def _notes(user):
    return db.session.execute(select(Notification).where(Notification.user_id == user.id)).scalars().all()


def test_unanswered_question_is_seen_by_the_asker_and_the_organisation_only(w, client, auth):
    ch = w.item("challenge", "public")
    q = svc.ask_question(w.outsider, ch, "Is the **budget** fixed?", show_name=True)
    for user, sees in ((w.outsider, True), (w.member, True), (w.admin, True), (w.granted, False),
                       (w.listed, False), (None, False)):
        assert policy.can(user, "view", q) is sees
        assert (q.id in _visible_ids(user)) is sees
    # The page shows it to the asker, not to another participant or an anonymous visitor.
    page = client.get(f"/challenges/{ch.id}")
    assert b"budget" not in page.data and b"Waiting for an answer" not in page.data
    auth.login(w.granted.email)
    assert b"budget" not in client.get(f"/challenges/{ch.id}").data
    auth.logout()
    auth.login(w.outsider.email)
    page = client.get(f"/challenges/{ch.id}").data
    assert b"<strong>budget</strong>" in page and b"Waiting for an answer (1)" in page


def test_answering_publishes_to_everyone_who_may_see_the_challenge(w, client, auth):
    ch = w.item("challenge", "public")
    q = svc.ask_question(w.outsider, ch, "Is the budget fixed?", show_name=True)
    auth.login(w.admin.email)
    r = client.post(f"/engage/questions/{q.id}/answer", data={"body": "Yes, EUR 20k."})
    assert r.status_code == 302
    auth.logout()
    for user in (None, w.granted, w.listed, w.member):
        assert policy.can(user, "view", q) and q.id in _visible_ids(user)
        assert policy.can(user, "view", q.answer) and q.answer.id in _visible_ids(user, Answer)
    page = client.get(f"/challenges/{ch.id}").data
    assert b"Is the budget fixed?" in page and b"EUR 20k" in page
    assert w.outsider.display_name.encode() in page  # the asker chose to show their name


def test_published_questions_follow_the_challenge_visibility(w):
    ch = w.item("challenge", "registered")
    q = svc.ask_question(w.outsider, ch, "What format?")
    svc.answer_question(w.admin, q, "PDF.")
    assert policy.can(w.granted, "view", q)
    item_svc.change_visibility(w.admin, ch, "organisation")
    assert not policy.can(w.granted, "view", q) and q.id not in _visible_ids(w.granted)
    assert not policy.can(w.outsider, "view", q)  # not even the asker, once the challenge is closed to them
    assert policy.can(w.member, "view", q)


def test_anonymous_question_never_shows_the_askers_name(w, client, auth):
    ch = w.item("challenge", "public")
    q = svc.ask_question(w.outsider, ch, "Can we use open-source parts?", show_name=False)
    note = _notes(w.admin)[-1]
    assert w.outsider.display_name not in note.message and "A participant" in note.message
    auth.login(w.admin.email)
    page = client.get(f"/challenges/{ch.id}").data
    assert b"open-source parts" in page and w.outsider.display_name.encode() not in page
    assert b"Anonymous participant" in page
    client.post(f"/engage/questions/{q.id}/answer", data={"body": "Yes."})
    auth.logout()
    page = client.get(f"/challenges/{ch.id}").data
    assert b"open-source parts" in page and w.outsider.display_name.encode() not in page
    auth.login(w.outsider.email)
    assert b"asked anonymously" in client.get(f"/challenges/{ch.id}").data
    doc = svc.search_document(q)
    assert w.outsider.display_name not in str(doc) and w.outsider.email not in str(doc)


def test_notifications_go_to_the_org_on_questions_and_the_asker_on_answers(w):
    ch = w.item("challenge", "invited")
    q = svc.ask_question(w.granted, ch, "How many units?", show_name=True)
    assert [n.kind for n in _notes(w.admin)] == ["question"]
    assert [n.kind for n in _notes(w.owner)] == ["question"]
    assert _notes(w.member) == [] and _notes(w.outsider) == []
    svc.answer_question(w.admin, q, "About 500.")
    assert [n.kind for n in _notes(w.granted)] == ["answer"]
    assert _notes(w.outsider) == [] and _notes(w.listed) == []


def test_no_notification_to_an_asker_who_can_no_longer_see_the_challenge(w, f):
    ch = w.item("challenge", "invited")
    q = svc.ask_question(w.granted, ch, "Still open to us?")
    for g in ch.grants:
        item_svc.revoke_grant(w.admin, g)
    svc.answer_question(w.admin, q, "Yes.")
    assert _notes(w.granted) == []


def test_questions_close_before_the_deadline_by_the_cutoff_rule(w, client, auth):
    ch = w.item("challenge", "public", deadline=utcnow() + timedelta(hours=24))
    msg = policy.ask_refusal(policy.viewer_for(w.outsider), ch)
    assert msg and "rule: question cut-off" in msg and "48 hours" in msg
    auth.login(w.outsider.email)
    r = client.post(f"/engage/challenges/{ch.id}/ask", data={"body": "Too late?"})
    assert r.status_code == 403 and b"question cut-off" in r.data
    assert db.session.query(Question).count() == 0
    svc.set_rules(w.admin, ch, {"question_cutoff_hours": 12})
    assert client.post(f"/engage/challenges/{ch.id}/ask", data={"body": "Now?"}).status_code == 302
    assert db.session.query(Question).count() == 1


def test_open_until_rule_ends_participation(w):
    ch = w.item("challenge", "public", rules={"open_until": utcnow() + timedelta(days=1)})
    assert policy.can(w.outsider, "ask", ch)
    rules = policy.engagement_rules(ch)
    rules.open_until = utcnow() - timedelta(minutes=1)
    db.session.commit()
    with pytest.raises(ServiceError) as e:
        svc.ask_question(w.outsider, ch, "Still?")
    assert e.value.status == 403 and "rule: open until" in e.value.message


def test_only_the_posting_organisations_admins_answer(w, client, auth):
    ch = w.item("challenge", "public")
    q = svc.ask_question(w.outsider, ch, "Which sizes?")
    # The asker and plain members see the question but may not answer; others do not see it.
    for user, code in ((w.member, 403), (w.outsider, 403), (w.granted, 404)):
        auth.login(user.email)
        assert client.post(f"/engage/questions/{q.id}/answer", data={"body": "Any."}).status_code == code
        auth.logout()
    assert db.session.query(Answer).count() == 0
    auth.login(w.admin.email)
    assert client.post(f"/engage/questions/{q.id}/answer", data={"body": ""}).status_code == 400
    assert client.post(f"/engage/questions/{q.id}/answer", data={"body": "S, M, L."}).status_code == 302
    r = client.post(f"/engage/questions/{q.id}/answer", data={"body": "Also XL."})
    assert r.status_code == 409 and b"already been answered" in r.data
    assert db.session.query(Answer).count() == 1


def test_two_admins_answering_at_once_leave_one_answer(app, w):
    ch = w.item("challenge", "public")
    q = svc.ask_question(w.outsider, ch, "Race?")
    ids = (w.admin.id, w.owner.id)
    barrier = threading.Barrier(len(ids))
    results = []

    def answer(uid):
        with app.app_context():
            try:
                user = db.session.get(User, uid)
                question = db.session.get(Question, q.id)
                barrier.wait()
                svc.answer_question(user, question, f"Answer by {uid}")
                results.append("ok")
            except ServiceError as e:
                results.append(e.status)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=answer, args=(uid,)) for uid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results, key=str) == [409, "ok"]
    assert db.session.execute(select(Answer).where(Answer.question_id == q.id)).scalars().all().__len__() == 1


@pytest.mark.parametrize("body,error", [("", b"empty"), ("   ", b"empty"), ("x" * 2001, b"too long")])
def test_bad_questions_get_a_form_error_and_write_nothing(w, client, auth, body, error):
    ch = w.item("challenge", "public")
    auth.login(w.outsider.email)
    r = client.post(f"/engage/challenges/{ch.id}/ask", data={"body": body})
    assert r.status_code == 400 and error in r.data
    assert db.session.query(Question).count() == 0


def test_no_questions_on_closed_or_hidden_challenges(w, client, auth):
    closed = w.item("challenge", "public", status="closed")
    hidden = w.item("challenge", "public")
    hidden.hidden_at = utcnow()
    db.session.commit()
    auth.login(w.outsider.email)
    r = client.post(f"/engage/challenges/{closed.id}/ask", data={"body": "Hello?"})
    assert r.status_code == 403 and b"closed" in r.data
    assert client.post(f"/engage/challenges/{hidden.id}/ask", data={"body": "Hello?"}).status_code == 404
    auth.logout()
    auth.login(w.member.email)  # members still see a hidden item, but cannot add to it
    r = client.post(f"/engage/challenges/{hidden.id}/ask", data={"body": "Hello?"})
    assert r.status_code == 403 and b"hidden by moderators" in r.data
    assert db.session.query(Question).count() == 0


def test_questions_are_for_challenges_only(w, client, auth):
    failure = w.item("failure", "public")
    auth.login(w.outsider.email)
    assert client.post(f"/engage/challenges/{failure.id}/ask", data={"body": "?"}).status_code == 404
    with pytest.raises(ServiceError):
        svc.ask_question(w.outsider, failure, "?")


def test_asker_edits_within_the_window_and_the_edit_is_marked(w, client, auth):
    ch = w.item("challenge", "public")
    q = svc.ask_question(w.outsider, ch, "Original wording")
    auth.login(w.outsider.email)
    assert client.post(f"/engage/questions/{q.id}/edit", data={"body": "Better wording"}).status_code == 302
    db.session.refresh(q)
    assert q.body == "Better wording" and q.edited_at is not None
    assert b"edited" in client.get(f"/challenges/{ch.id}").data
    backdate(q, 16)
    r = client.post(f"/engage/questions/{q.id}/edit", data={"body": "Sneaky change"})
    assert r.status_code == 403 and b"edit window has passed" in r.data
    db.session.refresh(q)
    assert q.body == "Better wording"


def test_only_the_author_edits_and_answered_questions_are_frozen(w, client, auth):
    ch = w.item("challenge", "public")
    q = svc.ask_question(w.outsider, ch, "Mine")
    auth.login(w.admin.email)
    assert client.post(f"/engage/questions/{q.id}/edit", data={"body": "Theirs"}).status_code == 403
    auth.logout()
    svc.answer_question(w.admin, q, "Answer")
    auth.login(w.outsider.email)
    r = client.post(f"/engage/questions/{q.id}/edit", data={"body": "Changed after the answer"})
    assert r.status_code == 403 and b"answered" in r.data
    db.session.refresh(q)
    assert q.body == "Mine"


def test_org_edits_its_answer_within_the_window(w):
    ch = w.item("challenge", "public")
    q = svc.ask_question(w.outsider, ch, "Q")
    a = svc.answer_question(w.admin, q, "First answer")
    svc.edit_post(w.admin, a, "Corrected answer")
    assert a.body == "Corrected answer" and a.edited_at is not None
    backdate(a, 30)
    with pytest.raises(ServiceError) as e:
        svc.edit_post(w.admin, a, "Too late")
    assert e.value.status == 403


def test_deleted_unanswered_question_disappears(w, client, auth):
    ch = w.item("challenge", "public")
    q = svc.ask_question(w.outsider, ch, "Never mind this one")
    auth.login(w.outsider.email)
    assert client.post(f"/engage/questions/{q.id}/delete").status_code == 302
    page = client.get(f"/challenges/{ch.id}").data
    assert b"Never mind" not in page and b"Deleted by its author" not in page
    auth.logout()
    auth.login(w.admin.email)
    assert b"Never mind" not in client.get(f"/challenges/{ch.id}").data
    assert not policy.can(w.admin, "view", q)


def test_deleted_answered_question_leaves_a_tombstone_and_the_answer(w, client, auth):
    ch = w.item("challenge", "public")
    q = svc.ask_question(w.outsider, ch, "Secret detail in my question")
    svc.answer_question(w.admin, q, "Public answer stays")
    svc.delete_post(w.outsider, q)
    page = client.get(f"/challenges/{ch.id}").data
    assert b"Secret detail" not in page
    assert b"Deleted by its author" in page and b"Public answer stays" in page
    assert q.id not in _visible_ids(w.granted)
    assert policy.can(w.moderator, "view", q)  # moderators still see what was removed


def test_hidden_question_is_a_tombstone_for_others(w, client, auth):
    ch = w.item("challenge", "public")
    q = svc.ask_question(w.outsider, ch, "Offensive words here")
    svc.answer_question(w.admin, q, "Answer under a hidden question")
    q.hidden_at, q.hidden_reason = utcnow(), "abusive"
    db.session.commit()
    page = client.get(f"/challenges/{ch.id}").data
    assert b"Offensive words" not in page and b"Answer under a hidden" not in page
    assert b"Hidden by moderators" in page
    for user in (w.outsider, w.admin, w.moderator):
        assert policy.can(user, "view", q)
    assert not policy.can(w.member, "view", q) and not policy.can(w.granted, "view", q)
    auth.login(w.outsider.email)
    assert b"Offensive words" in client.get(f"/challenges/{ch.id}").data


def test_question_markdown_is_sanitised(w, client, auth):
    ch = w.item("challenge", "public")
    q = svc.ask_question(w.outsider, ch, "<script>alert(1)</script> [x](javascript:alert(1)) **ok**")
    svc.answer_question(w.admin, q, "<img src=x onerror=alert(1)>")
    page = client.get(f"/challenges/{ch.id}").data
    assert b"<script>alert" not in page and b"href=\"javascript:" not in page and b"<img" not in page
    assert b"<strong>ok</strong>" in page
