"""What a person does in the browser, as small functions shared by all browser tests.

Each takes a Playwright ``page`` whose context has the live server as ``base_url`` (the
``page`` fixture's do), fills the real forms and waits for the page that follows.
"""
from __future__ import annotations

import itertools
import os
import re
from datetime import datetime, timedelta, timezone

from playwright.sync_api import Page, expect

PASSWORD = "browser-password-1"
_seq = itertools.count(1)


def unique(prefix: str = "user") -> str:
    """A string no other test in this session (or worker) uses: for e-mails and names."""
    return f"{prefix}{os.getpid()}x{next(_seq)}"


def field(page: Page, label: str):
    """The form control labelled exactly `label` (labels are how people find fields)."""
    return page.get_by_label(label, exact=True)


# Set by the live_server fixture: read_mail(address) -> the texts of the mails queued for it.
read_mail = None


def mail_link(address: str, path_start: str) -> str:
    """The path of the last link starting with `path_start` mailed to `address`."""
    assert read_mail is not None, "needs the live_server fixture"
    found = []
    for text in read_mail(address):
        found += re.findall(r"https?://[^/\s]+(" + re.escape(path_start) + r"[^\s\"<]*)", text)
    assert found, f"no mail to {address} with a link to {path_start}"
    return found[-1]


def open_menu(page: Page) -> None:
    """On a phone the header folds behind its "Menu" button: unfold it (no-op when it is not
    folded, as at 1280 px)."""
    page.wait_for_load_state("domcontentloaded")  # site.js (deferred) has set the menu up
    toggle = page.locator("[data-nav-toggle]")
    if toggle.is_visible() and toggle.get_attribute("aria-expanded") != "true":
        toggle.click()


def expect_signed_in(page: Page) -> None:
    # Wait for the signed-in page itself (its sign-out form), folded or not, then unfold.
    expect(page.locator("form[action$='/auth/logout']")).to_have_count(1)
    open_menu(page)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def register(page: Page, email: str | None = None, name: str = "Browser Person",
             password: str = PASSWORD, verify: bool = True) -> str:
    """Register as a person does: the form, "check your inbox", the link in the mail (which
    confirms the address), then sign in. Ends signed in."""
    email = email or f"{unique()}@example.test"
    page.goto("/auth/register")
    field(page, "E-mail").fill(email)
    field(page, "Display name").fill(name)
    field(page, "Password").fill(password)
    field(page, "Repeat password").fill(password)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    if verify:
        page.goto(mail_link(email, "/auth/verify/"))
    login(page, email, password)
    return email


def login(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/auth/login")
    field(page, "E-mail").fill(email)
    field(page, "Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect_signed_in(page)


def logout(page: Page) -> None:
    open_menu(page)
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("form[action$='/auth/logout']")).to_have_count(0)
    open_menu(page)
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()


def create_org(page: Page, name: str | None = None, kind: str = "company") -> str:
    """Create an organisation; returns its page's path (/orgs/<slug>)."""
    name = name or unique("Org ")
    page.goto("/orgs/new")
    field(page, "Name").fill(name)
    field(page, "Kind").select_option(kind)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    return path_of(page)


def deadline_in(days: float) -> str:
    """A value for a datetime-local input (the forms read it as UTC)."""
    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


def path_of(page: Page) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url)


def post_item(page: Page, kind: str = "challenge", title: str | None = None,
              body: str = "A **real** problem to solve.", visibility: str = "public",
              deadline: str | None = None, publish: bool = True, expect_ok: bool = True) -> str:
    """Fill the new-item form and submit it; returns the page path (the item's on success).

    Publishing a challenge that needs more before it may open (a terms sheet, issue 3) goes
    the way the page tells a person to: save it as a draft, set the terms, then publish.
    """
    plural = {"challenge": "challenges", "failure": "failures", "asset": "assets"}[kind]
    title = unique("Item ") if title is None else title
    page.goto(f"/{plural}/new")
    field(page, "Title").fill(title)
    page.locator("textarea[name=body]").fill(body)
    if kind == "challenge":
        field(page, "Deadline (UTC)").fill(deadline if deadline is not None else deadline_in(30))
    page.locator("select[name=visibility]").select_option(visibility)
    page.get_by_role("button", name="Publish" if publish else "Save as draft").click()
    page.wait_for_load_state()
    if publish and kind == "challenge" and _needs_terms(page):
        page.get_by_role("button", name="Save as draft").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(title)
        item_path = path_of(page)
        set_terms(page)
        page.goto(item_path)
        page.locator(".manage").get_by_role("button", name="Publish").click()
        expect(page.locator(".item-detail .badge.status-open")).to_be_visible()
    if expect_ok:
        expect(page.get_by_role("heading", level=1)).to_have_text(title)
    return path_of(page)


def _needs_terms(page: Page) -> bool:
    errors = page.locator(".flash-error")
    return errors.count() > 0 and "terms sheet" in errors.first.inner_text()


def set_terms(page: Page, ip_model: str = "contributor-retains", confidentiality: str = "open") -> None:
    """From a challenge's page: set a plain terms sheet (one recognition incentive)."""
    page.get_by_role("link", name="Set the terms").click()
    form = page.locator("form.stacked")
    form.locator("select[name=ip_model]").select_option(ip_model)
    form.locator("select[name=confidentiality]").select_option(confidentiality)
    for name in ("field_of_use", "territory", "licence_duration", "post_termination_rights",
                 "background_ip", "foreground_ip", "dispute_resolution", "governing_law"):
        box = form.locator(f"[name={name}]")
        if not box.input_value():
            box.fill("Not applicable")
    form.locator("select[name='incentives-0-kind']").select_option("recognition")
    form.locator("[name='incentives-0-description']").fill("Named in the published results")
    form.get_by_role("button", name=re.compile("Save")).click()
    expect(page.locator(".flash-success")).to_contain_text("Terms version")
