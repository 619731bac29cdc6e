"""Data-sharing agreements on assets (issue 17): sheets, asset files, agreements made from
accepted asset requests, the usage log and its export, and the acceptance receipts.

Sheets are versioned like challenge terms: the canonical JSON (audit.canonical_json) and
its SHA-256 (audit.sha256_hex) are stored with each immutable version, and a receipt is
signed with the same Ed25519 receipt keys (marketplace/receipt_keys.py, published at
/.well-known/receipt-keys.json) over the same canonical JSON, so a receipt checks offline
exactly like a terms receipt.

Every function checks the policy (marketplace/policy/agreements.py), validates, writes,
records audit events and notifications in one transaction and commits; a ServiceError
means nothing was written.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

from flask import url_for
from sqlalchemy import func, select

from .. import audit, policy, receipt_keys
from ..audit import canonical_json, sha256_hex
from ..receipt_keys import ReceiptCheck
from ..extensions import db
from ..models import Item, ItemKind, Membership, Organisation, User, utcnow
from ..models.agreements import (
    AgreementAccess,
    AgreementPerson,
    AgreementStatus,
    AssetFile,
    DataAgreement,
    DataSharingSheet,
    EndOfTerm,
)
from ..models.engagement import AssetRequest
from ..notify import notify
from . import attachments as files_svc
from .notifications import org_admins
from .common import FieldErrors, ServiceError, chosen, lock_row

SHEET_SCHEMA = "oim-data-sharing/1"
RECEIPT_SCHEMA = "oim-data-sharing-acceptance/1"
FILES_SUBDIR = "assets"
MAX_FILES_PER_ASSET = 50
MAX_PEOPLE = 50
MAX_REASON = 2000
# Roles are plain words: no LIKE wildcards (% _), no line breaks (they are stored one a line).
ROLE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-]{0,78}[A-Za-z0-9]$|^[A-Za-z0-9]$")
SHEET_TEXT = {"purpose": ("Purpose limitation", 5000), "allowed_uses": ("Allowed uses", 5000),
              "publication_rules": ("Publication rules", 5000), "governing_law": ("Governing law", 200),
              "surviving_terms": ("Terms surviving the end", 5000)}
SHEET_NUMBERS = {"duration_days": ("Duration", 1, 3650), "end_of_term_days": ("Deletion or return within", 0, 365),
                 "confidentiality_days": ("Confidentiality after the end", 0, 3650)}


def _url(endpoint: str, **kw) -> str:
    try:
        return url_for(endpoint, **kw)
    except RuntimeError:
        return ""


def _ts(dt) -> str | None:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if dt else None


def asset_name(user: Any, item: Item) -> str:
    """The asset's title for someone who may see the asset; else only whose asset it is
    (a party to an agreement may no longer see the asset itself)."""
    if user is not None and policy.can(user, "view", item):
        return f"“{item.title}”"
    return f"an asset of {item.organisation.name}"


def _tell_sides(a: DataAgreement, message: str, skip: int | None = None, sides=("owner", "partner"),
                tail: str = "") -> None:
    """Notify both sides' owners and admins; `message` has an {asset} placeholder, filled
    per reader by asset_name; `tail` (user text, such as a reason) is added as it is."""
    seen: set[int] = set()
    orgs = [a.owner_org_id if s == "owner" else a.partner_org_id for s in sides]
    for org_id in orgs:
        for u in org_admins(org_id):
            if u.id in seen or u.id == skip:
                continue
            seen.add(u.id)
            notify(u, "agreement", message.replace("{asset}", asset_name(u, a.item)) + tail,
                   _url("agreements.detail", agreement_id=a.id), about=a)


# --------------------------------------------------------------------------- sheets


def parse_roles(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else re.split(r"[\n,;]+", raw or "")
    roles = []
    for r in items:
        r = " ".join(str(r).split())
        if r and r not in roles:
            roles.append(r)
    return roles


def validate_sheet(data: dict) -> dict:
    """Check and normalise a sheet; every problem is raised at once (FieldErrors)."""
    errors: list[tuple[str, str]] = []
    out: dict[str, Any] = {}
    for f, (label, limit) in SHEET_TEXT.items():
        val = (data.get(f) or "").strip() if isinstance(data.get(f), (str, type(None))) else str(data.get(f))
        if not val and f != "surviving_terms":
            errors.append((f, f"{label} is required (write “none” if there is nothing to say)."))
        elif len(val) > limit:
            errors.append((f, f"{label}: at most {limit:,} characters."))
        out[f] = val
    roles = parse_roles(data.get("access_roles"))
    bad = [r for r in roles if not ROLE_RE.match(r)]
    if not roles:
        errors.append(("access_roles", "Name at least one role that may access the data (one a line)."))
    elif bad:
        errors.append(("access_roles", f"“{bad[0][:40]}”: a role is letters, digits, spaces and hyphens "
                                       "(at most 80 characters)."))
    elif len(roles) > 20:
        errors.append(("access_roles", "At most 20 roles."))
    out["access_roles"] = sorted(roles)
    for f, (label, lo, hi) in SHEET_NUMBERS.items():
        try:
            n = int(str(data.get(f, "")).strip())
        except (TypeError, ValueError):
            errors.append((f, f"{label}: enter a whole number of days."))
            continue
        if not lo <= n <= hi:
            errors.append((f, f"{label}: between {lo} and {hi} days."))
        out[f] = n
    out["end_of_term"] = chosen(data, "end_of_term", EndOfTerm,
                                "Choose whether the data is deleted or returned at the end.", errors)
    out["onward_sharing"] = _bool(data.get("onward_sharing"))
    out["personal_data"] = _bool(data.get("personal_data"))
    if errors:
        raise FieldErrors(errors)
    return out


def _bool(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "y", "yes", "true", "on")
    return bool(v)


def canonical_sheet(item_id: int, version: int, clean: dict) -> dict:
    return {"schema": SHEET_SCHEMA, "item_id": item_id, "version": version,
            **{k: clean[k] for k in ("purpose", "allowed_uses", "access_roles", "duration_days", "onward_sharing",
                                     "end_of_term", "end_of_term_days", "confidentiality_days", "surviving_terms",
                                     "publication_rules", "personal_data", "governing_law")}}


def current_sheet(item_id: int) -> DataSharingSheet | None:
    return db.session.execute(select(DataSharingSheet).where(DataSharingSheet.item_id == item_id)
                              .order_by(DataSharingSheet.version.desc()).limit(1)).scalar()


def sheet_versions(item_id: int) -> list[DataSharingSheet]:
    return list(db.session.execute(select(DataSharingSheet).where(DataSharingSheet.item_id == item_id)
                                   .order_by(DataSharingSheet.version.desc())).scalars())


def sheet_version(item_id: int, version: Any) -> DataSharingSheet | None:
    try:
        v = int(version)
    except (TypeError, ValueError):
        return None
    if not 0 < v < 2**31:
        return None
    return db.session.execute(select(DataSharingSheet).where(
        DataSharingSheet.item_id == item_id, DataSharingSheet.version == v)).scalar()


def sheet_digest_ok(sheet: DataSharingSheet) -> bool:
    return sha256_hex(sheet.canonical) == sheet.digest


def publish_sheet(user: User, item: Item, data: dict) -> tuple[DataSharingSheet, bool]:
    """Add a sheet version (never changed once written). An unchanged sheet returns the
    current version with created=False."""
    if not policy.can(user, "view", item) or item.kind != ItemKind.ASSET.value:
        raise ServiceError("Not found.", 404)
    if not policy.can(user, "manage_sharing", item):
        raise ServiceError("Only the organisation's owners and admins set the data-sharing sheet.", 403)
    clean = validate_sheet(data)
    lock_row(Item, item.id)
    current = current_sheet(item.id)
    if current is not None and canonical_json(canonical_sheet(item.id, current.version, clean)) == current.canonical:
        db.session.rollback()
        return current, False
    version = current.version + 1 if current else 1
    canon = canonical_json(canonical_sheet(item.id, version, clean))
    sheet = DataSharingSheet(item_id=item.id, version=version, created_by_id=user.id, canonical=canon,
                             digest=sha256_hex(canon), **{**clean, "access_roles": "\n".join(clean["access_roles"])})
    db.session.add(sheet)
    db.session.flush()
    audit.record("sharing.sheet_published", "data_sharing_sheet", sheet.id, actor_id=user.id, item_id=item.id,
                 data={"version": version, "digest": sheet.digest,
                       "supersedes": current.version if current else None})
    db.session.commit()
    return sheet, True


# --------------------------------------------------------------------------- files


def asset_files(user: User, item: Item) -> list[AssetFile]:
    """The asset's files this user may reach (through the policy's SQL form)."""
    return list(db.session.execute(
        policy.visible(user, AssetFile).where(AssetFile.item_id == item.id).order_by(AssetFile.id)).scalars())


def add_files(user: User, item: Item, uploads) -> list[AssetFile]:
    """Check (type by content and extension, size) and store uploaded files for an asset."""
    if not policy.can(user, "view", item) or item.kind != ItemKind.ASSET.value:
        raise ServiceError("Not found.", 404)
    if not policy.can(user, "manage_sharing", item):
        raise ServiceError("Only the organisation's owners and admins add files to the asset.", 403)
    checked = files_svc.read_uploads(uploads)
    if not checked:
        raise ServiceError("Choose at least one file.", field="files")
    lock_row(Item, item.id)
    have = db.session.execute(select(func.count()).select_from(AssetFile).where(
        AssetFile.item_id == item.id, AssetFile.removed_at.is_(None))).scalar_one()
    if have + len(checked) > MAX_FILES_PER_ASSET:
        db.session.rollback()
        raise ServiceError(f"An asset holds at most {MAX_FILES_PER_ASSET} files.", field="files")
    stored: list[str] = []
    rows = []
    try:
        for c in checked:
            name = files_svc.store(c, FILES_SUBDIR)
            stored.append(name)
            f = AssetFile(item_id=item.id, filename=c.filename, stored_name=name, content_type=c.content_type,
                          size=c.size, sha256=c.sha256, uploaded_by_id=user.id)
            db.session.add(f)
            rows.append(f)
        db.session.flush()
        for f in rows:
            audit.record("asset.file_added", "asset_file", f.id, actor_id=user.id, item_id=item.id,
                         data={"sha256": f.sha256, "size": f.size})
        db.session.commit()
    except BaseException:
        db.session.rollback()
        files_svc.discard(stored, FILES_SUBDIR)
        raise
    return rows


def remove_file(user: User, f: AssetFile) -> None:
    if not policy.can(user, "view", f):
        raise ServiceError("Not found.", 404)
    if not policy.can(user, "manage_sharing", f.item):
        raise ServiceError("Only the organisation's owners and admins remove the asset's files.", 403)
    f.removed_at = utcnow()
    audit.record("asset.file_removed", "asset_file", f.id, actor_id=user.id, item_id=f.item_id)
    db.session.commit()


def open_file(user: User, f: AssetFile):
    """The bytes (a readable file) of a file the user may reach; logs the access when it is made under an
    agreement (who, when, which file, which agreement). Members of the owning organisation
    reach their own files without an agreement."""
    if not policy.can(user, "view", f):
        raise ServiceError("Not found.", 404)
    v = policy.viewer_for(user)
    agreement = None if v.is_member(f.item.org_id) else policy.access_agreement(v, f)
    try:
        fh = files_svc.open_stored(f.stored_name, FILES_SUBDIR)
    except FileNotFoundError:
        raise ServiceError("This file is missing from storage; tell the asset's organisation.", 410) from None
    if agreement is not None:
        db.session.add(AgreementAccess(agreement_id=agreement.id, file_id=f.id, user_id=user.id,
                                       filename=f.filename, accessed_at=utcnow()))
        db.session.commit()
    return fh, agreement


# --------------------------------------------------------------------------- agreements


def propose_for_request(user: User, r: AssetRequest) -> DataAgreement | None:
    """Inside the caller's transaction: an accepted request sent on behalf of an organisation,
    for an asset with a data-sharing sheet, becomes a proposed agreement under the current
    sheet version; the partner's owners and admins accept it (naming people) or decline it."""
    if r.requester_org_id is None or r.item.kind != ItemKind.ASSET.value:
        return None
    sheet = current_sheet(r.item_id)
    if sheet is None:
        return None
    existing = db.session.execute(select(DataAgreement).where(DataAgreement.request_id == r.id)).scalar()
    if existing is not None:
        return existing
    a = DataAgreement(item_id=r.item_id, request_id=r.id, owner_org_id=r.item.org_id,
                      partner_org_id=r.requester_org_id, sheet_id=sheet.id, sheet_version=sheet.version,
                      sheet_digest=sheet.digest, status=AgreementStatus.PROPOSED.value, proposed_at=utcnow(),
                      proposed_by_id=user.id)
    db.session.add(a)
    db.session.flush()
    audit.record("agreement.proposed", "data_agreement", a.id, actor_id=user.id,
                 data={"request_id": r.id, "sheet_version": sheet.version, "sheet_digest": sheet.digest,
                       "partner_org_id": a.partner_org_id})
    _tell_sides(a, f"{a.owner_org.name} proposes a data-sharing agreement for {{asset}} "
                   f"(sheet version {sheet.version}); name the people who get access and accept it.",
                skip=user.id, sides=("partner",))
    return a


def _previous_acceptance(a: DataAgreement) -> DataAgreement | None:
    """The latest agreement this partner accepted before on the same asset, under an earlier
    sheet version: this acceptance is then a re-acceptance."""
    return db.session.execute(
        select(DataAgreement).where(DataAgreement.item_id == a.item_id, DataAgreement.partner_org_id == a.partner_org_id,
                                    DataAgreement.id != a.id, DataAgreement.accepted_at.is_not(None),
                                    DataAgreement.sheet_version < a.sheet_version)
        .order_by(DataAgreement.sheet_version.desc(), DataAgreement.id.desc()).limit(1)).scalar()


def previous_sheet_for(a: DataAgreement) -> DataSharingSheet | None:
    """The earlier sheet version the partner accepted (for the diff shown before accepting)."""
    prev = _previous_acceptance(a)
    return prev.sheet if prev is not None else None


def _parse_people(a: DataAgreement, people: list[tuple[Any, Any]]) -> list[tuple[User, str]]:
    roles = a.sheet.roles
    out: list[tuple[User, str]] = []
    errors: list[tuple[str, str]] = []
    members = {m.user_id: m for m in db.session.execute(
        select(Membership).where(Membership.org_id == a.partner_org_id)).scalars()}
    seen: set[int] = set()
    for i, (uid, role) in enumerate(people):
        if (uid in (None, "") or uid == 0) and not role:
            continue
        try:
            uid = int(uid)
        except (TypeError, ValueError):
            errors.append((f"people-{i}-user", "Choose a person of your organisation."))
            continue
        if uid not in members:
            errors.append((f"people-{i}-user", "Only people of your organisation can be named."))
            continue
        role = " ".join(str(role or "").split())
        if role not in roles:
            errors.append((f"people-{i}-role", f"Choose one of the sheet's roles: {', '.join(roles)}."))
            continue
        if uid in seen:
            errors.append((f"people-{i}-user", "Each person is named once."))
            continue
        seen.add(uid)
        out.append((members[uid].user, role))
    if not out and not errors:
        errors.append(("people", "Name at least one person, in one of the sheet's roles."))
    if len(out) > MAX_PEOPLE:
        errors.append(("people", f"At most {MAX_PEOPLE} people."))
    if errors:
        raise FieldErrors(errors)
    return out


def accept_agreement(user: User, a: DataAgreement, people: list[tuple[Any, Any]], posted_version: Any,
                     posted_digest: Any) -> DataAgreement:
    """The partner accepts the proposal under the sheet version and digest it read, naming
    its people in the sheet's roles; access runs from now for the sheet's duration."""
    if not policy.can(user, "view", a):
        raise ServiceError("Not found.", 404)
    lock_row(DataAgreement, a.id)
    db.session.refresh(a)
    if not policy.is_agreement_partner_side(policy.viewer_for(user), a):
        db.session.rollback()
        raise ServiceError("Only the partner organisation's owners and admins accept the agreement.", 403)
    if not policy.can(user, "accept", a):
        db.session.rollback()
        raise ServiceError(f"This agreement is {policy.agreement_state(a)}; it can no longer be accepted.", 409)
    try:
        version = int(posted_version)
    except (TypeError, ValueError):
        version = None
    if version != a.sheet_version or str(posted_digest or "").strip().lower() != a.sheet_digest:
        db.session.rollback()
        raise ServiceError(f"The sheet you accepted is not the one proposed (version {a.sheet_version}, digest "
                           f"{a.sheet_digest[:12]}…); reload the page and read it again.", 409, field="accept")
    if not sheet_digest_ok(a.sheet):
        db.session.rollback()
        raise ServiceError("The stored sheet no longer hashes to its digest; the agreement cannot be accepted.", 409)
    try:
        named = _parse_people(a, people)
    except ServiceError:
        db.session.rollback()
        raise
    now = utcnow()
    prev = _previous_acceptance(a)
    a.status = AgreementStatus.ACTIVE.value
    a.accepted_at = now
    a.accepted_by_id = user.id
    a.starts_at = now
    a.ends_at = now + timedelta(days=a.sheet.duration_days)
    if prev is not None:
        a.previous_sheet_version = prev.sheet_version
        a.previous_sheet_digest = prev.sheet_digest
    for u, role in named:
        db.session.add(AgreementPerson(agreement_id=a.id, user_id=u.id, role=role, added_at=now))
    db.session.flush()
    audit.record("agreement.accepted", "data_agreement", a.id, actor_id=user.id,
                 data={"sheet_version": a.sheet_version, "sheet_digest": a.sheet_digest,
                       "previous_sheet_version": a.previous_sheet_version,
                       "previous_sheet_digest": a.previous_sheet_digest,
                       "ends_at": _ts(a.ends_at), "people": [[u.id, role] for u, role in named]})
    policy.forget_viewer()
    _tell_sides(a, f"The data-sharing agreement for {{asset}} was accepted; access ends on "
                   f"{a.ends_at:%Y-%m-%d}.", skip=user.id)
    for u, _role in named:
        if u.id != user.id:
            notify(u, "agreement", f"You were named in the data-sharing agreement for {asset_name(u, a.item)}.",
                   _url("agreements.detail", agreement_id=a.id), about=a)
    db.session.commit()
    return a


def decline_agreement(user: User, a: DataAgreement, reason: str) -> DataAgreement:
    if not policy.can(user, "view", a):
        raise ServiceError("Not found.", 404)
    text = _reason(reason)
    lock_row(DataAgreement, a.id)
    db.session.refresh(a)
    if not policy.can(user, "decline", a):
        db.session.rollback()
        raise ServiceError("Only the partner's owners and admins decline a proposed agreement.", 403)
    a.status = AgreementStatus.DECLINED.value
    a.ended_at = utcnow()
    a.ended_by_id = user.id
    a.ended_side = "partner"
    a.end_reason = text
    audit.record("agreement.declined", "data_agreement", a.id, actor_id=user.id, data={"reason": text})
    _tell_sides(a, "The proposed data-sharing agreement for {asset} was declined.", skip=user.id)
    db.session.commit()
    return a


def _reason(reason: Any) -> str:
    text = (reason or "").strip() if isinstance(reason, (str, type(None))) else str(reason)
    if not text:
        raise ServiceError("Give the reason (both sides and the audit trail keep it).", field="reason")
    if len(text) > MAX_REASON:
        raise ServiceError(f"The reason: at most {MAX_REASON:,} characters.", field="reason")
    return text


def end_agreement(user: User, a: DataAgreement, reason: str, *, commit: bool = True,
                  audit_action: str = "agreement.ended") -> DataAgreement:
    """Either side ends the agreement early, with a reason; access stops at once."""
    if not policy.can(user, "view", a):
        raise ServiceError("Not found.", 404)
    text = _reason(reason)
    lock_row(DataAgreement, a.id)
    db.session.refresh(a)
    v = policy.viewer_for(user)
    if not (policy.is_agreement_owner_side(v, a) or policy.is_agreement_partner_side(v, a)):
        db.session.rollback()
        raise ServiceError("Only the owners and admins of the two organisations end the agreement.", 403)
    if not policy.can(user, "end", a):
        db.session.rollback()
        raise ServiceError(f"This agreement is {policy.agreement_state(a)}; there is nothing to end.", 409)
    _end(user, a, text, "owner" if policy.is_agreement_owner_side(v, a) else "partner", audit_action)
    if commit:
        db.session.commit()
    return a


def _end(user: User, a: DataAgreement, reason: str, side: str, audit_action: str) -> None:
    was = policy.agreement_state(a)
    a.status = AgreementStatus.ENDED.value
    a.ended_at = utcnow()
    a.ended_by_id = user.id
    a.ended_side = side
    a.end_reason = reason
    audit.record(audit_action, "data_agreement", a.id, actor_id=user.id,
                 data={"reason": reason, "side": side, "was": was})
    _tell_sides(a, "The data-sharing agreement for {asset} was ended early: ", skip=user.id, tail=reason)


def agreements_for(user: User, page_size: int = 50, page: int = 1) -> list[DataAgreement]:
    return list(db.session.execute(
        policy.visible(user, DataAgreement).order_by(DataAgreement.id.desc())
        .limit(page_size).offset((page - 1) * page_size)).scalars())


def agreement_for_request(r: AssetRequest) -> DataAgreement | None:
    return db.session.execute(select(DataAgreement).where(DataAgreement.request_id == r.id)).scalar()


# --------------------------------------------------------------------------- usage log


def usage(a: DataAgreement, limit: int = 200, offset: int = 0) -> list[AgreementAccess]:
    return list(db.session.execute(
        select(AgreementAccess).where(AgreementAccess.agreement_id == a.id)
        .order_by(AgreementAccess.id.desc()).limit(limit).offset(offset)).scalars())


def safe_cell(value: Any) -> str:
    """A cell no spreadsheet runs as a formula: leading = + - @ (and tab / CR, which some
    programs strip before reading) are neutralised with a leading apostrophe."""
    s = "" if value is None else str(value)
    if s and s[0] in "=+-@\t\r":
        return "'" + s
    return s


def usage_csv(user: User, a: DataAgreement) -> str:
    if not policy.can(user, "view", a):
        raise ServiceError("Not found.", 404)
    if not policy.can(user, "export_usage", a):
        raise ServiceError("The data owner's owners and admins export the usage log.", 403)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["accessed_at_utc", "agreement_id", "person", "email", "role", "file", "file_id"])
    roles = {p.user_id: p.role for p in a.people}
    rows = db.session.execute(select(AgreementAccess).where(AgreementAccess.agreement_id == a.id)
                              .order_by(AgreementAccess.id)).scalars()
    for r in rows:
        u = r.user
        w.writerow([safe_cell(x) for x in (_ts(r.accessed_at), a.id, u.display_name if u else "former account",
                                            u.email if u else "", roles.get(r.user_id, ""), r.filename, r.file_id)])
    return buf.getvalue()


# --------------------------------------------------------------------------- receipts


def build_receipt(a: DataAgreement) -> dict:
    """A signed receipt of the acceptance: the sheet version and digest (and, for a
    re-acceptance, the earlier version and digest), the two organisations and the period."""
    if a.accepted_at is None:
        raise ServiceError("This agreement was not accepted, so it has no receipt.", 404)
    kid, key = receipt_keys.signing_key()
    body = {"receipt": RECEIPT_SCHEMA, "agreement_id": a.id, "item_id": a.item_id,
            "owner_org_id": a.owner_org_id, "partner_org_id": a.partner_org_id,
            "sheet_version": a.sheet_version, "sheet_digest": a.sheet_digest,
            "previous_sheet_version": a.previous_sheet_version, "previous_sheet_digest": a.previous_sheet_digest,
            "accepted_by": a.accepted_by_id, "accepted_at": _ts(a.accepted_at), "starts_at": _ts(a.starts_at),
            "ends_at": _ts(a.ends_at), "key_id": kid}
    return {**body, "signature": receipt_keys.b64url(key.sign(canonical_json(body).encode("utf-8")))}


def receipt_json(a: DataAgreement) -> str:
    return receipt_keys.receipt_text(build_receipt(a))


def verify_receipt(data: dict) -> ReceiptCheck:
    """Signature first, then the record: the agreement must agree on every field."""
    if not isinstance(data, dict) or data.get("receipt") != RECEIPT_SCHEMA:
        return ReceiptCheck(False, ["This is not a data-sharing acceptance receipt."])
    body = {k: v for k, v in data.items() if k != "signature"}
    if not receipt_keys.verify(data.get("key_id"), data.get("signature"), canonical_json(body).encode("utf-8")):
        return ReceiptCheck(False, ["The signature does not match."])
    a = db.session.get(DataAgreement, data.get("agreement_id")) if isinstance(data.get("agreement_id"), int) else None
    if a is None or a.accepted_at is None:
        return ReceiptCheck(False, ["No accepted agreement with this number is on record."])
    fresh = build_receipt(a)
    problems = [f"The record disagrees on {k}." for k in fresh if k not in ("signature", "key_id") and fresh[k] != data.get(k)]
    if not sheet_digest_ok(a.sheet):
        problems.append("The stored sheet no longer hashes to its digest.")
    return ReceiptCheck(not problems, problems)
