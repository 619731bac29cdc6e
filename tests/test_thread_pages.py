"""Q&A and discussion threads come in pages of top-level posts (a question with its answer, a
comment with all its replies) with plain links, work without JavaScript, and keep their
permalinks: ``?post=comment-7`` (what notifications, redirects after posting and the
moderation pages link to) opens the page holding the post. Counts come from one COUNT through
the policy's thread clauses, so they never count what the viewer may not see."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.models import utcnow
from marketplace.models.engagement import Comment, Question
from marketplace.services import engagement as svc

from .factories_engagement import EngagementWorld

SIZE = 3


@pytest.fixture
def w(f, app):
    app.config["THREAD_PAGE_SIZE"] = SIZE
    return EngagementWorld(f)


def _ids(html: bytes, kind: str) -> list[int]:
    return [int(n) for n in re.findall(rf'id="{kind}-(\d+)"'.encode(), html)]


def _get(client, url, status=200) -> bytes:
    r = client.get(url)
    assert r.status_code == status, (url, r.status_code, r.get_data(as_text=True)[:300])
    return r.data


# --------------------------------------------------------------------------- discussion


@pytest.fixture
def failure_with_threads(w):
    """8 top-level comments (ids in order), each but the last with two replies."""
    item = w.item("failure", "public", {"comment_rule": "registered"})
    tops, replies = [], {}
    for i in range(8):
        c = svc.add_comment(w.outsider, item, f"Top comment {i}")
        tops.append(c.id)
        if i < 7:
            replies[c.id] = [svc.add_comment(w.granted, item, f"Reply {i}.{j}", parent=c).id for j in range(2)]
    return item, tops, replies


def test_discussion_pages_hold_top_level_comments_with_their_replies(w, failure_with_threads, client, auth):
    item, tops, replies = failure_with_threads
    auth.login(w.member.email)
    seen = []
    for page in (1, 2, 3):
        html = _get(client, f"/failures/{item.id}?page={page}")
        shown = _ids(html, "comment")
        page_tops = [c for c in shown if c in tops]
        assert page_tops == tops[(page - 1) * SIZE: page * SIZE]
        for t in page_tops:  # every reply of the page's threads, on the same page
            assert all(r in shown for r in replies.get(t, []))
        assert b"Comments (8)" in html and f"Page {page} of 3".encode() in html
        seen += page_tops
    assert seen == tops
    # Links, not scripts: page 2 links to 1 and 3.
    html = _get(client, f"/failures/{item.id}?page=2")
    assert f'href="/failures/{item.id}?page=1#engagement"'.encode() in html
    assert f'href="/failures/{item.id}?page=3#engagement"'.encode() in html


def test_reply_forms_work_on_a_later_page_and_land_on_the_replys_page(w, failure_with_threads, client, auth):
    item, tops, _replies = failure_with_threads
    auth.login(w.member.email)
    html = _get(client, f"/failures/{item.id}?page=3")
    assert f'name="parent_id" value="{tops[6]}"'.encode() in html
    r = client.post(f"/engage/failures/{item.id}/comment",
                    data={"body": "Late reply on page three", "parent_id": str(tops[6])})
    assert r.status_code == 302
    reply = db.session.execute(select(Comment).where(Comment.body == "Late reply on page three")).scalar_one()
    assert r.headers["Location"].endswith(f"/failures/{item.id}?post=comment-{reply.id}#comment-{reply.id}")
    html = _get(client, r.headers["Location"])
    assert b"Page 3 of 3" in html and b"Late reply on page three" in html


@pytest.mark.parametrize("which", ["top", "reply"])
def test_a_permalink_lands_on_the_page_holding_the_post(w, failure_with_threads, client, which):
    item, tops, replies = failure_with_threads
    target = tops[4] if which == "top" else replies[tops[4]][1]
    html = _get(client, f"/failures/{item.id}?post=comment-{target}")
    assert b"Page 2 of 3" in html and target in _ids(html, "comment")


def test_what_one_may_not_see_is_neither_counted_nor_found_by_permalink(w, failure_with_threads, client, auth):
    """A deleted comment without replies leaves no trace: not in the count, and a permalink
    to it opens the first page like one to a comment that never existed."""
    item, tops, replies = failure_with_threads
    lone = db.session.get(Comment, tops[7])
    lone.deleted_at = utcnow()
    removed = db.session.get(Comment, tops[5])  # has replies: stays as a tombstone
    removed.deleted_at = utcnow()
    db.session.commit()
    auth.login(w.outsider.email)
    html = _get(client, f"/failures/{item.id}?page=3")
    assert b"Comments (7)" in html and b"Top comment 7" not in html and _ids(html, "comment")[:1] == [tops[6]]
    html = _get(client, f"/failures/{item.id}?page=2")
    assert tops[5] in _ids(html, "comment") and b"Deleted by its author." in html and b"Top comment 5" not in html
    hidden = _get(client, f"/failures/{item.id}?post=comment-{tops[7]}")
    missing = _get(client, f"/failures/{item.id}?post=comment-999999")
    assert b"Page 1 of 3" in hidden and b"Page 1 of 3" in missing
    assert b"Top comment 7" not in hidden


def test_hidden_comments_count_for_their_readers_only(w, failure_with_threads, client, auth):
    """A hidden comment shows as a tombstone to whoever sees the failure; its text only to
    its author and the organisation's admins."""
    item, tops, _ = failure_with_threads
    c = db.session.get(Comment, tops[0])
    c.hidden_at = utcnow()
    db.session.commit()
    html = _get(client, f"/failures/{item.id}")
    assert b"Hidden by moderators." in html and b"Top comment 0" not in html
    auth.login(w.admin.email)
    assert b"Top comment 0" in _get(client, f"/failures/{item.id}")


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "1.5", "99999999999"])
def test_bad_page_numbers_are_a_400_with_a_message(w, failure_with_threads, client, bad):
    item, _, _ = failure_with_threads
    r = client.get(f"/failures/{item.id}?page={bad}")
    assert r.status_code == 400 and b"page number" in r.data


def test_a_page_past_the_end_shows_the_last_page(w, failure_with_threads, client):
    item, tops, _ = failure_with_threads
    html = _get(client, f"/failures/{item.id}?page=40")
    assert b"Page 3 of 3" in html and tops[7] in _ids(html, "comment")


@pytest.mark.parametrize("bad", ["comment", "comment-", "comment-x", "idea-4", "comment-99999999999999999999"])
def test_a_malformed_permalink_is_a_400(w, failure_with_threads, client, bad):
    item, _, _ = failure_with_threads
    r = client.get(f"/failures/{item.id}?post={bad}")
    assert r.status_code == 400 and b"question-12" in r.data


def test_a_permalink_to_a_post_of_another_item_opens_the_first_page(w, failure_with_threads, client):
    item, _, _ = failure_with_threads
    other = w.item("failure", "public", {"comment_rule": "registered"})
    elsewhere = svc.add_comment(w.outsider, other, "Elsewhere")
    html = _get(client, f"/failures/{item.id}?post=comment-{elsewhere.id}")
    assert b"Page 1 of 3" in html and b"Elsewhere" not in html


def test_the_pinned_lesson_links_to_its_page(w, failure_with_threads, client, auth):
    item, tops, _ = failure_with_threads
    svc.pin_comment(w.admin, db.session.get(Comment, tops[6]))
    html = _get(client, f"/failures/{item.id}")
    link = f'href="/failures/{item.id}?post=comment-{tops[6]}#comment-{tops[6]}"'.encode()
    assert link in html and b"Most useful lesson" in html
    assert b"Page 3 of 3" in _get(client, f"/failures/{item.id}?post=comment-{tops[6]}")


# --------------------------------------------------------------------------- Q&A


@pytest.fixture
def challenge_with_questions(w):
    """7 answered questions from the outsider, then 4 unanswered ones (2 each from the
    outsider and the granted user)."""
    item = w.item("challenge", "public", {"ask_rule": "registered"})
    answered, waiting = [], {"outsider": [], "granted": []}
    for i in range(7):
        q = svc.ask_question(w.outsider, item, f"Answered question {i}?")
        svc.answer_question(w.admin, q, f"Answer {i}.")
        answered.append(q.id)
    for i in range(4):
        who = "outsider" if i % 2 == 0 else "granted"
        waiting[who].append(svc.ask_question(getattr(w, who), item, f"Waiting question {who} {i}?").id)
    return item, answered, waiting


def test_published_questions_are_paged_and_counted(w, challenge_with_questions, client):
    item, answered, _ = challenge_with_questions
    got = []
    for page in (1, 2, 3):
        html = _get(client, f"/challenges/{item.id}?page={page}")
        assert b"Published questions (7)" in html and f"Page {page} of 3".encode() in html
        assert b"Waiting for an answer" not in html  # anonymous: sees no unanswered question
        got += _ids(html, "question")
    assert got == answered


def test_waiting_questions_page_separately_and_count_only_what_one_sees(w, challenge_with_questions, client, auth):
    item, answered, waiting = challenge_with_questions
    auth.login(w.granted.email)
    html = _get(client, f"/challenges/{item.id}")
    assert b"Waiting for an answer (2)" in html
    assert set(_ids(html, "question")) == set(answered[:SIZE]) | set(waiting["granted"])
    assert b"Waiting question outsider" not in html
    auth.logout()
    auth.login(w.admin.email)
    html = _get(client, f"/challenges/{item.id}?page=2&waiting_page=2")
    assert b"Waiting for an answer (4)" in html and b"Page 2 of 2" in html
    every = sorted(waiting["outsider"] + waiting["granted"])
    assert set(_ids(html, "question")) == set(answered[SIZE:2 * SIZE]) | {every[3]}
    # The other list's page is kept by each list's links.
    assert f'href="/challenges/{item.id}?page=2&amp;waiting_page=1#engagement"'.encode() in html


def test_answer_forms_work_from_a_later_page_and_the_redirect_lands_on_its_page(
        w, challenge_with_questions, client, auth):
    item, answered, waiting = challenge_with_questions
    every = sorted(waiting["outsider"] + waiting["granted"])
    auth.login(w.admin.email)
    html = _get(client, f"/challenges/{item.id}?waiting_page=2")
    assert f'/engage/questions/{every[3]}/answer'.encode() in html
    r = client.post(f"/engage/questions/{every[3]}/answer", data={"body": "Answered from page two."})
    assert r.status_code == 302
    assert r.headers["Location"].endswith(f"?post=question-{every[3]}#question-{every[3]}")
    html = _get(client, r.headers["Location"])
    # Now the 8th published question: page 3 of the published list.
    assert b"Published questions (8)" in html and b"Answered from page two." in html
    assert every[3] in _ids(html, "question")


def test_question_permalinks(w, challenge_with_questions, client, auth):
    item, answered, waiting = challenge_with_questions
    html = _get(client, f"/challenges/{item.id}?post=question-{answered[6]}")
    assert answered[6] in _ids(html, "question") and b"Page 3 of 3" in html
    answer_id = db.session.get(Question, answered[4]).answer.id
    html = _get(client, f"/challenges/{item.id}?post=answer-{answer_id}")
    assert answered[4] in _ids(html, "question")
    # Someone else's unanswered question: the permalink says nothing about it.
    auth.login(w.granted.email)
    html = _get(client, f"/challenges/{item.id}?post=question-{waiting['outsider'][1]}")
    assert waiting["outsider"][1] not in _ids(html, "question") and b"Waiting question outsider" not in html
    html = _get(client, f"/challenges/{item.id}?post=question-{waiting['granted'][1]}")
    assert waiting["granted"][1] in _ids(html, "question")


def test_deleted_answered_question_stays_as_a_tombstone_and_counts(w, challenge_with_questions, client):
    item, answered, _ = challenge_with_questions
    q = db.session.get(Question, answered[0])
    q.deleted_at = utcnow()
    db.session.commit()
    html = _get(client, f"/challenges/{item.id}")
    assert b"Published questions (7)" in html and b"Deleted by its author." in html
    assert b"Answered question 0?" not in html


def test_notification_links_are_permalinks(w, failure_with_threads, client, auth):
    """The reply notification sends its reader to the page holding the reply."""
    from marketplace.models import Notification

    item, tops, _ = failure_with_threads
    reply = svc.add_comment(w.member, item, "A reply for the notification", parent=db.session.get(Comment, tops[7]))
    n = db.session.execute(select(Notification).where(Notification.user_id == w.outsider.id)
                           .order_by(Notification.id.desc())).scalars().first()
    assert n.url.endswith(f"?post=comment-{reply.id}#comment-{reply.id}")
    html = _get(client, n.url)
    assert b"Page 3 of 3" in html and b"A reply for the notification" in html
