"""Discussion of failures: comments and one-level "what we learned too" replies, pinning,
closing, edits within the window, deletions and tombstones, hidden comments, bad input."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import Notification, utcnow
from marketplace.models.engagement import Comment
from marketplace.services import engagement as svc
from marketplace.services.common import ServiceError

from .factories_engagement import EngagementWorld, backdate


@pytest.fixture
def w(f):
    return EngagementWorld(f)


@pytest.fixture
def failure(w):
    return w.item("failure", "public", {"comment_rule": "registered"})


def _page(client, item):
    r = client.get(f"/failures/{item.id}")
    assert r.status_code == 200
    return r.data


def test_comment_and_reply_render_with_markdown(w, failure, client, auth):
    auth.login(w.outsider.email)
    r = client.post(f"/engage/failures/{failure.id}/comment", data={"body": "We saw **the same** leak."})
    assert r.status_code == 302
    top = db.session.execute(select(Comment)).scalar_one()
    auth.logout()
    auth.login(w.granted.email)
    r = client.post(f"/engage/failures/{failure.id}/comment",
                    data={"body": "What we learned: add a foam lip.", "parent_id": str(top.id)})
    assert r.status_code == 302
    reply = db.session.execute(select(Comment).where(Comment.parent_id == top.id)).scalar_one()
    page = _page(client, failure)
    assert b"<strong>the same</strong>" in page and b"add a foam lip" in page
    assert f'id="comment-{reply.id}"'.encode() in page and b"What we learned too" in page
    # The top comment's author hears about the reply.
    notes = db.session.execute(select(Notification).where(Notification.user_id == w.outsider.id)).scalars().all()
    assert [n.kind for n in notes] == ["reply"]


def test_a_reply_to_a_reply_attaches_to_the_top_level_comment(w, failure):
    top = svc.add_comment(w.outsider, failure, "Top")
    reply = svc.add_comment(w.granted, failure, "Reply", parent=top)
    deeper = svc.add_comment(w.listed, failure, "Reply to the reply", parent=reply)
    assert reply.parent_id == top.id and deeper.parent_id == top.id


def test_reply_to_a_comment_of_another_discussion_is_refused(w, failure, client, auth):
    other = w.item("failure", "public")
    elsewhere = svc.add_comment(w.outsider, other, "Elsewhere")
    auth.login(w.granted.email)
    r = client.post(f"/engage/failures/{failure.id}/comment",
                    data={"body": "Sneaky", "parent_id": str(elsewhere.id)})
    assert r.status_code == 400 and b"does not exist in this discussion" in r.data
    r = client.post(f"/engage/failures/{failure.id}/comment", data={"body": "Sneaky", "parent_id": "abc"})
    assert r.status_code == 400
    with pytest.raises(ServiceError):
        svc.add_comment(w.granted, failure, "Sneaky", parent=elsewhere)
    assert db.session.query(Comment).filter_by(item_id=failure.id).count() == 0


def test_reply_to_a_comment_one_may_not_see_is_refused(w, failure, client, auth):
    hidden = svc.add_comment(w.outsider, failure, "Rude")
    hidden.hidden_at = utcnow()
    db.session.commit()
    auth.login(w.granted.email)
    r = client.post(f"/engage/failures/{failure.id}/comment", data={"body": "Reply", "parent_id": str(hidden.id)})
    assert r.status_code == 400
    with pytest.raises(ServiceError) as e:
        svc.add_comment(w.granted, failure, "Reply", parent=hidden)
    assert e.value.status == 404
    # The author may see it but not reply under a hidden comment.
    with pytest.raises(ServiceError) as e:
        svc.add_comment(w.outsider, failure, "Reply", parent=hidden)
    assert e.value.status == 403 and "hidden by moderators" in e.value.message


@pytest.mark.parametrize("body,error", [("", b"empty"), ("\n\t ", b"empty"), ("y" * 10_001, b"too long")])
def test_empty_or_overlong_comments_get_a_form_error(w, failure, client, auth, body, error):
    auth.login(w.outsider.email)
    r = client.post(f"/engage/failures/{failure.id}/comment", data={"body": body})
    assert r.status_code == 400 and error in r.data
    assert db.session.query(Comment).count() == 0
    with pytest.raises(ServiceError) as e:
        svc.add_comment(w.outsider, failure, body)
    assert e.value.field == "body"


def test_no_comments_on_closed_or_hidden_failures(w, client, auth):
    closed = w.item("failure", "public", status="closed")
    archived = w.item("failure", "public", status="archived")
    hidden = w.item("failure", "public")
    hidden.hidden_at = utcnow()
    db.session.commit()
    auth.login(w.outsider.email)
    for item, code, text in ((closed, 403, b"closed"), (archived, 403, b"archived"), (hidden, 404, b"")):
        r = client.post(f"/engage/failures/{item.id}/comment", data={"body": "Hello"})
        assert r.status_code == code and text in r.data
    assert db.session.query(Comment).count() == 0


def test_comments_are_for_failures_only(w, client, auth):
    asset = w.item("asset", "public")
    auth.login(w.outsider.email)
    assert client.post(f"/engage/failures/{asset.id}/comment", data={"body": "Hi"}).status_code == 404
    with pytest.raises(ServiceError):
        svc.add_comment(w.outsider, asset, "Hi")


def test_org_closes_and_reopens_the_discussion(w, failure, client, auth):
    svc.add_comment(w.outsider, failure, "Before closing")
    auth.login(w.member.email)
    assert client.post(f"/engage/failures/{failure.id}/discussion/close").status_code == 403
    auth.logout()
    auth.login(w.admin.email)
    assert client.post(f"/engage/failures/{failure.id}/discussion/close").status_code == 302
    auth.logout()
    auth.login(w.outsider.email)
    page = _page(client, failure)
    assert b"Before closing" in page and b"closed this discussion" in page
    r = client.post(f"/engage/failures/{failure.id}/comment", data={"body": "After closing"})
    assert r.status_code == 403 and b"closed this discussion" in r.data
    svc.set_discussion_closed(w.admin, failure, False)
    assert client.post(f"/engage/failures/{failure.id}/comment", data={"body": "Reopened"}).status_code == 302


def test_moderation_lock_stops_new_comments(w, failure):
    from marketplace.services.moderation import take_action

    take_action(w.admin, "failure", failure.id, "lock", "Cooling off for a week.")
    assert policy.is_discussion_locked(failure)
    with pytest.raises(ServiceError) as e:
        svc.add_comment(w.outsider, failure, "Locked?")
    assert e.value.status == 403 and "locked" in e.value.message


def test_pin_one_reply_as_the_most_useful_lesson(w, failure, client, auth):
    top = svc.add_comment(w.outsider, failure, "Question about humidity")
    first = svc.add_comment(w.granted, failure, "Lesson one", parent=top)
    second = svc.add_comment(w.listed, failure, "Lesson two", parent=top)
    auth.login(w.member.email)
    assert client.post(f"/engage/comments/{first.id}/pin").status_code == 403
    auth.logout()
    auth.login(w.admin.email)
    assert client.post(f"/engage/comments/{first.id}/pin").status_code == 302
    assert client.post(f"/engage/comments/{second.id}/pin").status_code == 302
    db.session.expire_all()
    pinned = db.session.execute(select(Comment).where(Comment.pinned_at.is_not(None))).scalars().all()
    assert [c.id for c in pinned] == [second.id]
    page = _page(client, failure)
    assert b"Most useful lesson" in page and b'id="pinned-lesson"' in page
    assert client.post(f"/engage/comments/{second.id}/unpin").status_code == 302
    assert b'id="pinned-lesson"' not in _page(client, failure)


def test_author_edits_within_the_window_and_not_after(w, failure, client, auth):
    c = svc.add_comment(w.outsider, failure, "Frist!")
    auth.login(w.outsider.email)
    assert client.get(f"/engage/comments/{c.id}/edit").status_code == 200
    assert client.post(f"/engage/comments/{c.id}/edit", data={"body": "First."}).status_code == 302
    db.session.refresh(c)
    assert c.body == "First." and c.edited_at is not None and "First." in c.body_html
    assert b'class="edited"' in _page(client, failure)
    backdate(c, 15 * 60)
    r = client.post(f"/engage/comments/{c.id}/edit", data={"body": "Rewritten history"})
    assert r.status_code == 403 and b"15 minutes" in r.data
    db.session.refresh(c)
    assert c.body == "First."


def test_edit_window_comes_from_config(app, w, failure):
    app.config["ENGAGEMENT_EDIT_WINDOW_MINUTES"] = 60
    c = svc.add_comment(w.outsider, failure, "Long window")
    backdate(c, 30)
    svc.edit_post(w.outsider, c, "Edited at 30 minutes")
    assert c.edited_at is not None


def test_only_the_author_edits_or_deletes(w, failure, client, auth):
    c = svc.add_comment(w.outsider, failure, "Mine")
    for user in (w.admin, w.granted):
        auth.login(user.email)
        assert client.post(f"/engage/comments/{c.id}/edit", data={"body": "Not yours"}).status_code == 403
        assert client.post(f"/engage/comments/{c.id}/delete").status_code == 403
        auth.logout()
    db.session.refresh(c)
    assert c.body == "Mine" and c.deleted_at is None


def test_deleting_a_comment_without_replies_removes_it_from_view(w, failure, client, auth):
    c = svc.add_comment(w.outsider, failure, "Regrettable remark")
    auth.login(w.outsider.email)
    assert client.post(f"/engage/comments/{c.id}/delete").status_code == 302
    page = _page(client, failure)
    assert b"Regrettable remark" not in page and b"Deleted by its author" not in page
    assert c.id not in set(db.session.execute(select(Comment.id).where(policy.visible_clause(w.admin, Comment))).scalars())


def test_deleting_a_comment_with_replies_leaves_a_tombstone(w, failure, client, auth):
    c = svc.add_comment(w.outsider, failure, "Regrettable remark")
    svc.add_comment(w.granted, failure, "A useful reply", parent=c)
    svc.delete_post(w.outsider, c)
    page = _page(client, failure)
    assert b"Regrettable remark" not in page
    assert b"Deleted by its author" in page and b"A useful reply" in page
    with pytest.raises(ServiceError):
        svc.delete_post(w.outsider, c)  # already deleted (now only moderators may see it)


def test_deleting_a_pinned_comment_unpins_it(w, failure):
    top = svc.add_comment(w.outsider, failure, "Top")
    reply = svc.add_comment(w.granted, failure, "Pinned lesson", parent=top)
    svc.pin_comment(w.admin, reply)
    svc.delete_post(w.granted, reply)
    assert reply.pinned_at is None


def test_hidden_comment_shows_a_tombstone_to_others(w, failure, client, auth):
    c = svc.add_comment(w.outsider, failure, "Leaked confidential numbers")
    c.hidden_at, c.hidden_reason = utcnow(), "confidential"
    db.session.commit()
    page = _page(client, failure)
    assert b"Leaked confidential" not in page and b"Hidden by moderators." in page
    for user, sees in ((w.outsider, True), (w.admin, True), (w.owner, True), (w.moderator, True),
                       (w.member, False), (w.granted, False), (None, False)):
        assert policy.can(user, "view", c) is sees
    auth.login(w.admin.email)
    assert b"Leaked confidential" in _page(client, failure)
    auth.logout()
    auth.login(w.outsider.email)
    r = client.post(f"/engage/comments/{c.id}/edit", data={"body": "Cleaned up"})
    assert r.status_code == 403 and b"hid this" in r.data


def test_comments_never_leak_past_the_item(w, client, auth):
    secret = w.item("failure", "organisation")
    c = svc.add_comment(w.member, secret, "Internal post-mortem detail")
    for user in (w.outsider, w.granted, None):
        assert not policy.can(user, "view", c)
        assert c.id not in set(db.session.execute(select(Comment.id).where(policy.visible_clause(user, Comment))).scalars())
    assert "registered" not in policy.comment_doc_principals(c) and "public" not in policy.comment_doc_principals(c)
    auth.login(w.outsider.email)
    assert client.get(f"/failures/{secret.id}").status_code == 404
    assert client.get(f"/engage/comments/{c.id}/edit").status_code == 404
    assert client.post(f"/engage/comments/{c.id}/delete").status_code == 404
    assert client.post(f"/engage/comments/{c.id}/pin").status_code == 404
