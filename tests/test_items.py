"""Challenges, failures and assets through their pages: create, edit, publish, list, filter,
order, paginate; visibility badges; bad input (a form error or a 4xx with a message, never a
500, never a partial record); Markdown sanitised."""
from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from marketplace.extensions import db
from marketplace.models import AccessGrant, AuditEvent, Item, ItemTag, utcnow
from marketplace.services import items as items_svc

from .factories import Factories

PLURAL = {"challenge": "challenges", "failure": "failures", "asset": "assets"}


def fmt(dt):
    return dt.strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def acme(app):
    """Acme (owner, admin, member), another organisation, an outsider. Ids and e-mails only:
    requests run in their own application contexts."""
    with app.app_context():
        f = Factories()
        owner = f.make_user(email="owner@acme.test", name="Alice Owner")
        admin = f.make_user(email="admin@acme.test")
        member = f.make_user(email="member@acme.test")
        outsider = f.make_user(email="outsider@example.test")
        other_owner = f.make_user(email="owner@other.test")
        org = f.make_org(name="Acme Robotics", owner=owner, admins=(admin,), members=(member,))
        other = f.make_org(name="Other Co", owner=other_owner)
        return SimpleNamespace(org_id=org.id, org_slug=org.slug, other_id=other.id, other_slug=other.slug,
                               owner_id=owner.id, outsider_id=outsider.id)


@pytest.fixture
def indb(app):
    """Run fn(factories) in a short application context and return its result."""
    def run(fn):
        with app.app_context():
            return fn(Factories())
    return run


@pytest.fixture
def no_open_checks(monkeypatch):
    """Publishing a challenge needs a terms sheet (ideas feature, OPEN_CHECKS); the foundation
    tests of publication run without feature checks, and one test checks they are honoured."""
    monkeypatch.setattr(items_svc, "OPEN_CHECKS", [])


def count(app, model=Item):
    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def load(app, item_id):
    with app.app_context():
        it = db.session.get(Item, item_id)
        if it is not None:
            it.tags  # noqa: B018 - load before the context closes
            db.session.expunge(it)
        return it


def audit_actions(app, item_id=None):
    with app.app_context():
        q = select(AuditEvent.action).order_by(AuditEvent.id)
        if item_id is not None:
            q = q.where(AuditEvent.item_id == item_id)
        return db.session.execute(q).scalars().all()


def challenge_form(**kw):
    data = {"title": "Grip fragile parcels", "summary": "Soft parcels get crushed",
            "body": "Our robots crush **1 in 500** parcels.", "tags": "Robotics, grippers, robotics",
            "visibility": "registered", "context": "Mixed parcels", "expected_outcome": "A prototype",
            "incentive_summary": "EUR 20,000", "deadline": fmt(utcnow() + timedelta(days=30)),
            "save": "Save as draft"}
    data.update(kw)
    return {k: v for k, v in data.items() if v is not None}


FAILURE_FORM = {"title": "Suction on cardboard", "body": "We tried suction.", "went_wrong": "Leaks",
                "lessons": "Measure porosity", "visibility": "public", "tags": "grippers"}
ASSET_FORM = {"title": "Wave tank", "body": "A 50 m tank.", "asset_kind": "equipment",
              "availability": "Two weeks a quarter", "licensing_note": "Collaboration only",
              "visibility": "public"}


def new_id(resp):
    m = re.search(r"/(challenges|failures|assets)/(\d+)$", resp.headers["Location"])
    assert m, resp.headers.get("Location")
    return int(m.group(2))


# --------------------------------------------------------------------------- create and edit


def test_owner_creates_a_draft_challenge(app, client, auth, acme):
    auth.login("owner@acme.test")
    r = client.post(f"/challenges/new?org={acme.org_id}", data=challenge_form())
    assert r.status_code == 302
    item = load(app, new_id(r))
    assert (item.kind, item.status, item.visibility, item.org_id) == ("challenge", "draft", "registered", acme.org_id)
    assert item.tags == ["grippers", "robotics"]  # normalised, de-duplicated
    assert "<strong>1 in 500</strong>" in item.body_html
    assert item.published_at is None
    assert audit_actions(app, item.id) == ["item.created"]
    page = client.get(f"/challenges/{item.id}")
    assert page.status_code == 200 and b"Grip fragile parcels" in page.data and b"vis-registered" in page.data


def test_admin_publishes_a_failure_and_an_asset(app, client, auth, acme):
    auth.login("admin@acme.test")
    r = client.post(f"/failures/new?org={acme.org_id}", data={**FAILURE_FORM, "publish": "Publish"})
    assert r.status_code == 302
    failure = load(app, new_id(r))
    assert failure.status == "open" and failure.published_at is not None
    assert "Measure porosity" in failure.lessons_html
    r = client.post(f"/assets/new?org={acme.org_id}", data={**ASSET_FORM, "publish": "Publish"})
    asset = load(app, new_id(r))
    assert (asset.kind, asset.asset_kind, asset.status) == ("asset", "equipment", "open")


def test_publishing_a_challenge(app, client, auth, acme, no_open_checks):
    auth.login("owner@acme.test")
    r = client.post(f"/challenges/new?org={acme.org_id}", data=challenge_form(save=None, publish="Publish"))
    assert r.status_code == 302
    assert load(app, new_id(r)).status == "open"


def test_feature_open_checks_are_honoured(app, client, auth, acme, monkeypatch):
    monkeypatch.setattr(items_svc, "OPEN_CHECKS", [lambda item: "Add the terms sheet first."])
    auth.login("owner@acme.test")
    before = count(app)
    r = client.post(f"/challenges/new?org={acme.org_id}", data=challenge_form(save=None, publish="Publish"))
    assert r.status_code == 400 and b"Add the terms sheet first." in r.data
    assert count(app) == before


def test_member_may_not_post(app, client, auth, acme):
    auth.login("member@acme.test")
    before = count(app)
    r = client.post(f"/challenges/new?org={acme.org_id}", data=challenge_form())
    assert r.status_code == 403 and b"owner or admin" in r.data
    assert count(app) == before


def test_posting_for_another_organisation_is_refused(app, client, auth, acme):
    """A forged org id (of an organisation one does not run) posts nothing."""
    auth.login("owner@acme.test")
    before = count(app)
    for org in (acme.other_id, 999999):
        r = client.post(f"/challenges/new?org={org}", data=challenge_form())
        assert r.status_code == 403
        assert b"cannot post for that organisation" in r.data
    assert count(app) == before


def test_edit_saves_and_audits_only_real_deadline_changes(app, client, auth, acme, indb):
    from marketplace.models import Organisation

    iid = indb(lambda f: f.make_item(db.session.get(Organisation, acme.org_id), visibility="public").id)
    auth.login("owner@acme.test")
    page = client.get(f"/challenges/{iid}/edit")
    assert page.status_code == 200 and b"vis-public" in page.data
    shown = re.search(r'id="deadline"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*id="deadline"', page.text)
    shown_deadline = next(g for g in shown.groups() if g)
    r = client.post(f"/challenges/{iid}/edit", data=challenge_form(title="Renamed", deadline=shown_deadline,
                                                                  save="Save"))
    assert r.status_code == 302
    item = load(app, iid)
    assert item.title == "Renamed"
    # The form shows the deadline to the minute; sending it back unchanged is no change.
    assert "challenge.deadline_changed" not in audit_actions(app, iid)
    later = fmt(utcnow() + timedelta(days=60))
    assert client.post(f"/challenges/{iid}/edit", data=challenge_form(deadline=later, save="Save")).status_code == 302
    assert audit_actions(app, iid).count("challenge.deadline_changed") == 1
    assert fmt(load(app, iid).deadline) == later


def test_a_challenge_past_its_deadline_can_still_be_edited(app, client, auth, acme, indb):
    from marketplace.models import Organisation

    past = (utcnow() - timedelta(days=2)).replace(second=17)
    iid = indb(lambda f: f.make_item(db.session.get(Organisation, acme.org_id), deadline=past).id)
    auth.login("owner@acme.test")
    r = client.post(f"/challenges/{iid}/edit", data=challenge_form(title="Fixed a typo", deadline=fmt(past),
                                                                  save="Save"))
    assert r.status_code == 302
    item = load(app, iid)
    assert item.title == "Fixed a typo" and item.deadline == past


def test_refused_publication_on_edit_saves_nothing(app, client, auth, acme, indb, monkeypatch):
    """Edit + publish is one transaction: if publishing is refused, the edit is not saved."""
    from marketplace.models import Organisation

    iid = indb(lambda f: f.make_item(db.session.get(Organisation, acme.org_id), kind="failure",
                                     status="draft", title="Original title").id)
    monkeypatch.setattr(items_svc, "OPEN_CHECKS", [lambda item: "Not ready to open."])
    auth.login("owner@acme.test")
    before = audit_actions(app)
    r = client.post(f"/failures/{iid}/edit", data={**FAILURE_FORM, "title": "New title", "publish": "Publish"})
    assert r.status_code == 400 and b"Not ready to open." in r.data
    item = load(app, iid)
    assert (item.title, item.status) == ("Original title", "draft")
    assert audit_actions(app) == before


def test_publishing_a_draft_challenge_without_deadline_is_a_form_error(app, client, auth, acme, indb):
    from marketplace.models import Organisation

    iid = indb(lambda f: f.make_item(db.session.get(Organisation, acme.org_id), status="draft",
                                     title="No deadline yet", deadline=None).id)
    auth.login("owner@acme.test")
    r = client.post(f"/challenges/{iid}/edit", data=challenge_form(title="Changed", deadline="", save=None,
                                                                  publish="Publish"))
    assert r.status_code == 400
    assert b"needs a deadline before it can be published" in r.data
    item = load(app, iid)
    assert (item.title, item.status) == ("No deadline yet", "draft")


def test_publishing_from_the_edit_page(app, client, auth, acme, indb, no_open_checks):
    from marketplace.models import Organisation

    iid = indb(lambda f: f.make_item(db.session.get(Organisation, acme.org_id), status="draft").id)
    auth.login("admin@acme.test")
    r = client.post(f"/challenges/{iid}/edit", data=challenge_form(save=None, publish="Publish"))
    assert r.status_code == 302
    item = load(app, iid)
    assert item.status == "open" and item.published_at is not None
    assert audit_actions(app, iid)[-1] == "item.status_changed"


def test_status_visibility_and_delete(app, client, auth, acme, indb):
    from marketplace.models import Organisation

    iid = indb(lambda f: f.make_item(db.session.get(Organisation, acme.org_id), kind="asset").id)
    auth.login("owner@acme.test")
    assert client.post(f"/assets/{iid}/visibility", data={"visibility": "invited"}).status_code == 302
    # Closing asks first (a confirmation page without JavaScript); confirmed, it acts.
    r = client.post(f"/assets/{iid}/status", data={"status": "closed"})
    assert r.status_code == 200 and b"Close the asset?" in r.data and load(app, iid).status == "open"
    assert client.post(f"/assets/{iid}/status", data={"status": "closed", "confirmed": "yes"}).status_code == 302
    assert (load(app, iid).visibility, load(app, iid).status) == ("invited", "closed")
    r = client.post(f"/assets/{iid}/status", data={"status": "draft"}, follow_redirects=True)
    assert b"cannot become draft" in r.data and load(app, iid).status == "closed"
    r = client.post(f"/assets/{iid}/delete")
    assert r.status_code == 409 and b"archive them instead" in r.data
    assert client.post(f"/assets/{iid}/status", data={"status": "archived", "confirmed": "yes"}).status_code == 302
    assert client.get(f"/assets/{iid}/edit").status_code == 403  # archived items are frozen
    assert audit_actions(app, iid) == ["item.visibility_changed", "item.status_changed", "item.status_changed"]
    draft = indb(lambda f: f.make_item(db.session.get(Organisation, acme.org_id), status="draft").id)
    assert client.post(f"/challenges/{draft}/delete").status_code == 302
    assert load(app, draft) is None
    assert audit_actions(app, draft) == ["item.deleted"]


# --------------------------------------------------------------------------- bad input

BAD_CREATE = [
    ("title", "x" * 201, b"At most 200 characters."),
    ("title", "", b"Give it a title."),
    ("title", "    ", b"Give it a title."),
    ("summary", "s" * 501, b"At most 500 characters."),
    ("body", "", b"Describe the problem."),
    ("body", "b" * 50_001, b"At most 50,000 characters."),
    ("tags", "t," * 201, b"Field cannot be longer than 400 characters."),
    ("visibility", "secret", b"Not a valid choice"),
    ("visibility", "", b"Not a valid choice"),
    ("deadline", "tomorrow", b"Not a valid datetime value"),
    ("deadline", fmt(utcnow() - timedelta(days=1)), b"The deadline must be in the future."),
    ("opens_at", fmt(utcnow() + timedelta(days=90)), b"The deadline must be after the opening time."),
    ("incentive_summary", "i" * 301, b"Field cannot be longer than 300 characters."),
    ("context", "c" * 50_001, b"At most 50,000 characters."),
]


@pytest.mark.parametrize("field,value,message", BAD_CREATE, ids=[f"{f}-{i}" for i, (f, _v, _m) in enumerate(BAD_CREATE)])
def test_bad_challenge_input_is_a_form_error(app, client, auth, acme, field, value, message):
    auth.login("owner@acme.test")
    before = (count(app), count(app, ItemTag), count(app, AuditEvent))
    r = client.post(f"/challenges/new?org={acme.org_id}", data=challenge_form(**{field: value}))
    assert r.status_code == 400
    assert message in r.data
    assert (count(app), count(app, ItemTag), count(app, AuditEvent)) == before


@pytest.mark.parametrize("field,value,message", [
    ("asset_kind", "spaceship", b"Not a valid choice"),
    ("asset_kind", "", b"Not a valid choice"),
    ("availability", "a" * 50_001, b"At most 50,000 characters."),
])
def test_bad_asset_input_is_a_form_error(app, client, auth, acme, field, value, message):
    auth.login("owner@acme.test")
    before = count(app)
    r = client.post(f"/assets/new?org={acme.org_id}", data={**ASSET_FORM, field: value})
    assert r.status_code == 400 and message in r.data
    assert count(app) == before


@pytest.mark.parametrize("field,value,message", [
    ("title", "", b"Give it a title."),
    ("title", "x" * 201, b"At most 200 characters."),
    ("deadline", fmt(utcnow() - timedelta(hours=1)), b"The deadline must be in the future."),
    ("deadline", "", b"A published challenge needs a deadline."),
    ("deadline", "31/12/2030", b"Not a valid datetime value"),
])
def test_bad_edit_changes_nothing(app, client, auth, acme, indb, field, value, message):
    from marketplace.models import Organisation

    iid = indb(lambda f: f.make_item(db.session.get(Organisation, acme.org_id), title="Stable title").id)
    before = load(app, iid)
    auth.login("admin@acme.test")
    r = client.post(f"/challenges/{iid}/edit", data=challenge_form(save="Save", **{field: value}))
    assert r.status_code == 400 and message in r.data
    after = load(app, iid)
    assert (after.title, after.deadline, after.body) == (before.title, before.deadline, before.body)
    assert audit_actions(app, iid) == []


@pytest.mark.parametrize("query,message", [
    ("status=pending", b"Unknown status"),
    ("sort=random", b"Unknown ordering"),
    ("page=abc", b"whole number"),
    ("page=0", b"out of range"),
    ("page=-3", b"out of range"),
    ("page=10001", b"out of range"),
    ("status=%00", b"Unknown status"),
])
@pytest.mark.parametrize("kind", list(PLURAL))
def test_bad_query_strings_are_400_with_a_message(client, acme, kind, query, message):
    r = client.get(f"/{PLURAL[kind]}/?{query}")
    assert r.status_code == 400 and message in r.data


def test_bad_posts_to_item_actions(app, client, auth, acme, indb):
    from marketplace.models import Organisation

    iid = indb(lambda f: f.make_item(db.session.get(Organisation, acme.org_id), visibility="invited").id)
    auth.login("owner@acme.test")
    before = (load(app, iid).visibility, load(app, iid).status, count(app, AccessGrant), count(app, AuditEvent))
    r = client.post(f"/challenges/{iid}/visibility", data={"visibility": "everyone"})
    assert r.status_code == 400 and b"visibility levels" in r.data
    r = client.post(f"/challenges/{iid}/status", data={"status": "published"})
    assert r.status_code == 400 and b"Unknown status" in r.data
    r = client.post(f"/challenges/{iid}/status", data={})
    assert r.status_code == 400
    for data, msg in [({}, b"either a person"), ({"email": "x@y.test", "org": "acme-robotics"}, b"either a person"),
                      ({"email": "nobody@nowhere.test"}, b"No account has this e-mail"),
                      ({"org": "no-such-org"}, b"No organisation has this name"),
                      ({"email": "outsider@example.test", "expires_at": fmt(utcnow() - timedelta(days=1))},
                       b"The expiry must be in the future"),
                      ({"email": "outsider@example.test", "expires_at": "soon"}, b"Not a valid datetime")]:
        r = client.post(f"/challenges/{iid}/access", data=data)
        assert r.status_code == 400 and msg in r.data, data
    assert client.post(f"/challenges/{iid}/access/999999/revoke").status_code == 404
    after = (load(app, iid).visibility, load(app, iid).status, count(app, AccessGrant), count(app, AuditEvent))
    assert after == before


def test_non_members_cannot_edit(app, client, auth, acme, indb):
    from marketplace.models import Organisation

    ids = indb(lambda f: (f.make_item(db.session.get(Organisation, acme.org_id), visibility="public").id,
                          f.make_item(db.session.get(Organisation, acme.org_id), visibility="organisation").id))
    for email in ("outsider@example.test", "owner@other.test", "member@acme.test"):
        auth.login(email)
        for iid in ids:
            r = client.post(f"/challenges/{iid}/edit", data=challenge_form(title="Hijacked", save="Save"))
            visible = iid == ids[0] or email == "member@acme.test"
            assert r.status_code == (403 if visible else 404)
            assert load(app, iid).title != "Hijacked"
        auth.logout()


def test_grants_and_their_expiry_are_audited(app, client, auth, acme, indb):
    from marketplace.models import Organisation

    iid = indb(lambda f: f.make_item(db.session.get(Organisation, acme.org_id), visibility="invited").id)
    auth.login("owner@acme.test")
    assert client.post(f"/challenges/{iid}/access", data={"email": "outsider@example.test"}).status_code == 302
    later = fmt(utcnow() + timedelta(days=5))
    assert client.post(f"/challenges/{iid}/access",
                       data={"email": "outsider@example.test", "expires_at": later}).status_code == 302
    assert client.post(f"/challenges/{iid}/access", data={"org": acme.other_slug}).status_code == 302
    with app.app_context():
        grants = db.session.execute(select(AccessGrant).where(AccessGrant.item_id == iid)
                                    .order_by(AccessGrant.id)).scalars().all()
        assert [(g.user_id, g.org_id) for g in grants] == [(acme.outsider_id, None), (None, acme.other_id)]
        assert fmt(grants[0].expires_at) == later
        gid = grants[0].id
    assert audit_actions(app, iid) == ["access.granted", "access.expiry_changed", "access.granted"]
    assert client.post(f"/challenges/{iid}/access/{gid}/revoke").status_code == 302
    assert audit_actions(app, iid)[-1] == "access.revoked"
    page = client.get(f"/challenges/{iid}/access")
    assert b"revoked" in page.data and b"vis-invited" in page.data


# --------------------------------------------------------------------------- lists


@pytest.fixture
def catalogue(app, acme):
    """25 public open challenges of Acme plus items others may not all see."""
    from marketplace.models import Organisation

    with app.app_context():
        f = Factories()
        org = db.session.get(Organisation, acme.org_id)
        other = db.session.get(Organisation, acme.other_id)
        now = utcnow()
        for n in range(25):
            it = f.make_item(org, title=f"Public challenge {n:02d}", tags=("robotics",) if n % 2 else ("energy",),
                             deadline=now + timedelta(days=50 - n))
            it.created_at = now - timedelta(hours=100 - n)
        f.make_item(org, title="Closed challenge", status="closed", deadline=now + timedelta(days=1))
        f.make_item(org, title="Members-only challenge", visibility="organisation")
        f.make_item(org, title="Draft challenge", status="draft")
        f.make_item(other, title="Zebra challenge of Other", tags=("robotics",))
        db.session.commit()


def titles(resp):
    return re.findall(r'<h3><a href="/challenges/\d+">([^<]+)</a></h3>', resp.text)


def test_list_paginates_newest_first(client, catalogue):
    r = client.get("/challenges/")
    assert r.status_code == 200
    assert b"27 challenges" in r.data  # 25 + closed + Other's; not the members-only or draft ones
    page1 = titles(r)
    assert len(page1) == 20
    assert b'rel="next"' in r.data and b"Page 1 of 2" in r.data
    page2 = titles(client.get("/challenges/?page=2"))
    assert len(page2) == 7 and not set(page1) & set(page2)
    assert client.get("/challenges/?page=3").status_code == 200 and titles(client.get("/challenges/?page=3")) == []
    assert "Members-only challenge" not in page1 + page2 and "Draft challenge" not in page1 + page2


def test_list_orderings(client, catalogue):
    by_title = titles(client.get("/challenges/?sort=title&page=2"))
    assert by_title[-1] == "Zebra challenge of Other"
    by_deadline = titles(client.get("/challenges/?sort=deadline"))
    assert by_deadline[0] == "Closed challenge" and by_deadline[1] == "Public challenge 24"
    oldest = titles(client.get("/challenges/?sort=oldest"))
    assert oldest[0] == "Public challenge 00"


def test_list_filters(client, auth, catalogue, acme):
    robotics = client.get("/challenges/?tag=Robotics")
    assert b"13 challenges" in robotics.data  # 12 of Acme + Other's
    assert client.get(f"/challenges/?org={acme.other_slug}").text.count("<h3>") == 1
    assert b"0 challenges" in client.get("/challenges/?org=no-such-org").data
    closed = titles(client.get("/challenges/?status=closed"))
    assert closed == ["Closed challenge"]
    both = titles(client.get(f"/challenges/?tag=robotics&org={acme.org_slug}&status=open&sort=title"))
    assert len(both) == 12 and both == sorted(both)
    assert titles(client.get("/challenges/?status=draft")) == []
    auth.login("owner@acme.test")
    assert titles(client.get("/challenges/?status=draft")) == ["Draft challenge"]
    assert "Members-only challenge" in titles(client.get("/challenges/?sort=title&page=1")) + \
        titles(client.get("/challenges/?sort=title&page=2"))


def test_home_shows_open_challenges_the_viewer_may_see(client, auth, catalogue):
    home = client.get("/")
    assert b"Public challenge 24" in home.data  # nearest deadline first
    assert b"Closed challenge" not in home.data and b"Members-only" not in home.data
    auth.login("member@acme.test")
    home = client.get("/")
    assert home.status_code == 200


# --------------------------------------------------------------------------- badges and Markdown


@pytest.mark.parametrize("visibility", ["public", "registered", "invited", "organisation"])
def test_visibility_badge_on_every_page_that_shows_the_item(app, client, auth, acme, indb, visibility):
    from marketplace.models import Organisation

    title = f"Badge test {visibility}"
    iid = indb(lambda f: f.make_item(db.session.get(Organisation, acme.org_id), visibility=visibility,
                                     title=title).id)
    auth.login("owner@acme.test")
    badge = f'class="badge vis-{visibility}"'
    # Pages listing several items: the badge is in the item's own card.
    for url in ["/", "/challenges/", f"/orgs/{acme.org_slug}"]:
        html = client.get(url).text
        pos = html.index(title)
        card = html[html.rfind("<article", 0, pos):html.find("</article>", pos)]
        assert badge in card, url
    # Pages about this one item.
    for url in [f"/challenges/{iid}", f"/challenges/{iid}/edit", f"/challenges/{iid}/access"]:
        r = client.get(url)
        assert r.status_code == 200 and title in r.text and badge in r.text, url


XSS_BODY = """Hello <script>alert('body')</script>

<img src=x onerror="alert('img')">

[click me](javascript:alert('link'))  [data](data:text/html;base64,PHNjcmlwdD4=)

<a href="javascript:alert('raw')" onclick="alert('click')">raw</a>

![pic](javascript:alert('image'))  <iframe src="https://evil.example"></iframe>

[vb](vbscript:msgbox(1)) [ok link](https://example.org/page)
"""
class _Tags(HTMLParser):
    """Every real tag and attribute of a page (text that only looks like a tag is not one)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k.lower(): (v or "") for k, v in attrs}))


def assert_clean(html: str) -> None:
    for tag, attrs in _Tags(html).tags:
        assert tag not in ("img", "iframe", "object", "embed"), tag
        assert tag != "script" or attrs.get("src") == "/static/js/site.js", attrs
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        for a in ("href", "src", "action"):
            url = re.sub(r"\s", "", attrs.get(a, "")).lower()
            assert not url.startswith(("javascript:", "data:", "vbscript:")), (tag, attrs)


def test_markdown_is_sanitised_everywhere(app, client, auth, acme):
    auth.login("owner@acme.test")
    r = client.post(f"/challenges/new?org={acme.org_id}", data=challenge_form(
        title="<script>alert('title')</script>", summary="<b onmouseover=alert(1)>sum</b>",
        body=XSS_BODY, context=XSS_BODY, expected_outcome=XSS_BODY, visibility="public"))
    iid = new_id(r)
    detail = client.get(f"/challenges/{iid}").text
    for html in (detail, client.get("/challenges/?status=draft").text, client.get(f"/orgs/{acme.org_slug}").text,
                 client.get(f"/challenges/{iid}/edit").text):
        assert_clean(html)
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in detail  # shown as text
    assert '<a href="https://example.org/page" rel="nofollow noopener noreferrer ugc">ok link</a>' in detail
    item = load(app, iid)
    for field in ("body_html", "context_html", "expected_outcome_html"):
        assert_clean(getattr(item, field))
        assert "example.org/page" in getattr(item, field)


def test_organisation_description_is_sanitised(app, client, auth, acme):
    auth.login("owner@acme.test")
    r = client.post(f"/orgs/{acme.org_slug}/edit", data={"description": XSS_BODY, "website": ""})
    assert r.status_code == 302
    assert_clean(client.get(f"/orgs/{acme.org_slug}").text)
