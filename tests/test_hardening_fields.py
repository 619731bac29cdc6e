"""No field a user may not set can be set (issue 15): extra fields posted with a form are
ignored or refused.

Two ways. (1) A walk: every form on every page that people of each role can open is posted
back filled in, plus fields it does not offer (ids naming a "forged" organisation, account,
item and list no form here would choose; a site role; ban and session fields; moderation and
publication timestamps; an id; an unknown status). After each post, no row that the post
created or changed holds any of those values. (2) Targeted tests for the forms that create
or edit something where a valid but unoffered value would matter: items, organisations,
ideas, terms, invitations, lists, engagement, moderation, accounts.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime

import pytest
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.models import (
    AssetRequest,
    ChallengeTerms,
    Comment,
    Idea,
    Invitation,
    InvitationList,
    Item,
    Membership,
    Organisation,
    Question,
    Report,
    User,
)
from marketplace.services import terms as terms_svc

from .factories import Factories
from .factories_foundation import dispose, make_app
from .hardening_world import VIEWERS, build_world, concrete_urls, fill, forms_on, login

FORGED_TIME = "2001-02-03T04:05:06"
FORGED_ID = 987654


def _site(tmp_dir):
    app = make_app(tmp_dir, PROPAGATE_UNHANDLED=False)
    with app.app_context():
        world = build_world()
    # The pages to walk, before the forged rows exist: a URL naming them would be a legitimate
    # reference (a site admin may ask a question on any challenge it names).
    urls = concrete_urls(app, world, {"GET"})
    with app.app_context():
        f = Factories()
        victim = f.make_user(email="forged-owner@victim.test", name="Forged Owner")
        org = f.make_org(name="Forged Org", owner=victim)
        item = f.make_item(org, kind="challenge", visibility="organisation", title="Forged target")
        lst = f.make_list(org, name="Forged list")
        forged = {"user": victim.id, "org": org.id, "item": item.id, "list": lst.id}
    clients = {}
    for name, email in VIEWERS.items():
        c = app.test_client()
        if email:
            login(c, email)
        clients[name] = c
    return app, urls, forged, clients


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """For the targeted tests: each changes only what it names."""
    s = _site(tmp_path_factory.mktemp("fields"))
    yield s
    dispose(s[0])


@pytest.fixture(scope="module")
def walked_site(tmp_path_factory):
    """For the walk, which posts every form and so changes everything."""
    s = _site(tmp_path_factory.mktemp("fields-walk"))
    yield s
    dispose(s[0])


def extras(forged: dict) -> dict:
    """Fields no form offers, each naming something only a forger would choose."""
    u, o, i, li = str(forged["user"]), str(forged["org"]), str(forged["item"]), str(forged["list"])
    return {
        "id": str(FORGED_ID), "org_id": o, "owner_id": u, "created_by_id": u, "author_id": u, "user_id": u,
        "reporter_id": u, "invited_by_id": u, "appellant_id": u, "moderator_id": u, "requester_org_id": o,
        "member_org_id": o, "item_id": i, "challenge_id": i, "target_id": i, "list_id": li,
        "site_role": "admin", "role": "owner", "banned": "y", "session_version": "99",
        "suspended_until": FORGED_TIME, "hidden_at": FORGED_TIME, "hidden_reason": "forged",
        "published_at": FORGED_TIME, "decided_at": FORGED_TIME, "pinned_at": FORGED_TIME, "revoked_at": FORGED_TIME,
        "accepted_at": FORGED_TIME, "created_at": FORGED_TIME, "status": "forged-status",
        "visibility": "forged-visibility", "pinned": "y", "locked": "y", "email": "forged@victim.test",
        "password_hash": "forged", "token_hash": "forged", "digest": "forged", "version": "99",
    }


def rows() -> dict:
    out = {}
    for table in db.metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        for r in db.session.execute(select(table)).mappings():
            out[(table.name, tuple(r[c.name] for c in pk))] = dict(r)
    return out


def _references() -> dict[tuple[str, str], str]:
    """(table, column) -> the table its foreign key points at."""
    return {(t.name, c.name): next(iter(c.foreign_keys)).column.table.name
            for t in db.metadata.sorted_tables for c in t.columns if c.foreign_keys}


def violations(before: dict, after: dict, forged: dict) -> list[str]:
    """What the post created or changed that holds a forged value."""
    targets = {"users": forged["user"], "organisations": forged["org"], "items": forged["item"],
               "invitation_lists": forged["list"]}
    refs = _references()
    found = []
    for key, row in after.items():
        old = before.get(key)
        for col, value in row.items():
            if old is not None and old.get(col) == value:
                continue  # unchanged by the post
            points_at = refs.get((key[0], col))
            if col == "id" and value == FORGED_ID:
                found.append(f"{key}: id {FORGED_ID}")
            elif points_at in targets and value == targets[points_at]:
                found.append(f"{key}: {col}={value} (the forged {points_at} row)")
            elif isinstance(value, datetime) and value.year == 2001:
                found.append(f"{key}: {col}={value} (the forged time)")
            elif isinstance(value, str) and value.startswith("forged") and col not in ("title", "body"):
                found.append(f"{key}: {col}={value!r}")
            elif key[0] == "users" and old is not None and col in ("site_role", "banned", "email"):
                found.append(f"{key}: {col} changed to {value!r}")
    return found


def test_extra_fields_in_every_form_are_ignored_or_refused(walked_site):
    app, urls, forged, clients = walked_site
    posted, problems = set(), []
    with app.app_context():
        before = rows()
    for viewer in ("owner", "curator", "researcher", "outsider", "site_admin"):
        c = clients[viewer]
        for _m, _endpoint, url in urls:
            page = c.get(url)
            if page.status_code != 200 or page.mimetype != "text/html":
                continue
            for form in forms_on(page.text, url):
                if form.action.endswith("/auth/logout") or form.key in posted:
                    continue
                posted.add(form.key)  # each form once, by the first walker who can open it
                data = fill(form)
                offered = set(data)
                data.update({k: v for k, v in extras(forged).items() if k not in offered})
                r = c.post(form.action, data=data)
                assert r.status_code < 500, (viewer, form.action, r.status_code)
                with app.app_context():
                    after = rows()
                problems += [f"{viewer} {form.action}: {v}" for v in violations(before, after, forged)]
                before = after
    assert not problems, "\n".join(problems)
    assert len(posted) > 50


# --------------------------------------------------------------------------- targeted


def _user(app, key):
    with app.app_context():
        return db.session.execute(select(User).where(User.email == VIEWERS[key])).scalar_one().id


def _org(app, name):
    with app.app_context():
        return db.session.execute(select(Organisation).where(Organisation.name == name)).scalar_one().id


def test_a_new_item_belongs_to_the_chosen_organisation_and_its_poster_as_a_draft(site):
    app, _world, forged, clients = site
    acme = _org(app, "Acme Robotics")
    r = clients["owner"].post(f"/challenges/new?org={acme}", data={
        "title": "Mass assignment probe item", "body": "Body.", "visibility": "public", "save": "Save as draft",
        **{k: v for k, v in extras(forged).items() if k not in ("visibility",)}, "status": "open"})
    assert r.status_code == 302
    with app.app_context():
        item = db.session.execute(select(Item).where(Item.title == "Mass assignment probe item")).scalar_one()
        assert (item.org_id, item.created_by_id, item.status) == (acme, _user(app, "owner"), "draft")
        assert item.hidden_at is None and item.published_at is None and item.id != FORGED_ID
    # Posting for an organisation one does not run is refused, whatever the form says.
    r = clients["owner"].post(f"/challenges/new?org={forged['org']}", data={"title": "x", "body": "x"})
    assert r.status_code == 403


def test_editing_an_item_changes_only_what_the_form_offers(site):
    app, _world, forged, clients = site
    with app.app_context():
        item = db.session.execute(select(Item).where(Item.title == "Battery swap under two minutes")).scalar_one()
        before = (item.org_id, item.created_by_id, item.status, item.hidden_at, item.published_at)
        iid = item.id
    r = clients["owner"].post(f"/challenges/{iid}/edit", data={
        "title": "Battery swap under two minutes", "body": "Edited body.", "visibility": "registered",
        # A published challenge needs a deadline.
        "deadline": "2031-06-02T12:00", "save": "Save", **{k: v for k, v in extras(forged).items() if k != "visibility"}, "status": "archived"})
    assert r.status_code == 302
    with app.app_context():
        item = db.session.get(Item, iid)
        assert (item.org_id, item.created_by_id, item.status, item.hidden_at, item.published_at) == before
        assert item.body == "Edited body."


def test_an_idea_goes_to_the_challenge_in_the_url_as_submitted_by_its_author(site):
    app, _world, forged, clients = site
    with app.app_context():
        grip = db.session.execute(select(Item).where(Item.title == "Grip fragile parcels without damage")
                                  ).scalar_one()
        terms = terms_svc.policy.current_terms(grip.id)
        gid, version, digest = grip.id, terms.version, terms.digest
    data = {"challenge_id": str(gid), "submission_key": secrets.token_urlsafe(24), "title": "Probe idea",
            "summary": "s", "body": "b", "terms_version": str(version), "terms_digest": digest,
            "accept_terms": "y", "confirm_eligibility": "y", "confirm_coi": "y",
            **{k: v for k, v in extras(forged).items() if k not in ("challenge_id",)}, "status": "shortlisted"}
    r = clients["invited"].post(f"/challenges/{gid}/ideas/new", data=data)
    assert r.status_code == 302, re.findall(r"(?:error|alert)[^>]*>([^<]+)", r.text)
    with app.app_context():
        idea = db.session.execute(select(Idea).where(Idea.title == "Probe idea")).scalar_one()
        assert (idea.challenge_id, idea.author_id, idea.status) == (gid, _user(app, "invited"), "submitted")
    # The hidden challenge id naming another challenge is refused, not followed.
    r = clients["invited"].post(f"/challenges/{gid}/ideas/new", data={**data, "submission_key": secrets.token_urlsafe(24),
                                                                     "challenge_id": str(forged["item"])})
    assert r.status_code in (400, 409)
    with app.app_context():
        assert db.session.execute(select(Idea).where(Idea.challenge_id == forged["item"])).first() is None


def test_terms_versions_are_numbered_by_the_site(site):
    app, _world, forged, clients = site
    with app.app_context():
        grip = db.session.execute(select(Item).where(Item.title == "Grip fragile parcels without damage")
                                  ).scalar_one()
        before = terms_svc.policy.current_terms(grip.id).version
        gid = grip.id
    page = clients["owner"].get(f"/challenges/{gid}/terms/edit")
    (form,) = [f for f in forms_on(page.text, f"/challenges/{gid}/terms/edit") if "ip_model" in
               {x.name for x in f.fields}]
    data = fill(form)
    data.update({"version": "99", "digest": "forged", "challenge_id": str(forged["item"]),
                 "created_by_id": str(forged["user"])})
    data["field_of_use"] = "A new field of use."
    clients["owner"].post(f"/challenges/{gid}/terms/edit", data=data)
    with app.app_context():
        versions = db.session.execute(select(ChallengeTerms.version).where(ChallengeTerms.challenge_id == gid)
                                      ).scalars().all()
        assert max(versions) in (before, before + 1) and 99 not in versions
        assert not db.session.execute(select(ChallengeTerms).where(ChallengeTerms.challenge_id == forged["item"])
                                      ).first()


def test_an_invitation_is_for_the_item_in_the_url_from_its_sender(site):
    app, _world, forged, clients = site
    with app.app_context():
        lidar = db.session.execute(select(Item).where(Item.title.like("Confidential:%"))).scalar_one().id
    r = clients["owner"].post(f"/invitations/item/{lidar}", data={
        "email": "probe-invitee@example.test", "days": "7", **{k: v for k, v in extras(forged).items()
                                                               if k not in ("email",)}})
    assert r.status_code in (201, 302)
    with app.app_context():
        inv = db.session.execute(select(Invitation).where(Invitation.email == "probe-invitee@example.test")
                                 ).scalar_one()
        assert (inv.item_id, inv.invited_by_id) == (lidar, _user(app, "owner"))
        assert inv.accepted_at is None and inv.revoked_at is None and inv.token_hash != "forged"


def test_a_list_belongs_to_the_curated_organisation(site):
    app, _world, forged, clients = site
    cluster = _org(app, "North Sea Energy Cluster")
    r = clients["curator"].post(f"/lists/new?org={cluster}", data={
        "name": "Probe list", "description": "d", **extras(forged)})
    assert r.status_code == 302
    with app.app_context():
        lst = db.session.execute(select(InvitationList).where(InvitationList.name == "Probe list")).scalar_one()
        assert lst.org_id == cluster
    assert clients["curator"].post(f"/lists/new?org={forged['org']}", data={"name": "x"}).status_code == 403


def test_questions_comments_and_requests_belong_to_their_author_and_item(site):
    app, _world, forged, clients = site
    with app.app_context():
        grip = db.session.execute(select(Item).where(Item.title == "Grip fragile parcels without damage")
                                  ).scalar_one().id
        suction = db.session.execute(select(Item).where(Item.title == "Suction grippers on recycled cardboard")
                                     ).scalar_one().id
        tank = db.session.execute(select(Item).where(Item.title == "Wave tank test facility")).scalar_one()
        tank_id, tank_terms = tank.id, None
        from marketplace.services import engagement as eng_svc

        t = eng_svc.current_terms(tank)
        tank_terms = (t.version, t.digest) if t else (None, None)
    me = _user(app, "outsider")
    ex = extras(forged)
    clients["outsider"].post(f"/engage/challenges/{grip}/ask", data={"body": "Probe question?", **ex})
    clients["outsider"].post(f"/engage/failures/{suction}/comment", data={"body": "Probe comment.", **ex})
    data = {"kind": "interest", "message": "Probe request.", **ex}
    if tank_terms[0] is not None:
        data.update({"terms_version": str(tank_terms[0]), "terms_digest": tank_terms[1]})
    data["status"] = "accepted"
    clients["outsider"].post(f"/engage/assets/{tank_id}/request", data=data)
    with app.app_context():
        q = db.session.execute(select(Question).where(Question.body == "Probe question?")).scalar_one()
        c = db.session.execute(select(Comment).where(Comment.body == "Probe comment.")).scalar_one()
        req = db.session.execute(select(AssetRequest).where(AssetRequest.author_id == me)
                                 .order_by(AssetRequest.id.desc())).scalars().first()
        assert (q.item_id, q.author_id, q.hidden_at) == (grip, me, None)
        assert (c.item_id, c.author_id, c.hidden_at, c.pinned_at) == (suction, me, None, None)
        assert req is not None and req.item_id == tank_id and req.status != "accepted"
        assert req.requester_org_id is None


def test_a_report_is_filed_open_by_its_reporter(site):
    app, _world, forged, clients = site
    with app.app_context():
        fid = db.session.execute(select(Item).where(Item.title == "Suction grippers on recycled cardboard")
                                 ).scalar_one().id
    r = clients["invited"].post(f"/moderation/report/failure/{fid}", data={
        "category": "spam", "note": "Probe report.", **extras(forged), "status": "closed"})
    assert r.status_code == 302
    with app.app_context():
        rep = db.session.execute(select(Report).where(Report.note == "Probe report.")).scalar_one()
        assert (rep.reporter_id, rep.target_id, rep.status) == (_user(app, "invited"), fid, "open")


def test_the_account_page_cannot_raise_a_role_or_unban(site):
    app, _world, forged, clients = site
    me = _user(app, "outsider")
    with app.app_context():
        before = db.session.get(User, me)
        state = (before.site_role, before.email, before.banned, before.session_version, before.password_hash)
    r = clients["outsider"].post("/auth/account", data={"p-display_name": "Oscar O.", "p-submit": "Save name",
                                                        **extras(forged), "site_role": "admin"})
    assert r.status_code == 302
    with app.app_context():
        after = db.session.get(User, me)
        assert (after.site_role, after.email, after.banned, after.session_version, after.password_hash) == state
        assert after.display_name == "Oscar O."


def test_registration_makes_a_plain_account(site):
    app, _world, forged, _clients = site
    c = app.test_client()
    r = c.post("/auth/register", data={"email": "probe-register@example.test", "display_name": "Probe",
                                       "password": "a-long-password", "confirm": "a-long-password",
                                       **{k: v for k, v in extras(forged).items() if k != "email"}})
    assert r.status_code == 200 and "Check your inbox" in r.text
    with app.app_context():
        u = db.session.execute(select(User).where(User.email == "probe-register@example.test")).scalar_one()
        assert (u.site_role, u.banned, u.session_version, u.suspended_until) == ("user", False, 1, None)
        assert u.email_verified_at is None  # the address is proven by the mailed link only
        assert u.id != FORGED_ID


def test_an_organisation_is_created_with_its_creator_as_owner(site):
    app, _world, forged, clients = site
    r = clients["outsider"].post("/orgs/new", data={"name": "Probe Org", "kind": "company",
                                                    **extras(forged)})
    assert r.status_code == 302
    with app.app_context():
        org = db.session.execute(select(Organisation).where(Organisation.name == "Probe Org")).scalar_one()
        members = db.session.execute(select(Membership.user_id, Membership.role)
                                     .where(Membership.org_id == org.id)).all()
        assert members == [(_user(app, "outsider"), "owner")] and org.id != FORGED_ID


def test_a_moderation_decision_applies_only_to_an_author_of_the_target(site):
    app, _world, forged, clients = site
    with app.app_context():
        q = db.session.execute(select(Question).order_by(Question.id)).scalars().first()
        qid = q.id
        victim = db.session.get(User, forged["user"])
        assert victim.suspended_until is None
    r = clients["moderator"].post(f"/moderation/case/question/{qid}/act", data={
        "action": "suspend", "reason": "Probe.", "days": "3", "user_id": str(forged["user"])})
    assert r.status_code in (400, 403)
    with app.app_context():
        assert db.session.get(User, forged["user"]).suspended_until is None
