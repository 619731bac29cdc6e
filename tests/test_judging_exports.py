"""A challenge's exports with proof (issue 11): the CSV and JSON exports and the evidence
bundle hold exactly what the policy lets their requester see, cells are spreadsheet-safe,
the bundle's manifest matches every file re-hashed here, exports of challenges one may not
see answer 404 (others 403), and a failed bundle leaves no file behind."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug.datastructures import FileStorage

from marketplace import policy
from marketplace.exports import challenge as exports
from marketplace.exports import csvsafe
from marketplace.extensions import db
from marketplace.models import ChallengeTerms, Idea, TermsAcceptance, utcnow
from marketplace.policy.judging import receipt_exportable
from marketplace.services import ideas as ideas_svc
from marketplace.services import judging as svc
from marketplace.services import moderation as mod_svc

from .factories_ideas import PDF, IdeaFactories

EVIL = '=HYPERLINK("http://evil.test","click")'


class World:
    pass


@pytest.fixture
def w(f):
    fi = IdeaFactories(f)
    x = World()
    s = fi.challenge(visibility="public", confidentiality="sealed", nda_text="Keep it secret.")
    x.s, x.ch, x.owner = s, s.challenge, s.owner
    x.member = f.make_user(name="Plain Member")
    f.add_member(s.org, x.member)
    x.judge = f.make_user(name="Judge Jo")
    f.add_member(s.org, x.judge)
    ideas_svc.appoint_reviewer(s.owner, s.challenge, x.judge.email)
    x.ann, x.cy, x.dee, x.outsider = (f.make_user(name=n) for n in ("Ann", "Cy", "Dee", "Outsider"))
    from marketplace.services import terms as terms_svc

    terms = policy.current_terms(x.ch.id)
    for u in (x.ann, x.cy, x.dee):
        terms_svc.accept_nda(u, x.ch, str(terms.version), terms.digest)
    x.shown = fi.submit(x.ann, x.ch, title=EVIL, summary="-2+3 is a formula too",
                        uploads=[FileStorage(stream=io.BytesIO(PDF), filename="Plan.pdf")])
    x.second = fi.submit(x.dee, x.ch, title="Plain second idea")
    x.hidden = fi.submit(x.cy, x.ch, title="Spammy secret idea")
    site_mod = f.make_user(site_role="moderator")
    mod_svc.take_action(site_mod, "idea", x.hidden.id, "hide", "Spam.", rule="No spam")
    x.waiting = fi.submit(x.dee, x.ch, title="Waiting for co-authors", coauthors=x.cy.email)
    other = fi.challenge(confidentiality="sealed", owner=x.owner, org=s.org)
    x.elsewhere = fi.submit(x.cy, other.challenge, title="Another challenge's idea")
    x.private = fi.challenge(visibility="organisation").challenge
    now = utcnow()
    svc.create_round(x.owner, x.ch, {"name": "Screening", "starts_at": now - timedelta(days=3),
                                     "ends_at": now + timedelta(days=3), "advance_count": 1,
                                     "criteria": "Feasibility: 2", "panel": [x.judge.id]})
    rnd = policy.judging.rounds_of(x.ch.id)[0]
    for idea, score in ((x.shown, 8), (x.second, 4)):
        svc.assign(x.owner, rnd, idea, x.judge.id)
        svc.score_in_round(x.judge, idea, {rnd.criteria[0].id: score})
    svc.advance_ideas(x.owner, x.ch, [x.shown.id], "Best of the round")
    ideas_svc.award_idea(x.owner, db.session.get(Idea, x.shown.id), 1)
    return x


def test_ideas_stated_by_hand_match_the_policy(w):
    """The world is what the tests below assume: the owner sees exactly these two ideas."""
    seen = set(db.session.execute(select(Idea.id).where(policy.visible_clause(w.owner, Idea),
                                                        Idea.challenge_id == w.ch.id)).scalars())
    assert seen == {w.shown.id, w.second.id}
    assert db.session.get(Idea, w.waiting.id).status == "awaiting-coauthors"


def _receipts_allowed(user, challenge) -> set[int]:
    v = policy.viewer_for(user)
    return {a.id for a in db.session.execute(select(TermsAcceptance).where(
        TermsAcceptance.challenge_id == challenge.id)).scalars() if receipt_exportable(v, challenge, a)}


def test_json_export_holds_exactly_what_the_policy_allows(w, client, auth):
    auth.login(w.owner.email)
    r = client.get(f"/challenges/{w.ch.id}/export.json")
    assert r.status_code == 200 and r.headers["Cache-Control"].startswith("private")
    data = json.loads(r.get_data(as_text=True))
    ids = {i["id"] for i in data["ideas"]}
    assert ids == {w.shown.id, w.second.id}
    body = r.get_data(as_text=True)
    for unseen in ("Spammy secret idea", "Waiting for co-authors", "Another challenge's idea"):
        assert unseen not in body
    receipts = {a["acceptance_id"] for i in data["ideas"] for a in i["receipts"]} | \
        {a["acceptance_id"] for a in data["nda_receipts"]}
    assert receipts == _receipts_allowed(w.owner, w.ch)
    hidden_receipts = {a.id for a in db.session.execute(select(TermsAcceptance).where(
        TermsAcceptance.idea_id.in_([w.hidden.id, w.waiting.id]))).scalars()}
    assert hidden_receipts and not hidden_receipts & receipts
    shown = next(i for i in data["ideas"] if i["id"] == w.shown.id)
    assert shown["status"] == "awarded" and shown["award"]["incentive"]["kind"] == "recognition"
    assert shown["rounds"][0]["raw_mean"] == 8.0 and shown["rounds"][0]["scores"] == [
        {"judge": "Judge Jo", "criterion": "Feasibility", "score": 8}]
    assert shown["rounds"][0]["normalised_mean"] == 1.0  # Jo: 8 and 4, mean 6, SD 2
    assert "z-score per judge" in data["normalisation"]


def test_csv_export_is_spreadsheet_safe_and_matches_the_json(w, client, auth):
    auth.login(w.owner.email)
    r = client.get(f"/challenges/{w.ch.id}/export.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    header, body = rows[0], rows[1:]
    assert [int(row[0]) for row in body] == sorted([w.shown.id, w.second.id])
    cells = [c for row in body for c in row]
    assert "'" + EVIL in cells

    def number(c):
        try:
            float(c)
            return True
        except ValueError:
            return False

    # Only numbers we computed may begin with "-" (a negative z-score): never a formula.
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not number(c)]
    assert "Screening: normalised mean (z)" in header
    second = next(row for row in body if int(row[0]) == w.second.id)
    assert second[header.index("Screening: normalised mean (z)")] == "-1.0"  # a number, not neutralised


@pytest.mark.parametrize("value,written", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    ("plain", "plain"), ("a=b", "a=b"), ("", ""), (None, ""), (-1.5, -1.5), (3, 3), (True, "yes"),
])
def test_csvsafe_neutralises_formula_cells(value, written):
    assert csvsafe.safe_cell(value) == written
    if isinstance(value, str) or value is None:
        assert csvsafe.unneutralise(written) == ("" if value is None else value)


@pytest.mark.parametrize("who,status", [("member", 403), ("judge", 403), ("outsider", 403), ("ann", 403)])
def test_only_the_challenges_admins_export(w, client, auth, who, status):
    auth.login(getattr(w, who).email)
    for path in ("export.csv", "export.json", "evidence.zip"):
        assert client.get(f"/challenges/{w.ch.id}/{path}").status_code == status


def test_exports_of_challenges_one_may_not_see_are_404(w, client, auth):
    auth.login(w.outsider.email)
    for path in ("export.csv", "export.json", "evidence.zip"):
        r = client.get(f"/challenges/{w.private.id}/{path}")
        assert r.status_code == 404
        assert w.private.title not in r.get_data(as_text=True)
        assert client.get(f"/challenges/99999999/{path}").status_code == 404
    auth.logout()
    assert client.get(f"/challenges/{w.ch.id}/export.csv").status_code == 302  # sign in first


def test_evidence_bundle_manifest_rehashes_and_holds_only_what_may_be_seen(w, client, auth):
    auth.login(w.owner.email)
    r = client.get(f"/challenges/{w.ch.id}/evidence.zip")
    assert r.status_code == 200 and r.mimetype == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(r.data))
    manifest = json.loads(z.read("manifest.json"))
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(z.namelist()) - {"manifest.json"} == set(listed)
    for path, entry in listed.items():
        blob = z.read(path)
        assert hashlib.sha256(blob).hexdigest() == entry["sha256"] and len(blob) == entry["size"], path
    # Terms: every version's canonical JSON as stored, whose SHA-256 is its digest.
    for t in db.session.execute(select(ChallengeTerms).where(ChallengeTerms.challenge_id == w.ch.id)).scalars():
        blob = z.read(f"terms/v{t.version}.json")
        assert blob.decode() == t.canonical and hashlib.sha256(blob).hexdigest() == t.digest
    # Receipts: exactly those the policy lets the owner export, signed as the accepter's own.
    got = {int(p.split("-")[1].split(".")[0]) for p in listed if p.startswith("receipts/")}
    assert got == _receipts_allowed(w.owner, w.ch)
    one = json.loads(z.read(f"receipts/receipt-{min(got)}.json"))
    from marketplace.services import terms as terms_svc

    assert terms_svc.verify_receipt(one).ok
    # Ideas and files: only the two the owner may see, the file byte for byte.
    idea_dirs = {int(p.split("/")[1]) for p in listed if p.startswith("ideas/")}
    assert idea_dirs == {w.shown.id, w.second.id}
    att = db.session.get(Idea, w.shown.id).current_attachments[0]
    assert z.read(f"ideas/{w.shown.id}/files/{att.id}-Plan.pdf") == PDF
    log = json.loads(z.read("decision_log.json"))["entries"]
    assert any(e["what"].startswith("Judging round “Screening” set up") for e in log)
    assert all(len(e["audit_hash"]) == 64 for e in log)
    everything = b"".join(z.read(n) for n in z.namelist())
    for unseen in (b"Spammy secret idea", b"Waiting for co-authors", b"Another challenge's idea"):
        assert unseen not in everything


def test_a_failed_bundle_leaves_no_file(w, monkeypatch, tmp_path):
    folder = tmp_path / "exports-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))

    def broken(*a, **k):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(exports, "_decision_log", broken)
    with pytest.raises(RuntimeError):
        exports.build_bundle(w.owner, w.ch)
    assert list(folder.iterdir()) == []
    monkeypatch.undo()
    f = exports.build_bundle(w.owner, w.ch)
    assert zipfile.ZipFile(f).testzip() is None
    f.close()


def test_opening_sealed_ideas_in_a_bundle_is_logged_for_their_authors(w):
    from marketplace.models import SealedViewLog

    exports.build_bundle(w.owner, w.ch).close()
    rows = db.session.execute(select(SealedViewLog).where(SealedViewLog.what == "evidence bundle")).scalars().all()
    assert {r.idea_id for r in rows} == {w.shown.id, w.second.id}
