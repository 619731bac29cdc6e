"""Engagement as other features see it: reporting to moderation, search documents and
principals, the item panels, the participation-rules page and the demo data."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import utcnow
from marketplace.models.engagement import (
    Answer,
    AssetRequest,
    Comment,
    EngagementRules,
    Question,
)
from marketplace.models.moderation import Report
from marketplace.services import engagement as svc

from .factories_engagement import EngagementWorld


@pytest.fixture
def w(f):
    return EngagementWorld(f)


def test_every_piece_of_content_carries_what_moderation_needs():
    from marketplace.moderation import registry

    for type_name, model in (("question", Question), ("answer", Answer), ("comment", Comment),
                             ("asset_request", AssetRequest)):
        assert registry.get(type_name).model is model
        cols = model.__table__.c
        assert {"author_id", "hidden_at", "hidden_reason", "item_id"} <= set(cols.keys()), type_name


def test_posts_can_be_reported_to_moderators(w, client, auth):
    fa = w.item("failure", "public")
    c = svc.add_comment(w.outsider, fa, "Spammy link farm")
    auth.login(w.granted.email)
    page = client.get(f"/failures/{fa.id}").data
    assert f"/moderation/report/comment/{c.id}".encode() in page
    r = client.post(f"/moderation/report/comment/{c.id}", data={"category": "spam", "note": ""})
    assert r.status_code == 302
    report = db.session.execute(select(Report)).scalar_one()
    assert (report.target_type, report.target_id) == ("comment", c.id)


def test_an_unpublished_question_cannot_be_reported_by_someone_who_cannot_see_it(w, client, auth):
    ch = w.item("challenge", "public")
    q = svc.ask_question(w.outsider, ch, "Pending question")
    auth.login(w.granted.email)
    assert client.get(f"/moderation/report/question/{q.id}").status_code == 404


def test_a_party_can_report_a_request_and_then_moderators_see_it(w, client, auth):
    asset = w.item("asset", "public")
    t = svc.current_terms(asset)
    r = svc.send_request(w.outsider, asset, "licence", "Abusive message", terms_version=t.version,
                         terms_digest=t.digest)
    auth.login(w.admin.email)
    page = client.get(f"/engage/requests/{r.id}").data
    assert f"/moderation/report/asset_request/{r.id}".encode() in page
    assert client.post(f"/moderation/report/asset_request/{r.id}",
                       data={"category": "abusive", "note": "Threats"}).status_code == 302
    assert policy.can(w.moderator, "view", r)
    assert not policy.can(w.member, "view", r) and not policy.can(w.granted, "view", r)


def test_search_documents_hold_only_public_text(w):
    ch = w.item("challenge", "registered", tags=("robots",))
    q = svc.ask_question(w.outsider, ch, "How **heavy**?", show_name=False)
    a = svc.answer_question(w.admin, q, "Up to 5 kg.")
    doc = svc.search_document(q)
    assert doc["type"] == "question" and doc["id"] == q.id and doc["org_id"] == ch.org_id
    assert "How heavy?" in doc["text"] and "Up to 5 kg." in doc["text"] and "<strong>" not in doc["text"]
    assert doc["tags"] == ["robots"] and doc["status"] == "answered"
    assert w.outsider.display_name not in str(doc)
    a.hidden_at = utcnow()
    db.session.commit()
    assert "5 kg" not in svc.search_document(q)["text"]  # a hidden answer leaves the index
    fa = w.item("failure", "public")
    c = svc.add_comment(w.outsider, fa, "Humidity *matters*")
    doc = svc.search_document(c)
    assert doc["type"] == "comment" and doc["text"] == "Humidity matters"
    svc.delete_post(w.outsider, c)
    assert svc.search_document(c)["text"] == "" and policy.comment_doc_principals(c) == ["staff"]


def test_doc_principals_follow_the_item_for_published_posts(w):
    ch = w.item("challenge", "invited")
    q = svc.ask_question(w.granted, ch, "Pending")
    assert set(policy.question_doc_principals(q)) == {"staff", f"org:{ch.org_id}", f"user:{w.granted.id}"}
    svc.answer_question(w.admin, q, "Answered")
    assert policy.question_doc_principals(q) == policy.item_doc_principals(ch)


def test_detail_pages_state_the_rules_up_front(w, client, auth):
    ch = w.item("challenge", "public", {"ask_rule": "invited", "question_cutoff_hours": 24})
    fa = w.item("failure", "public", {"comment_rule": "organisation"})
    asset = w.item("asset", "public", {"request_rule": "registered", "max_open_requests": 3})
    auth.login(w.outsider.email)
    page = client.get(f"/challenges/{ch.id}").data
    assert b"Who may ask questions: invited people" in page and b"24 hours before the deadline" in page
    assert b"rule: who may ask questions \xe2\x80\x94 invited" in page
    page = client.get(f"/failures/{fa.id}").data
    assert b"Who may comment: members of Owning Org only" in page
    page = client.get(f"/assets/{asset.id}").data
    assert b"Open requests allowed per requester: 3" in page and svc.current_terms(asset).digest.encode() in page


def test_rules_page_is_for_the_owning_org_admins(w, client, auth):
    fa = w.item("failure", "public")
    for user, code in ((w.member, 403), (w.outsider, 403)):
        auth.login(user.email)
        assert client.get(f"/engage/items/{fa.id}/rules").status_code == code
        assert client.post(f"/engage/items/{fa.id}/rules", data={"comment_rule": "nobody"}).status_code == code
        auth.logout()
    assert db.session.query(EngagementRules).count() == 0
    auth.login(w.admin.email)
    assert client.get(f"/engage/items/{fa.id}/rules").status_code == 200
    r = client.post(f"/engage/items/{fa.id}/rules", data={"comment_rule": "sometimes"})
    assert r.status_code == 400 and b"Not a valid choice" in r.data
    r = client.post(f"/engage/items/{fa.id}/rules", data={"comment_rule": "nobody",
                                                          "open_until": "2001-01-01T00:00"})
    assert r.status_code == 400 and b"must be in the future" in r.data
    assert client.post(f"/engage/items/{fa.id}/rules", data={"comment_rule": "nobody"}).status_code == 302
    assert policy.engagement_rules(fa).comment_rule == "nobody"


def test_rules_changes_are_audited(w):
    from marketplace.models import AuditEvent

    ch = w.item("challenge", "public")
    svc.set_rules(w.admin, ch, {"ask_rule": "organisation"})
    ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "engagement.rules_changed")).scalar_one()
    assert ev.item_id == ch.id and "organisation" in ev.data


def test_demo_load_adds_engagement_data_once(app, runner):
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    counts = lambda: [db.session.query(m).count() for m in (Question, Comment, AssetRequest)]
    with app.app_context():
        first = counts()
        assert all(n > 0 for n in first)
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    with app.app_context():
        assert counts() == first
