"""Notifications people want: delivery choices per kind (site, e-mail at once, daily digest,
off), unsubscribe links without signing in, the unread count, plain words, lists that ask
the policy again, sponsors told of ideas, deadline reminders, follows, announcements, the
challenge timeline, and co-authors invited by e-mail without an account."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from marketplace import create_app
from marketplace.config import TestingConfig
from marketplace.extensions import db
from marketplace.models import (
    CoauthorInvitation,
    DeadlineReminder,
    Follow,
    Idea,
    IdeaStatus,
    Notification,
    NotificationPref,
    OutgoingMail,
    User,
    utcnow,
)
from marketplace.notify import notify
from marketplace.services import ideas as idea_svc
from marketplace.services import notifications as svc

from .factories import PASSWORD, Factories
from .factories_ideas import IdeaFactories


@pytest.fixture
def fi(f):
    return IdeaFactories(f)


def mails_to(address: str, kind: str | None = None) -> list[OutgoingMail]:
    db.session.expire_all()
    q = select(OutgoingMail).where(OutgoingMail.to_email == address)
    if kind:
        q = q.where(OutgoingMail.kind == kind)
    return list(db.session.execute(q.order_by(OutgoingMail.id)).scalars())


def notes_of(user: User) -> list[Notification]:
    db.session.expire_all()
    return list(db.session.execute(select(Notification).where(Notification.user_id == user.id)
                                   .order_by(Notification.id)).scalars())


def login(client, user):
    assert client.post("/auth/login", data={"email": user.email, "password": PASSWORD}).status_code == 302


# --------------------------------------------------------------------------- delivery choices


def test_each_kind_is_delivered_as_chosen(f, fi):
    s = fi.challenge()
    author = f.make_user()
    idea = fi.submit(author, s.challenge)
    assert [n.kind for n in notes_of(s.owner)] == ["idea.received"]
    assert len(mails_to(s.owner.email, "ideas_received")) == 1  # default: at once
    svc.set_channels(author, {"idea_updates": "off", "answers": "site"})
    idea_svc.shortlist_idea(s.owner, idea)
    assert not [n for n in notes_of(author) if n.kind == "idea.shortlisted"]
    svc.set_channels(author, {"idea_updates": "site"})
    idea_svc.decline_idea(s.owner, idea, "Out of scope.")
    [n] = [n for n in notes_of(author) if n.kind == "idea.declined"]
    assert not mails_to(author.email, "idea_updates") and not n.digest_pending
    with pytest.raises(svc.ServiceError):
        svc.set_channels(author, {"idea_updates": "carrier-pigeon"})
    with pytest.raises(svc.ServiceError):
        svc.set_channels(author, {"no-such-kind": "off"})


def test_daily_digest_once_a_day_and_asked_again(f, fi, app):
    app.config["NOTIFY_DIGEST_HOUR"] = 7
    u = f.make_user(email="digest@example.test")
    svc.set_channels(u, {"followed": "digest", "invitations": "digest"})
    owner = f.make_user()
    org = f.make_org(owner=owner)
    visible = f.make_item(org, title="Open robots")
    private = f.make_item(org, visibility="invited", title="CANARY-DIGEST")
    f.grant(private, user=u)
    notify(u, "follow.new_challenge", "A new challenge: “Open robots”.", "/challenges/1", about=visible)
    g = notify(u, "follow.new_challenge", "A new challenge: “CANARY-DIGEST”.", "/challenges/2", about=private)
    db.session.commit()
    assert g.digest_pending and not mails_to(u.email)
    # Access to one ends before the digest: it is left out.
    from marketplace.models import AccessGrant
    for gr in db.session.execute(select(AccessGrant)).scalars():
        gr.revoked_at = utcnow()
    db.session.commit()
    early = datetime(2030, 5, 1, 6, 0, tzinfo=timezone.utc)
    assert svc.send_digests(early) == 0
    morning = datetime(2030, 5, 1, 8, 0, tzinfo=timezone.utc)
    assert svc.send_digests(morning) == 1
    [mail] = mails_to(u.email, "digest")
    assert "Open robots" in mail.body and "CANARY" not in mail.body and "CANARY" not in mail.html_body
    assert "/notifications/unsubscribe/" in mail.body
    assert svc.send_digests(morning + timedelta(hours=3)) == 0  # once a day
    notify(u, "follow.new_challenge", "Another one.", "", about=visible)
    db.session.commit()
    assert svc.send_digests(morning + timedelta(hours=4)) == 0  # waits for tomorrow
    assert svc.send_digests(morning + timedelta(days=1)) == 1


def test_unsubscribe_link_works_without_signing_in(f, fi, tmp_path):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'u.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        WTF_CSRF_ENABLED = True  # the one-click POST comes from a mail program, without a form token

    app = create_app(Cfg)
    with app.app_context():
        db.create_all()
        ff = Factories()
        u = ff.make_user(email="quiet@example.test")
        from marketplace.notify import unsubscribe_url
        url = unsubscribe_url(u, "announcements")
        path = re.sub(r"^https?://[^/]+", "", url)
        c = app.test_client()
        page = c.get(path)
        assert page.status_code == 200 and "Stop e-mail about" in page.text
        assert db.session.get(NotificationPref, (u.id, "announcements")) is None  # a GET changes nothing
        r = c.post(path)
        assert r.status_code == 200 and "Unsubscribed" in r.text
        db.session.expire_all()
        assert db.session.get(NotificationPref, (u.id, "announcements")).channel == "site"
        assert c.post(path[:-4] + "abcd").status_code == 404
        assert c.get("/notifications/unsubscribe/not-a-token").status_code == 404
        db.session.remove()
        db.engine.dispose()


def test_notification_page_in_plain_words_with_unread_count(f, fi, client):
    s = fi.challenge()
    author = f.make_user()
    idea = fi.submit(author, s.challenge, title="Plain words")
    idea_svc.shortlist_idea(s.owner, idea)
    login(client, author)
    home = client.get("/").text
    assert "Notifications (1 unread)" in home
    page = client.get("/notifications/").text
    assert "Idea shortlisted" in page and "idea.shortlisted" not in page
    client.post("/notifications/read")
    assert "Notifications (1 unread)" not in client.get("/").text
    r = client.get("/notifications/?page=0")  # bounded like every page number (params.int_arg)
    assert r.status_code == 400 and "The page number must be a whole number from 1 to 10,000" in r.text


def test_notification_list_asks_the_policy_again(f, client):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, visibility="invited", title="CANARY-LIST-1")
    u = f.make_user()
    grant = f.grant(item, user=u)
    notify(u, "list.invited", "You were invited to “CANARY-LIST-1”.", f"/challenges/{item.id}", about=item)
    db.session.commit()
    login(client, u)
    assert "CANARY-LIST-1" in client.get("/notifications/").text
    grant.revoked_at = utcnow()
    db.session.commit()
    page = client.get("/notifications/").text
    assert "CANARY-LIST-1" not in page and "no longer see" in page


# --------------------------------------------------------------------------- sponsors, reminders


def test_sponsor_admins_hear_of_ideas_questions_and_requests(f, fi):
    s = fi.challenge()
    admin = f.make_user()
    f.add_member(s.org, admin, "admin")
    member = f.make_user()
    f.add_member(s.org, member, "member")
    author = f.make_user()
    fi.submit(author, s.challenge)
    assert [n.kind for n in notes_of(admin)] == ["idea.received"]
    assert notes_of(member) == []
    from marketplace.services import engagement
    engagement.ask_question(author, s.challenge, "How big is the warehouse?")
    assert "question" in [n.kind for n in notes_of(admin)]


def test_deadline_reminders_once_per_lead_time(f, fi, app):
    s = fi.challenge()
    author = f.make_user()
    fi.submit(author, s.challenge)
    follower = f.make_user()
    svc.follow(follower, "challenge", s.challenge)
    outsider = f.make_user()
    now = utcnow()
    s.challenge.deadline = now + timedelta(hours=20)
    db.session.commit()
    assert svc.send_deadline_reminders(now) == 1
    for u in (author, follower):
        [n] = [n for n in notes_of(u) if n.kind == "deadline.approaching"]
        assert "in 20 hours" in n.message
    assert notes_of(outsider) == []
    assert svc.send_deadline_reminders(now + timedelta(minutes=5)) == 0
    leads = {r.lead_hours for r in db.session.execute(select(DeadlineReminder)).scalars()}
    assert leads == {72, 24}  # the farther lead time passed unheard: spent, not sent late
    # A moved deadline is a new deadline: reminded again.
    s.challenge.deadline = now + timedelta(hours=60)
    db.session.commit()
    assert svc.send_deadline_reminders(now) == 1
    assert svc.send_deadline_reminders(now) == 0


def test_worker_runs_periodic_jobs(f, fi, app):
    from marketplace.mail import worker
    s = fi.challenge()
    s.challenge.deadline = utcnow() + timedelta(hours=2)
    db.session.commit()
    svc.follow(f.make_user(), "challenge", s.challenge)
    out = worker.work_once()
    assert out["reminders"] == 1 and out["sent"] >= 1


# --------------------------------------------------------------------------- following, announcements


def test_followers_of_an_organisation_and_a_tag_hear_of_new_challenges(f, fi):
    from marketplace.services import items as item_svc
    owner = f.make_user()
    org = f.make_org(owner=owner)
    fan = f.make_user()
    tagger = f.make_user()
    svc.follow(fan, "organisation", org)
    svc.follow(tagger, "tag", "Robotics")
    assert svc.followed_tags(tagger) == ["robotics"]
    public = item_svc.create_item(owner, org, "challenge", {"title": "Open call", "body": "x",
                                                              "visibility": "organisation",
                                                              "deadline": utcnow() + timedelta(days=9),
                                                              "tags": "robotics"}, publish=False)
    fi.set_terms(owner, public)
    fi.set_rules(owner, public)
    item_svc.change_status(owner, public, "open")
    # Organisation-only: neither follower may see it, so neither hears of it.
    assert notes_of(fan) == [] and notes_of(tagger) == []
    second = item_svc.create_item(owner, org, "challenge", {"title": "Public call", "body": "x",
                                                              "visibility": "public",
                                                              "deadline": utcnow() + timedelta(days=9),
                                                              "tags": "robotics, ai"})
    fi.set_terms(owner, second)
    fi.set_rules(owner, second)
    item_svc.change_status(owner, second, "open")
    assert [n.kind for n in notes_of(fan)] == ["follow.new_challenge"]
    assert [n.kind for n in notes_of(tagger)] == ["follow.new_challenge"]
    svc.unfollow(fan, "organisation", org)
    assert db.session.execute(select(Follow).where(Follow.user_id == fan.id)).first() is None


def test_announcements_reach_participants_and_followers(f, fi, client):
    s = fi.challenge()
    author = f.make_user()
    fi.submit(author, s.challenge)
    follower = f.make_user()
    stranger = f.make_user()
    login(client, follower)
    r = client.post(f"/follow/challenge/{s.challenge.id}")
    assert r.status_code == 302
    page = client.get(f"/challenges/{s.challenge.id}").text
    assert "Stop following" in page and "Timeline" in page and "Deadline for ideas" in page
    assert client.post(f"/challenges/{s.challenge.id}/announcements",
                       data={"title": "Hi", "body": "x"}).status_code == 403
    client.post("/auth/logout")
    login(client, s.owner)
    r = client.post(f"/challenges/{s.challenge.id}/announcements", data={"title": "", "body": "x"})
    assert r.status_code == 302
    assert "Give the announcement a title" in client.get(r.headers["Location"]).text
    r = client.post(f"/challenges/{s.challenge.id}/announcements",
                    data={"title": "Site visit", "body": "Come **Friday**."})
    assert r.status_code == 302
    page = client.get(f"/challenges/{s.challenge.id}").text
    assert "Site visit" in page and "<strong>Friday</strong>" in page
    for u in (author, follower):
        assert [n.kind for n in notes_of(u) if n.kind == "announcement"] == ["announcement"]
        assert mails_to(u.email, "announcements")
    assert notes_of(stranger) == []
    assert client.post("/follow/challenge/999999").status_code == 404
    assert client.post("/follow/planet/1").status_code == 404


def test_following_page_lists_only_what_one_may_see(f, client):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, visibility="invited", title="CANARY-FOLLOW-2")
    u = f.make_user()
    grant = f.grant(item, user=u)
    svc.follow(u, "challenge", item)
    svc.follow(u, "organisation", org)
    login(client, u)
    assert "CANARY-FOLLOW-2" in client.get("/following").text
    grant.revoked_at = utcnow()
    db.session.commit()
    page = client.get("/following").text
    assert "CANARY-FOLLOW-2" not in page and org.name in page


def test_timeline_lists_the_dates_in_order(f, fi, client):
    s = fi.challenge(confidentiality="sealed", reveal_at=utcnow() + timedelta(days=60))
    page = client.get(f"/challenges/{s.challenge.id}").text
    labels = ["Opens", "Questions close", "Deadline for ideas", "Ideas revealed", "Review", "Award"]
    positions = [page.index(f"<strong>{label}</strong>") for label in labels]
    assert positions == sorted(positions)
    assert "when the panel decides" in page


# --------------------------------------------------------------------------- co-authors by e-mail


def test_coauthor_by_email_answers_the_same_with_or_without_an_account(f, fi, client):
    s = fi.challenge()
    lead = f.make_user()
    known = f.make_user(email="known@team.test", name="Known Person")
    idea = fi.submit(lead, s.challenge, coauthors="known@team.test, newcomer@team.test")
    assert idea.status == IdeaStatus.AWAITING_COAUTHORS.value
    invs = {i.email: i for i in db.session.execute(select(CoauthorInvitation)).scalars()}
    assert set(invs) == {"known@team.test", "newcomer@team.test"}
    # The lead sees both the same way: the address as typed (masked), not the account's name.
    login(client, lead)
    page = client.get(f"/ideas/{idea.id}").text
    assert "k•••@team.test (not yet accepted)" in page and "n•••@team.test (not yet accepted)" in page
    assert "Known Person" not in page
    # The mails carry the difference.
    [to_known] = mails_to("known@team.test", "invitation.coauthor")
    [to_new] = mails_to("newcomer@team.test", "invitation.coauthor")
    assert "has an account" in to_known.body and "create your account" in to_new.body
    assert known.id in [a.user_id for a in idea.authors]


def test_coauthor_without_account_registers_from_the_link_and_the_idea_is_submitted(f, fi, client):
    s = fi.challenge(confidentiality="open")
    lead = f.make_user()
    idea = fi.submit(lead, s.challenge, coauthors="fresh@team.test")
    [mail] = mails_to("fresh@team.test")
    path = re.search(r"https?://[^/]+(/ideas/coauthor/t/[^\s]+)", mail.body).group(1)
    page = client.get(path)
    assert page.status_code == 200 and "f•••@team.test" in page.text
    assert f"/auth/register?next={path}" in page.text.replace("%2F", "/")
    r = client.post(f"/auth/register?next={path}", data={
        "email": "fresh@team.test", "display_name": "Fresh Face", "password": "a-long-password",
        "confirm": "a-long-password"})
    assert r.status_code == 302 and r.headers["Location"].endswith(path)
    fresh = db.session.execute(select(User).where(User.email == "fresh@team.test")).scalar_one()
    assert fresh.email_verified_at is not None  # the link proved the address
    assert mails_to("fresh@team.test", "account.verify") == []
    r = client.get(path)
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/ideas/{idea.id}/coauthor")
    form = fi.form(s.challenge)
    r = client.post(f"/ideas/{idea.id}/coauthor", data={k: form[k] for k in (
        "terms_version", "terms_digest", "accept_terms", "confirm_eligibility", "confirm_coi")})
    assert r.status_code == 302, r.text
    db.session.expire_all()
    assert db.session.get(Idea, idea.id).status == IdeaStatus.SUBMITTED.value
    assert "idea.received" in [n.kind for n in notes_of(s.owner)]


def test_coauthor_link_refusals_and_decline_without_account(f, fi, client):
    s = fi.challenge()
    lead = f.make_user()
    other = f.make_user()
    idea = fi.submit(lead, s.challenge, coauthors="nobody@team.test")
    [mail] = mails_to("nobody@team.test")
    path = re.search(r"https?://[^/]+(/ideas/coauthor/t/[^\s]+)", mail.body).group(1)
    assert client.get(path[:-4] + "zzzz").status_code == 404
    login(client, other)
    r = client.get(path)
    assert r.status_code == 403 and "n•••@team.test" in r.text
    client.post("/auth/logout")
    assert client.post(path + "/decline").status_code == 302
    db.session.expire_all()
    assert db.session.get(Idea, idea.id).status == IdeaStatus.SUBMITTED.value  # nobody left to wait for
    assert client.get(path).status_code == 410
    # Registering "from" a used link proves nothing: the ordinary, uniform answer.
    r = client.post(f"/auth/register?next={path}", data={
        "email": "nobody@team.test", "display_name": "No Body", "password": "a-long-password",
        "confirm": "a-long-password"})
    assert r.status_code == 200 and "Check your inbox" in r.text


def test_invitation_registration_for_an_address_with_an_account_says_sign_in(f, client):
    from marketplace.services import invitations as inv_svc
    owner = f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, visibility="invited")
    guest = f.make_user(email="guest@invitee.test")
    _, token = inv_svc.create_invitation(owner, item, guest.email)
    [mail] = mails_to(guest.email)
    assert "This address has an account" in mail.body
    r = client.post(f"/auth/register?next=/invitations/t/{token}", data={
        "email": guest.email, "display_name": "Someone", "password": "a-long-password",
        "confirm": "a-long-password"})
    assert r.status_code == 302 and "/auth/login" in r.headers["Location"]


def test_settings_page_saves_choices(f, client):
    u = f.make_user()
    login(client, u)
    page = client.get("/notifications/settings").text
    assert "Ideas submitted to your organisation" in page
    r = client.post("/notifications/settings", data={"announcements": "digest", "moderation": "off"})
    assert r.status_code == 302
    chosen = svc.channels(u)
    assert chosen["announcements"] == "digest" and chosen["moderation"] == "off"
    assert client.post("/notifications/settings", data={"announcements": "loud"}).status_code == 400
