"""Terms diffs (issue 17): between two versions of a challenge terms sheet or of a
data-sharing sheet, a field-by-field diff of every kind of field (text, choice, date,
number, flag, list); shown on the public terms page and to a contributor who accepted an
earlier version before they accept the new one; a re-acceptance receipt names both versions
and both digests."""
from __future__ import annotations

from datetime import timedelta

from marketplace.models import TermsAcceptance, utcnow
from marketplace.services import agreements as agr
from marketplace.services import terms as terms_svc
from marketplace.services.terms_diff import diff_sheets, diff_terms
from marketplace.extensions import db
from sqlalchemy import select

from .factories import sign_in_client
from .factories_ideas import IdeaFactories, terms_data
from .test_agreements import SHEET


def _by_key(changes):
    return {c.key: c for c in changes}


def test_terms_diff_covers_text_choice_date_and_list_fields(f):
    idf = IdeaFactories(f)
    s = idf.challenge(confidentiality="sealed")
    reveal = utcnow() + timedelta(days=60)
    v2, _ = terms_svc.save_terms(s.owner, s.challenge, terms_data(
        ip_model="exclusive-licence", field_of_use="Any logistics use.", reveal_at=reveal,
        incentives=[{"kind": "cash-prize", "amount": "5000", "currency": "EUR", "winners": 1},
                    {"kind": "recognition", "description": "Named on our website."}]))
    changes = _by_key(diff_terms(s.terms, v2))
    assert set(changes) == {"ip_model", "field_of_use", "reveal_at", "incentives"}
    assert (changes["ip_model"].kind, changes["ip_model"].before, changes["ip_model"].after) == (
        "choice", "Non exclusive licence", "Exclusive licence")
    assert (changes["field_of_use"].kind, changes["field_of_use"].before, changes["field_of_use"].after) == (
        "text", "Warehouse robotics.", "Any logistics use.")
    assert changes["reveal_at"].kind == "date" and changes["reveal_at"].before == "(none)"
    assert str(reveal.year) in changes["reveal_at"].after
    inc = changes["incentives"]
    assert inc.kind == "list" and inc.added == ["Cash prize of 5000.00 EUR"] and inc.removed == ["Cash prize of 1000.00 EUR"]
    assert "Recognition" not in " ".join(inc.added + inc.removed)  # unchanged entries are not listed
    # Confidentiality is a choice too; an unchanged sheet has no changes.
    v3, _ = terms_svc.save_terms(s.owner, s.challenge, terms_data(confidentiality="open"))
    assert _by_key(diff_terms(s.terms, v3)).keys() == {"confidentiality"}
    assert diff_terms(v2, v2) == []


def test_sheet_diff_covers_number_flag_choice_list_and_text_fields(f, app):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    asset = f.make_item(org, kind="asset")
    s1, _ = agr.publish_sheet(owner, asset, SHEET)
    s2, _ = agr.publish_sheet(owner, asset, {**SHEET, "duration_days": "180", "onward_sharing": True,
                                             "end_of_term": "return", "access_roles": "data scientist\nauditor",
                                             "governing_law": "English law"})
    c = _by_key(diff_sheets(s1, s2))
    assert set(c) == {"duration_days", "onward_sharing", "end_of_term", "access_roles", "governing_law"}
    assert (c["duration_days"].kind, c["duration_days"].before, c["duration_days"].after) == ("number", "90 days", "180 days")
    assert (c["onward_sharing"].kind, c["onward_sharing"].before, c["onward_sharing"].after) == ("flag", "no", "yes")
    assert (c["end_of_term"].kind, c["end_of_term"].after) == ("choice", "Return the data")
    assert (c["access_roles"].added, c["access_roles"].removed) == (["auditor"], ["reviewer"])
    assert c["governing_law"].summary == "Governing law: Dutch law → English law"


def test_a_contributor_sees_the_changes_before_accepting_again_and_the_receipt_names_both(f, app, client):
    idf = IdeaFactories(f)
    s = idf.challenge()
    author = f.make_user(name="Ada Author")
    idf.submit(author, s.challenge)
    v1 = s.terms
    v2, _ = terms_svc.save_terms(s.owner, s.challenge, terms_data(
        field_of_use="Only indoor robots."))
    ch_id, v1_digest, v2_digest = s.challenge.id, v1.digest, v2.digest
    sign_in_client(client, app, author.id)
    page = client.get(f"/challenges/{ch_id}/ideas/new").get_data(as_text=True)
    assert "What changed since the version you accepted (version 1)" in page
    assert "<del>Warehouse robotics.</del>" in page and "<ins>Only indoor robots.</ins>" in page
    # The public terms page shows the diff between versions to anyone, signed in or not.
    public = app.test_client().get(f"/challenges/{ch_id}/terms").get_data(as_text=True)
    assert "What changed from version 1 to version 2" in public and "Only indoor robots." in public
    assert "since the version you accepted" not in public
    idf.submit(author, s.challenge, title="A second idea")
    acc = db.session.execute(select(TermsAcceptance).where(TermsAcceptance.terms_version == 2)).scalar()
    assert (acc.previous_terms_version, acc.previous_terms_digest) == (1, v1_digest)
    receipt = terms_svc.build_receipt(acc)
    assert (receipt["terms_version"], receipt["terms_digest"]) == (2, v2_digest)
    assert (receipt["previous_terms_version"], receipt["previous_terms_digest"]) == (1, v1_digest)
    assert terms_svc.verify_receipt(receipt).ok
    tampered = {**receipt, "previous_terms_version": None}
    assert not terms_svc.verify_receipt(tampered).ok
    first = db.session.execute(select(TermsAcceptance).where(TermsAcceptance.terms_version == 1)).scalar()
    assert terms_svc.build_receipt(first)["previous_terms_version"] is None
