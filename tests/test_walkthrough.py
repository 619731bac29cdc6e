"""What a walk-through as a new user found (issue 10), each fixed and held here: requests
from people without an organisation, confirmations, the terms form's errors, choosing
organisations by name, archived items and drafts in lists, excerpts, search badges and tags,
demo challenges and their terms, the sealed-idea view log, reviewers, list curators."""
from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from marketplace import demo, policy
from marketplace.extensions import db
from marketplace.models import AccessGrant, Item, ItemList, ListMember, ModeratorScope, SealedViewLog, utcnow
from marketplace.models.engagement import AssetRequest
from marketplace.services import engagement as engagement_svc
from marketplace.services import ideas as ideas_svc
from marketplace.services import terms as terms_svc

from .factories_engagement import EngagementWorld
from .factories_ideas import IdeaFactories


def text_of(r) -> str:
    return html.unescape(r.get_data(as_text=True))


@pytest.fixture
def fi(f):
    return IdeaFactories(f)


# --------------------------------------------------------------------------- requests


def test_a_contributor_without_an_organisation_sends_a_request_as_the_page_posts_it(f, client, auth):
    w = EngagementWorld(f)
    asset = w.item("asset", "public", {"request_rule": "registered"})
    t = engagement_svc.current_terms(asset)
    auth.login(w.outsider.email)
    page = client.get(f"/assets/{asset.id}").get_data(as_text=True)
    assert 'name="on_behalf_of"' not in page  # nobody to speak for: the field is not shown
    # Exactly what the browser sends: no on_behalf_of at all.
    r = client.post(f"/engage/assets/{asset.id}/request", data={
        "kind": "licence", "message": "We would like a research licence.",
        "terms_version": str(t.version), "terms_digest": t.digest})
    assert r.status_code == 302, text_of(r)
    req = db.session.execute(select(AssetRequest)).scalar_one()
    assert req.author_id == w.outsider.id and req.requester_org_id is None


def test_an_error_on_any_field_names_that_field(f, client, auth):
    w = EngagementWorld(f)
    asset = w.item("asset", "public", {"request_rule": "registered"})
    auth.login(w.outsider.email)
    r = client.post(f"/engage/assets/{asset.id}/request", data={"kind": "licence", "on_behalf_of": "999"})
    assert r.status_code == 400
    page = text_of(r)
    summary = page[page.index("error-summary"):]
    assert re.search(r'<a href="#on_behalf_of">Sent by</a>: Not a valid choice', summary)
    assert "Please correct the errors below." not in page


# --------------------------------------------------------------------------- confirmations


def test_award_decline_and_close_ask_in_the_page_without_inline_script(f, fi, client, auth):
    s = fi.challenge(confidentiality="open")
    author = f.make_user()
    idea = fi.submit(author, s.challenge)
    ideas_svc.shortlist_idea(s.owner, idea)
    auth.login(s.owner.email)
    page = client.get(f"/ideas/{idea.id}").get_data(as_text=True)
    assert re.search(r'action="/ideas/\d+/award" class="stacked" data-confirm="Award', page)
    assert re.search(r'action="/ideas/\d+/decline" class="stacked" data-confirm="Decline', page)
    item_page = client.get(f"/challenges/{s.challenge.id}").get_data(as_text=True)
    assert 'data-confirm="Close the challenge' in item_page
    for p in (page, item_page):
        assert "<script>" not in p and "onsubmit" not in p and "onclick" not in p
    # Without JavaScript: a confirmation page that re-posts the form, and nothing done yet.
    r = client.post(f"/challenges/{s.challenge.id}/status", data={"status": "closed"})
    confirm = text_of(r)
    assert r.status_code == 200 and "Close the challenge?" in confirm
    assert '<input type="hidden" name="status" value="closed">' in confirm
    assert '<input type="hidden" name="confirmed" value="yes">' in confirm
    assert f'href="/challenges/{s.challenge.id}">Cancel</a>' in confirm
    assert db.session.get(Item, s.challenge.id).status == "open"
    r = client.post(f"/challenges/{s.challenge.id}/status", data={"status": "closed", "confirmed": "yes"})
    assert r.status_code == 302
    db.session.expire_all()
    assert db.session.get(Item, s.challenge.id).status == "closed"
    # Reopening asks nothing.
    assert client.post(f"/challenges/{s.challenge.id}/status", data={"status": "open"}).status_code == 302


def test_the_confirmation_script_is_static_and_adds_the_confirmed_field(app):
    with open(app.static_folder + "/js/site.js", encoding="utf-8") as fh:
        js = fh.read()
    assert 'getAttribute("data-confirm")' in js and 'input.name = "confirmed"' in js


# --------------------------------------------------------------------------- the terms form


def test_the_terms_form_marks_required_fields_and_shows_every_error_at_once(f, client, auth):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    ch = f.make_item(org, status="draft")
    auth.login(owner.email)
    form = client.get(f"/challenges/{ch.id}/terms/edit").get_data(as_text=True)
    for name in terms_svc.TEXT_FIELDS:
        assert re.search(rf'<textarea[^>]*id="{name}"[^>]*required|<input[^>]*id="{name}"[^>]*required', form), name
        label = re.search(rf'<label for="{name}">[^<]*</label>\s*<span class="required-mark"', form)
        assert label, name
    assert not re.search(r'<textarea[^>]*id="nda_text"[^>]*required', form)  # optional stays unmarked
    data = {"ip_model": "open-licence", "open_licence": "", "confidentiality": "open",
            "reveal_at": "2999-01-01T10:00", "incentives-0-kind": "cash-prize", "incentives-0-amount": "-5",
            "incentives-0-currency": "EUR", "incentives-1-kind": "", "incentives-2-kind": "royalty-share",
            "incentives-2-percentage": "300", "incentives-2-base": "sales"}  # every row, as a browser posts
    r = client.post(f"/challenges/{ch.id}/terms/edit", data=data)
    assert r.status_code == 400
    page = text_of(r)
    summary = page[page.index("error-summary"):page.index("</ul>", page.index("error-summary"))]
    for name in terms_svc.TEXT_FIELDS:
        assert f'<a href="#{name}">' in summary, name
    assert '<a href="#open_licence">' in summary and "Name the open licence" in summary
    assert '<a href="#reveal_at">' in summary and "only applies to sealed ideas" in summary
    assert '<a href="#incentives-0-amount">Incentive 1: Amount</a>' in summary and "positive" in summary
    assert '<a href="#incentives-2-percentage">Incentive 3: Percentage</a>' in summary and "at most 100" in summary
    assert "these 12 errors" in summary
    assert terms_svc.terms_versions(ch.id) == []


def test_incentive_rows_are_labelled_per_row(f, client, auth):
    owner = f.make_user()
    ch = f.make_item(f.make_org(owner=owner), status="draft")
    auth.login(owner.email)
    form = client.get(f"/challenges/{ch.id}/terms/edit").get_data(as_text=True)
    for i in range(1, 6):
        assert f"<legend>Incentive {i}</legend>" in form
        assert re.search(rf'<label for="incentives-{i - 1}-amount"><span class="visually-hidden">Incentive {i}: '
                         r'</span>Amount</label>', form)


# --------------------------------------------------------------------------- organisations by name


def test_organisations_are_chosen_by_name(f, client, auth):
    owner, guest_owner = f.make_user(), f.make_user()
    org = f.make_org(name="Acme Robotics", owner=owner)
    guests = f.make_org(name="Techville University", kind="university", owner=guest_owner)
    item = f.make_item(org, visibility="invited")
    auth.login(owner.email)
    page = client.get(f"/challenges/{item.id}/access").get_data(as_text=True)
    assert 'list="organisation-names"' in page and '<option value="Techville University">' in page
    assert "short name" not in page
    r = client.post(f"/challenges/{item.id}/access", data={"org": "techville university"})
    assert r.status_code == 302
    assert db.session.execute(select(AccessGrant.org_id)).scalar_one() == guests.id
    r = client.post(f"/challenges/{item.id}/access", data={"org": "Nowhere Institute"})
    assert r.status_code == 400 and "No organisation has this name" in text_of(r)
    # The list filter takes a name too (addresses with the short name keep working).
    f.make_item(guests, title="Other org's challenge")
    listed = client.get("/challenges/", query_string={"org": "Acme Robotics"}).get_data(as_text=True)
    assert "Challenges of Acme Robotics" in listed and "Other org" not in listed
    assert "Challenges of Acme Robotics" in client.get(f"/challenges/?org={org.slug}").get_data(as_text=True)


def test_lists_and_moderator_scopes_take_organisation_names(f, client, auth):
    curator = f.make_user()
    cluster = f.make_org(name="North Sea Cluster", kind="cluster", owner=curator)
    uni = f.make_org(name="Techville University", kind="university")
    lst = f.make_list(cluster)
    auth.login(curator.email)
    page = client.get(f"/lists/{lst.id}").get_data(as_text=True)
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)  # no more id="org" twice
    assert 'for="member-org"' in page and 'for="share-org"' in page
    assert client.post(f"/lists/{lst.id}/members", data={"org": "Techville University"}).status_code == 302
    assert db.session.execute(select(ListMember.member_org_id)).scalar_one() == uni.id
    assert client.post(f"/lists/{lst.id}/shares", data={"org": "TECHVILLE UNIVERSITY"}).status_code == 302
    auth.logout()
    admin = f.make_user(site_role="admin")
    mod = f.make_user()
    auth.login(admin.email)
    assert client.post("/moderation/scopes", data={"email": mod.email, "org": "North Sea Cluster"}).status_code == 302
    assert db.session.execute(select(ModeratorScope.org_id)).scalar_one() == cluster.id


# --------------------------------------------------------------------------- lists


def test_archived_items_leave_the_default_lists(f, client):
    org = f.make_org()
    f.make_item(org, title="Live challenge")
    f.make_item(org, title="Archived challenge", status="archived")
    default = client.get("/challenges/").get_data(as_text=True)
    assert "Live challenge" in default and "Archived challenge" not in default
    archived = client.get("/challenges/?status=archived").get_data(as_text=True)
    assert "Archived challenge" in archived and "Live challenge" not in archived
    # The JSON API and the feeds are data, not the pages' default lists: they still carry
    # everything the viewer may see (tests/test_routes.py holds them to that).
    titles = [i["title"] for i in client.get("/api/v1/items").get_json()["items"]]
    assert "Live challenge" in titles and "Archived challenge" in titles


def test_only_those_who_may_see_drafts_are_offered_a_draft_filter(f, client, auth):
    owner, contributor = f.make_user(), f.make_user()
    f.make_org(owner=owner)
    for who, offered in ((None, False), (contributor, False), (owner, True)):
        auth.logout()
        if who is not None:
            auth.login(who.email)
        page = client.get("/challenges/").get_data(as_text=True)
        assert ('<option value="draft"' in page) is offered
        assert '<option value="archived"' in page
    assert policy.can(owner, "list_drafts") and not policy.can(contributor, "list_drafts")
    assert not policy.can(None, "list_drafts")


def test_excerpts_read_as_text_not_markdown(f, client):
    org = f.make_org()
    item = f.make_item(org, title="Markdown summary", summary="We crush **1 in 500** parcels, _sometimes_ `more`.")
    listed = text_of(client.get("/challenges/"))
    assert "We crush 1 in 500 parcels, sometimes more." in listed and "**" not in listed
    detail = text_of(client.get(f"/challenges/{item.id}"))
    assert "We crush 1 in 500 parcels" in detail and "**1 in 500**" not in detail
    assert "<strong>" not in listed  # text, not rendered HTML
    long = f.make_item(org, title="Long summary", summary="word " * 150)
    card = text_of(client.get("/challenges/?sort=title"))
    assert "word word…" in card and long.summary.strip() not in card


# --------------------------------------------------------------------------- search


def test_search_results_show_the_badge_and_free_text_matches_tags(f, client):
    org = f.make_org()
    f.make_item(org, title="Sensor fusion in dusty aisles", body="Cameras and lasers.", visibility="public",
                tags=("lidar", "warehouse"))
    r = client.get("/search", query_string={"q": "lidar"})
    page = r.get_data(as_text=True)
    assert "Sensor fusion in dusty aisles" in page  # the word is only a tag
    assert re.search(r'<span class="badge vis-public" title="Visibility: public">Public</span>', page)
    data = client.get("/api/search", query_string={"q": "lidar"}).get_json()
    assert [h["visibility"] for h in data["results"]] == ["public"]
    # `tag:` still filters on the exact tag.
    assert "Sensor fusion" in client.get("/search", query_string={"q": "tag:warehouse"}).get_data(as_text=True)


# --------------------------------------------------------------------------- demo data


def test_no_demo_challenge_is_open_without_terms(app, runner):
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    with app.app_context():
        open_challenges = db.session.execute(select(Item).where(Item.kind == "challenge",
                                                                Item.status == "open")).scalars().all()
        intended = {t for o, k, t, _v, st, *_r in demo.ITEMS if k == "challenge" and st == "open"}
        assert {c.title for c in open_challenges} == intended  # none had to be held back
        for ch in open_challenges:
            assert policy.current_terms(ch.id) is not None, ch.title
            assert policy.challenge_rules(ch.id) is not None, ch.title
            assert "**" not in ch.summary


def test_a_demo_challenge_that_may_not_open_is_held_back_as_a_draft(f):
    org = f.make_org(name="Acme Robotics")
    demo_one = f.make_item(org, title="Battery swap under two minutes")  # a demo title, no terms
    other = f.make_item(org, title="Someone's real challenge")  # not the demo's: left alone
    demo._close_what_may_not_open()
    db.session.commit()
    assert db.session.get(Item, demo_one.id).status == "draft"
    assert db.session.get(Item, other.id).status == "open"


# --------------------------------------------------------------------------- review


def test_the_sealed_view_log_records_a_viewer_once_a_day(f, fi, client, auth):
    s = fi.challenge(confidentiality="sealed")
    author = f.make_user()
    idea = fi.submit(author, s.challenge)
    auth.login(s.owner.email)
    for _ in range(3):
        assert client.get(f"/ideas/{idea.id}").status_code == 200
    rows = db.session.execute(select(SealedViewLog).where(SealedViewLog.idea_id == idea.id)).scalars().all()
    assert [(r.viewer_id, r.what) for r in rows] == [(s.owner.id, "idea")]
    tomorrow = utcnow() + timedelta(days=1)
    assert ideas_svc.log_sealed_view(s.owner, idea, "idea", now=tomorrow) is not None
    assert ideas_svc.log_sealed_view(s.owner, idea, "idea", now=tomorrow) is None
    assert ideas_svc.log_sealed_view(s.owner, idea, "revision 1") is not None  # another thing opened
    assert db.session.execute(select(func.count()).select_from(SealedViewLog)).scalar_one() == 3
    assert ideas_svc.log_sealed_view(author, idea) is None  # authors are never logged


def test_an_owner_who_is_not_a_reviewer_is_told_how_to_become_one(f, fi, client, auth):
    s = fi.challenge(confidentiality="open")
    idea = fi.submit(f.make_user(), s.challenge)
    auth.login(s.owner.email)
    for path in (f"/challenges/{s.challenge.id}/review", f"/ideas/{idea.id}"):
        page = text_of(client.get(path))
        assert "appoint yourself as a reviewer" in page, path
        assert f'href="/challenges/{s.challenge.id}/reviewers"' in page and s.owner.email in page
    ideas_svc.appoint_reviewer(s.owner, s.challenge, s.owner.email)
    for path in (f"/challenges/{s.challenge.id}/review", f"/ideas/{idea.id}"):
        assert "appoint yourself as a reviewer" not in text_of(client.get(path)), path
    assert "Your private notes" in text_of(client.get(f"/ideas/{idea.id}"))  # now a reviewer


def test_a_reviewer_without_the_nda_gets_the_nda_page(f, fi, client, auth):
    s = fi.challenge(confidentiality="sealed")
    judge, stranger = f.make_user(), f.make_user()
    inv = ideas_svc.appoint_reviewer(s.owner, s.challenge, judge.email, "Keep it secret.")
    ideas_svc.accept_reviewer_invitation(judge, inv.token)  # an outside judge accepts the mailed link
    auth.login(judge.email)
    r = client.get(f"/challenges/{s.challenge.id}/review")
    assert r.status_code == 302 and r.headers["Location"].endswith(f"/challenges/{s.challenge.id}/reviewer-nda")
    nda = text_of(client.get(r.headers["Location"]))
    assert "Keep it secret." in nda and "Accept the reviewer NDA to open the review dashboard." in nda
    appt = policy.reviewer_appointment(policy.viewer_for(judge), s.challenge.id)
    ideas_svc.accept_reviewer_nda(judge, appt, appt.nda_digest)
    assert client.get(f"/challenges/{s.challenge.id}/review").status_code == 200
    auth.logout()
    auth.login(stranger.email)
    r = client.get(f"/challenges/{s.challenge.id}/review")
    assert r.status_code == 403 and "reviewers" in text_of(r)


# --------------------------------------------------------------------------- list curators


def test_curators_see_where_their_lists_are_attached(f, client, auth):
    curator, acme_owner, outsider = f.make_user(), f.make_user(), f.make_user()
    cluster = f.make_org(name="Cluster", kind="cluster", owner=curator)
    acme = f.make_org(name="Acme Robotics", owner=acme_owner)
    lst = f.make_list(cluster, name="Trusted experts")
    secret = f.make_item(acme, title="Secret lidar brief", visibility="invited")
    public = f.make_item(acme, title="Public gripper brief", visibility="public")
    f.attach_list(secret, lst)
    f.attach_list(public, lst)
    auth.login(curator.email)
    page = text_of(client.get(f"/lists/{lst.id}"))
    assert "Public gripper brief" in page  # may see it: title and link
    assert "A challenge of Acme Robotics" in page and "Secret lidar brief" not in page
    assert "you are not among those who may open it" in page
    index = text_of(client.get("/lists/"))
    assert "attached to 2 items" in index
    # The policy: every use to the curator; the item only where they may see it.
    v = policy.viewer_for(curator)
    uses = db.session.execute(select(ItemList).where(ItemList.list_id == lst.id)).scalars().all()
    assert policy.can(curator, "see_uses", lst)
    assert {a.item_id for a in uses if policy.list_use_reveals_item(v, a)} == {public.id}
    assert policy.list_uses_revealing_items(v, lst, uses) == {a.id for a in uses if a.item_id == public.id}
    # Once on the list, the curator sees the item itself.
    f.add_to_list(lst, user=curator)
    assert "Secret lidar brief" in text_of(client.get(f"/lists/{lst.id}"))
    # Acme's owner (the list is shared with nobody here) and outsiders do not see the list's uses.
    for who in (acme_owner, outsider):
        assert not policy.can(who, "see_uses", lst)
        assert policy.list_uses_revealing_items(policy.viewer_for(who), lst, uses) == set()
