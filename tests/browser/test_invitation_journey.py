"""Issue 10 in a real browser: a person without an account is invited to an invited-only
challenge by e-mail, opens the link from the mail, registers from it (the address is
confirmed by the link, no second mail), accepts, and submits an idea; the sponsor is told.
Screenshots land in tests/browser/artifacts/."""
from __future__ import annotations

from playwright.sync_api import expect

from .flows import create_org, field, mail_link, path_of, post_item, register, unique


def test_from_the_invitation_mail_to_a_submitted_idea(page, new_page, live_server, shot):
    register(page, name="Olga Owner")
    create_org(page, unique("Invite Robotics "))
    title = unique("Sorting socks ")
    challenge_path = post_item(page, title=title, visibility="invited")
    challenge_id = int(challenge_path.rstrip("/").rsplit("/", 1)[1])

    # The owner invites an address that has no account.
    newcomer = f"{unique('newcomer')}@expert.test"
    page.goto(f"/invitations/item/{challenge_id}")
    field(page, "E-mail address").fill(newcomer)
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".invitation-link")).to_contain_text(newcomer)
    shot(page, "01-invited")

    # The newcomer opens the link from the mail.
    guest = new_page()
    guest.goto(mail_link(newcomer, "/invitations/t/"))
    expect(guest.locator(".invitation")).to_contain_text(newcomer[0] + "•••@expert.test")
    shot(guest, "02-link-opened")
    guest.get_by_role("link", name="Create an account").click()
    expect(field(guest, "E-mail")).to_have_value(newcomer)
    field(guest, "Display name").fill("Nina Newcomer")
    field(guest, "Password").fill("browser-password-1")
    field(guest, "Repeat password").fill("browser-password-1")
    guest.get_by_role("button", name="Create account").click()
    expect(guest.locator(".flash-success")).to_contain_text("address is confirmed")
    expect(guest.get_by_role("button", name="Sign out")).to_be_visible()
    expect(guest.get_by_text("Confirm your e-mail address to take part")).to_have_count(0)
    expect(guest.locator(".invitation")).to_contain_text(title)  # now the invitee: the item is named
    shot(guest, "03-registered-back-on-invitation")

    guest.get_by_role("button", name="Accept invitation").click()
    expect(guest.get_by_role("heading", level=1)).to_have_text(title)
    assert path_of(guest) == challenge_path
    guest.locator(".ideas-panel").get_by_role("link", name="Submit an idea").click()
    field(guest, "Title").fill("Magnetic sock pairing")
    guest.locator("textarea[name=body]").fill("Sew a **tiny magnet** into each sock.")
    field(guest, "I accept these terms").check()
    guest.get_by_role("button", name="Accept the terms and submit").click()
    expect(guest.locator(".flash-success")).to_contain_text("Idea submitted")
    shot(guest, "04-idea-submitted")

    # The sponsor hears of it, in plain words, with the unread count in the navigation.
    page.goto("/")
    page.get_by_role("link", name="Notifications (").click()
    expect(page.locator(".card").first).to_contain_text("New idea")
    expect(page.locator(".card").first).to_contain_text("Magnetic sock pairing")
    shot(page, "05-sponsor-notified")
