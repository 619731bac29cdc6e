"""A person's own data: the JSON download holds one of each kind of their records and
nothing of other people's private data; deleting an account removes the personal data,
keeps what others rely on under a pseudonym (receipts still verify, the audit chain
still verifies), signs out every session, and leaves nothing of them in search."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import (
    AccessGrant,
    ApiToken,
    AuditEvent,
    Comment,
    Follow,
    Idea,
    IdeaAuthor,
    ListMember,
    Membership,
    Notification,
    NotificationPref,
    OutgoingMail,
    Question,
    TermsAcceptance,
    User,
    UserSession,
    utcnow,
)
from marketplace.search import get_backend, get_runtime, service as search_service
from marketplace.services import engagement as eng
from marketplace.services import ideas as ideas_svc
from marketplace.services import people
from marketplace.services import terms as terms_svc
from marketplace.services import tokens as tokens_svc
from marketplace.services.common import ServiceError
from marketplace.services.notifications import follow, set_channels

from .factories_engagement import TERMS
from .factories_ideas import IdeaFactories

PASSWORD = "correct-horse-battery"


@pytest.fixture
def fi(f):
    return IdeaFactories(f)


@pytest.fixture
def world(f, fi, app):
    """Quinn (the person) with one of each kind of record, and Rhea, a co-author on the
    same challenge whose private data must not show in Quinn's download."""
    s = fi.challenge(confidentiality="open", rules={"team_allowed": True, "max_team_size": 3})
    quinn = f.make_user(email="quinn.private@example.test", name="Quinn Zanzibar")
    rhea = f.make_user(email="rhea.secret@example.test", name="Rhea Rival")
    idea = fi.submit(quinn, s.challenge, title="Quinn's gripper", coauthors=rhea.email)
    ideas_svc.accept_coauthorship(rhea, idea, fi.submission(s.challenge))
    rhea_idea = fi.submit(rhea, s.challenge, title="Rhea's own secret plan", summary="Not for Quinn.")
    q = eng.ask_question(quinn, s.challenge, "Quinn asks about the payload?")
    failure = f.make_item(s.org, kind="failure", visibility="public", status="open", title="Lesson")
    c = eng.add_comment(quinn, failure, "Quinn comments on the lesson.")
    eng.add_comment(rhea, failure, "Rhea's comment is not Quinn's.")
    asset = f.make_item(s.org, kind="asset", visibility="public", status="open", title="Test rig")
    eng.publish_terms(s.owner, asset, TERMS)
    t = eng.current_terms(asset)
    req = eng.send_request(quinn, asset, "licence", "Quinn would like a licence.", terms_version=t.version,
                           terms_digest=t.digest)
    hidden = f.make_item(s.org, kind="asset", visibility="invited", title="Invited rig")
    f.grant(hidden, user=quinn)
    cluster = f.make_org(kind="cluster", owner=f.make_user())
    lst = f.make_list(cluster, name="Quinn's list")
    f.add_to_list(lst, user=quinn)
    member_org = f.make_org(owner=f.make_user(), members=(quinn,))
    token, secret = tokens_svc.create_personal_token(quinn, "Quinn's laptop", ["read"], utcnow() + timedelta(days=9))
    set_channels(quinn, {"idea_updates": "digest"})
    follow(quinn, "challenge", s.challenge)
    db.session.add(Notification(user_id=quinn.id, kind="idea.shortlisted", message="Quinn's note"))
    db.session.add(Notification(user_id=rhea.id, kind="idea.shortlisted", message="Rhea's private note"))
    db.session.commit()
    return dict(s=s, quinn=quinn, rhea=rhea, idea=idea, rhea_idea=rhea_idea, question=q, comment=c, request=req,
                grant_item=hidden, list=lst, member_org=member_org, token=token, secret=secret)


def _login(client, user):
    return client.post("/auth/login", data={"email": user.email, "password": PASSWORD})


def _download(client) -> dict:
    r = client.get("/settings/data.json")
    assert r.status_code == 200, r.data[:500]
    assert r.headers["Cache-Control"] == "no-store" and "attachment" in r.headers["Content-Disposition"]
    return json.loads(r.data)


# ------------------------------------------------------------------------- download


def test_the_download_holds_one_of_each_kind_of_record(world, client):
    w = world
    _login(client, w["quinn"])
    data = _download(client)
    assert data["format"] == people.FORMAT
    assert data["profile"]["email"] == "quinn.private@example.test"
    assert data["profile"]["display_name"] == "Quinn Zanzibar"
    assert [m["organisation_id"] for m in data["memberships"]] == [w["member_org"].id]
    assert {i["idea"]["id"] for i in data["ideas"]} == {w["idea"].id}
    assert data["ideas"][0]["role"] == "lead" and data["ideas"][0]["challenge"]["title"] == w["s"].challenge.title
    accs = db.session.execute(select(TermsAcceptance.id).where(TermsAcceptance.user_id == w["quinn"].id)).scalars()
    assert {a["id"] for a in data["acceptances"]} == set(accs) != set()
    # Each receipt in the file checks out on its own.
    for a in data["acceptances"]:
        assert terms_svc.verify_receipt(a["receipt"]).ok
    assert [g["item"]["id"] for g in data["grants"]] == [w["grant_item"].id]
    assert [p["list"] for p in data["list_places"]] == ["Quinn's list"]
    assert "Quinn's note" in [n["message"] for n in data["notifications"]]
    assert data["notification_settings"]["idea_updates"] == "digest"
    assert [fl["target"] for fl in data["follows"]] == [str(w["s"].challenge.id)]
    assert [r["id"] for r in data["requests"]] == [w["request"].id]
    assert [q["id"] for q in data["questions"]] == [w["question"].id]
    assert [c["id"] for c in data["comments"]] == [w["comment"].id]
    assert [t["name"] for t in data["api_tokens"]] == ["Quinn's laptop"]
    assert len(data["sessions"]) >= 1


def test_the_download_holds_nothing_of_other_peoples_private_data(world, client):
    w = world
    _login(client, w["quinn"])
    raw = client.get("/settings/data.json").data.decode()
    for private in ("rhea.secret@example.test", "Rhea's own secret plan", "Not for Quinn.", "Rhea's private note",
                    "Rhea's comment is not Quinn's."):
        assert private not in raw
    # No secret of a token, and no hash of any.
    token = db.session.get(ApiToken, w["token"].id)
    assert w["secret"] not in raw and token.token_hash not in raw and "token_hash" not in raw
    sess = db.session.execute(select(UserSession.token_hash)).scalars().all()
    assert not any(h in raw for h in sess)
    assert "password" not in raw


def test_a_notification_about_something_closed_since_says_no_more(world, f, client):
    w = world
    item = w["grant_item"]
    db.session.add(Notification(user_id=w["quinn"].id, kind="list.invited", message="Secret rig opened for you",
                                about_type="items", about_id=item.id))
    db.session.execute(AccessGrant.__table__.update().values(revoked_at=utcnow()))
    db.session.commit()
    _login(client, w["quinn"])
    data = _download(client)
    assert "Secret rig opened for you" not in json.dumps(data)
    # The grant itself is listed, without the title of an item the person no longer sees.
    assert data["grants"][0]["item"] == {"id": item.id, "title": None}


def test_a_sealed_idea_a_person_declined_to_co_author_is_not_in_their_download(world, f, fi, client):
    w = world
    s = fi.challenge(confidentiality="sealed", rules={"team_allowed": True, "max_team_size": 3})
    lead = f.make_user()
    idea = fi.submit(lead, s.challenge, title="Sealed plan", body="Sealed body text", coauthors=w["quinn"].email)
    ideas_svc.decline_coauthorship(w["quinn"], idea)
    _login(client, w["quinn"])
    data = _download(client)
    row = next(i for i in data["ideas"] if i["idea"]["id"] == idea.id)
    assert row["role"] == "declined" and row["idea"] == {"id": idea.id}
    assert "Sealed body text" not in json.dumps(data) and "Sealed plan" not in json.dumps(data)


def test_posts_the_person_deleted_are_listed_without_their_text(world, client):
    w = world
    q = db.session.get(Question, w["question"].id)
    q.deleted_at = utcnow()
    db.session.commit()
    _login(client, w["quinn"])
    data = _download(client)
    assert [(x["id"], x["body"]) for x in data["questions"]] == [(q.id, None)]
    assert "Quinn asks about the payload?" not in json.dumps(data)


def test_only_the_person_downloads_their_data(world, f):
    w = world
    admin = f.make_user(site_role="admin")
    assert policy.can(w["quinn"], "download_data", w["quinn"])
    assert not policy.can(w["rhea"], "download_data", w["quinn"])
    assert not policy.can(admin, "download_data", w["quinn"])
    with pytest.raises(ServiceError):
        people.personal_data(admin, w["quinn"])


def test_signed_out_visitors_get_no_download(client):
    assert client.get("/settings/data.json").status_code == 302
    assert client.get("/settings/delete").status_code == 302


# ------------------------------------------------------------------------- deletion


def _delete(client, password=PASSWORD, confirm=True):
    data = {"password": password}
    if confirm:
        data["confirm"] = "y"
    return client.post("/settings/delete", data=data)


def test_deleting_removes_personal_data_and_keeps_what_others_rely_on(world, client, runner, app):
    w = world
    quinn_id, idea_id = w["quinn"].id, w["idea"].id
    accs_before = db.session.execute(select(TermsAcceptance.id).where(TermsAcceptance.user_id == quinn_id)
                                     ).scalars().all()
    receipts = [terms_svc.build_receipt(db.session.get(TermsAcceptance, a)) for a in accs_before]
    _login(client, w["quinn"])
    # A second browser, signed in too.
    other = app.test_client()
    _login(other, w["quinn"])
    assert other.get("/auth/account").status_code == 200
    r = _delete(client)
    assert r.status_code == 302
    db.session.expire_all()
    u = db.session.get(User, quinn_id)
    name = people.pseudonym(quinn_id)
    assert u.display_name == name and name.startswith("Deleted user #") and u.deleted_at is not None
    assert "quinn" not in u.email and u.email.endswith("@deleted.invalid")
    # Personal data gone.
    for model, col in ((UserSession, UserSession.user_id), (ApiToken, ApiToken.acting_user_id),
                       (Notification, Notification.user_id), (NotificationPref, NotificationPref.user_id),
                       (Follow, Follow.user_id), (Membership, Membership.user_id)):
        assert db.session.scalar(select(func.count()).select_from(model).where(col == quinn_id)) == 0, model
    assert db.session.scalar(select(func.count()).select_from(OutgoingMail).where(
        func.lower(OutgoingMail.to_email) == "quinn.private@example.test")) == 0
    assert db.session.execute(select(ListMember.removed_at).where(ListMember.user_id == quinn_id)).scalar() is not None
    assert db.session.execute(select(AccessGrant.revoked_at).where(AccessGrant.user_id == quinn_id)).scalar()
    # Records others rely on kept: the idea, its authorship, acceptances (their receipts still verify).
    idea = db.session.get(Idea, idea_id)
    assert idea is not None and idea.author_id == quinn_id
    assert db.session.execute(select(IdeaAuthor.status).where(IdeaAuthor.idea_id == idea_id,
                                                              IdeaAuthor.user_id == quinn_id)).scalar() == "lead"
    assert db.session.execute(select(TermsAcceptance.id).where(TermsAcceptance.user_id == quinn_id)
                              ).scalars().all() == accs_before
    for rec in receipts:
        assert terms_svc.verify_receipt(rec).ok
    assert terms_svc.build_receipt(db.session.get(TermsAcceptance, accs_before[0]))["accepted_by"] == name
    # Questions and comments stay, under the pseudonym.
    assert db.session.get(Question, w["question"].id).author_id == quinn_id
    assert db.session.get(Comment, w["comment"].id).author_id == quinn_id
    # Every session ended: both browsers are signed out.
    assert client.get("/auth/account").status_code == 302
    assert other.get("/auth/account").status_code == 302
    # The old address and password open nothing.
    client.post("/auth/login", data={"email": "quinn.private@example.test", "password": PASSWORD})
    assert client.get("/auth/account").status_code == 302
    # The audit chain still verifies, with the deletion in it.
    assert runner.invoke(args=["audit", "verify"]).exit_code == 0
    ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "account.deleted")).scalar_one()
    assert ev.subject_id == quinn_id and ev.actor_id == quinn_id
    assert "quinn" not in (ev.data or "").lower() and "Zanzibar" not in (ev.data or "")


def test_the_idea_team_page_shows_the_pseudonym(world, client, app):
    w = world
    lead_client = app.test_client()
    _login(lead_client, w["quinn"])
    assert _delete(lead_client).status_code == 302
    _login(client, w["s"].owner)
    page = client.get(f"/ideas/{w['idea'].id}/team").data.decode()
    assert "Quinn Zanzibar" not in page and people.pseudonym(w["quinn"].id) in page
    page = client.get(f"/ideas/{w['idea'].id}").data.decode()
    assert "Quinn Zanzibar" not in page and "Quinn&#39;s gripper" in page


def test_search_holds_nothing_of_the_deleted_person(world, client, app):
    w = world
    runtime = get_runtime(app)
    runtime.apply_now(wait=True)
    _login(client, w["quinn"])
    assert _delete(client).status_code == 302
    runtime.apply_now(wait=True)
    stored = json.dumps(get_backend(app).stored_documents(), default=str)
    assert "Zanzibar" not in stored and "quinn.private" not in stored
    # Their idea was re-indexed and is still found by those who may see it.
    hits = {h.id for h in search_search(w["s"].owner, "gripper")}
    assert w["idea"].id in hits
    from marketplace.models import SearchOutbox
    assert db.session.scalar(select(func.count()).select_from(SearchOutbox)) == 0


def search_search(user, q):
    return search_service.search(user, q, per_page=100).hits


@pytest.mark.parametrize("password, confirm, message", [
    ("wrong-password-1", True, "Your password is not correct."),
    (PASSWORD, False, "Tick the box"),
    ("", True, "Enter your password."),
])
def test_deletion_needs_the_password_and_the_confirmation(world, client, password, confirm, message):
    w = world
    _login(client, w["quinn"])
    before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    r = _delete(client, password=password, confirm=confirm)
    assert r.status_code == 400 and message in r.data.decode()
    db.session.expire_all()
    assert db.session.get(User, w["quinn"].id).deleted_at is None
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before


def test_the_last_owner_of_an_organisation_is_refused(world, f, client):
    w = world
    org = f.make_org(name="Quinn Labs", owner=w["quinn"], members=(w["rhea"],))
    _login(client, w["quinn"])
    assert "last owner or admin of Quinn Labs" in client.get("/settings/delete").data.decode()
    r = _delete(client)
    assert r.status_code == 409 and "last owner or admin of Quinn Labs" in r.data.decode()
    db.session.expire_all()
    assert db.session.get(User, w["quinn"].id).deleted_at is None
    # Once someone else owns it too, the account can go.
    m = db.session.execute(select(Membership).where(Membership.org_id == org.id,
                                                    Membership.user_id == w["rhea"].id)).scalar_one()
    m.role = "owner"
    db.session.commit()
    assert _delete(client).status_code == 302


def test_a_pending_co_authorship_is_declined_and_accepted_ones_stay(world, f, fi, client, app):
    w = world
    other = f.make_user()
    idea = fi.submit(other, w["s"].challenge, title="Other's idea", coauthors=w["quinn"].email)
    _login(client, w["quinn"])
    assert _delete(client).status_code == 302
    db.session.expire_all()
    assert db.session.execute(select(IdeaAuthor.status).where(IdeaAuthor.idea_id == idea.id,
                                                              IdeaAuthor.user_id == w["quinn"].id)).scalar() == "declined"
    # Rhea's accepted co-authorship of Quinn's idea is untouched.
    assert db.session.execute(select(IdeaAuthor.status).where(IdeaAuthor.idea_id == w["idea"].id,
                                                              IdeaAuthor.user_id == w["rhea"].id)).scalar() == "accepted"


def test_a_deleted_account_gets_no_notifications_or_mail(world, client):
    from marketplace.notify import notify

    w = world
    _login(client, w["quinn"])
    assert _delete(client).status_code == 302
    db.session.expire_all()
    u = db.session.get(User, w["quinn"].id)
    assert notify(u, "idea.shortlisted", "Hello") is None
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Notification).where(Notification.user_id == u.id)) == 0
    assert db.session.scalar(select(func.count()).select_from(OutgoingMail).where(OutgoingMail.user_id == u.id)) == 0


def test_the_old_address_can_register_again(world, client):
    w = world
    _login(client, w["quinn"])
    assert _delete(client).status_code == 302
    r = client.post("/auth/register", data={"email": "quinn.private@example.test", "display_name": "New Quinn",
                                            "password": "another-password-9", "confirm": "another-password-9"})
    assert r.status_code in (200, 302)
    assert db.session.execute(select(User).where(User.email == "quinn.private@example.test")).scalar() is not None


def test_the_account_page_links_the_download_and_the_deletion(world, client):
    _login(client, world["quinn"])
    page = client.get("/auth/account").data.decode()
    assert "<title>Your account" in page and page.count('id="your-data"') == 1
    assert "/settings/data.json" in page and "/settings/delete" in page


def test_the_about_page_states_what_deletion_keeps(client):
    page = client.get("/about").data.decode()
    assert page.count('id="deleting"') == 1 and "<title>How it works" in page
    section = page.split('id="deleting"', 1)[1]
    assert "Deleted user #" in section and "receipts" in section and "audit trail" in section
