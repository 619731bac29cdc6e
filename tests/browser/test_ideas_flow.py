"""Issue 3 (ideas half) as people meet it in a real browser: an organisation posts an invited,
sealed challenge with terms and rules; an invited contributor reads the terms, submits an idea
with an attachment, downloads the receipt and verifies it; an outside judge accepts the
reviewer NDA and scores; the author sees who opened the sealed idea; the organisation
shortlists and awards. Screenshots land in tests/browser/artifacts/.
"""
from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from .flows import create_org, mail_link, deadline_in, field, login, logout, path_of, register, set_terms, unique


def test_sealed_challenge_from_terms_to_award(page, new_page, live_server, shot, tmp_path):
    contributor = register(page, name="Ivy Inventor")
    logout(page)
    judge_email = register(page, name="Jude Judge")
    logout(page)
    owner = register(page, name="Olga Owner")
    create_org(page, unique("Sealed Robotics "))

    # A draft challenge, its terms (sealed, assignment on award), rules, then publish.
    title = unique("Lidar in dust ")
    page.goto("/challenges/new")
    field(page, "Title").fill(title)
    page.locator("textarea[name=body]").fill("Fuse **lidar** with stereo in dusty aisles.")
    field(page, "Deadline (UTC)").fill(deadline_in(20))
    page.locator("select[name=visibility]").select_option("invited")
    page.get_by_role("button", name="Save as draft").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    challenge_path = path_of(page)
    challenge_id = int(challenge_path.rstrip("/").rsplit("/", 1)[1])
    set_terms(page, ip_model="assignment-on-award", confidentiality="sealed")
    expect(page.locator(".terms-sheet")).to_contain_text("assignment-on-award")
    shot(page, "01-terms-sheet")
    page.goto(f"/challenges/{challenge_id}/rules/edit")
    page.locator("select[name=who_may_submit]").select_option("invited")
    field(page, "Eligibility statement contributors must confirm (optional)").fill("I am not employed by a competitor.")
    page.get_by_role("button", name="Save participation rules").click()
    expect(page.locator(".flash-success")).to_contain_text("Participation rules saved")
    page.locator(".manage").get_by_role("button", name="Publish").click()
    expect(page.locator(".item-detail .badge.status-open")).to_be_visible()
    # Invite the contributor (an access grant) and appoint an outside judge.
    page.goto(f"{challenge_path}/access")
    field(page, "Person (e-mail of a registered account)").fill(contributor)
    page.get_by_role("button", name="Grant access").click()
    expect(page.locator(".flash-success")).to_contain_text("Access granted")
    page.goto(f"/challenges/{challenge_id}/reviewers")
    field(page, "Reviewer's e-mail address").fill(judge_email)
    page.locator("textarea[name='r-nda_text']").fill("I keep every idea confidential.")
    page.get_by_role("button", name="Appoint reviewer").click()
    expect(page.locator(".flash-success")).to_contain_text(f"Invitation mailed to {judge_email.lower()}")
    page.locator("input[name='c-name']").fill("Feasibility")
    page.locator("input[name='c-weight']").fill("3")
    page.get_by_role("button", name="Add criterion").click()
    expect(page.locator("table.data").last).to_contain_text("Feasibility")
    shot(page, "02-reviewers")

    # The contributor reads the terms and rules up front, then submits with an attachment.
    ivy = new_page()
    login(ivy, contributor)
    ivy.goto(challenge_path)
    panel = ivy.locator(".ideas-panel")
    expect(panel).to_contain_text("sealed")
    expect(panel.locator(".digest")).to_have_count(1)
    expect(panel).to_contain_text("only people invited to the challenge")
    shot(ivy, "03-challenge-panel")
    panel.get_by_role("link", name="Submit an idea").click()
    field(ivy, "Title").fill("Polarised stereo")
    ivy.locator("textarea[name=body]").fill("Filter the **glare** first.")
    attachment = tmp_path / "approach.pdf"
    attachment.write_bytes(b"%PDF-1.4\n%%EOF\n")
    ivy.locator("input[name=attachments]").set_input_files(str(attachment))
    ivy.get_by_role("button", name="Accept the terms and submit").click()
    expect(ivy.locator(".error").first).to_contain_text("accept the terms")  # nothing ticked yet
    ivy.locator("input[name=attachments]").set_input_files(str(attachment))
    field(ivy, "I accept these terms").check()
    field(ivy, "I confirm the eligibility statement above").check()
    ivy.get_by_role("button", name="Accept the terms and submit").click()
    expect(ivy.locator(".flash-success")).to_contain_text("Idea submitted")
    idea_path = path_of(ivy)
    expect(ivy.get_by_role("link", name="approach.pdf")).to_be_visible()
    shot(ivy, "04-idea-submitted")

    # Receipt: printable page, JSON download, verify page.
    ivy.get_by_role("link", name=re.compile(r"Receipt #\d+")).click()
    expect(ivy.get_by_role("heading", level=1)).to_contain_text("Terms acceptance receipt")
    shot(ivy, "05-receipt")
    with ivy.expect_download() as dl:
        ivy.get_by_role("link", name="JSON receipt").click()
    receipt_file = tmp_path / "RECEIPT.json"
    dl.value.save_as(receipt_file)
    receipt = json.loads(receipt_file.read_text())
    # Signed with Ed25519 (schema /2); its key is among the site's published public keys.
    assert receipt["receipt"] == "oim-terms-acceptance/2"
    published = ivy.request.get(live_server("/.well-known/receipt-keys.json")).json()
    assert receipt["key_id"] in [k["kid"] for k in published["keys"]]
    ivy.goto("/terms/verify")
    ivy.locator("input[name=file]").set_input_files(str(receipt_file))
    ivy.get_by_role("button", name="Verify").click()
    expect(ivy.locator(".verify-ok")).to_contain_text("Valid.")
    shot(ivy, "06-verified")

    # The judge accepts the NDA, opens the sealed idea and scores it.
    jude = new_page()
    login(jude, judge_email)
    # The judge opens the mailed invitation, accepts it and lands on the reviewer NDA.
    jude.goto(mail_link(judge_email.lower(), "/invitations/r/"))
    jude.get_by_role("button", name="Accept invitation").click()
    field(jude, "I accept this reviewer NDA").check()
    jude.get_by_role("button", name="Accept and start reviewing").click()
    expect(jude.locator(".flash-success")).to_contain_text("NDA accepted")
    jude.get_by_role("link", name="Polarised stereo").click()
    jude.locator("input[name^=score-]").fill("8")
    jude.get_by_role("button", name="Save scores").click()
    expect(jude.locator(".flash-success")).to_contain_text("Scores saved")
    expect(jude.locator(".review-panel")).to_contain_text("8.0")
    shot(jude, "07-judge-scored")

    # The author sees who opened the sealed idea.
    ivy.goto(idea_path)
    expect(ivy.locator("table.data").last).to_contain_text("Jude Judge")
    shot(ivy, "08-view-log")

    # The organisation shortlists and awards; the author sees it.
    page.goto(idea_path)
    page.get_by_role("button", name="Shortlist").click()
    expect(page.locator(".flash-success")).to_contain_text("shortlisted")
    page.get_by_role("button", name="Award").click()
    expect(page.locator(".flashes .flash-success")).to_contain_text("awarded")
    shot(page, "09-awarded")
    ivy.goto(idea_path)
    expect(ivy.locator(".badge.idea-awarded")).to_be_visible()
    expect(ivy.locator(".idea-detail .flash-success")).to_contain_text("Awarded")
    shot(ivy, "10-author-sees-award")
    assert owner
