"""Issue 17 in a real browser: an organisation shares a data set under a data-sharing
agreement; the partner's request is accepted, the partner accepts the agreement naming its
analyst, downloads a file, the owner ends the agreement early and the download is refused.
Screenshots land in tests/browser/artifacts/."""
from __future__ import annotations

from playwright.sync_api import expect
from sqlalchemy import select

from marketplace.extensions import db
from marketplace.models import AssetRequest
from marketplace.models.agreements import AssetFile, DataAgreement

from .flows import create_org, field, path_of, post_item, register, unique

CSV = b"well,depth,rate\nA1,120,0.4\n"


def test_share_a_data_set_download_as_the_partner_end_and_be_refused(page, new_page, live_server, shot, tmp_path):
    # The data owner: an organisation, a data set, its sheet and a file.
    register(page, name="Olga Owner")
    create_org(page, unique("Data Owner "))
    title = unique("Corrosion field data ")
    asset_path = post_item(page, kind="asset", title=title, visibility="public")
    asset_id = int(asset_path.rstrip("/").rsplit("/", 1)[1])
    page.locator("#data-sharing").get_by_role("link", name="Data-sharing sheet").click()
    field(page, "Purpose limitation").fill("Benchmark corrosion models.")
    field(page, "Allowed uses").fill("Internal research only.")
    field(page, "Roles that may access").fill("analyst\nreviewer")
    field(page, "Duration (days)").fill("90")
    field(page, "Publication rules").fill("Aggregates only.")
    field(page, "Governing law").fill("Dutch law")
    page.get_by_role("button", name="Publish this version").click()
    expect(page.locator(".flash-success")).to_contain_text("Published version 1")
    shot(page, "01-sheet")
    data_file = tmp_path / "wells.csv"
    data_file.write_bytes(CSV)
    page.goto(f"/engage/assets/{asset_id}/files")
    page.locator("input[name=files]").set_input_files(str(data_file))
    page.get_by_role("button", name="Add files").click()
    expect(page.locator(".flash-success")).to_contain_text("Added 1 file")
    expect(page.get_by_role("link", name="wells.csv")).to_be_visible()

    # The partner asks for it on behalf of its organisation.
    partner = new_page()
    register(partner, name="Pia Partner")
    partner_org = unique("Partner Labs ")
    create_org(partner, partner_org)
    partner.goto(asset_path)
    field(partner, "What you are asking for").select_option("interest")
    field(partner, "Sent by").select_option(label=f"{partner_org} (as its owner/admin)")
    partner.get_by_role("button", name="Send to the organisation").click()
    expect(partner.locator(".flash-success")).to_be_visible()
    with live_server.app.app_context():
        request_id = db.session.execute(select(AssetRequest.id).where(AssetRequest.item_id == asset_id)).scalar_one()
        file_id = db.session.execute(select(AssetFile.id).where(AssetFile.item_id == asset_id)).scalar_one()

    # The owner accepts the request: it becomes a proposed agreement.
    page.goto(f"/engage/requests/{request_id}")
    field(page, "Decision").select_option("accept")
    page.get_by_role("button", name="Send decision").click()
    expect(page.locator(".flash-success")).to_contain_text("Decision sent")
    with live_server.app.app_context():
        agreement_id = db.session.execute(select(DataAgreement.id).where(
            DataAgreement.request_id == request_id)).scalar_one()

    # Before accepting, the partner cannot download anything.
    refused = partner.goto(live_server(f"/agreements/files/{file_id}"))
    assert refused.status == 404

    # The partner accepts, naming its analyst (Pia herself), and downloads the file.
    partner.goto("/agreements/")
    partner.get_by_role("link", name=f"#{agreement_id}").click()
    expect(partner.locator("#agreement-state")).to_have_text("proposed")
    partner.locator("#person-0").select_option(label="Pia Partner")
    partner.locator("#role-0").select_option("analyst")
    partner.locator("#accept-box").check()
    partner.get_by_role("button", name="Accept", exact=True).click()
    expect(partner.locator(".flash-success")).to_contain_text("Agreement accepted")
    expect(partner.locator("#agreement-state")).to_have_text("active")
    shot(partner, "02-agreement-active")
    with partner.expect_download() as dl:
        partner.locator("ul.files").get_by_role("link", name="wells.csv").click()
    saved = tmp_path / "downloaded.csv"
    dl.value.save_as(saved)
    assert saved.read_bytes() == CSV

    # The owner sees the access in the usage log, then ends the agreement early.
    page.goto(f"/agreements/{agreement_id}")
    expect(page.locator("table.usage")).to_contain_text("Pia Partner")
    expect(page.locator("table.usage")).to_contain_text("wells.csv")
    page.locator("#end-reason").fill("The project was cancelled.")
    page.get_by_role("button", name="End the agreement").click()
    expect(page.locator(".flash-success")).to_contain_text("Agreement ended")
    expect(page.locator("#agreement-state")).to_have_text("ended")
    shot(page, "03-ended")

    # The partner's download is refused now.
    partner.goto(f"/agreements/{agreement_id}")
    expect(partner.locator("#agreement-state")).to_have_text("ended")
    expect(partner.locator("ul.files")).to_have_count(0)
    refused = partner.goto(live_server(f"/agreements/files/{file_id}"))
    assert refused.status == 404
    shot(partner, "04-download-refused")
    assert path_of(partner) == f"/agreements/files/{file_id}"
