"""Invitation lists as CSV: export a list, import rows into it (all or nothing).

The file has one row per entry, with a header naming the columns (any order):

    type,email,organisation,name,status,member_until

* ``type`` is ``person`` or ``organisation`` (optional on import: a row with an e-mail
  address is a person, one with an organisation an organisation);
* a person row names an e-mail address: importing it mails an invitation through the list
  invitation path (`lists.invite_to_list`), exactly as adding one address by hand, so the
  file's answer never tells whether an address has an account;
* an organisation row names an organisation (its name or short name), added at once;
* ``member_until`` (optional) ends the place on the list: ``YYYY-MM-DD HH:MM`` in the
  curating organisation's time zone, or ISO 8601 with an offset;
* ``name`` and ``status`` are written by the export for people reading it and ignored on
  import.

An import checks every row before it writes anything, and writes nothing if one row is
wrong: `ImportRefused` lists each bad row with its line number and reason. Cells are
never taken as formulas: the export neutralises them (`exports.csvsafe`) and the import
refuses a cell that a spreadsheet would run.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .. import audit, email_address, policy, timezones
from ..exports.csvsafe import FORMULA_STARTS, write_rows
from ..extensions import db
from ..models import InvitationList, ListInvitation, ListMember, Organisation, User, utcnow
from . import lists as lists_svc
from .common import ServiceError, lock_row
from .invitations import pending_mailed
from .orgs import find_org

HEADER = ("type", "email", "organisation", "name", "status", "member_until")
KNOWN_COLUMNS = frozenset(HEADER)
IMPORT_MAX_BYTES = 256 * 1024
IMPORT_MAX_ROWS = 500
CELL_MAX = 254
BOM = b"\xef\xbb\xbf"


# ----------------------------------------------------------------------------- export


def export_rows(lst: InvitationList) -> list[tuple]:
    """The list's current entries: active members (people and organisations) and pending
    invitations, in the order they were added: what the list's page shows its curators."""
    now = utcnow()
    zone = lst.organisation.timezone if lst.organisation is not None else timezones.UTC_NAME
    members = db.session.execute(
        select(ListMember).options(joinedload(ListMember.user), joinedload(ListMember.member_org))
        .where(ListMember.list_id == lst.id, ListMember.removed_at.is_(None))
        .order_by(ListMember.created_at, ListMember.id)).scalars().all()
    invitations = db.session.execute(
        select(ListInvitation).where(ListInvitation.list_id == lst.id)
        .order_by(ListInvitation.created_at, ListInvitation.id)).scalars().all()
    rows: list[tuple] = []
    for m in members:
        if not m.is_active(now):
            continue
        until = timezones.utc_to_local_input(m.expires_at, zone).replace("T", " ")
        if m.member_org is not None:
            rows.append(("organisation", "", m.member_org.slug, m.member_org.name, "member", until))
        else:
            rows.append(("person", m.user.email if m.user else "", "", m.user.display_name if m.user else "",
                         "member", until))
    for inv in invitations:
        if policy.invitation_state(inv, now) == "pending":
            rows.append(("person", inv.email, "", "", "invited",
                         timezones.utc_to_local_input(inv.member_until, zone).replace("T", " ")))
    return rows


def export_csv(actor: User, lst: InvitationList) -> str:
    if not policy.can(actor, "export_members", lst):
        raise ServiceError("Only the list's curators can export it.", 403)
    text = write_rows([HEADER, *export_rows(lst)])
    audit.record("list.exported", "list", lst.id, actor_id=actor.id, data={"rows": text.count("\r\n") - 1})
    db.session.commit()
    return text


# ----------------------------------------------------------------------------- import


@dataclass
class RowProblem:
    line: int           # 1 is the header
    reason: str


@dataclass
class ImportResult:
    invited: int = 0
    organisations: int = 0
    skipped: int = 0    # people with a live invitation already


class ImportRefused(ServiceError):
    """The file was not applied; `problems` names each bad row (line number and reason)."""

    def __init__(self, problems: list[RowProblem]):
        self.problems = problems
        n = len(problems)
        super().__init__(f"Nothing was imported: {n} row{'s' if n != 1 else ''} "
                         f"{'need' if n != 1 else 'needs'} fixing.", 400, field="file")


@dataclass
class _Row:
    line: int
    email: str | None = None
    org: Organisation | None = None
    member_until: datetime | None = None
    problems: list[str] = field(default_factory=list)


def decode(raw: bytes) -> str:
    """The file as text: UTF-8, a byte-order mark allowed. Raises ImportRefused naming the
    line of the first byte that is not UTF-8."""
    if raw.startswith(BOM):
        raw = raw[len(BOM):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ImportRefused([RowProblem(line, "This line is not UTF-8 text: save the file as "
                                              "“CSV UTF-8” and try again.")]) from None


def _member_until(raw: str, zone: str, now: datetime) -> datetime:
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = timezones.parse_local(raw)  # ValueError with the expected form
    value = timezones.local_to_utc(value, zone)  # LocalTimeError (a ValueError) in gaps
    if value <= now:
        raise ValueError("the end of the list place must be in the future.")
    return value


def _check_row(line: int, cells: dict[str, str], zone: str, now: datetime) -> _Row:
    row = _Row(line)
    for name, value in cells.items():
        if value.startswith(FORMULA_STARTS):
            row.problems.append(f"the {name} cell begins with “{value[:1].encode('unicode_escape').decode()}” "
                                "and would run as a spreadsheet formula.")
        elif len(value) > CELL_MAX:
            row.problems.append(f"the {name} cell is longer than {CELL_MAX} characters.")
    if row.problems:
        return row
    kind = cells.get("type", "").strip().lower()
    email, org_text = cells.get("email", "").strip(), cells.get("organisation", "").strip()
    if kind not in ("", "person", "organisation"):
        row.problems.append(f"the type must be “person” or “organisation”, not “{kind[:40]}”.")
    elif bool(email) == bool(org_text):
        row.problems.append("give either an e-mail address or an organisation (one per row).")
    elif kind == "person" and not email:
        row.problems.append("a person row needs an e-mail address.")
    elif kind == "organisation" and not org_text:
        row.problems.append("an organisation row needs the organisation's name.")
    elif email:
        try:
            row.email = email_address.check(email)
        except email_address.InvalidEmail as e:
            row.problems.append(f"“{email[:80]}” is not a valid e-mail address ({e.reason})")
    else:
        row.org = find_org(org_text)
        if row.org is None:
            row.problems.append(f"no organisation is called “{org_text[:80]}”.")
    until = cells.get("member_until", "").strip()
    if until:
        try:
            row.member_until = _member_until(until, zone, now)
        except ValueError as e:
            row.problems.append(f"member_until: {str(e)[0:1].lower()}{str(e)[1:]}")
    return row


def check_file(lst: InvitationList, raw: bytes) -> list[_Row]:
    """Every row of the file, checked; raises ImportRefused listing all problems."""
    if len(raw) > IMPORT_MAX_BYTES:
        raise ImportRefused([RowProblem(1, f"The file is larger than {IMPORT_MAX_BYTES // 1024} KB: "
                                           "split it into smaller files.")])
    text = decode(raw)
    if "\x00" in text:
        raise ImportRefused([RowProblem(text[:text.index("\x00")].count("\n") + 1,
                                        "This line holds a NUL character: this is not a CSV file.")])
    # Each record with the line it starts on (a quoted cell may span lines).
    records: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        start = 1
        for cells in reader:
            records.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as e:
        raise ImportRefused([RowProblem(reader.line_num or 1, f"This line is not readable CSV ({e}).")]) from None
    if not records or not any(c.strip() for c in records[0][1]):
        raise ImportRefused([RowProblem(1, "The file is empty: the first line must name the columns "
                                           f"({', '.join(HEADER)}).")])
    header = [c.strip().lower() for c in records[0][1]]
    unknown = [h for h in header if h not in KNOWN_COLUMNS]
    if unknown or ("email" not in header and "organisation" not in header) or len(set(header)) != len(header):
        raise ImportRefused([RowProblem(1, "The first line must name the columns, each once, from: "
                                           f"{', '.join(HEADER)} (it needs email or organisation).")])
    body = [(n, r) for n, r in records[1:] if any(c.strip() for c in r)]
    if len(body) > IMPORT_MAX_ROWS:
        raise ImportRefused([RowProblem(body[IMPORT_MAX_ROWS][0], f"The file has {len(body)} rows; at most "
                                                             f"{IMPORT_MAX_ROWS} are imported at once.")])
    if not body:
        raise ImportRefused([RowProblem(2, "The file has no rows under its header.")])
    zone = lst.organisation.timezone or timezones.UTC_NAME
    now = utcnow()
    rows, seen = [], {}
    for n, cells in body:
        if len(cells) != len(header):
            row = _Row(n, problems=[f"it has {len(cells)} cells; the header names {len(header)}."])
        else:
            row = _check_row(n, dict(zip(header, cells)), zone, now)
            key = ("email", row.email) if row.email else ("org", row.org.id) if row.org else None
            if key is not None and not row.problems:
                if key in seen:
                    row.problems.append(f"it repeats line {seen[key]}.")
                else:
                    seen[key] = n
        rows.append(row)
    problems = [RowProblem(r.line, "; ".join(r.problems)) for r in rows if r.problems]
    if problems:
        raise ImportRefused(problems)
    return rows


def import_csv(actor: User, lst: InvitationList, raw: bytes) -> ImportResult:
    """Check the whole file, then apply every row in one transaction (or none)."""
    if not policy.can(actor, "import_members", lst):
        raise ServiceError("Only the list's curators can import into it.", 403)
    rows = check_file(lst, raw)
    result = ImportResult()
    lock_row(InvitationList, lst.id)
    now = utcnow()
    for r in rows:
        try:
            if r.email is not None:
                # One live link per address: a pending invitation is left as it is (the file
                # may be a re-import of an export). Only the list's own invitations are read,
                # never whether the address has an account.
                if pending_mailed(ListInvitation, r.email, now, ListInvitation.list_id == lst.id) is not None:
                    result.skipped += 1
                    continue
                lists_svc.invite_to_list(actor, lst, r.email, member_until=r.member_until, commit=False)
                result.invited += 1
            else:
                lists_svc.add_member(actor, lst, org=r.org, expires_at=r.member_until, commit=False)
                result.organisations += 1
        except ServiceError as e:
            # A refusal found only while applying (a race): nothing of the file stays.
            db.session.rollback()
            raise ImportRefused([RowProblem(r.line, e.message)]) from None
    audit.record("list.imported", "list", lst.id, actor_id=actor.id,
                 data={"rows": len(rows), "invited": result.invited, "organisations": result.organisations,
                       "skipped": result.skipped})
    db.session.commit()
    return result
