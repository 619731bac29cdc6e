"""Leaks the leak sweep (tests/test_leak_sweep.py) found, each pinned by a focused test
named after the route and the persona that saw what it may not."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.models import Notification, OutgoingMail, TermsAcceptance
from marketplace.search import service as search
from marketplace.services import engagement as eng_svc
from marketplace.services import ideas as ideas_svc
from marketplace.services import lists as lists_svc
from marketplace.services import moderation as mod_svc

from .factories_ideas import IdeaFactories
from .search_backends import BACKENDS
from .factories_moderation import scope


@pytest.fixture
def fi(f):
    return IdeaFactories(f)


def _challenge(f, fi, org, owner, *, visibility="public", nda="", confidentiality="open", body="Brief.", **kw):
    ch = f.make_item(org, kind="challenge", visibility=visibility, body=body, created_by=owner, **kw)
    fi.set_terms(owner, ch, confidentiality=confidentiality, nda_text=nda)
    fi.set_rules(owner, ch, team_allowed=True, max_team_size=3, max_ideas_per_contributor=5)
    return ch


# --------------------------------------------------------------------------- case context


def test_scoped_moderator_sees_the_reported_question_not_the_rest_of_the_challenges_qa(f, client, auth):
    """GET /challenges/<id> as a scoped moderator of an `invited` challenge with a reported
    question: the case shows them the challenge and the reported question, not the other
    questions and answers (rows inherit the challenge's own rule, not its case exception)."""
    owner, guest, mod = f.make_user(), f.make_user(), f.make_user()
    org = f.make_org(owner=owner)
    scope(mod, org)
    ch = f.make_item(org, kind="challenge", visibility="invited")
    f.grant(ch, user=guest)
    reported = eng_svc.ask_question(guest, ch, "Reported quibblequark question?")
    eng_svc.answer_question(owner, reported, "Answer zorblefrump.")
    other = eng_svc.ask_question(guest, ch, "Unrelated snorkelwhit question?")
    eng_svc.answer_question(owner, other, "Answer plinkerdoodle.")
    mod_svc.file_report(guest, "question", reported.id, "spam", "Looks automated.")
    auth.login(mod.email)
    page = client.get(f"/challenges/{ch.id}").get_data(as_text=True)
    assert "quibblequark" in page  # the case
    for word in ("zorblefrump", "snorkelwhit", "plinkerdoodle"):
        assert word not in page, word
    auth.logout()
    auth.login(guest.email)  # the rest of the Q&A is unchanged for the challenge's own readers
    page = client.get(f"/challenges/{ch.id}").get_data(as_text=True)
    assert all(w in page for w in ("quibblequark", "zorblefrump", "snorkelwhit", "plinkerdoodle"))


def test_case_page_shows_a_brief_under_an_nda_only_to_those_who_may_read_it(f, fi, client, auth):
    """GET /moderation/case/challenge/<id> as a scoped moderator: the challenge's brief is
    under an NDA they did not accept, so the case shows its title and summary only."""
    owner, reporter, scoped_mod = f.make_user(), f.make_user(), f.make_user()
    site_mod = f.make_user(site_role="moderator")
    org = f.make_org(owner=owner)
    scope(scoped_mod, org)
    ch = _challenge(f, fi, org, owner, nda="Keep it quiet.", body="The brief: wumpelgrist details.",
                    summary="Summary fizzlewomp.")
    mod_svc.file_report(reporter, "challenge", ch.id, "spam", "Odd.")
    auth.login(scoped_mod.email)
    r = client.get(f"/moderation/case/challenge/{ch.id}")
    assert r.status_code == 200 and b"fizzlewomp" in r.data and b"wumpelgrist" not in r.data
    auth.logout()
    auth.login(site_mod.email)  # moderators need not accept the NDA
    assert b"wumpelgrist" in client.get(f"/moderation/case/challenge/{ch.id}").data


# --------------------------------------------------------------------------- a challenge hidden after ideas came in


@pytest.mark.parametrize("app", BACKENDS, indirect=True)
def test_an_author_keeps_their_idea_but_not_the_challenge_moderators_hid(f, fi, client, auth):
    """GET /ideas/<id>, /ideas/<id>/team, /ideas/mine, /ideas/receipts/<id>(.json),
    /moderation/report/idea/<id> and search as the idea's author, after moderators hid its challenge: the idea is theirs,
    the challenge's title and tags are not."""
    owner, author = f.make_user(), f.make_user()
    site_mod = f.make_user(site_role="moderator")
    org = f.make_org(owner=owner)
    ch = _challenge(f, fi, org, owner, title="Gobbledyflux challenge", tags=("flumtag",))
    idea = fi.submit(author, ch, title="Idea quandrofax")
    mod_svc.take_action(site_mod, "challenge", ch.id, "hide", "Off topic.")
    acc = db.session.execute(select(TermsAcceptance).where(TermsAcceptance.idea_id == idea.id)).scalar()
    auth.login(author.email)
    for url in (f"/ideas/{idea.id}", f"/ideas/{idea.id}/team", "/ideas/mine", f"/ideas/receipts/{acc.id}",
                f"/moderation/report/idea/{idea.id}"):
        r = client.get(url)
        assert r.status_code == 200 and b"Gobbledyflux" not in r.data, url
    assert b"quandrofax" in client.get(f"/ideas/{idea.id}").data
    assert json.loads(client.get(f"/ideas/receipts/{acc.id}.json").data)["challenge_title"] is None
    found = client.get("/api/search?q=quandrofax").get_json()
    assert [h["key"] for h in found["results"]] == [f"idea:{idea.id}"]
    assert "Gobbledyflux" not in json.dumps(found)
    assert client.get("/api/search?q=tag:flumtag").get_json()["total"] == 0
    assert client.get("/search?q=quandrofax").status_code == 200
    assert b"flumtag" not in client.get("/search?q=quandrofax").data
    # The organisation, which still sees the challenge, still sees it named.
    hit = search.search(owner, "quandrofax").hits[0]
    assert "Gobbledyflux" in " ".join(hit.meta)


# --------------------------------------------------------------------------- search and NDAs


@pytest.mark.parametrize("app", BACKENDS, indirect=True)
def test_search_neither_finds_nor_shows_a_brief_under_an_nda(f, fi, client):
    """GET /search and /api/search as anyone who sees the challenge: a brief under an NDA is
    not indexed (so not found by its words, nor shown in snippets); a terms version that adds
    an NDA takes the brief out of the index."""
    owner = f.make_user()
    org = f.make_org(owner=owner)
    under = _challenge(f, fi, org, owner, nda="Keep it quiet.", title="Snazzlebrook challenge",
                       body="Brief with flibbertigrub words.", context="Context krumplehorn.",
                       context_html="<p>Context krumplehorn.</p>")
    for word in ("flibbertigrub", "krumplehorn"):
        assert client.get(f"/api/search?q={word}").get_json()["total"] == 0
    r = client.get("/api/search?q=Snazzlebrook").get_json()
    assert r["total"] == 1 and "flibbertigrub" not in json.dumps(r)
    # No NDA yet: the brief is searchable; the NDA arrives with a new terms version.
    later = _challenge(f, fi, org, owner, body="Brief with wobblefrotz words.")
    assert client.get("/api/search?q=wobblefrotz").get_json()["total"] == 1
    fi.set_terms(owner, later, confidentiality="open", nda_text="From now on, keep it quiet.")
    assert client.get("/api/search?q=wobblefrotz").get_json()["total"] == 0
    assert under.id != later.id


# --------------------------------------------------------------------------- appointments to drafts


def test_a_reviewer_appointed_to_a_draft_is_not_told_its_title(f, client, auth):
    """The appointment e-mail, /ideas/reviewing as the reviewer and /notifications/mail-log as
    a site admin: a draft challenge is named to no one but its organisation's owners and admins."""
    owner, reviewer = f.make_user(), f.make_user()
    site_admin = f.make_user(site_role="admin")
    org = f.make_org(owner=owner, members=(reviewer,))
    draft = f.make_item(org, kind="challenge", visibility="public", status="draft", title="Draft blorptastic")
    ideas_svc.appoint_reviewer(owner, draft, reviewer.email)
    mail = db.session.execute(select(OutgoingMail).where(OutgoingMail.to_email == reviewer.email)).scalar_one()
    assert "blorptastic" not in mail.subject + mail.body and org.name in mail.body
    auth.login(reviewer.email)
    r = client.get("/ideas/reviewing")
    assert r.status_code == 200 and b"blorptastic" not in r.data
    auth.logout()
    auth.login(site_admin.email)
    r = client.get("/notifications/mail-log")
    assert r.status_code == 200 and b"blorptastic" not in r.data
    # Appointed to a published challenge, the reviewer is told which.
    ch = f.make_item(org, kind="challenge", visibility="public", title="Open snickerwhump")
    ideas_svc.appoint_reviewer(owner, ch, reviewer.email)
    assert db.session.execute(select(OutgoingMail).where(OutgoingMail.subject.contains("snickerwhump"))).first()


# --------------------------------------------------------------------------- notifications


def test_a_notification_is_shown_only_while_its_reader_may_see_what_it_names(f, client, auth):
    """GET /notifications/ as a list member told about an `invited` item that moderators hid
    afterwards: the message named the item, so it is withheld (and shown again on restore)."""
    owner, curator, member = f.make_user(), f.make_user(), f.make_user()
    site_mod = f.make_user(site_role="moderator")
    org = f.make_org(owner=owner)
    cluster = f.make_org(kind="cluster", owner=curator)
    lst = lists_svc.create_list(curator, cluster, "Experts")
    lists_svc.add_member(curator, lst, user=member)
    lists_svc.share(curator, lst, org)
    item = f.make_item(org, kind="asset", visibility="invited", title="Listed grommelfax")
    lists_svc.attach(owner, item, lst)
    n = db.session.execute(select(Notification).where(Notification.user_id == member.id,
                                                      Notification.kind == "list.invited")).scalar_one()
    assert "grommelfax" in n.message and (n.about_type, n.about_id) == ("items", item.id)
    auth.login(member.email)
    assert b"grommelfax" in client.get("/notifications/").data
    mod_svc.take_action(site_mod, "asset", item.id, "hide", "Off topic.")
    page = client.get("/notifications/").data
    assert b"grommelfax" not in page and b"something you can no longer see" in page
    assert b"added you to its invitation list" in page  # a notification about nothing in particular stays
    mod_svc.take_action(site_mod, "asset", item.id, "restore", "On reflection, fine.")
    assert b"grommelfax" in client.get("/notifications/").data
