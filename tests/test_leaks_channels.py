"""Leaks found from outside, in the channels around pages and search (issue 15): moderation
case pages show exactly what the policy lets their reader see of the target, and invitations
show an item's title and summary only where accepting would let the invitee see it."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import Idea, OutgoingMail, utcnow
from marketplace.services import engagement as eng_svc
from marketplace.services import invitations as inv_svc
from marketplace.services import moderation as mod_svc

from .factories_ideas import IdeaFactories
from .search_backends import BACKENDS
from .factories_invitations import make_world


# --------------------------------------------------------------------------- case pages


@pytest.fixture
def case_world(f):
    fi = IdeaFactories(f)
    s = fi.challenge(visibility="public", rules={"who_may_submit": "registered", "team_allowed": True,
                                                 "max_team_size": 5, "max_ideas_per_contributor": 50})
    org_admin = f.make_user(email="orgadmin@acme.test")
    f.add_member(s.org, org_admin, role="admin")
    author, coauthor = f.make_user(), f.make_user()
    site_mod = f.make_user(site_role="moderator")
    site_admin = f.make_user(site_role="admin")
    waiting = fi.submit(author, s.challenge, title="Waiting for its co-author", coauthors=coauthor.email)
    hidden = fi.submit(author, s.challenge, title="Hidden by moderators")
    mod_svc.take_action(site_mod, "idea", hidden.id, "hide", "Off topic.")
    return s, org_admin, author, site_mod, site_admin, db.session.get(Idea, waiting.id), hidden


def _case(client, type_name, target_id):
    return client.get(f"/moderation/case/{type_name}/{target_id}")


def test_an_idea_waiting_for_its_coauthors_is_nobodys_case(case_world, client, auth):
    s, org_admin, author, site_mod, site_admin, waiting, _hidden = case_world
    assert waiting.status == "awaiting-coauthors"
    for user in (s.owner, org_admin, site_mod, site_admin):
        auth.login(user.email)
        r = _case(client, "idea", waiting.id)
        assert r.status_code == 404, user.email
        assert b"Waiting for its co-author" not in r.data
        # Acting on it through the case is refused the same way.
        r = client.post(f"/moderation/case/idea/{waiting.id}/act", data={"action": "lock", "reason": "x"})
        assert r.status_code == 404
        auth.logout()


def test_a_hidden_idea_is_shown_on_its_case_only_to_those_who_may_see_it(case_world, client, auth):
    s, org_admin, _author, site_mod, _site_admin, _waiting, hidden = case_world
    for user in (s.owner, org_admin):  # organisation admins do not see hidden ideas
        auth.login(user.email)
        r = _case(client, "idea", hidden.id)
        assert r.status_code == 404 and b"Hidden by moderators" not in r.data
        auth.logout()
    auth.login(site_mod.email)
    r = _case(client, "idea", hidden.id)
    assert r.status_code == 200 and b"Hidden by moderators" in r.data


def test_a_private_asset_request_is_a_case_only_while_a_report_on_it_is_open(f, client, auth):
    owner, requester = f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    asset = f.make_item(org, kind="asset", visibility="public", title="Test rig")
    req = eng_svc.send_request(requester, asset, "interest", "Private plans for the rig, canary-7731.",
                               terms_version=None, terms_digest=None)
    site_mod, site_admin = f.make_user(site_role="moderator"), f.make_user(site_role="admin")
    for user in (site_mod, site_admin):
        auth.login(user.email)
        r = _case(client, "asset_request", req.id)
        assert r.status_code == 404 and b"canary-7731" not in r.data
        auth.logout()
    # The owner reports it: now it is a case, seen by site moderators.
    report = mod_svc.file_report(owner, "asset_request", req.id, "spam", "Looks automated.")
    auth.login(site_mod.email)
    assert _case(client, "asset_request", req.id).status_code == 200
    mod_svc.take_action(site_mod, "asset_request", req.id, "dismiss", "Not spam.")
    assert db.session.get(type(report), report.id).status != "open"
    # The case is closed: the private request is the two parties' again.
    r = _case(client, "asset_request", req.id)
    assert r.status_code == 404 and b"canary-7731" not in r.data


# --------------------------------------------------------------------------- invitations


def _mail_to(address):
    return db.session.execute(select(OutgoingMail).where(OutgoingMail.to_email == address)
                              .order_by(OutgoingMail.id.desc())).scalars().first()


@pytest.mark.parametrize("status,visibility,revealed", [
    ("draft", "invited", False),
    ("open", "organisation", False),
    ("open", "invited", True),
    ("open", "registered", True),
])
def test_an_invitation_shows_its_item_only_where_accepting_would(f, client, auth, status, visibility, revealed):
    w = make_world(f)
    item = f.make_item(w.acme, kind="challenge", visibility=visibility, status=status,
                       title="Canary title 5519", summary="Canary summary 5519")
    inv, token = inv_svc.create_invitation(w.admin, item, w.guest.email)
    mail = _mail_to(w.guest.email)
    assert ("Canary title 5519" in mail.body) is revealed
    assert ("Canary title 5519" in mail.subject) is False
    assert policy.invitation_reveals_item(item) is revealed
    auth.login(w.guest.email)
    page = client.get(f"/invitations/t/{token}").data.decode()
    assert ("Canary title 5519" in page) is revealed and ("Canary summary 5519" in page) is revealed
    if not revealed:
        assert w.acme.name in page and "details are shown when it opens" in page
    assert policy.can(w.guest, "preview_item", inv) is revealed
    # Those who see the item anyway (its organisation) always see what it is.
    assert policy.can(w.admin, "preview_item", inv)
    r = client.post(f"/invitations/t/{token}/accept", data={}, follow_redirects=True)
    assert r.status_code == 200
    assert (b"Canary title 5519" in r.data) is policy.can(w.guest, "view", item)
    auth.logout()
    # The pending list never names the item.
    inv2, _ = inv_svc.create_invitation(w.admin, item, w.outsider.email)
    auth.login(w.outsider.email)
    assert b"Canary title 5519" not in client.get("/invitations/").data
    assert utcnow() < inv2.expires_at


# --------------------------------------------------------------------------- hidden posts in search


@pytest.mark.parametrize("app", BACKENDS, indirect=True)
def test_hidden_questions_and_comments_are_found_by_those_who_may_see_them(f):
    from marketplace.search import service as search

    owner, asker, outsider = f.make_user(), f.make_user(), f.make_user()
    site_mod = f.make_user(site_role="moderator")
    org = f.make_org(owner=owner)
    challenge = f.make_item(org, kind="challenge", visibility="public")
    failure = f.make_item(org, kind="failure", visibility="public")
    q = eng_svc.ask_question(asker, challenge, "Does quokkametric calibration drift?")
    c = eng_svc.add_comment(asker, failure, "We saw wombatronic drift too.")
    mod_svc.take_action(site_mod, "question", q.id, "hide", "Off topic.")
    mod_svc.take_action(site_mod, "comment", c.id, "hide", "Off topic.")

    def keys(user, words):
        return {h.key for h in search.search(user, words, per_page=100).hits}

    for words, key in (("quokkametric", f"question:{q.id}"), ("wombatronic", f"comment:{c.id}")):
        for user in (asker, owner, site_mod):  # the author, the organisation's admins, moderators
            assert key in keys(user, words), (user.email, words)
        for user in (outsider, None):
            assert keys(user, words) == set()
            assert search.search(user, words).total == 0
    # A post its author deletes leaves the index's text.
    q2 = eng_svc.ask_question(asker, challenge, "Is platypoidal damping patented?")
    assert f"question:{q2.id}" in keys(owner, "platypoidal")
    eng_svc.delete_post(asker, q2)
    assert keys(site_mod, "platypoidal") == set()
