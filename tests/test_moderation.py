"""Reports, the moderator queue, decisions and their permissions, appeals, suspensions."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import Item, Notification, OutgoingMail, User
from marketplace.models.moderation import (
    Appeal,
    ItemModeration,
    ModerationAction,
    Report,
    ReportStatus,
)
from marketplace.search import get_runtime, service
from marketplace.services import engagement as eng_svc
from marketplace.services import moderation as svc
from marketplace.services.common import ServiceError

from .factories_moderation import ModWorld, act, audit_actions, backdate, notes, report


@pytest.fixture
def w(f):
    return ModWorld(f)


def reload(obj):
    db.session.expire_all()
    return db.session.get(type(obj), obj.id)


# --------------------------------------------------------------------------- reporting


def test_report_through_the_page_notifies_moderators_in_scope(w, client, auth):
    auth.login(w.reporter.email)
    r = client.get(f"/moderation/report/challenge/{w.ch_a.id}")
    assert r.status_code == 200 and b"Challenge of A" in r.data
    r = client.post(f"/moderation/report/challenge/{w.ch_a.id}",
                    data={"category": "confidential-information", "note": "Names a client."})
    assert r.status_code == 302
    rep = db.session.execute(select(Report)).scalar_one()
    assert (rep.target_type, rep.target_id, rep.org_id, rep.context_item_id, rep.context_kind) == \
        ("challenge", w.ch_a.id, w.org_a.id, w.ch_a.id, "challenge")
    assert rep.reporter_id == w.reporter.id and rep.status == "open"
    assert set(rep.author_ids) == {w.a_owner.id, w.a_admin.id}
    # Site moderators and the moderator scoped to A are told; B's moderator and A's admins
    # (challenges are not discussions) are not.
    for u in (w.site_mod, w.site_mod2, w.site_admin, w.scoped_a):
        assert any("New report" in m for m in notes(u)), u.display_name
    for u in (w.scoped_b, w.a_admin, w.outsider):
        assert notes(u) == []


def test_report_of_an_invisible_target_is_a_404_like_a_missing_one(w, f, client, auth):
    internal = f.make_item(w.org_a, kind="challenge", visibility="organisation", title="Secret plan")
    auth.login(w.reporter.email)
    client.get("/")  # consume the sign-in flash so both pages are rendered alike
    hidden = client.get(f"/moderation/report/challenge/{internal.id}")
    missing = client.get("/moderation/report/challenge/999999")
    assert hidden.status_code == missing.status_code == 404
    assert hidden.data == missing.data and b"Secret plan" not in hidden.data
    post = client.post(f"/moderation/report/challenge/{internal.id}", data={"category": "spam", "note": ""})
    assert post.status_code == 404
    # A failure id under /challenge/ is "missing" too, and an unknown type.
    assert client.get(f"/moderation/report/challenge/{w.fail_a.id}").status_code == 404
    assert client.get(f"/moderation/report/nonsense/{w.ch_a.id}").status_code == 404
    assert db.session.execute(select(Report)).first() is None
    with pytest.raises(ServiceError) as e:
        report(w.reporter, "challenge", internal.id)
    assert e.value.status == 404


def test_reporting_needs_an_account(w, client):
    r = client.get(f"/moderation/report/challenge/{w.ch_a.id}")
    assert r.status_code == 302 and "/auth/login" in r.headers["Location"]


def test_report_form_errors(w, client, auth):
    auth.login(w.reporter.email)
    r = client.post(f"/moderation/report/challenge/{w.ch_a.id}", data={"category": "other", "note": ""})
    assert r.status_code == 400 and "Say what is wrong".encode() in r.data
    r = client.post(f"/moderation/report/challenge/{w.ch_a.id}", data={"category": "made-up", "note": "x"})
    assert r.status_code == 400
    assert db.session.execute(select(Report)).first() is None


def test_duplicate_open_report_is_refused(w):
    report(w.reporter, "challenge", w.ch_a.id)
    with pytest.raises(ServiceError) as e:
        report(w.reporter, "challenge", w.ch_a.id)
    assert e.value.status == 409


def test_cannot_report_oneself_but_can_report_another_account(w, client, auth):
    auth.login(w.reporter.email)
    assert client.get(f"/moderation/report/user/{w.reporter.id}").status_code == 403
    r = client.post(f"/moderation/report/user/{w.outsider.id}", data={"category": "abusive", "note": "Rude DMs."})
    assert r.status_code == 302
    rep = db.session.execute(select(Report)).scalar_one()
    assert rep.target_type == "user" and rep.org_id is None


def test_report_rate_limit_is_held_in_the_database(w, app, client, auth):
    app.config["MODERATION_REPORTS_PER_HOUR"] = 2
    auth.login(w.reporter.email)
    for item in (w.ch_a, w.ch_b):
        assert client.post(f"/moderation/report/challenge/{item.id}", data={"category": "spam"}).status_code == 302
    r = client.post(f"/moderation/report/failure/{w.fail_a.id}", data={"category": "spam"})
    assert r.status_code == 429
    assert b"2 reports in the last hour" in r.data
    assert db.session.query(Report).count() == 2
    # Older reports no longer count.
    for rep in db.session.execute(select(Report)).scalars():
        backdate(rep, 2)
    assert client.post(f"/moderation/report/failure/{w.fail_a.id}", data={"category": "spam"}).status_code == 302


def test_organisation_profile_can_be_reported_from_its_page(w, client, auth):
    auth.login(w.reporter.email)
    page = client.get(f"/orgs/{w.org_a.slug}")
    assert f"/moderation/report/organisation/{w.org_a.id}".encode() in page.data
    r = client.post(f"/moderation/report/organisation/{w.org_a.id}", data={"category": "spam", "note": "Fake."})
    assert r.status_code == 302
    # Organisation profiles are site-moderator business only.
    rep = db.session.execute(select(Report)).scalar_one()
    assert policy.can(w.site_mod, "view", rep)
    assert not policy.can(w.scoped_a, "view", rep) and not policy.can(w.a_admin, "view", rep)


def test_item_page_links_report_decision_log_and_moderation(w, client, auth):
    auth.login(w.reporter.email)
    page = client.get(f"/challenges/{w.ch_a.id}").data
    assert f"/moderation/report/challenge/{w.ch_a.id}".encode() in page
    assert f"/challenges/{w.ch_a.id}/decisions".encode() in page
    assert f"/moderation/case/challenge/{w.ch_a.id}".encode() not in page
    auth.logout()
    auth.login(w.site_mod.email)
    page = client.get(f"/challenges/{w.ch_a.id}").data
    assert f"/moderation/case/challenge/{w.ch_a.id}".encode() in page


# --------------------------------------------------------------------------- the queue


def test_queue_shows_each_moderator_only_their_scope(w, client, auth):
    report(w.reporter, "challenge", w.ch_a.id, "spam")
    report(w.reporter, "challenge", w.ch_b.id, "abusive")
    report(w.reporter, "failure", w.fail_a.id, "ip-infringement")
    comment = eng_svc.add_comment(w.outsider, w.fail_a, "You should have asked us first, idiots.")
    report(w.reporter, "comment", comment.id, "abusive", "Insulting.")

    def seen(user):
        return {(r.target_type, r.target_id) for r in db.session.execute(svc.open_reports_for(user)).scalars()}

    everything = {("challenge", w.ch_a.id), ("challenge", w.ch_b.id), ("failure", w.fail_a.id),
                  ("comment", comment.id)}
    assert seen(w.site_mod) == everything
    assert seen(w.scoped_a) == {("challenge", w.ch_a.id)}       # A's challenges only
    assert seen(w.scoped_b) == {("challenge", w.ch_b.id)}
    assert seen(w.a_admin) == {("comment", comment.id)}          # discussions on A's items
    assert seen(w.b_admin) == set() and seen(w.outsider) == set()
    # The per-object rule agrees with the SQL one.
    for r in db.session.execute(select(Report)).scalars():
        for u in (w.site_mod, w.scoped_a, w.scoped_b, w.a_admin, w.b_admin, w.outsider):
            assert policy.can(u, "view", r) == ((r.target_type, r.target_id) in seen(u))

    auth.login(w.scoped_a.email)
    page = client.get("/moderation/").data
    assert b"Challenge of A" in page and b"Challenge of B" not in page and b"Failure of A" not in page
    auth.logout()
    auth.login(w.outsider.email)
    assert client.get("/moderation/").status_code == 403


def test_queue_filters_overdue_and_reporter_privacy(w, app, client, auth):
    old = report(w.reporter, "challenge", w.ch_a.id, "spam", "Old one.")
    backdate(old, 30)
    report(w.outsider, "challenge", w.ch_b.id, "abusive", "New one.")
    auth.login(w.site_mod.email)
    page = client.get("/moderation/").data.decode()
    assert "Overdue" in page and "Target response time: 24 hours" in page
    assert page.index("Old one.") < page.index("New one.")  # oldest first
    only_overdue = client.get("/moderation/?age=overdue").data.decode()
    assert "Old one." in only_overdue and "New one." not in only_overdue
    by_cat = client.get("/moderation/?category=abusive").data.decode()
    assert "New one." in by_cat and "Old one." not in by_cat
    by_org = client.get(f"/moderation/?org={w.org_a.id}").data.decode()
    assert "Old one." in by_org and "New one." not in by_org
    assert "Old one." in client.get("/moderation/?type=challenge").data.decode()
    assert "Old one." not in client.get("/moderation/?type=failure").data.decode()
    assert client.get("/moderation/?age=forever").status_code == 400
    assert client.get("/moderation/?org=abc").status_code == 400
    # The site moderator sees who reported; the scoped moderator does not.
    case = client.get(f"/moderation/case/challenge/{w.ch_a.id}").data.decode()
    assert "reported by Rita Reporter" in case and "Old one." in case
    auth.logout()
    auth.login(w.scoped_a.email)
    case = client.get(f"/moderation/case/challenge/{w.ch_a.id}").data.decode()
    assert "Old one." in case and "Rita Reporter" not in case


def test_case_shows_earlier_reports_on_the_same_author(w, client, auth):
    c1 = eng_svc.add_comment(w.outsider, w.fail_a, "First rude comment.")
    c2 = eng_svc.add_comment(w.outsider, w.fail_b, "Second rude comment.")
    report(w.reporter, "comment", c1.id, "abusive", "Rude here.")
    report(w.reporter, "comment", c2.id, "abusive", "Rude there too.")
    auth.login(w.site_mod.email)
    page = client.get(f"/moderation/case/comment/{c2.id}").data.decode()
    assert "Rude there too." in page and "Rude here." in page
    assert "Second rude comment." in page  # the reported content in context
    # A's admin moderates the comment on A's failure but must not see B's case.
    auth.logout()
    auth.login(w.a_admin.email)
    page = client.get(f"/moderation/case/comment/{c1.id}").data.decode()
    assert "Rude here." in page and "Rude there too." not in page
    assert client.get(f"/moderation/case/comment/{c2.id}").status_code == 404  # no moderation pages outside scope


def test_moderation_nav_link(w, client, auth):
    auth.login(w.site_mod.email)
    assert b'href="/moderation/"' in client.get("/").data
    auth.logout()
    auth.login(w.outsider.email)
    assert b'href="/moderation/"' not in client.get("/").data
    auth.logout()
    auth.login(w.a_admin.email)  # org admins: only when something of theirs waits
    assert b'href="/moderation/"' not in client.get("/").data
    c = eng_svc.add_comment(w.outsider, w.fail_a, "Spam spam spam.")
    report(w.reporter, "comment", c.id)
    from flask import g
    g.pop("_mod_nav", None)  # the test shares one app context (and g) across its requests
    assert b'href="/moderation/"' in client.get("/").data


# --------------------------------------------------------------------------- actions and permissions


def test_site_moderator_hides_and_restores_an_item_everywhere(w, client, auth):
    report(w.reporter, "challenge", w.ch_b.id, "confidential-information")
    action = act(w.site_mod, "challenge", w.ch_b.id, "hide", "Discloses a supplier contract.")
    ch = reload(w.ch_b)
    assert ch.hidden_at is not None and ch.hidden_reason == "Discloses a supplier contract."
    assert db.session.execute(select(Report)).scalar_one().status == ReportStatus.ACTIONED.value
    # Gone for outsiders and anonymous visitors: list, detail, home page, org page, policy.visible.
    for who in (None, w.outsider, w.reporter):
        if who:
            auth.login(who.email)
        assert client.get(f"/challenges/{ch.id}").status_code == 404
        assert b"Challenge of B" not in client.get("/challenges/").data
        assert b"Challenge of B" not in client.get("/").data
        assert b"Challenge of B" not in client.get(f"/orgs/{w.org_b.slug}").data
        if who:
            auth.logout()
    assert ch.id not in set(db.session.execute(policy.visible(w.outsider, Item).with_only_columns(Item.id)).scalars())
    # Its organisation (the authors) and moderators still see it, with the reason.
    auth.login(w.b_owner.email)
    page = client.get(f"/challenges/{ch.id}")
    assert page.status_code == 200 and b"Discloses a supplier contract." in page.data
    auth.logout()
    auth.login(w.site_mod2.email)
    assert client.get(f"/challenges/{ch.id}").status_code == 200
    auth.logout()
    # The authors are told why, and the reporter the outcome.
    assert any("Discloses a supplier contract." in m for m in notes(w.b_owner))
    assert any("hidden" in m for m in notes(w.reporter))
    assert "moderation.hide" in audit_actions()
    # Restore: visible again.
    act(w.site_mod2, "challenge", ch.id, "restore", "The contract was public after all.")
    assert reload(w.ch_b).hidden_at is None
    assert client.get(f"/challenges/{ch.id}").status_code == 200
    assert audit_actions()[-1] == "moderation.restore"
    assert action.id < db.session.execute(select(ModerationAction.id).order_by(ModerationAction.id.desc())).scalar()


def test_hidden_item_leaves_search_at_once(w, app):
    def found(user):
        return {h.id for h in service.search(user, "challenge", per_page=100).hits}

    assert w.ch_b.id in found(w.outsider) and w.ch_b.id in found(None)
    runtime = get_runtime(app)
    runtime.apply_now(wait=True)
    mode, runtime.mode = runtime.mode, "off"  # even before the index writer runs
    try:
        act(w.site_mod, "challenge", w.ch_b.id, "hide", "Spam.")
        for who in (None, w.outsider, w.reporter, w.a_owner):
            assert w.ch_b.id not in found(who)
        assert w.ch_b.id in found(w.b_owner) and w.ch_b.id in found(w.site_mod2)
    finally:
        runtime.mode = mode
    runtime.apply_now(wait=True)
    assert w.ch_b.id not in found(w.outsider) and w.ch_a.id in found(w.outsider)


def test_scoped_moderator_acts_only_on_its_organisations_challenges(w):
    report(w.reporter, "challenge", w.ch_a.id)
    act(w.scoped_a, "challenge", w.ch_a.id, "hide", "Spam.")
    assert reload(w.ch_a).hidden_at is not None
    # Other organisations' challenges, its own org's failures, profiles and accounts: not theirs.
    for t, i in (("challenge", w.ch_b.id), ("failure", w.fail_a.id), ("organisation", w.org_a.id)):
        with pytest.raises(ServiceError) as e:
            act(w.scoped_a, t, i, "request-edit")
        assert e.value.status in (403, 404), (t, e.value.message)
    with pytest.raises(ServiceError):
        act(w.scoped_a, "user", w.outsider.id, "suspend", days=3)
    assert reload(w.outsider).suspended_until is None


def test_scoped_moderator_sees_reported_internal_challenge_only(w, f):
    internal = f.make_item(w.org_a, kind="challenge", visibility="organisation", title="Internal A")
    assert not policy.can(w.scoped_a, "view", internal)
    ids = lambda u: set(db.session.execute(policy.visible(u, Item).with_only_columns(Item.id)).scalars())  # noqa: E731
    assert internal.id not in ids(w.scoped_a)
    # A member reports it: now the scoped moderator may see it to handle the case, and no one else more.
    report(w.a_member, "challenge", internal.id, "other", "Should not be here.")
    assert policy.can(w.scoped_a, "view", internal) and internal.id in ids(w.scoped_a)
    assert not policy.can(w.scoped_b, "view", internal) and internal.id not in ids(w.scoped_b)
    assert not policy.can(w.outsider, "view", internal) and internal.id not in ids(w.outsider)


def test_org_admins_moderate_their_own_discussions_only(w):
    mine = eng_svc.add_comment(w.outsider, w.fail_a, "Nonsense on A.")
    theirs = eng_svc.add_comment(w.outsider, w.fail_b, "Nonsense on B.")
    act(w.a_admin, "comment", mine.id, "hide", "Off topic.")
    assert reload(mine).hidden_at is not None
    with pytest.raises(ServiceError) as e:
        act(w.a_admin, "comment", theirs.id, "hide", "Off topic.")
    assert e.value.status == 403
    # Not their own organisation's items themselves, nor another org's.
    with pytest.raises(ServiceError) as e:
        act(w.a_admin, "failure", w.fail_a.id, "hide", "Oops.")
    assert e.value.status == 403
    with pytest.raises(ServiceError) as e:
        act(w.a_admin, "failure", w.fail_b.id, "lock", "Oops.")
    assert e.value.status == 403
    # Lock their own discussion: engagement refuses new comments.
    act(w.a_admin, "failure", w.fail_a.id, "lock", "Cooling off for a week.")
    assert policy.is_discussion_locked(w.fail_a)
    assert policy.can(w.outsider, "comment", reload(w.fail_b)) and not policy.can(w.outsider, "comment", w.fail_a)
    with pytest.raises(ServiceError) as e:
        eng_svc.add_comment(w.outsider, w.fail_a, "Can I still comment?")
    assert "locked" in e.value.message
    with pytest.raises(ServiceError) as e:
        act(w.a_admin, "failure", w.fail_a.id, "lock", "Again.")
    assert e.value.status == 409
    act(w.a_owner, "failure", w.fail_a.id, "unlock", "Calm again.")
    assert not policy.is_discussion_locked(w.fail_a)


def test_ordinary_users_cannot_moderate(w, client, auth):
    report(w.reporter, "challenge", w.ch_a.id)
    for kind in ("dismiss", "hide", "request-edit", "lock"):
        with pytest.raises(ServiceError) as e:  # they may see it (403), not moderate it
            act(w.outsider, "challenge", w.ch_a.id, kind)
        assert e.value.status == 403
    auth.login(w.outsider.email)
    assert client.get(f"/moderation/case/challenge/{w.ch_a.id}").status_code == 404
    r = client.post(f"/moderation/case/challenge/{w.ch_a.id}/act", data={"action": "hide", "reason": "x"})
    assert r.status_code == 404
    assert reload(w.ch_a).hidden_at is None


def test_action_through_the_page_requires_a_reason(w, client, auth):
    report(w.reporter, "challenge", w.ch_a.id)
    auth.login(w.site_mod.email)
    r = client.post(f"/moderation/case/challenge/{w.ch_a.id}/act", data={"action": "hide", "reason": ""})
    assert r.status_code == 400 and b"Give a reason" in r.data
    assert reload(w.ch_a).hidden_at is None
    r = client.post(f"/moderation/case/challenge/{w.ch_a.id}/act", data={"action": "explode", "reason": "x"})
    assert r.status_code == 400
    r = client.post(f"/moderation/case/challenge/{w.ch_a.id}/act", data={"action": "dismiss", "reason": "Fine."})
    assert r.status_code == 302
    assert db.session.execute(select(Report)).scalar_one().status == ReportStatus.DISMISSED.value
    assert any("took no action" in m and "Fine." in m for m in notes(w.reporter))
    # Nothing left to dismiss.
    r = client.post(f"/moderation/case/challenge/{w.ch_a.id}/act", data={"action": "dismiss", "reason": "Fine."})
    assert r.status_code == 400


def test_request_edit_tells_the_author(w):
    c = eng_svc.add_comment(w.outsider, w.fail_a, "Contains a phone number 555-1234.")
    report(w.reporter, "comment", c.id, "confidential-information")
    action = act(w.site_mod, "comment", c.id, "request-edit", "Please remove the phone number.")
    assert action.affected_ids == [w.outsider.id]
    assert any("Please remove the phone number." in m for m in notes(w.outsider))
    assert reload(c).hidden_at is None


# --------------------------------------------------------------------------- accounts


def test_suspension_ends_sessions_at_once(w, app, client, auth):
    c = eng_svc.add_comment(w.outsider, w.fail_a, "Buy cheap watches.")
    report(w.reporter, "comment", c.id)
    auth.login(w.outsider.email)
    assert client.get("/auth/account").status_code == 200
    before = reload(w.outsider).session_version
    act(w.site_mod, "comment", c.id, "suspend", "Spamming.", days=7, user_id=w.outsider.id)
    u = reload(w.outsider)
    assert u.is_blocked and u.session_version == before + 1
    r = client.get("/auth/account")
    assert r.status_code == 302 and "/auth/login" in r.headers["Location"]
    # Signing in again is refused with the end of the suspension.
    r = auth.login(w.outsider.email)
    assert r.status_code == 400 and b"suspended until" in r.data
    # Mailed, with an appeal link (they cannot sign in to appeal).
    mail = db.session.execute(select(OutgoingMail).where(OutgoingMail.to_email == w.outsider.email)).scalar_one()
    assert "/moderation/appeal/" in mail.body and "Spamming." in mail.body


def test_ban_and_account_rules(w, client, auth):
    auth.login(w.outsider.email)
    act(w.site_mod, "user", w.outsider.id, "ban", "Repeated abuse.")
    assert reload(w.outsider).banned
    assert client.get("/auth/account").status_code == 302
    # Moderators do not suspend themselves or staff; scoped moderators and org admins not at all.
    with pytest.raises(ServiceError):
        act(w.site_mod, "user", w.site_mod.id, "suspend", days=1)
    with pytest.raises(ServiceError):
        act(w.site_mod, "user", w.site_admin.id, "suspend", days=1)
    act(w.site_admin, "user", w.site_mod2.id, "suspend", "Abused the queue.", days=1)
    assert reload(w.site_mod2).is_blocked
    for mod in (w.scoped_a, w.a_admin):
        with pytest.raises(ServiceError):
            act(mod, "user", w.reporter.id, "ban")
    with pytest.raises(ServiceError) as e:
        act(w.site_mod, "user", w.reporter.id, "suspend", days=0)
    assert e.value.field == "days"
    act(w.site_mod, "user", w.outsider.id, "reinstate", "Served enough.")
    assert not reload(w.outsider).is_blocked


# --------------------------------------------------------------------------- appeals


def test_appeal_once_decided_by_a_different_moderator(w, client, auth):
    c = eng_svc.add_comment(w.outsider, w.fail_a, "A perfectly fine comment.")
    report(w.reporter, "comment", c.id, "abusive")
    action = act(w.site_mod, "comment", c.id, "hide", "Looks abusive.")
    assert reload(c).hidden_at is not None
    # Others may not appeal it.
    assert not policy.can(w.reporter, "appeal", action)
    auth.login(w.reporter.email)
    assert client.get(f"/moderation/actions/{action.id}").status_code == 404
    auth.logout()
    # The author appeals through the page, once.
    auth.login(w.outsider.email)
    page = client.get(f"/moderation/actions/{action.id}")
    assert page.status_code == 200 and b"Looks abusive." in page.data and b"Appeal this decision" in page.data
    r = client.post(f"/moderation/actions/{action.id}/appeal", data={"statement": "It was a quote, not an insult."})
    assert r.status_code == 302
    r = client.post(f"/moderation/actions/{action.id}/appeal", data={"statement": "Please, again and again."})
    assert r.status_code == 409
    appeal = db.session.execute(select(Appeal)).scalar_one()
    assert any("Appeal against" in m for m in notes(w.site_mod2))
    assert not any("Appeal against" in m for m in notes(w.site_mod))  # the deciding moderator is not asked
    auth.logout()
    # The moderator who hid it may not decide.
    auth.login(w.site_mod.email)
    r = client.post(f"/moderation/appeals/{appeal.id}/decide", data={"outcome": "overturn", "reason": "Mine."})
    assert r.status_code == 403 and b"different moderator" in r.data
    with pytest.raises(ServiceError):
        svc.decide_appeal(w.site_mod, appeal, "overturn", "I changed my mind.")
    auth.logout()
    # Another moderator overturns: the comment is back, and the author is told.
    auth.login(w.site_mod2.email)
    r = client.post(f"/moderation/appeals/{appeal.id}/decide", data={"outcome": "overturn", "reason": "A quote."})
    assert r.status_code == 302
    assert reload(appeal).status == "overturned" and reload(c).hidden_at is None
    reversal = db.session.execute(select(ModerationAction).where(ModerationAction.reverses_id == action.id)).scalar_one()
    assert reversal.action == "restore" and reversal.moderator_id == w.site_mod2.id
    assert any("was overturned" in m for m in notes(w.outsider))
    assert {"moderation.appeal_filed", "moderation.appeal_decided", "moderation.restore"} <= set(audit_actions())
    r = client.post(f"/moderation/appeals/{appeal.id}/decide", data={"outcome": "uphold", "reason": "Again."})
    assert r.status_code in (403, 409)


def test_org_admin_appeal_goes_to_another_admin_or_moderator(w):
    c = eng_svc.add_comment(w.outsider, w.fail_a, "Fine words.")
    action = act(w.a_admin, "comment", c.id, "hide", "I do not like it.")
    appeal = svc.file_appeal(w.outsider, action, "Nothing wrong with it.")
    assert not policy.can(w.a_admin, "decide", appeal)
    assert policy.can(w.a_owner, "decide", appeal) and policy.can(w.site_mod, "decide", appeal)
    assert not policy.can(w.b_admin, "decide", appeal) and not policy.can(w.scoped_a, "decide", appeal)
    svc.decide_appeal(w.a_owner, appeal, "uphold", "It breaks our discussion rules.")
    assert reload(appeal).status == "upheld" and reload(c).hidden_at is not None


def test_suspended_author_appeals_through_the_mailed_link(w, client):
    act(w.site_mod, "user", w.outsider.id, "suspend", "Spam wave.", days=30)
    mail = db.session.execute(select(OutgoingMail).where(OutgoingMail.to_email == w.outsider.email)).scalar_one()
    link = re.search(r"http://[^/]+(/moderation/appeal/\S+)", mail.body).group(1)
    page = client.get(link)
    assert page.status_code == 200 and b"Spam wave." in page.data
    r = client.post(link, data={"statement": "My account was hacked that day."})
    assert r.status_code == 200 and b"Your appeal was sent" in r.data
    assert db.session.execute(select(Appeal)).scalar_one().appellant_id == w.outsider.id
    assert client.post(link, data={"statement": "Second try at this."}).status_code == 409
    assert client.get("/moderation/appeal/not-a-real-token").status_code == 404
    appeal = db.session.execute(select(Appeal)).scalar_one()
    svc.decide_appeal(w.site_mod2, appeal, "overturn", "Hacked account, restored.")
    assert not reload(w.outsider).is_blocked


def test_dismissals_and_restores_are_not_appealable(w):
    report(w.reporter, "challenge", w.ch_a.id)
    action = act(w.site_mod, "challenge", w.ch_a.id, "dismiss", "Nothing wrong.")
    assert action.affected_ids == []
    with pytest.raises(ServiceError):
        svc.file_appeal(w.a_owner, action, "I want to appeal anyway.")


# --------------------------------------------------------------------------- scopes, audit of roles


def test_site_admin_appoints_scoped_moderators_and_it_is_audited(w, client, auth):
    newbie = w.f.make_user(name="Nina Newmod")
    auth.login(w.site_admin.email)
    r = client.post("/moderation/scopes", data={"email": newbie.email, "org": w.org_b.slug})
    assert r.status_code == 302
    assert policy.moderator_scope_org_ids(policy.viewer_for(newbie)) == {w.org_b.id}
    assert "role.moderator_scope_granted" in audit_actions()
    r = client.post("/moderation/scopes", data={"email": newbie.email, "org": w.org_b.slug})
    assert r.status_code == 400 and b"already moderates" in r.data
    r = client.post("/moderation/scopes", data={"email": "nobody@nowhere.test", "org": "no-such-org"})
    assert r.status_code == 400 and b"No account" in r.data and b"No organisation" in r.data
    from marketplace.models.moderation import ModeratorScope
    scope = db.session.execute(select(ModeratorScope).where(ModeratorScope.user_id == newbie.id)).scalar_one()
    assert client.post(f"/moderation/scopes/{scope.id}/revoke").status_code == 302
    assert "role.moderator_scope_revoked" in audit_actions()
    auth.logout()
    auth.login(w.site_mod.email)  # moderators do not appoint moderators
    assert client.get("/moderation/scopes").status_code == 403


def test_blocked_domains_page(w, client, auth):
    auth.login(w.site_mod.email)
    r = client.post("/moderation/blocked-domains", data={"domain": "@Spam.Example", "reason": "Spam farm."})
    assert r.status_code == 302
    assert b"spam.example" in client.get("/moderation/blocked-domains").data
    r = client.post("/moderation/blocked-domains", data={"domain": "not a domain", "reason": "x"})
    assert r.status_code == 400 and b"domain name" in r.data
    assert "moderation.domain_blocked" in audit_actions()
    auth.logout()
    auth.login(w.scoped_a.email)
    assert client.get("/moderation/blocked-domains").status_code == 403


# --------------------------------------------------------------------------- digest


def test_daily_digest_mails_what_waits(w, runner):
    old = report(w.reporter, "challenge", w.ch_a.id, "spam")
    backdate(old, 48)
    r = runner.invoke(args=["moderation", "digest"])
    assert r.exit_code == 0, r.output
    mails = {m.to_email: m for m in db.session.execute(select(OutgoingMail)).scalars()}
    assert w.site_mod.email in mails and w.scoped_a.email in mails
    assert w.scoped_b.email not in mails and w.a_admin.email not in mails
    body = mails[w.scoped_a.email].body
    assert "1 open report(s), 1 past the 24 h response target" in body and "OVERDUE" in body


def test_hidden_comment_leaves_a_tombstone_where_it_was(w, client, auth):
    c = eng_svc.add_comment(w.outsider, w.fail_a, "Our competitor's secret price list is 42 EUR.")
    eng_svc.add_comment(w.reporter, w.fail_a, "Some other fine comment.")
    report(w.reporter, "comment", c.id, "confidential-information")
    act(w.site_mod, "comment", c.id, "hide", "Confidential pricing.")
    page = client.get(f"/failures/{w.fail_a.id}").data.decode()
    assert "secret price list" not in page
    assert "Some other fine comment." in page
    assert "hidden by moderators" in page.lower()
    assert not policy.can(w.reporter, "view", reload(c))
    assert policy.can(w.outsider, "view", reload(c))  # its author still sees it


def test_hidden_idea_disappears_for_all_but_authors_and_moderators(f, w):
    from .factories_ideas import IdeaFactories
    from marketplace.models import Idea

    ideas = IdeaFactories(f)
    s = ideas.challenge(confidentiality="open")
    author = f.make_user(email="ann@ideas.test")
    idea = ideas.submit(author, s.challenge, title="An open idea", body="Readable by everyone who sees the challenge.")
    visible_ids = lambda u: set(db.session.execute(  # noqa: E731
        policy.visible(u, Idea).with_only_columns(Idea.id)).scalars())
    assert policy.can(w.outsider, "view", idea) and idea.id in visible_ids(w.outsider)
    svc.file_report(w.reporter, "idea", idea.id, "spam", "Advert.")
    act(w.site_mod, "idea", idea.id, "hide", "Advertising.")
    idea = reload(idea)
    assert not policy.can(w.outsider, "view", idea) and idea.id not in visible_ids(w.outsider)
    assert not policy.can(w.reporter, "view", idea)
    assert policy.can(author, "view", idea) and idea.id in visible_ids(author)
    assert policy.can(w.site_mod2, "view", idea)
    assert any("Advertising." in m for m in notes(author))


def test_flask_limiter_throttles_report_posts_per_user(tmp_path):
    """The in-process limiter is the first line (it counts every POST, even those that never
    reach the database); the database count above is the one that holds across processes."""
    from .factories import Factories
    from .factories_foundation import dispose, make_app

    app = make_app(tmp_path, RATELIMIT_ENABLED=True, MODERATION_REPORTS_PER_HOUR=2)
    try:
        with app.app_context():
            user = Factories().make_user()
            client = app.test_client()
            client.post("/auth/login", data={"email": user.email, "password": "correct-horse-battery"})
            codes = [client.post("/moderation/report/challenge/999999", data={"category": "spam"}).status_code
                     for _ in range(3)]
            assert codes == [404, 404, 429]
            r = client.post("/moderation/report/challenge/999999", data={"category": "spam"})
            assert r.status_code == 429 and b"too many reports" in r.data
            assert client.get("/moderation/report/challenge/999999").status_code == 404  # GETs are not limited
    finally:
        dispose(app)


def test_hidden_idea_and_comment_leave_search(f, w, app):
    from .factories_ideas import IdeaFactories

    def found(user, q):
        return {(h.doc_type, h.id) for h in service.search(user, q, per_page=100).hits}

    s = IdeaFactories(f).challenge(confidentiality="open")
    author = f.make_user(email="ann@ideas.test")
    idea = IdeaFactories(f).submit(author, s.challenge, title="Zeppelin delivery", body="Airships drop parcels.")
    c = eng_svc.add_comment(w.outsider, w.fail_a, "Try quokka-shaped bumpers next time.")
    get_runtime(app).apply_now(wait=True)
    assert ("idea", idea.id) in found(w.reporter, "zeppelin") and ("comment", c.id) in found(w.reporter, "quokka")
    act(w.site_mod, "idea", idea.id, "hide", "Advert.")
    act(w.site_mod, "comment", c.id, "hide", "Off topic.")
    get_runtime(app).apply_now(wait=True)
    assert ("idea", idea.id) not in found(w.reporter, "zeppelin")
    assert ("comment", c.id) not in found(w.reporter, "quokka")
    assert ("idea", idea.id) in found(author, "zeppelin")  # authors still find their own
