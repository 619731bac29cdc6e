"""Data-sharing agreements on assets (issue 17): the sheet (versions, digest, diff), files
served only through the policy, agreements made from accepted requests (acceptance with a
signed receipt, access by role, the automatic end, the early end), the usage log and its
export, and search. Real SQLite, real Whoosh, real files in tmp folders."""
from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.audit import canonical_json, sha256_hex
from marketplace.extensions import db
from marketplace.models import AuditEvent, utcnow
from marketplace.models.agreements import AgreementAccess, AssetFile, DataAgreement, DataSharingSheet
from marketplace.services import agreements as svc
from marketplace.services import engagement as eng
from marketplace.services.common import ServiceError

from .factories import sign_in_client

SHEET = {
    "purpose": "Benchmark corrosion models against field data.",
    "allowed_uses": "Internal research only.",
    "access_roles": "data scientist\nreviewer",
    "duration_days": "90",
    "onward_sharing": False,
    "end_of_term": "delete",
    "end_of_term_days": "30",
    "confidentiality_days": "365",
    "surviving_terms": "Confidentiality and publication rules survive.",
    "publication_rules": "Aggregates only, after review by the owner.",
    "personal_data": False,
    "governing_law": "Dutch law",
}
CSV_BYTES = b"well,depth,rate\nA1,120,0.4\n"


class World:
    pass


def make_world(f, app, sheet: dict | None = SHEET, with_request: bool = True) -> World:
    w = World()
    w.owner = f.make_user(name="Olga Owner")
    w.owner_member = f.make_user(name="Otto Member")
    w.partner_admin = f.make_user(name="Pia Partner")
    w.scientist = f.make_user(name="Sam Scientist")
    w.intern = f.make_user(name="Ian Intern")
    w.outsider = f.make_user(name="Oscar Outsider")
    w.org = f.make_org(name="Data Owner BV", owner=w.owner, members=(w.owner_member,))
    w.partner = f.make_org(name="Partner Labs", owner=w.partner_admin, members=(w.scientist, w.intern))
    w.asset = f.make_item(w.org, kind="asset", visibility="public", title="Corrosion field data")
    if sheet is not None:
        w.sheet, _ = svc.publish_sheet(w.owner, w.asset, sheet)
    with app.test_request_context():
        from werkzeug.datastructures import FileStorage
        w.files = svc.add_files(w.owner, w.asset, [FileStorage(io.BytesIO(CSV_BYTES), filename="wells.csv")])
    w.file = w.files[0]
    if with_request:
        r = eng.send_request(w.partner_admin, w.asset, "interest", "We would like to benchmark.",
                             terms_version=None, terms_digest=None, on_behalf_of=w.partner)
        eng.decide_request(w.owner, r, "accept")
        w.request = r
        w.agreement = db.session.execute(select(DataAgreement).where(DataAgreement.request_id == r.id)).scalar()
    return w


def accept(w, people=None):
    a = w.agreement
    return svc.accept_agreement(w.partner_admin, a, people or [(w.scientist.id, "data scientist")],
                                a.sheet_version, a.sheet_digest)


# --------------------------------------------------------------------------- sheets


def test_sheet_versions_carry_the_canonical_json_and_its_digest(f, app):
    w = make_world(f, app, with_request=False)
    s = w.sheet
    assert s.version == 1 and s.digest == sha256_hex(s.canonical)
    doc = json.loads(s.canonical)
    assert doc["schema"] == "oim-data-sharing/1" and doc["access_roles"] == ["data scientist", "reviewer"]
    assert canonical_json(doc) == s.canonical
    same, created = svc.publish_sheet(w.owner, w.asset, SHEET)
    assert (same.id, created) == (s.id, False)
    s2, created = svc.publish_sheet(w.owner, w.asset, {**SHEET, "duration_days": "30"})
    assert created and s2.version == 2 and s2.digest != s.digest


def test_sheet_refusals_name_every_field_at_once(f, app):
    w = make_world(f, app, sheet=None, with_request=False)
    with pytest.raises(ServiceError) as e:
        svc.publish_sheet(w.owner, w.asset, {"access_roles": "50% of staff", "duration_days": "forever",
                                             "end_of_term": "burn"})
    fields = {name for name, _m in e.value.errors}
    assert {"purpose", "allowed_uses", "publication_rules", "governing_law", "access_roles", "duration_days",
            "end_of_term"} <= fields
    with pytest.raises(ServiceError) as e:
        svc.publish_sheet(w.partner_admin, w.asset, SHEET)
    assert e.value.status == 403
    assert db.session.execute(select(DataSharingSheet)).first() is None


# --------------------------------------------------------------------------- agreements


def test_an_accepted_request_becomes_a_proposed_agreement_and_acceptance_gives_a_receipt(f, app):
    w = make_world(f, app)
    a = w.agreement
    assert a is not None and a.status == "proposed" and policy.agreement_state(a) == "proposed"
    assert (a.owner_org_id, a.partner_org_id, a.sheet_version, a.sheet_digest) == (
        w.org.id, w.partner.id, 1, w.sheet.digest)
    # Nobody of the partner reaches the files before acceptance.
    assert not policy.can(w.scientist, "view", w.file)
    # Only the partner's admins accept, and only the version and digest proposed.
    with pytest.raises(ServiceError) as e:
        svc.accept_agreement(w.owner, a, [(w.scientist.id, "data scientist")], 1, a.sheet_digest)
    assert e.value.status == 403
    with pytest.raises(ServiceError) as e:
        svc.accept_agreement(w.partner_admin, a, [(w.scientist.id, "data scientist")], 1, "0" * 64)
    assert e.value.status == 409
    accept(w)
    assert policy.agreement_state(a) == "active"
    assert a.ends_at - a.starts_at == timedelta(days=90)
    receipt = svc.build_receipt(a)
    assert (receipt["sheet_version"], receipt["sheet_digest"]) == (1, w.sheet.digest)
    assert receipt["previous_sheet_version"] is None
    assert svc.verify_receipt(receipt).ok
    forged = {**receipt, "ends_at": "2999-01-01T00:00:00.000000Z"}
    assert not svc.verify_receipt(forged).ok
    actions = db.session.execute(select(AuditEvent.action).where(AuditEvent.subject_type == "data_agreement")).scalars().all()
    assert actions == ["agreement.proposed", "agreement.accepted"]


def test_people_are_named_in_the_sheets_roles_from_the_partner_only(f, app):
    w = make_world(f, app)
    a = w.agreement
    for people, field in (([(w.scientist.id, "janitor")], "people-0-role"),
                          ([(w.outsider.id, "reviewer")], "people-0-user"),
                          ([], "people")):
        with pytest.raises(ServiceError) as e:
            svc.accept_agreement(w.partner_admin, a, people, 1, a.sheet_digest)
        assert e.value.errors[0][0] == field
    assert db.session.get(DataAgreement, a.id).status == "proposed"


def test_access_by_role_only_the_named_people_while_in_force(f, app):
    w = make_world(f, app)
    accept(w)
    assert policy.can(w.scientist, "view", w.file)          # named, in a role of the sheet
    assert not policy.can(w.intern, "view", w.file)         # same organisation, not named
    assert not policy.can(w.partner_admin, "view", w.file)  # admin of the partner, not named
    assert not policy.can(w.outsider, "view", w.file)
    assert not policy.can(None, "view", w.file)
    assert policy.can(w.owner_member, "view", w.file)       # the owning organisation's own file
    ids = lambda u: set(db.session.execute(policy.visible(u, AssetFile).with_only_columns(AssetFile.id)).scalars())
    assert ids(w.scientist) == {w.file.id} and ids(w.intern) == set() and ids(w.outsider) == set()


def test_access_ends_by_itself_at_the_end_date(f, app):
    w = make_world(f, app)
    a = accept(w)
    a.ends_at = utcnow() - timedelta(seconds=1)  # the clock passed the end date; nothing ran
    db.session.commit()
    assert policy.agreement_state(a) == "expired"
    assert not policy.can(w.scientist, "view", w.file)
    assert db.session.execute(policy.visible(w.scientist, AssetFile)).first() is None
    with pytest.raises(ServiceError) as e:
        svc.open_file(w.scientist, w.file)
    assert e.value.status == 404


@pytest.mark.parametrize("side", ["owner", "partner_admin"])
def test_either_side_ends_early_with_a_reason(f, app, side):
    w = make_world(f, app)
    a = accept(w)
    with pytest.raises(ServiceError) as e:
        svc.end_agreement(getattr(w, side), a, "  ")
    assert e.value.field == "reason"
    with pytest.raises(ServiceError) as e:
        svc.end_agreement(w.scientist, a, "I want out")
    assert e.value.status == 403
    svc.end_agreement(getattr(w, side), a, "Project cancelled.")
    assert policy.agreement_state(a) == "ended" and a.end_reason == "Project cancelled."
    assert a.ended_side == ("owner" if side == "owner" else "partner")
    assert not policy.can(w.scientist, "view", w.file)
    ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "agreement.ended")).scalar()
    assert json.loads(ev.data)["reason"] == "Project cancelled."
    with pytest.raises(ServiceError) as e:
        svc.end_agreement(w.owner, a, "again")
    assert e.value.status == 409


def test_every_access_is_logged_and_both_sides_see_the_log(f, app):
    w = make_world(f, app)
    a = accept(w)
    svc.open_file(w.scientist, w.file)
    svc.open_file(w.scientist, w.file)
    svc.open_file(w.owner_member, w.file)  # the owner's own access is not a sharing
    log = svc.usage(a)
    assert [(r.user_id, r.file_id, r.agreement_id) for r in log] == [(w.scientist.id, w.file.id, a.id)] * 2
    assert policy.can(w.owner, "view_usage", a) and policy.can(w.partner_admin, "view_usage", a)
    assert not policy.can(w.outsider, "view_usage", a)
    assert policy.can(w.owner, "export_usage", a) and not policy.can(w.partner_admin, "export_usage", a)


def test_the_usage_export_is_csv_with_spreadsheet_safe_cells(f, app):
    w = make_world(f, app)
    a = accept(w)
    w.scientist.display_name = "=HYPERLINK(\"http://evil\")"
    w.file.filename = "+cmd.csv"
    db.session.commit()
    svc.open_file(w.scientist, w.file)
    body = svc.usage_csv(w.owner, a)
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0][:3] == ["accessed_at_utc", "agreement_id", "person"]
    assert rows[1][2].startswith("'=") and rows[1][5] == "'+cmd.csv" and rows[1][4] == "data scientist"
    for cell in ("-1", "@SUM(A1)", "\t=x"):
        assert svc.safe_cell(cell).startswith("'")
    assert svc.safe_cell("plain") == "plain"
    with pytest.raises(ServiceError) as e:
        svc.usage_csv(w.partner_admin, a)
    assert e.value.status == 403


def test_reacceptance_names_both_sheet_versions_and_digests(f, app):
    w = make_world(f, app)
    accept(w)
    svc.end_agreement(w.owner, w.agreement, "Replaced by a new sheet.")
    s2, _ = svc.publish_sheet(w.owner, w.asset, {**SHEET, "onward_sharing": True, "access_roles": "data scientist"})
    r2 = eng.send_request(w.partner_admin, w.asset, "interest", "Again, under the new sheet.",
                          terms_version=None, terms_digest=None, on_behalf_of=w.partner)
    eng.decide_request(w.owner, r2, "accept")
    a2 = db.session.execute(select(DataAgreement).where(DataAgreement.request_id == r2.id)).scalar()
    prev = svc.previous_sheet_for(a2)
    assert prev.version == 1
    svc.accept_agreement(w.partner_admin, a2, [(w.scientist.id, "data scientist")], 2, s2.digest)
    receipt = svc.build_receipt(a2)
    assert (receipt["previous_sheet_version"], receipt["previous_sheet_digest"]) == (1, w.sheet.digest)
    assert (receipt["sheet_version"], receipt["sheet_digest"]) == (2, s2.digest)
    assert svc.verify_receipt(receipt).ok


# --------------------------------------------------------------------------- pages


def _login(client, app, user):
    sign_in_client(client, app, user.id)


def test_download_through_the_policy_and_refused_after_the_end(f, app, client):
    w = make_world(f, app)
    a = accept(w)
    file_id, a_id = w.file.id, a.id
    _login(client, app, w.scientist)
    r = client.get(f"/agreements/files/{file_id}")
    assert r.status_code == 200 and r.data == CSV_BYTES
    assert r.headers["Cache-Control"] == "private, no-store"
    page = client.get(f"/agreements/{a_id}").get_data(as_text=True)
    assert "wells.csv" in page
    with app.app_context():
        svc.end_agreement(db.session.get(type(w.owner), w.owner.id), db.session.get(DataAgreement, a_id), "Over.")
    assert client.get(f"/agreements/files/{file_id}").status_code == 404
    # The intern of the same organisation never had access; an unknown file answers the same.
    client2 = app.test_client()
    _login(client2, app, w.intern)
    assert client2.get(f"/agreements/files/{file_id}").status_code == 404
    assert client2.get("/agreements/files/999999").status_code == 404
    with app.app_context():
        assert db.session.execute(select(AgreementAccess)).scalars().all().__len__() == 1


def test_pages_accept_and_export_through_the_site(f, app, client):
    w = make_world(f, app)
    a_id, digest, sci = w.agreement.id, w.agreement.sheet_digest, w.scientist.id
    _login(client, app, w.partner_admin)
    page = client.get(f"/agreements/{a_id}").get_data(as_text=True)
    assert "Accept the agreement" in page and digest in page
    r = client.post(f"/agreements/{a_id}/accept", data={"person": [str(sci), ""], "role": ["data scientist", ""],
                                                         "accept": "1", "sheet_version": "1", "sheet_digest": digest})
    assert r.status_code == 302
    r = client.post(f"/agreements/{a_id}/accept", data={"person": [str(sci)], "role": ["data scientist"],
                                                         "accept": "1", "sheet_version": "1", "sheet_digest": digest})
    assert r.status_code == 409
    assert client.get(f"/agreements/{a_id}/usage.csv").status_code == 403
    assert client.get(f"/agreements/{a_id}/receipt.json").json["sheet_digest"] == digest
    owner = app.test_client()
    _login(owner, app, w.owner)
    r = owner.get(f"/agreements/{a_id}/usage.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    stranger = app.test_client()
    _login(stranger, app, w.outsider)
    for url in (f"/agreements/{a_id}", f"/agreements/{a_id}/usage.csv", f"/agreements/{a_id}/receipt.json"):
        assert stranger.get(url).status_code == 404


def test_the_sheet_page_shows_versions_and_a_diff(f, app, client):
    w = make_world(f, app, with_request=False)
    svc.publish_sheet(w.owner, w.asset, {**SHEET, "duration_days": "30", "personal_data": True,
                                         "access_roles": "data scientist\nauditor"})
    page = client.get(f"/engage/assets/{w.asset.id}/sharing").get_data(as_text=True)
    assert "What changed from version 1 to version 2" in page
    assert "<del>90 days</del>" in page and "<ins>30 days</ins>" in page
    assert "<ins>auditor</ins>" in page and "<del>reviewer</del>" in page
    _login(client, app, w.owner)
    r = client.post(f"/engage/assets/{w.asset.id}/sharing", data={"purpose": "", "duration_days": "x"})
    assert r.status_code == 400 and "Purpose limitation is required" in r.get_data(as_text=True)


# --------------------------------------------------------------------------- search


def test_files_and_agreements_are_never_in_search(f, app, client):
    w = make_world(f, app)
    accept(w)
    w.file.filename = "zebrafishcanary.csv"
    w.sheet  # the sheet is the public offer; files and agreements are private
    db.session.commit()
    with pytest.raises(policy.PolicyError):
        policy.doc_principals(w.file)
    with pytest.raises(policy.PolicyError):
        policy.doc_principals(w.agreement)
    for user in (w.scientist, w.owner, w.outsider):
        c = app.test_client()
        _login(c, app, user)
        found = c.get("/api/search?q=zebrafishcanary").get_json()
        assert found["results"] == [] and found["total"] == 0
        # The asset itself is indexed and found (the index works), without its files' names.
        hits = c.get("/api/search?q=corrosion").get_json()["results"]
        assert [h["id"] for h in hits] == [w.asset.id]
        assert "zebrafishcanary" not in json.dumps(hits)


def test_a_party_that_cannot_see_the_asset_is_not_told_its_title(f, app, client):
    """Access to the files does not depend on seeing the asset page, and the agreement page
    and its notifications do not name an asset the reader may not see."""
    from marketplace.models import Notification

    w = make_world(f, app)
    w.asset.visibility = "organisation"
    w.asset.title = "Secret titlecanary data"
    db.session.commit()
    a = accept(w)
    svc.end_agreement(w.owner, a, "Done.")
    notes = db.session.execute(select(Notification.message).where(Notification.user_id.in_(
        [w.scientist.id, w.partner_admin.id]))).scalars().all()
    assert notes and not any("titlecanary" in n for n in notes)
    assert any("an asset of Data Owner BV" in n for n in notes)
    owner_notes = db.session.execute(select(Notification.message).where(Notification.user_id == w.owner.id)).scalars().all()
    assert any("titlecanary" in n for n in owner_notes)
    _login(client, app, w.scientist)
    page = client.get(f"/agreements/{a.id}").get_data(as_text=True)
    assert "titlecanary" not in page and "An asset you can no longer see" in page
