"""Accessibility of the main pages, in Chromium at 1280 px and at a phone's width: every
input, textarea and select has an accessible name (the browser's own computation, and the
label/aria attributes for controls not rendered yet, e.g. in a closed reply box), ids are
unique, labels point at something, a skip link leads to the content, and the header keeps
to one row at 1280 px and folds into a menu on a phone."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from playwright.sync_api import expect

from marketplace.extensions import db
from marketplace.services import engagement as engagement_svc

from ..factories import PASSWORD as FACTORY_PASSWORD
from ..factories import Factories
from ..factories_ideas import IdeaFactories
from .flows import login, open_menu, unique

WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
FORM_ROLES = {"textbox", "searchbox", "combobox", "checkbox", "radio", "spinbutton", "listbox", "slider",
              "switch"}

# Problems the DOM shows: duplicate ids, labels pointing nowhere, controls without a name
# (label, aria-label, aria-labelledby or title; a placeholder is not a name).
DOM_CHECK = """() => {
  const problems = [];
  const seen = {};
  document.querySelectorAll('[id]').forEach(e => { seen[e.id] = (seen[e.id] || 0) + 1; });
  for (const [id, n] of Object.entries(seen)) { if (n > 1) problems.push(`id "${id}" used ${n} times`); }
  document.querySelectorAll('label[for]').forEach(l => {
    if (!document.getElementById(l.htmlFor)) problems.push(`label for="${l.htmlFor}" points at nothing`);
  });
  document.querySelectorAll('[aria-describedby], [aria-labelledby]').forEach(e => {
    for (const attr of ['aria-describedby', 'aria-labelledby']) {
      for (const ref of (e.getAttribute(attr) || '').split(/\\s+/).filter(Boolean)) {
        if (!document.getElementById(ref)) problems.push(`${attr}="${ref}" points at nothing`);
      }
    }
  });
  const text = e => (e ? e.textContent : '').replace(/\\s+/g, ' ').trim();
  document.querySelectorAll('input, textarea, select').forEach(el => {
    const type = (el.getAttribute('type') || '').toLowerCase();
    if (el.tagName === 'INPUT' && ['hidden', 'submit', 'button', 'reset', 'image'].includes(type)) return;
    let name = (el.getAttribute('aria-label') || '').trim();
    if (!name && el.getAttribute('aria-labelledby')) {
      name = el.getAttribute('aria-labelledby').split(/\\s+/).map(id => text(document.getElementById(id))).join(' ').trim();
    }
    if (!name && el.labels) name = Array.from(el.labels).map(text).join(' ').trim();
    if (!name) name = (el.getAttribute('title') || '').trim();
    if (!name) problems.push(`<${el.tagName.toLowerCase()} name="${el.name}" id="${el.id}"> has no label`);
  });
  return problems;
}"""


@dataclass
class Site:
    owner: str
    contributor: str
    curator: str
    admin: str
    paths: dict


@pytest.fixture(scope="module")
def site(live_server):
    """One organisation with a challenge (terms, a waiting question, a sealed idea), a failure
    with a comment, an asset with terms; a cluster with an invitation list."""
    with live_server.app.app_context():
        f = Factories()
        fi = IdeaFactories(f)
        owner = f.make_user(email=f"{unique('a11yowner')}@example.test", name="Ada Owner")
        contributor = f.make_user(email=f"{unique('a11ycontrib')}@example.test", name="Cole Contributor")
        curator = f.make_user(email=f"{unique('a11ycurator')}@example.test", name="Cora Curator")
        admin = f.make_user(email=f"{unique('a11yadmin')}@example.test", name="Sid Siteadmin", site_role="admin")
        org = f.make_org(name=unique("Accessible Robotics "), owner=owner)
        cluster = f.make_org(name=unique("Accessible Cluster "), kind="cluster", owner=curator)
        s = fi.challenge(confidentiality="sealed", owner=owner, org=org, rules={"team_allowed": True,
                                                                               "max_team_size": 3})
        ch = s.challenge
        engagement_svc.set_rules(owner, ch, {"ask_rule": "registered", "question_cutoff_hours": 0})
        engagement_svc.ask_question(contributor, ch, "Is **the** gripper in scope?")
        idea = fi.submit(f.make_user(), ch, title="An idea to review")
        failure = f.make_item(org, kind="failure", title="A lesson", visibility="public")
        engagement_svc.set_rules(owner, failure, {"comment_rule": "registered"})
        engagement_svc.add_comment(contributor, failure, "What about humidity?")
        asset = f.make_item(org, kind="asset", title="A data set", visibility="public")
        engagement_svc.set_rules(owner, asset, {"request_rule": "registered"})
        engagement_svc.publish_terms(owner, asset, {
            "licence_kind": "non-exclusive", "field_of_use": "Research", "territory": "Worldwide",
            "duration": "3 years", "fee_model": "royalty", "notes": ""})
        lst = f.make_list(cluster, name="Experts")
        f.attach_list(ch, lst)
        db.session.commit()
        paths = {
            "anonymous": ["/", "/challenges/", "/assets/", "/orgs/", "/auth/login", "/auth/register",
                          "/terms/verify", "/search?q=idea", f"/challenges/{ch.id}"],
            "owner": ["/", "/challenges/", "/challenges/new", f"/challenges/{ch.id}", f"/challenges/{ch.id}/review",
                      f"/challenges/{ch.id}/terms/edit", f"/challenges/{ch.id}/reviewers",
                      f"/challenges/{ch.id}/access", f"/challenges/{ch.id}/rules/edit", f"/ideas/{idea.id}",
                      f"/challenges/{ch.id}/rounds", f"/challenges/{ch.id}/judging",
                      f"/challenges/{ch.id}/judging/progress",
                      f"/ideas/{idea.id}/team", f"/failures/{failure.id}", f"/assets/{asset.id}",
                      f"/engage/items/{asset.id}/rules", "/auth/account", f"/orgs/{org.slug}", f"/orgs/{org.slug}/edit",
                      f"/orgs/{org.slug}/members", f"/invitations/item/{ch.id}"],
            "contributor": [f"/challenges/{ch.id}", f"/challenges/{ch.id}/ideas/new", f"/failures/{failure.id}",
                            f"/assets/{asset.id}", f"/engage/assets/{asset.id}/request", "/ideas/mine",
                            "/auth/account"],
            "curator": ["/lists/", f"/lists/{lst.id}", "/lists/new"],
            "admin": ["/moderation/", "/moderation/appeals", "/moderation/flags", "/moderation/scopes",
                      "/moderation/blocked-domains", f"/moderation/case/challenge/{ch.id}",
                      f"/moderation/report/challenge/{ch.id}", f"/challenges/{ch.id}/decisions", "/audit",
                      "/notifications/", "/notifications/mail-log", "/invitations/", "/orgs/new", "/about"],
        }
        return Site(owner.email, contributor.email, curator.email, admin.email, paths)


def _problems(page) -> list[str]:
    problems = list(page.evaluate(DOM_CHECK))
    cdp = page.context.new_cdp_session(page)
    try:
        for node in cdp.send("Accessibility.getFullAXTree")["nodes"]:
            role = (node.get("role") or {}).get("value")
            if node.get("ignored") or role not in FORM_ROLES:
                continue
            if not ((node.get("name") or {}).get("value") or "").strip():
                problems.append(f"a {role} with an empty accessible name (Chromium's computation)")
    finally:
        cdp.detach()
    return problems


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("who", ["anonymous", "owner", "contributor", "curator", "admin"])
def test_controls_are_named_and_ids_unique(site, new_page, width, who):
    page = new_page(viewport=WIDTHS[width])
    if who != "anonymous":
        login(page, getattr(site, who), FACTORY_PASSWORD)
    found = {}
    for path in site.paths[who]:
        response = page.goto(path)
        assert response is not None and response.status == 200, (path, response and response.status)
        problems = _problems(page)
        if problems:
            found[path] = problems
    assert not found, found


@pytest.mark.parametrize("width", WIDTHS)
def test_the_skip_link_leads_to_the_content(site, new_page, width):
    page = new_page(viewport=WIDTHS[width])
    login(page, site.owner, FACTORY_PASSWORD)
    for path in ("/", site.paths["owner"][3]):
        page.goto(path)
        page.keyboard.press("Tab")
        skip = page.locator(":focus")
        expect(skip).to_have_text("Skip to main content")
        expect(skip).to_have_attribute("href", "#main")
        box = skip.bounding_box()
        assert box is not None and box["y"] >= 0 and box["height"] > 0  # shown when focused
        page.keyboard.press("Enter")
        expect(page.locator(":focus")).to_have_id("main")


def _header_rows(page) -> list[float]:
    """The vertical centres of the header's visible pieces."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.nav > *, .nav-menu > *'))
      .filter(e => !['nav-menu', 'spacer'].some(c => e.classList.contains(c)))
      .filter(e => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
      .map(e => { const r = e.getBoundingClientRect(); return r.top + r.height / 2; })""")


@pytest.mark.parametrize("who", ["anonymous", "owner"])
def test_the_header_keeps_to_one_row_at_1280_and_folds_on_a_phone(site, new_page, who):
    desktop = new_page(viewport=WIDTHS["desktop"])
    phone = new_page(viewport=WIDTHS["phone"], is_mobile=True, has_touch=True)
    if who != "anonymous":
        login(desktop, site.owner, FACTORY_PASSWORD)
        login(phone, site.owner, FACTORY_PASSWORD)
    desktop.goto("/challenges/")
    centres = _header_rows(desktop)
    assert len(centres) >= 6 and max(centres) - min(centres) <= 6, centres
    expect(desktop.locator("[data-nav-toggle]")).to_be_hidden()
    if who == "owner":
        # The personal pages are one click away, in the account menu.
        desktop.locator(".account-menu summary").click()
        expect(desktop.locator(".account-links").get_by_role("link", name="My ideas")).to_be_visible()

    phone.goto("/challenges/")
    toggle = phone.locator("[data-nav-toggle]")
    expect(toggle).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(phone.get_by_role("link", name="Organisations")).to_be_hidden()
    header = phone.locator(".site-header").bounding_box()
    assert header is not None and header["height"] < 90  # one row: the name and the button
    open_menu(phone)
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(phone.get_by_role("link", name="Organisations")).to_be_visible()
    expect(phone.locator("#header-q")).to_be_visible()
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1


def test_without_javascript_the_phone_header_shows_its_links(site, new_page):
    phone = new_page(viewport=WIDTHS["phone"], java_script_enabled=False)
    phone.goto("/challenges/")
    expect(phone.locator("[data-nav-toggle]")).to_be_hidden()
    expect(phone.get_by_role("link", name="Organisations")).to_be_visible()
    expect(phone.get_by_role("link", name="Sign in")).to_be_visible()
