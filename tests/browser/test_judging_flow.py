"""Issue 11 (judging and exports) in a real browser: the organisation sets up two judging
rounds (criteria, weights, panel, dates), assigns ideas to its judge automatically; the judge
works through the queue, compares the ideas side by side and scores them; the organisation
puts one idea through to the final round and declines the other with a reason; the judge
scores the final round; the organisation puts the idea through to the shortlist, awards it,
reads the results with normalised scores and the panel's progress, and downloads the
evidence bundle, whose manifest this test re-hashes.

The challenge, its terms, reviewers and ideas are made through the services (the ideas
flow's own browser test covers those pages); everything from the rounds on goes through
the browser. Screenshots land in tests/browser/artifacts/.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import timedelta

from playwright.sync_api import expect

from marketplace.extensions import db
from marketplace.models import Idea, utcnow
from marketplace.services import ideas as ideas_svc

from ..factories import PASSWORD, Factories
from ..factories_ideas import IdeaFactories
from .flows import field, login, unique


def _local(dt) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M")


def test_two_rounds_to_an_award_and_the_evidence_bundle(page, new_page, live_server, shot, tmp_path):
    with live_server.app.app_context():
        f = Factories()
        fi = IdeaFactories(f)
        owner = f.make_user(email=f"{unique('owner')}@judging.test", name="Olga Owner")
        judge = f.make_user(email=f"{unique('judge')}@judging.test", name="Jude Judge")
        org = f.make_org(name=unique("Judging Co "), owner=owner, members=(judge,))
        s = fi.challenge(visibility="public", confidentiality="sealed", owner=owner, org=org)
        ideas_svc.appoint_reviewer(owner, s.challenge, judge.email)
        a = f.make_user(email=f"{unique('ann')}@judging.test", name="Ann Author")
        b = f.make_user(email=f"{unique('ben')}@judging.test", name="Ben Author")
        fi.submit(a, s.challenge, title="Soft silicone fingers")
        fi.submit(b, s.challenge, title="Vacuum cups with sensors")
        cid, owner_email, judge_email, judge_name = s.challenge.id, owner.email, judge.email, judge.display_name
        ids = {i.title: i.id for i in db.session.query(Idea).filter_by(challenge_id=cid)}
    now = utcnow()

    # The organisation sets up two rounds.
    login(page, owner_email, PASSWORD)
    page.goto(f"/challenges/{cid}")
    page.locator(".judging-panel").get_by_role("link", name="Set up rounds and assign judges").click()
    for name, start, end, through, criteria in (
            ("Screening", now - timedelta(days=3), now - timedelta(days=1), "1", "Feasibility: 3\nCost: 1"),
            ("Final", now - timedelta(hours=12), now + timedelta(days=5), "1", "Impact: 1")):
        page.locator("input[name='r-name']").fill(name)
        page.locator("input[name='r-starts_at']").fill(_local(start))
        page.locator("input[name='r-ends_at']").fill(_local(end))
        page.locator("input[name='r-advance_count']").fill(through)
        page.locator("textarea[name='r-criteria']").fill(criteria)
        page.get_by_label(judge_name).check()
        page.get_by_role("button", name="Add round").click()
        expect(page.locator(".flash-success")).to_contain_text(f"Round “{name}” added")
    # A bad set-up: a clear error, nothing added.
    page.locator("input[name='r-name']").fill("Overlapping")
    page.locator("input[name='r-starts_at']").fill(_local(now - timedelta(days=2)))
    page.locator("input[name='r-ends_at']").fill(_local(now))
    page.locator("input[name='r-advance_count']").fill("1")
    page.locator("textarea[name='r-criteria']").fill("Impact: 0")
    page.get_by_role("button", name="Add round").click()
    expect(page.locator(".error-summary")).to_contain_text("must be positive")
    expect(page.locator(".error-summary")).to_contain_text("overlap")
    page.locator("select[name='x-round_id']").select_option(label="1. Screening")
    page.locator("input[name='x-per_idea']").fill("1")
    page.get_by_role("button", name="Assign automatically").click()
    expect(page.locator(".flash-success")).to_contain_text("2 assignment(s) made")
    shot(page, "01-rounds")

    # The judge works through the queue: compares, then scores both ideas.
    jude = new_page()
    login(jude, judge_email, PASSWORD)
    jude.goto(f"/challenges/{cid}/judging")
    expect(jude.locator(".queue").first).to_contain_text("0 of 2 scored")
    jude.locator(f"#pick-{ids['Soft silicone fingers']}").check()
    jude.locator(f"#pick-{ids['Vacuum cups with sensors']}").check()
    jude.get_by_role("button", name="Compare the chosen ideas side by side").click()
    expect(jude.locator(".compare article")).to_have_count(2)
    shot(jude, "02-compare")
    for title, (feas, cost) in (("Soft silicone fingers", ("9", "6")), ("Vacuum cups with sensors", ("4", "5"))):
        jude.goto(f"/challenges/{cid}/judging")
        jude.locator(".queue").get_by_role("link", name=title).click()
        jude.get_by_label("Feasibility (weight 3)").fill(feas)
        jude.get_by_label("Cost (weight 1)").fill(cost)
        jude.get_by_role("button", name="Save scores").click()
        expect(jude.locator(".flash-success")).to_contain_text("Scores saved for round “Screening”")
    jude.locator("textarea[name=body]").fill("Worth a pilot.")
    jude.get_by_role("button", name="Post to the panel").click()
    expect(jude.locator("#discussion")).to_contain_text("Worth a pilot.")
    jude.goto(f"/challenges/{cid}/judging")
    expect(jude.locator(".queue").first).to_contain_text("2 of 2 scored")
    shot(jude, "03-queue-done")

    # The organisation reads the results, puts one idea through and declines the other.
    page.goto(f"/challenges/{cid}/judging")
    page.get_by_role("link", name="Results with normalised scores").first.click()
    expect(page.locator("body")).to_contain_text("Normalisation method: z-score per judge within the round")
    expect(page.locator("table.results")).to_contain_text("8.25 / 1.00")
    shot(page, "04-results")
    page.goto(f"/challenges/{cid}/judging")
    page.locator(f"#pick-{ids['Soft silicone fingers']}").check()
    field(page, "Put through (next round, or the shortlist)").check()
    page.get_by_role("button", name="Apply to the chosen ideas").click()
    expect(page.locator(".flash-success")).to_contain_text("1 idea(s) put through")
    page.locator(f"#pick-{ids['Vacuum cups with sensors']}").check()
    field(page, "Decline").check()
    page.locator("textarea[name=reason]").fill("Thank you; not for this pilot.")
    page.get_by_role("button", name="Apply to the chosen ideas").click()
    expect(page.locator("body")).to_contain_text("Decline 1 idea(s)?")  # asked first, also without JavaScript
    page.get_by_role("button", name="Decline the ideas").click()
    expect(page.locator(".flash-success")).to_contain_text("1 idea(s) declined")
    page.goto(f"/challenges/{cid}/rounds")
    page.locator("select[name='x-round_id']").select_option(label="2. Final")
    page.locator("input[name='x-per_idea']").fill("1")
    page.get_by_role("button", name="Assign automatically").click()
    expect(page.locator(".flash-success")).to_contain_text("1 assignment(s) made")

    # The judge scores the final round; the organisation shortlists and awards.
    jude.goto(f"/ideas/{ids['Soft silicone fingers']}/judging")
    jude.get_by_label("Impact (weight 1)").fill("8")
    jude.get_by_role("button", name="Save scores").click()
    expect(jude.locator(".flash-success")).to_contain_text("Scores saved for round “Final”")
    page.goto(f"/challenges/{cid}/judging")
    page.locator(f"#pick-{ids['Soft silicone fingers']}").check()
    field(page, "Put through (next round, or the shortlist)").check()
    page.get_by_role("button", name="Apply to the chosen ideas").click()
    expect(page.locator(".flash-success")).to_contain_text("1 idea(s) put through")
    page.goto(f"/ideas/{ids['Soft silicone fingers']}")
    expect(page.locator(".badge.idea-shortlisted")).to_be_visible()
    page.get_by_role("button", name="Award").click()
    expect(page.locator(".flashes .flash-success")).to_contain_text("awarded")
    page.goto(f"/challenges/{cid}/judging/progress")
    expect(page.locator("table.progress-table").first).to_contain_text(judge_name)
    page.goto(f"/challenges/{cid}/decisions")
    expect(page.locator("body")).to_contain_text("Put through from “Screening” to “Final”")
    shot(page, "05-decision-log")

    # The evidence bundle: every file listed in the manifest with its SHA-256.
    page.goto(f"/challenges/{cid}")
    with page.expect_download() as dl:
        page.locator(".judging-panel").get_by_role("link", name="evidence bundle (ZIP with SHA-256 manifest)").click()
    path = tmp_path / "bundle.zip"
    dl.value.save_as(path)
    z = zipfile.ZipFile(path)
    manifest = json.loads(z.read("manifest.json"))
    assert {e["path"] for e in manifest["files"]} == set(z.namelist()) - {"manifest.json"}
    for e in manifest["files"]:
        assert hashlib.sha256(z.read(e["path"])).hexdigest() == e["sha256"], e["path"]
    data = json.loads(z.read("ideas.json"))
    won = next(i for i in data["ideas"] if i["id"] == ids["Soft silicone fingers"])
    assert won["status"] == "awarded" and [r["round"] for r in won["rounds"]] == ["Screening", "Final"]
    assert any(p.startswith("receipts/") for p in z.namelist()) and "terms/v1.json" in z.namelist()
