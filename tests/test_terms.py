"""Terms sheets: structured, versioned, canonical JSON + digest; the open check; receipts."""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.audit import canonical_json, sha256_hex
from marketplace.extensions import db
from marketplace.models import AuditEvent, ChallengeRules, ChallengeTerms, TermsAcceptance, utcnow
from marketplace.services import items as items_svc
from marketplace.services import terms as terms_svc
from marketplace.services.common import ServiceError

from .factories_ideas import IdeaFactories, rules_data, terms_data


@pytest.fixture
def fi(f):
    return IdeaFactories(f)


def test_terms_version_has_canonical_json_and_digest(f, fi):
    s = fi.challenge(confidentiality="open")
    t = s.terms
    assert t.version == 1 and t.digest == sha256_hex(t.canonical) == hashlib.sha256(t.canonical.encode()).hexdigest()
    data = json.loads(t.canonical)
    assert data["schema"] == "oim-terms/1" and data["challenge_id"] == s.challenge.id and data["version"] == 1
    assert data["ip_model"] == "non-exclusive-licence" and data["confidentiality"] == "open"
    assert data["incentives"][0] == {"kind": "cash-prize", "amount": "1000.00", "currency": "EUR", "winners": 1}
    assert canonical_json(data) == t.canonical  # canonical: sorted keys, no spaces
    ev = db.session.execute(select(AuditEvent).where(AuditEvent.action == "terms.version_created")).scalar_one()
    assert ev.item_id == s.challenge.id and json.loads(ev.data)["digest"] == t.digest


def test_editing_makes_a_new_version_and_unchanged_makes_none(f, fi):
    s = fi.challenge()
    same, created = terms_svc.save_terms(s.owner, s.challenge, terms_data(confidentiality="sealed"))
    assert not created and same.id == s.terms.id
    v2, created = terms_svc.save_terms(s.owner, s.challenge, terms_data(confidentiality="sealed", territory="EU."))
    assert created and v2.version == 2 and v2.digest != s.terms.digest
    assert policy.current_terms(s.challenge.id).id == v2.id
    db.session.expire_all()
    assert db.session.get(ChallengeTerms, s.terms.id).territory == "Worldwide."  # v1 untouched


@pytest.mark.parametrize("over, field, text", [
    ({"ip_model": "steal-everything"}, "ip_model", "IP models"),
    ({"ip_model": "open-licence", "open_licence": ""}, "open_licence", "CC-BY-4.0"),
    ({"territory": "  "}, "territory", "Territory is required"),
    ({"confidentiality": "secret"}, "confidentiality", "sealed or open"),
    ({"confidentiality": "open", "reveal_at": utcnow() + timedelta(days=3)}, "reveal_at", "only applies"),
    ({"reveal_at": utcnow() - timedelta(days=1)}, "reveal_at", "future"),
    ({"incentives": []}, "incentives", "at least one incentive"),
    ({"incentives": [{"kind": "cash-prize", "amount": "-5", "currency": "EUR"}]}, "incentives", "positive"),
    ({"incentives": [{"kind": "cash-prize", "amount": "5", "currency": "euro"}]}, "incentives", "three-letter"),
    ({"incentives": [{"kind": "royalty-share", "percentage": "150", "base": "sales"}]}, "incentives", "at most 100"),
    ({"incentives": [{"kind": "milestone-payment", "amount": "5", "currency": "EUR"}]}, "incentives", "milestone"),
    ({"incentives": [{"kind": "recognition"}]}, "incentives", "description"),
    ({"incentives": [{"kind": "free-lunch"}]}, "incentives", "Unknown incentive"),
])
def test_terms_validation(f, fi, over, field, text):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    ch = f.make_item(org, kind="challenge", status="draft")
    with pytest.raises(ServiceError) as ei:
        terms_svc.save_terms(owner, ch, terms_data(**over))
    db.session.rollback()
    assert ei.value.field == field and text in ei.value.message
    assert policy.current_terms(ch.id) is None


def test_all_incentive_kinds_are_described(f, fi):
    s = fi.challenge(incentives=[
        {"kind": "cash-prize", "amount": "500", "currency": "usd", "winners": 3},
        {"kind": "milestone-payment", "milestone": "Prototype", "amount": "100", "currency": "EUR"},
        {"kind": "royalty-share", "percentage": "2.5", "base": "net sales"},
        {"kind": "recognition", "description": "A trophy"},
        {"kind": "collaboration-contract", "description": "A pilot"},
        {"kind": "access", "description": "Our test track"},
    ])
    texts = [terms_svc.describe_incentive(i) for i in s.terms.incentives]
    assert texts[0] == "Cash prize of 500.00 USD for each of 3 winners"
    assert "Prototype" in texts[1] and "2.50% of net sales" in texts[2] and texts[5].endswith("Our test track")


def test_challenge_cannot_open_without_terms(f, fi):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    ch = f.make_item(org, kind="challenge", status="draft")
    with pytest.raises(ServiceError) as ei:
        items_svc.change_status(owner, ch, "open")
    db.session.rollback()
    assert "terms sheet" in ei.value.message
    terms_svc.save_terms(owner, ch, terms_data())
    items_svc.change_status(owner, ch, "open")
    assert ch.status == "open"
    assert db.session.execute(select(ChallengeRules).where(ChallengeRules.challenge_id == ch.id)).scalar_one()


def test_publish_button_refuses_without_terms_with_a_message(f, client, auth):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    ch = f.make_item(org, kind="challenge", status="draft")
    auth.login(owner.email)
    r = client.post(f"/challenges/{ch.id}/status", data={"status": "open"}, follow_redirects=True)
    assert b"needs a terms sheet" in r.data
    assert ch.status == "draft"


def test_rules_validation(f, fi):
    s = fi.challenge()
    bad = [
        (rules_data(who_may_submit="anyone"), "who_may_submit"),
        (rules_data(max_ideas_per_contributor=0), "max_ideas_per_contributor"),
        (rules_data(team_allowed=True, max_team_size=1), "max_team_size"),
        (rules_data(allowed_domains="not a domain!"), "allowed_domains"),
        (rules_data(allowed_domains="a.test", blocked_domains="a.test"), "blocked_domains"),
        (rules_data(who_may_submit="organisation", org_members_may_participate=False), "org_members_may_participate"),
    ]
    for data, field in bad:
        with pytest.raises(ServiceError) as ei:
            terms_svc.save_rules(s.owner, s.challenge, data)
        db.session.rollback()
        assert ei.value.field == field
    rules = terms_svc.save_rules(s.owner, s.challenge, rules_data(allowed_domains="@Uni.test, lab.example.org"))
    assert rules.allowed_list == ["uni.test", "lab.example.org"]


def test_only_org_admins_manage_terms(f, fi, client, auth):
    s = fi.challenge()
    member, outsider = f.make_user(), f.make_user()
    f.add_member(s.org, member)
    with pytest.raises(ServiceError) as ei:
        terms_svc.save_terms(member, s.challenge, terms_data(territory="Mine"))
    assert ei.value.status == 403
    auth.login(outsider.email)
    assert client.get(f"/challenges/{s.challenge.id}/terms/edit").status_code == 403
    assert client.get(f"/challenges/{s.challenge.id}/rules/edit").status_code == 403
    assert client.get(f"/challenges/{s.challenge.id}/reviewers").status_code == 403


def test_edit_terms_over_http(f, fi, client, auth):
    s = fi.challenge()
    auth.login(s.owner.email)
    r = client.get(f"/challenges/{s.challenge.id}/terms/edit")
    assert r.status_code == 200 and b"Worldwide." in r.data  # prefilled from the current version
    form = {k: v for k, v in terms_data(territory="Benelux.").items() if k not in ("incentives", "reveal_at")}
    form.update({"incentives-0-kind": "royalty-share", "incentives-0-percentage": "3", "incentives-0-base": "sales"})
    r = client.post(f"/challenges/{s.challenge.id}/terms/edit", data=form)
    assert r.status_code == 302
    t = policy.current_terms(s.challenge.id)
    assert t.version == 2 and t.territory == "Benelux." and t.incentives[0]["kind"] == "royalty-share"
    form["incentives-0-percentage"] = "300"
    r = client.post(f"/challenges/{s.challenge.id}/terms/edit", data=form)
    assert r.status_code == 400 and b"at most 100" in r.data


def test_terms_pages_and_canonical_json_download(f, fi, client):
    s = fi.challenge(confidentiality="open")
    page = client.get(f"/challenges/{s.challenge.id}")
    assert page.status_code == 200 and s.terms.digest.encode() in page.data and b"non-exclusive-licence" in page.data
    sheet = client.get(f"/challenges/{s.challenge.id}/terms")
    assert sheet.status_code == 200 and b"Field of use" in sheet.data and b"Cash prize of 1000.00 EUR" in sheet.data
    raw = client.get(f"/challenges/{s.challenge.id}/terms/v1.json")
    assert raw.status_code == 200 and hashlib.sha256(raw.data).hexdigest() == s.terms.digest
    assert client.get(f"/challenges/{s.challenge.id}/terms/v9").status_code == 404


def test_terms_of_a_hidden_challenge_are_hidden(f, fi, client, auth):
    s = fi.challenge(visibility="organisation")
    auth.login(f.make_user().email)
    for path in ("/terms", "/terms/v1", "/terms/v1.json", "/ideas", "/ideas/new"):
        assert client.get(f"/challenges/{s.challenge.id}{path}").status_code == 404


# --------------------------------------------------------------------------- receipts


def _acceptance(f, fi):
    s = fi.challenge()
    u = f.make_user()
    fi.submit(u, s.challenge)
    return u, db.session.execute(select(TermsAcceptance)).scalar_one()


def test_receipt_verifies_and_tampering_fails(f, fi):
    u, acc = _acceptance(f, fi)
    receipt = terms_svc.build_receipt(acc)
    assert terms_svc.verify_receipt(json.dumps(receipt)).ok
    for field, value in (("content_sha256", "0" * 64), ("terms_version", 2), ("accepted_at", "2020-01-01T00:00:00.000000Z"),
                         ("user_id", u.id + 1)):
        bad = dict(receipt, **{field: value})
        check = terms_svc.verify_receipt(json.dumps(bad))
        assert not check.ok and "signature does not match" in check.problems[0]
    assert not terms_svc.verify_receipt("not json").ok
    assert not terms_svc.verify_receipt(json.dumps({"hello": 1})).ok


def test_a_signed_receipt_for_an_acceptance_never_made_fails(f, fi, app):
    u, acc = _acceptance(f, fi)
    forged = {k: v for k, v in terms_svc.build_receipt(acc).items() if k != "signature"}
    forged["acceptance_id"] = acc.id + 100
    forged["signature"] = terms_svc._sign(forged)  # even with the key, the record must exist
    check = terms_svc.verify_receipt(forged)
    assert not check.ok and "No acceptance" in check.problems[0]
    forged.pop("signature")
    forged["acceptance_id"] = acc.id
    forged["content_sha256"] = "f" * 64
    forged["signature"] = terms_svc._sign(forged)
    check = terms_svc.verify_receipt(forged)
    assert not check.ok and "content_sha256" in " ".join(check.problems)


def test_receipt_pages_belong_to_the_accepter(f, fi, client, auth):
    u, acc = _acceptance(f, fi)
    other = f.make_user()
    auth.login(other.email)
    assert client.get(f"/ideas/receipts/{acc.id}").status_code == 404
    assert client.get(f"/ideas/receipts/{acc.id}.json").status_code == 404
    auth.logout()
    auth.login(u.email)
    page = client.get(f"/ideas/receipts/{acc.id}")
    assert page.status_code == 200 and acc.terms_digest.encode() in page.data
    raw = client.get(f"/ideas/receipts/{acc.id}.json")
    assert raw.status_code == 200 and "attachment" in raw.headers["Content-Disposition"]
    receipt = json.loads(raw.data)
    assert receipt["content_sha256"] == acc.content_hash and receipt["terms_digest"] == acc.terms_digest
    auth.logout()
    ok = client.post("/terms/verify", data={"receipt": raw.data.decode()})  # anyone may verify
    assert ok.status_code == 200 and b"Valid." in ok.data
    bad = client.post("/terms/verify", data={"receipt": raw.data.decode().replace(acc.terms_digest, "0" * 64)})
    assert bad.status_code == 422 and b"Not valid." in bad.data
    assert client.post("/terms/verify", data={"receipt": ""}).status_code == 400


def test_cli_verify(f, fi, runner, tmp_path):
    u, acc = _acceptance(f, fi)
    good = tmp_path / "RECEIPT.json"
    good.write_text(terms_svc.receipt_json(acc))
    r = runner.invoke(args=["terms", "verify", str(good)])
    assert r.exit_code == 0 and "VALID" in r.output and acc.terms_digest in r.output
    bad = tmp_path / "bad.json"
    bad.write_text(terms_svc.receipt_json(acc).replace(acc.content_hash, "1" * 64))
    r = runner.invoke(args=["terms", "verify", str(bad)])
    assert r.exit_code == 1 and "INVALID" in r.output
    r = runner.invoke(args=["terms", "verify", str(tmp_path / "missing.json")])
    assert r.exit_code != 0


def test_nda_page_and_brief_rule(f, fi, client, auth):
    s = fi.challenge(nda_text="Do not tell anyone about the lidar.")
    u = f.make_user()
    auth.login(u.email)
    page = client.get(f"/challenges/{s.challenge.id}/nda")
    assert page.status_code == 200 and b"Do not tell anyone" in page.data
    r = client.post(f"/challenges/{s.challenge.id}/nda", data={"terms_version": "1", "terms_digest": s.terms.digest})
    assert r.status_code == 400 and b"Tick the box" in r.data
    r = client.post(f"/challenges/{s.challenge.id}/nda",
                    data={"terms_version": "1", "terms_digest": "0" * 64, "accept": "y"})
    assert r.status_code == 409
    r = client.post(f"/challenges/{s.challenge.id}/nda",
                    data={"terms_version": "1", "terms_digest": s.terms.digest, "accept": "y"})
    assert r.status_code == 302
    acc = db.session.execute(select(TermsAcceptance).where(TermsAcceptance.purpose == "nda")).scalar_one()
    assert acc.user_id == u.id and acc.terms_digest == s.terms.digest
    assert policy.can(u, "view_brief", s.challenge)
