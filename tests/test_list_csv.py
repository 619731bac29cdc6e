"""Invitation lists as CSV: spreadsheet-safe export, all-or-nothing import (each kind of bad
row), people added only through the mailed invitation path, and who may do either."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from marketplace.exports.csvsafe import safe_cell, write_rows
from marketplace.extensions import db
from marketplace.models import AuditEvent, ListInvitation, ListMember, ListShare, OutgoingMail

from .factories_invitations import make_world

HEADER = "type,email,organisation,member_until\n"


@pytest.fixture
def w(f):
    return make_world(f)


@pytest.fixture
def lst(w, f):
    return f.make_list(w.cluster, name="Energy experts")


def _counts():
    return (db.session.scalar(select(func.count()).select_from(ListInvitation)),
            db.session.scalar(select(func.count()).select_from(ListMember)),
            db.session.scalar(select(func.count()).select_from(OutgoingMail)),
            db.session.scalar(select(func.count()).select_from(AuditEvent)))


def _upload(client, lst, data: bytes, name: str = "people.csv"):
    return client.post(f"/lists/{lst.id}/import", data={"file": (io.BytesIO(data), name)},
                       content_type="multipart/form-data")


# ------------------------------------------------------------------------- the helper


@pytest.mark.parametrize("value, expected", [
    ("=1+1", "'=1+1"), ("+33 1 23", "'+33 1 23"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=cmd", "'\t=cmd"), ("\r=cmd", "'\r=cmd"), ("plain", "plain"), ("a=b", "a=b"), ("", ""), (None, ""),
    (42, 42),  # numbers we computed stay numbers
])
def test_safe_cell_neutralises_formula_starts(value, expected):
    assert safe_cell(value) == expected


def test_write_rows_makes_every_cell_safe():
    text = write_rows([("a", "b"), ("=HYPERLINK(\"http://x\")", "ok"), ("x", "@y")])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["a", "b"], ["'=HYPERLINK(\"http://x\")", "ok"], ["x", "'@y"]]


# ------------------------------------------------------------------------- export


def test_export_lists_members_and_invitations_neutralised(w, f, lst, client, auth):
    evil = f.make_user(email="evil@example.test", name="=cmd|' /C calc'!A0")
    f.add_to_list(lst, user=evil)
    f.add_to_list(lst, org=w.other_co)
    auth.login(w.curator.email)
    assert client.post(f"/lists/{lst.id}/members", data={"email": "pending@example.test"}).status_code == 302
    r = client.post(f"/lists/{lst.id}/export.csv")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert r.headers["Cache-Control"] == "no-store" and "attachment" in r.headers["Content-Disposition"]
    text = r.data.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0] == ["type", "email", "organisation", "name", "status", "member_until"]
    body = {tuple(r[:5]) for r in rows[1:]}
    assert ("person", "evil@example.test", "", "'=cmd|' /C calc'!A0", "member") in body
    assert ("organisation", "", w.other_co.slug, w.other_co.name, "member") in body
    assert ("person", "pending@example.test", "", "", "invited") in body
    # No cell a spreadsheet would run.
    assert not any(c.startswith(("=", "+", "-", "@", "\t", "\r")) for r in rows for c in r)
    assert db.session.execute(select(AuditEvent.action).order_by(AuditEvent.id.desc())).scalars().first() \
        == "list.exported"


@pytest.mark.parametrize("who, status", [
    ("cluster_member", 403),   # sees the list, is not a curator
    ("outsider", 404),         # does not see the list
    ("other_admin", 403),      # admin of an organisation the list is shared with
])
def test_only_curators_export_and_import(w, lst, client, auth, who, status):
    db.session.add(ListShare(list_id=lst.id, org_id=w.other_co.id))
    db.session.commit()
    auth.login(getattr(w, who).email)
    assert client.post(f"/lists/{lst.id}/export.csv").status_code == status
    assert client.get(f"/lists/{lst.id}/import").status_code == status
    before = _counts()
    assert _upload(client, lst, (HEADER + "person,a@example.test,,\n").encode()).status_code == status
    assert _counts() == before


def test_signed_out_visitors_are_sent_to_sign_in(lst, client):
    assert client.post(f"/lists/{lst.id}/export.csv").status_code == 302


# ------------------------------------------------------------------------- import


def test_import_invites_people_by_mail_and_adds_organisations(w, f, lst, client, auth):
    existing = f.make_user(email="has-account@example.test")
    auth.login(w.curator.email)
    data = ("\ufefftype,email,organisation,member_until\n"
            "person,New.Person@Example.test,,\n"
            f"person,{existing.email},,2099-01-01 12:00\n"
            f",,{w.other_co.name},\n").encode("utf-8")
    r = _upload(client, lst, data)
    assert r.status_code == 302, r.data.decode()[:2000]
    invs = db.session.execute(select(ListInvitation).order_by(ListInvitation.id)).scalars().all()
    assert [i.email for i in invs] == ["new.person@example.test", "has-account@example.test"]
    assert invs[1].member_until is not None and invs[1].member_until.year == 2099
    # People join only by accepting their mailed link, account or not: no member row for them yet.
    members = db.session.execute(select(ListMember)).scalars().all()
    assert [(m.user_id, m.member_org_id) for m in members] == [(None, w.other_co.id)]
    mails = db.session.execute(select(OutgoingMail.to_email, OutgoingMail.kind)).all()
    assert sorted(mails) == [("has-account@example.test", "invitation.list"),
                             ("new.person@example.test", "invitation.list")]
    # The answer is the same whether or not an address has an account.
    page = client.get(f"/lists/{lst.id}").data.decode()
    assert "has-account@example.test" in page
    actions = db.session.execute(select(AuditEvent.action)).scalars().all()
    assert actions.count("list.invitation_sent") == 2 and "list.imported" in actions


def test_reimporting_an_export_changes_nothing_for_pending_invitations(w, lst, client, auth):
    auth.login(w.curator.email)
    assert _upload(client, lst, (HEADER + "person,p@example.test,,\n").encode()).status_code == 302
    exported = client.post(f"/lists/{lst.id}/export.csv").data
    before = db.session.scalar(select(func.count()).select_from(ListInvitation))
    r = _upload(client, lst, exported)
    assert r.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(ListInvitation)) == before


BAD_FILES = {
    "not utf-8": (HEADER + "person,ok@example.test,,\n").encode() + "person,caf\u00e9@example.test,,\n".encode("latin-1"),
    "duplicate row": (HEADER + "person,a@example.test,,\nperson,A@example.test ,,\n").encode(),
    "duplicate organisation": (HEADER + ",,{org},\n,,{org},\n").encode(),
    "unknown organisation": (HEADER + ",,No Such Org Ltd,\n").encode(),
    "malformed address": (HEADER + "person,not-an-address,,\n").encode(),
    "formula": (HEADER + "person,\"=HYPERLINK(\"\"http://x\"\")\",,\n").encode(),
    "formula at": (HEADER + ",,@SUM(A1),\n").encode(),
    "formula tab": (HEADER + "person,\"\tx@example.test\",,\n").encode(),
    "both": (HEADER + "person,a@example.test,{org},\n").encode(),
    "neither": (HEADER + "person,,,2099-01-01 10:00\n").encode(),
    "bad type": (HEADER + "robot,a@example.test,,\n").encode(),
    "past end": (HEADER + "person,a@example.test,,2001-01-01 10:00\n").encode(),
    "bad date": (HEADER + "person,a@example.test,,next tuesday\n").encode(),
    "short row": (HEADER + "person,a@example.test\n").encode(),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_one_bad_row_applies_nothing_and_names_its_line(w, lst, client, auth, kind):
    auth.login(w.curator.email)
    good = f"person,good1@example.test,,\n,,{w.other_co.slug},\n"
    bad = BAD_FILES[kind].replace(b"{org}", w.other_co.name.encode())
    # Good rows before the bad one: none of them may be applied.
    head, _, rest = bad.partition(b"\n")
    data = head + b"\n" + good.encode() + rest
    before = _counts()
    r = _upload(client, lst, data)
    assert r.status_code == 400
    page = r.data.decode()
    assert "Nothing was imported" in page and "Rows to fix" in page
    assert _counts() == before
    # The bad row is on line 4 (header, two good rows); a duplicate names both lines.
    assert "<td>4</td>" in page or "<td>5</td>" in page


def test_problems_list_every_bad_row_with_its_reason(w, lst, client, auth):
    auth.login(w.curator.email)
    data = (HEADER + "person,ok@example.test,,\n"
            "person,bad address,,\n"
            ",,Nowhere Inc,\n"
            "person,=1+2,,\n"
            "person,ok@example.test,,\n").encode()
    r = _upload(client, lst, data)
    page = r.data.decode()
    assert r.status_code == 400
    assert "<td>3</td>" in page and "is not a valid e-mail address" in page
    assert "<td>4</td>" in page and "no organisation is called" in page
    assert "<td>5</td>" in page and "spreadsheet formula" in page
    assert "<td>6</td>" in page and "it repeats line 2" in page
    assert "<td>2</td>" not in page


@pytest.mark.parametrize("data, message", [
    (b"", "The file is empty"),
    (b"\xef\xbb\xbf", "The file is empty"),
    (b"email,colour\nx@example.test,red\n", "The first line must name the columns"),
    (b"email,email\nx@example.test,y@example.test\n", "The first line must name the columns"),
    (HEADER.encode(), "no rows under its header"),
    (b"email\n\x00\n", "NUL character"),
    (b"\xff\xfee\x00m\x00a\x00i\x00l\x00", "not UTF-8"),
])
def test_files_that_are_not_lists_are_refused(w, lst, client, auth, data, message):
    auth.login(w.curator.email)
    before = _counts()
    r = _upload(client, lst, data)
    assert r.status_code == 400 and message in r.data.decode()
    assert _counts() == before


def test_too_many_rows_and_too_large_a_file(w, lst, client, auth, monkeypatch):
    from marketplace.services import list_csv

    auth.login(w.curator.email)
    rows = "".join(f"person,p{i}@example.test,,\n" for i in range(list_csv.IMPORT_MAX_ROWS + 1))
    before = _counts()
    r = _upload(client, lst, (HEADER + rows).encode())
    assert r.status_code == 400 and f"at most {list_csv.IMPORT_MAX_ROWS} are imported" in r.data.decode()
    big = (HEADER + "person,a@example.test,," + " " * list_csv.IMPORT_MAX_BYTES + "\n").encode()
    r = _upload(client, lst, big)
    assert r.status_code == 400 and "larger than" in r.data.decode()
    assert _counts() == before


def test_import_without_a_file_is_a_form_error(w, lst, client, auth):
    auth.login(w.curator.email)
    r = client.post(f"/lists/{lst.id}/import", data={}, content_type="multipart/form-data")
    assert r.status_code == 400 and "Choose a CSV file" in r.data.decode()


def test_multiline_cells_keep_line_numbers(w, lst, client, auth):
    auth.login(w.curator.email)
    data = (HEADER + "person,\"a@example.test\",,\n"
            "person,\"two\nlines\",,\n"
            "person,bad,,\n").encode()
    page = _upload(client, lst, data).data.decode()
    assert "<td>3</td>" in page and "<td>5</td>" in page
