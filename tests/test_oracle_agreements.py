"""Asset files and data-sharing agreements against their oracle (tests/oracles/agreements.py):
every viewer x every agreement state (proposed, in force, not yet started, past its end date,
ended early, declined) x file state (present, removed; asset hidden), on can() and visible()
and on every agreement action."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import User, utcnow
from marketplace.models.agreements import AgreementPerson, AssetFile, DataAgreement, DataSharingSheet

from .factories import Factories
from .factories_foundation import dispose, make_app
from .oracles import agreements as oracle

VIEWERS = ("anonymous", "outsider", "owner", "owner_admin", "owner_member", "partner_owner", "partner_member",
           "named", "named_wrong_role", "named_elsewhere", "site_admin", "site_mod")
STATES = ("proposed", "active", "future", "expired", "ended", "declined", "active_hidden")
ACTIONS = ("accept", "decline", "end", "view_usage", "export_usage")


def build():
    """Rows are written directly (the world states the services would never produce at once
    are what the rules must still answer for: a role not in the sheet, a start in the future)."""
    f = Factories()
    now = utcnow()
    U = {n: f.make_user(name=n, site_role={"site_admin": "admin", "site_mod": "moderator"}.get(n, "user"))
         for n in VIEWERS if n != "anonymous"}
    org = f.make_org(name="Owner", owner=U["owner"], admins=(U["owner_admin"],), members=(U["owner_member"],))
    partner = f.make_org(name="Partner", owner=U["partner_owner"],
                         members=(U["partner_member"], U["named"], U["named_wrong_role"], U["named_elsewhere"]))
    day = timedelta(days=1)
    spans = {"proposed": ("proposed", None, None, None), "active": ("active", now - day, now + 9 * day, None),
             "future": ("active", now + day, now + 9 * day, None), "expired": ("active", now - 9 * day, now - day, None),
             "ended": ("active", now - day, now + 9 * day, now - 0.5 * day), "declined": ("declined", None, None, now - day),
             "active_hidden": ("active", now - day, now + 9 * day, None)}
    labels_files, labels_agreements = {}, {}
    other_asset = f.make_item(org, kind="asset", title="Elsewhere")
    other_sheet = DataSharingSheet(item_id=other_asset.id, version=1, purpose="p", allowed_uses="u",
                                   access_roles="analyst", duration_days=30, end_of_term="delete",
                                   publication_rules="r", governing_law="l", canonical="{}", digest="0" * 64)
    db.session.add(other_sheet)
    db.session.flush()
    elsewhere = DataAgreement(item_id=other_asset.id, owner_org_id=org.id, partner_org_id=partner.id,
                              sheet_id=other_sheet.id, sheet_version=1, sheet_digest="0" * 64, status="active",
                              starts_at=now - day, ends_at=now + 9 * day, accepted_at=now - day)
    db.session.add(elsewhere)
    db.session.flush()
    db.session.add(AgreementPerson(agreement_id=elsewhere.id, user_id=U["named_elsewhere"].id, role="analyst"))
    for st, (status, start, end, ended) in spans.items():
        asset = f.make_item(org, kind="asset", title=f"asset {st}")
        if st == "active_hidden":
            asset.hidden_at = now - day
        sheet = DataSharingSheet(item_id=asset.id, version=1, purpose="p", allowed_uses="u",
                                 access_roles="analyst\nreviewer", duration_days=30, end_of_term="delete",
                                 publication_rules="r", governing_law="l", canonical="{}", digest="0" * 64)
        db.session.add(sheet)
        db.session.flush()
        a = DataAgreement(item_id=asset.id, owner_org_id=org.id, partner_org_id=partner.id, sheet_id=sheet.id,
                          sheet_version=1, sheet_digest="0" * 64, status=status, starts_at=start, ends_at=end,
                          ended_at=ended, accepted_at=start)
        db.session.add(a)
        db.session.flush()
        db.session.add_all([AgreementPerson(agreement_id=a.id, user_id=U["named"].id, role="analyst"),
                            AgreementPerson(agreement_id=a.id, user_id=U["named_wrong_role"].id, role="janitor")])
        for removed in (False, True):
            fl = AssetFile(item_id=asset.id, filename="d.csv", stored_name=f"{asset.id:x}{int(removed)}",
                           content_type="text/csv", size=1, sha256="0" * 64, removed_at=now - day if removed else None)
            db.session.add(fl)
            db.session.flush()
            labels_files[fl.id] = f"file{' removed' if removed else ''} under {st}"
        labels_agreements[a.id] = f"agreement {st}"
    db.session.commit()
    return U, labels_files, labels_agreements


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("oracle-agreements"))
    mismatches, cells, granted = [], 0, set()
    with app.app_context():
        U, files, agreements = build()
        facts = oracle.snapshot(utcnow())
        file_rows = {r.id: r for r in db.session.execute(select(AssetFile)).scalars()}
        agr_rows = {r.id: r for r in db.session.execute(select(DataAgreement)).scalars()}
        for name in VIEWERS:
            with app.test_request_context():
                user = db.session.get(User, U[name].id) if name in U else None
                uid = user.id if user else None
                seen_files = set(db.session.execute(policy.visible(user, AssetFile).with_only_columns(AssetFile.id)).scalars())
                seen_agr = set(db.session.execute(policy.visible(user, DataAgreement).with_only_columns(DataAgreement.id)).scalars())
                for fid, label in files.items():
                    want = oracle.reaches_file(uid, facts_row(facts, "asset_files", fid), facts)
                    if want:
                        granted.add((name, label))
                    for face, got in (("can", policy.can(user, "view", file_rows[fid])), ("visible", fid in seen_files)):
                        cells += 1
                        if got != want:
                            mismatches.append((name, label, face, want, got))
                for aid, label in agreements.items():
                    row = facts.agreements[aid]
                    want = oracle.sees_agreement(uid, row, facts)
                    for face, got in (("can", policy.can(user, "view", agr_rows[aid])), ("visible", aid in seen_agr)):
                        cells += 1
                        if got != want:
                            mismatches.append((name, label, face, want, got))
                    for action in ACTIONS:
                        cells += 1
                        want_a, got_a = oracle.may(action, uid, row, facts), policy.can(user, action, agr_rows[aid])
                        if want_a != got_a:
                            mismatches.append((name, label, action, want_a, got_a))
    dispose(app)
    return mismatches, cells, granted


def facts_row(facts, table, row_id):
    t = db.metadata.tables[table]
    from types import SimpleNamespace

    r = db.session.execute(select(t).where(t.c.id == row_id)).one()
    return SimpleNamespace(**dict(r._mapping))


def test_every_cell_agrees_with_the_oracle(outcome):
    mismatches, cells, _granted = outcome
    assert cells >= len(VIEWERS) * len(STATES) * (4 + 2 + len(ACTIONS))
    assert mismatches == [], "\n".join(f"{v} on {label}: {face} said {got}, the rules say {want}"
                                       for v, label, face, want, got in mismatches[:30])


def test_the_matrix_is_not_trivial(outcome):
    """Of the partner, only the named analyst reaches a file, and only under the agreement in
    force on a visible asset; the owning organisation reaches every present file."""
    _m, _c, granted = outcome
    partner_side = {(v, label) for v, label in granted if v not in ("owner", "owner_admin", "owner_member")}
    assert partner_side == {("named", "file under active")}
    assert {("owner_member", f"file under {st}") for st in STATES} <= granted
    assert not any("removed" in label for _v, label in granted)
