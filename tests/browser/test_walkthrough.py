"""Issue 10's walk-through, in a real browser, the way people use the forms: a contributor
with no organisation contacts an asset's owner; closing a challenge asks first, with and
without JavaScript; registration takes the browser's time zone."""
from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.models import AssetRequest, Item, User
from marketplace.services import engagement as engagement_svc

from ..factories import PASSWORD as FACTORY_PASSWORD
from ..factories import Factories
from ..factories_ideas import IdeaFactories
from .flows import field, login, register, unique


def _asset(live_server) -> int:
    with live_server.app.app_context():
        f = Factories()
        admin = f.make_user(email=f"{unique('assetadmin')}@example.test")
        org = f.make_org(name=unique("Wave Tank Co "), owner=admin)
        asset = f.make_item(org, kind="asset", title=unique("Wave tank "), visibility="public")
        engagement_svc.set_rules(admin, asset, {"request_rule": "registered"})
        engagement_svc.publish_terms(admin, asset, {
            "licence_kind": "non-exclusive", "field_of_use": "Research", "territory": "Worldwide",
            "duration": "3 years", "fee_model": "royalty", "notes": ""})
        return asset.id


def test_a_contributor_without_an_organisation_sends_a_licence_request(page, live_server, shot):
    asset_id = _asset(live_server)
    email = register(page, name="Nina Noorg")  # a person, in no organisation
    page.goto(f"/assets/{asset_id}")
    panel = page.locator("#engagement")
    expect(panel.get_by_label("Sent by")).to_have_count(0)  # nobody to speak for: not offered
    panel.get_by_label("What you are asking for").select_option("licence")
    panel.get_by_label(re.compile(r"^Message")).fill("We would like a research licence for our wave model.")
    shot(page, "01-request-form")
    panel.get_by_role("button", name="Send to the organisation").click()
    expect(page.locator(".flash-success")).to_contain_text("Request sent")
    expect(page).to_have_url(re.compile(r"/engage/requests/\d+$"))
    shot(page, "02-request-sent")
    with live_server.app.app_context():
        user = db.session.execute(select(User).where(User.email == email)).scalar_one()
        req = db.session.execute(select(AssetRequest).where(AssetRequest.author_id == user.id)).scalar_one()
        assert (req.item_id, req.kind, req.requester_org_id) == (asset_id, "licence", None)


def _open_challenge(live_server) -> tuple[str, int]:
    with live_server.app.app_context():
        f = Factories()
        s = IdeaFactories(f).challenge(confidentiality="open",
                                       owner=f.make_user(email=f"{unique('closer')}@example.test"))
        return s.owner.email, s.challenge.id


def _status(live_server, item_id: int) -> str:
    with live_server.app.app_context():
        return db.session.get(Item, item_id).status


def test_closing_a_challenge_asks_first_with_and_without_javascript(new_page, live_server, shot):
    email, cid = _open_challenge(live_server)
    # With JavaScript: the page's own dialog (static/js/site.js), then it acts.
    page = new_page()
    asked = []
    page.on("dialog", lambda d: asked.append(d.message))
    login(page, email, FACTORY_PASSWORD)
    page.goto(f"/challenges/{cid}")
    page.locator(".manage").get_by_role("button", name="Close").click()
    expect(page.locator(".flash-success")).to_contain_text("Status is now closed")
    assert asked and asked[0].startswith("Close the challenge")
    assert _status(live_server, cid) == "closed"
    page.locator(".manage").get_by_role("button", name="Reopen").click()
    expect(page.locator(".flash-success")).to_contain_text("Status is now open")

    # Without JavaScript: a confirmation page; cancelling changes nothing, confirming acts.
    plain = new_page(java_script_enabled=False)
    login(plain, email, FACTORY_PASSWORD)
    plain.goto(f"/challenges/{cid}")
    plain.locator(".manage").get_by_role("button", name="Close").click()
    expect(plain.get_by_role("heading", level=1)).to_have_text("Close the challenge?")
    shot(plain, "confirm-without-js")
    assert _status(live_server, cid) == "open"
    plain.get_by_role("link", name="Cancel").click()
    expect(plain).to_have_url(re.compile(rf"/challenges/{cid}$"))
    assert _status(live_server, cid) == "open"
    plain.locator(".manage").get_by_role("button", name="Close").click()
    plain.get_by_role("button", name="Yes: close the challenge").click()
    expect(plain.locator(".flash-success")).to_contain_text("Status is now closed")
    assert _status(live_server, cid) == "closed"


def test_registration_takes_the_browsers_time_zone(new_page, live_server, shot):
    tokyo = new_page(timezone_id="Asia/Tokyo")
    email = register(tokyo, name="Taro Tokyo")
    with live_server.app.app_context():
        assert db.session.execute(select(User.timezone).where(User.email == email)).scalar_one() == "Asia/Tokyo"
    tokyo.goto("/auth/account")
    expect(tokyo.locator("#time-zone")).to_contain_text("JST")
    expect(field(tokyo, "Time zone")).to_have_value("Asia/Tokyo")
    field(tokyo, "Time zone").select_option("Europe/Paris")
    tokyo.get_by_role("button", name="Save time zone").click()
    expect(tokyo.locator(".flash-success")).to_contain_text("Europe/Paris")
    expect(tokyo.locator("#time-zone")).to_contain_text(re.compile(r"CES?T"))
    shot(tokyo, "account-time-zone")
