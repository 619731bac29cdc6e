"""The per-challenge decision log: who may see it, what it shows, and what it keeps sealed."""
from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace.models import utcnow
from marketplace.services import engagement as eng_svc
from marketplace.services import ideas as ideas_svc
from marketplace.services import items as items_svc
from marketplace.services import moderation as svc

from .factories import appoint_reviewer
from .factories_ideas import IdeaFactories


@pytest.fixture
def ideas(f):
    return IdeaFactories(f)


def test_decision_log_visibility_follows_the_challenge(f, client, auth):
    owner = f.make_user()
    member = f.make_user()
    outsider = f.make_user()
    org = f.make_org(owner=owner, members=(member,))
    public = f.make_item(org, kind="challenge", visibility="public")
    internal = f.make_item(org, kind="challenge", visibility="organisation")
    failure = f.make_item(org, kind="failure", visibility="public")
    draft = f.make_item(org, kind="challenge", visibility="public", status="draft")
    assert client.get(f"/challenges/{public.id}/decisions").status_code == 200
    for item_id in (internal.id, failure.id, draft.id, 999999):
        assert client.get(f"/challenges/{item_id}/decisions").status_code == 404
    auth.login(outsider.email)
    assert client.get(f"/challenges/{internal.id}/decisions").status_code == 404
    auth.logout()
    auth.login(member.email)
    assert client.get(f"/challenges/{internal.id}/decisions").status_code == 200
    assert client.get(f"/challenges/{draft.id}/decisions").status_code == 404  # drafts: org admins only
    auth.logout()
    auth.login(owner.email)
    assert client.get(f"/challenges/{draft.id}/decisions").status_code == 200


def test_decision_log_lists_governance_decisions_without_leaking_sealed_titles(f, ideas, client, auth):
    s = ideas.challenge(confidentiality="sealed")
    outsider = f.make_user()
    author = f.make_user(email="author@a.test")
    mod = f.make_user(name="Mona Moderator", site_role="moderator")
    # Terms v2 (what changed), rules change, deadline change, reviewer appointment.
    ideas.set_terms(s.owner, s.challenge, confidentiality="sealed", territory="Europe only.")
    ideas.set_rules(s.owner, s.challenge, max_ideas_per_contributor=2)
    items_svc.update_item(s.owner, s.challenge, {"deadline": utcnow() + timedelta(days=60)})
    judge = f.make_user(name="Jules Judge")
    appoint_reviewer(s.owner, s.challenge, judge, "Keep it secret.")
    # A sealed idea is shortlisted; a question is hidden by a moderator.
    idea = ideas.submit(author, s.challenge, title="Top secret gripper", body="A confidential mechanism.")
    ideas_svc.shortlist_idea(s.owner, idea)
    q = eng_svc.ask_question(outsider, s.challenge, "Is this a scam? Call me at 555-0100.")
    svc.file_report(s.owner, "question", q.id, "confidential-information", "Phone number.")
    svc.take_action(mod, "question", q.id, "hide", "Personal data removed.")
    svc.take_action(mod, "question", q.id, "request-edit", "Please rephrase without data.")

    url = f"/challenges/{s.challenge.id}/decisions"
    auth.login(outsider.email)
    page = client.get(url).data.decode()
    assert "Terms version 1 published" in page and "Terms version 2 published" in page
    assert "territory" in page  # what changed between versions
    assert "Participation rules changed" in page and "max ideas per contributor" in page
    assert "Deadline changed" in page
    assert "Appointed a reviewer (outside judge)" in page and "Jules Judge" not in page
    assert f"Shortlisted: idea #{idea.id}" in page and "Top secret gripper" not in page
    assert "Hidden by moderators: question #" in page and "Personal data removed." in page
    assert "Mona Moderator" in page  # who decided
    assert "555-0100" not in page
    auth.logout()
    # The posting organisation may read the sealed idea: it sees the title, and the judge's name.
    auth.login(s.owner.email)
    page = client.get(url).data.decode()
    assert "Shortlisted: idea “Top secret gripper”" in page and "Jules Judge" in page
    auth.logout()
    # The challenge page links to the log.
    assert url.encode() in client.get(f"/challenges/{s.challenge.id}").data


def test_dismissals_and_account_decisions_stay_out_of_the_log(f, client):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    ch = f.make_item(org, kind="challenge", visibility="public")
    mod = f.make_user(site_role="moderator")
    reporter = f.make_user()
    svc.file_report(reporter, "challenge", ch.id, "spam", "Spam?")
    svc.take_action(mod, "challenge", ch.id, "dismiss", "Not spam, a real challenge.")
    svc.take_action(mod, "user", reporter.id, "suspend", "Report abuse.", days=2)
    page = client.get(f"/challenges/{ch.id}/decisions").data.decode()
    assert "Not spam" not in page and "Report abuse" not in page and "suspend" not in page.lower()
