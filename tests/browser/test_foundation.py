"""The foundation as a new person meets it, in a real browser (issue 2).

Register, sign in, create an organisation, post a public challenge with a deadline, find it
with its visibility badge on the list and the home page, sign out and still see it; an
organisation-only challenge stays hidden (a 404 that names nothing); bad input gets a clear
message on the form. Screenshots land in tests/browser/artifacts/.
"""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .flows import PASSWORD, create_org, deadline_in, field, login, logout, post_item, register, unique


def card(page, title):
    """The list card of an item, found by its title link."""
    return page.locator("article.card").filter(has=page.get_by_role("link", name=title, exact=True))


def test_new_user_posts_a_public_challenge_everyone_can_see(page, live_server, shot):
    email = f"{unique('newbie')}@example.test"
    register(page, email, name="Nora Newbie")  # through the mailed confirmation link
    expect(page.locator(".flash-success")).to_contain_text("Signed in as Nora Newbie")
    expect(page.get_by_text("Confirm your e-mail address to take part")).to_have_count(0)
    shot(page, "01-registered")

    logout(page)
    login(page, email, PASSWORD)
    # The header names the person: their menu (account and personal pages) opens from it.
    expect(page.locator(".account-menu summary")).to_have_text("Nora Newbie")

    org_name = unique("Newbie Labs ")
    create_org(page, org_name, kind="university")
    expect(page.locator(".flash-success")).to_contain_text("you are its owner")
    shot(page, "02-organisation")

    title = unique("Recycle lab gloves ")
    deadline = deadline_in(20)
    post_item(page, "challenge", title, body="We throw away **40 kg** of gloves a week.",
              visibility="public", deadline=deadline)
    expect(page.locator(".item-detail .badge.vis-public")).to_have_text("Public")
    expect(page.locator(".item-detail .badge.status-open")).to_have_text("Open")
    expect(page.locator("table.data")).to_contain_text(deadline[:10])
    expect(page.locator(".prose strong", has_text="40 kg")).to_be_visible()  # Markdown rendered
    detail_path = page.url.removeprefix(live_server.url)
    shot(page, "03-challenge")

    page.goto("/challenges/")
    c = card(page, title)
    expect(c).to_have_count(1)
    expect(c.locator(".badge.vis-public")).to_have_text("Public")
    expect(c).to_contain_text(org_name)
    shot(page, "04-list")

    page.goto("/")
    expect(card(page, title).locator(".badge.vis-public")).to_be_visible()
    shot(page, "05-home")

    logout(page)
    expect(card(page, title)).to_be_visible()  # home page, anonymous
    page.goto(detail_path)
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    expect(page.locator(".item-detail .badge.vis-public")).to_be_visible()
    expect(page.get_by_role("heading", name="Manage")).to_have_count(0)
    shot(page, "06-anonymous-detail")


def test_organisation_challenge_is_invisible_to_outsiders(page, new_page, live_server, shot):
    register(page, name="Owen Owner")
    create_org(page, unique("Secretive Co "))
    title = unique("Confidential gearbox redesign ")
    post_item(page, "challenge", title, visibility="organisation")
    expect(page.locator(".item-detail .badge.vis-organisation")).to_have_text("Organisation")
    path = page.url.removeprefix(live_server.url)

    outsider = new_page()
    register(outsider, name="Olga Outsider")
    response = outsider.goto(path)
    assert response is not None and response.status == 404
    expect(outsider.get_by_role("heading", level=1)).to_have_text("404")
    assert title not in outsider.content()
    assert "gearbox" not in outsider.title().lower()
    shot(outsider, "outsider-404")

    outsider.goto("/challenges/")
    expect(card(outsider, title)).to_have_count(0)
    outsider.goto("/")
    assert title not in outsider.content()

    anonymous = new_page()
    response = anonymous.goto(path)
    assert response is not None and response.status == 404
    assert title not in anonymous.content()

    page.goto("/challenges/")  # the owner still sees it, badge and all
    expect(card(page, title).locator(".badge.vis-organisation")).to_be_visible()


def test_bad_input_is_explained_on_the_form(page, shot):
    register(page, name="Fay Formfiller")
    create_org(page)

    post_item(page, "challenge", title="", expect_ok=False)
    # The summary names the field and links to it (issue 10: never a bare "correct the errors").
    expect(page.locator(".flash-error")).to_contain_text("Please correct this error")
    expect(page.locator(".flash-error").get_by_role("link", name="Title")).to_have_attribute("href", "#title")
    expect(page.locator(".field.has-error .error")).to_contain_text(["Give it a title."])
    shot(page, "empty-title")

    title = unique("Too late ")
    post_item(page, "challenge", title=title, deadline=deadline_in(-2), expect_ok=False)
    expect(page.locator(".field.has-error .error").first).to_contain_text(re.compile("future|past"))
    expect(field(page, "Title")).to_have_value(title)  # what was typed is kept
    shot(page, "past-deadline")

    page.goto("/challenges/")
    expect(card(page, title)).to_have_count(0)  # nothing half-saved


@pytest.mark.parametrize("data, message", [
    ({"email": "not-an-address"}, "Enter a valid e-mail address."),
    ({"confirm": "something-else-entirely"}, "The passwords do not match."),
    ({"password": "short", "confirm": "short"}, "Use at least 10 characters"),
])
def test_registration_errors(page, data, message):
    values = {"email": f"{unique()}@example.test", "display_name": "Reggie", "password": PASSWORD,
              "confirm": PASSWORD, **data}
    page.goto("/auth/register")
    for name, value in values.items():
        page.locator(f"input[name={name}]").fill(value)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator(".field.has-error .error")).to_contain_text([message])
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)


def test_forged_form_without_csrf_token_is_refused(page, live_server):
    """CSRF is on in the live server: a post without the page's token is turned away."""
    register(page)
    response = page.request.post(live_server("/orgs/new"), form={"name": unique("Forged "), "kind": "company"})
    assert response.status == 400
    assert "Reload the page" in response.text()


def test_pages_fit_a_phone_screen(new_page, shot):
    """No sideways scrolling on a narrow screen: the layout wraps instead of overflowing."""
    phone = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    register(phone, name="Pat Phone")
    create_org(phone)
    for path in ("/", "/challenges/", "/challenges/new", "/orgs/", "/auth/account"):
        phone.goto(path)
        overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is {overflow}px wider than the screen"
    shot(phone, "new-challenge-form")
