"""Terms sheets (versioned, canonical JSON + SHA-256), participation rules, acceptances and
their receipts.

How a receipt is verifiable
---------------------------
A receipt is the canonical JSON of an acceptance (ids, terms version and digest, content
hash, UTC time), the ``key_id`` of the key that signed it, and ``signature``: the Ed25519
signature (base64url) over the canonical JSON of every other field (sorted keys, no spaces,
UTF-8). The public keys are published at /.well-known/receipt-keys.json
(marketplace/receipt_keys.py), so anyone can check the signature offline (README: "Checking
a receipt offline"). Receipts issued before that (schema ``oim-terms-acceptance/1``) carry
an HMAC-SHA256 instead, keyed from ``SECRET_KEY``; they still verify here, also after a
rotation (``SECRET_KEY_FALLBACKS``, ``LEGACY_RECEIPT_SECRETS``). Verifying:

1. the signature must match, so nobody without the key can mint or alter one;
2. the acceptance row named in it must exist and agree on every recorded field, so even the
   key alone cannot conjure an acceptance that was never made;
3. the terms version it names must still hash to its digest (the stored canonical JSON is
   re-hashed), and the idea revision it names must still carry the same content hash.

Only after the signature checks out is the database consulted, so the public verify page
reveals nothing to someone probing with invented receipts.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import current_app, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import audit, policy, receipt_keys
from ..audit import canonical_json, sha256_hex
from ..receipt_keys import ReceiptCheck
from ..extensions import db
from ..models import (
    AcceptancePurpose,
    ChallengeRules,
    ChallengeTerms,
    Confidentiality,
    IdeaRevision,
    IncentiveKind,
    IPModel,
    Item,
    ItemKind,
    TermsAcceptance,
    User,
    Visibility,
    WhoMaySubmit,
    utcnow,
)
from ..notify import notify
from .common import FieldErrors, ServiceError, chosen, lock_row

TERMS_SCHEMA = "oim-terms/1"
RECEIPT_SCHEMA = "oim-terms-acceptance/2"  # Ed25519, with key_id
LEGACY_RECEIPT_SCHEMA = "oim-terms-acceptance/1"  # HMAC-SHA256 (verified, no longer issued)
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")

TEXT_FIELDS = ("field_of_use", "territory", "licence_duration", "post_termination_rights",
               "background_ip", "foreground_ip", "dispute_resolution", "governing_law")
TEXT_LABELS = {
    "field_of_use": "Field of use", "territory": "Territory", "licence_duration": "Licence duration",
    "post_termination_rights": "Post-termination rights", "background_ip": "Background IP",
    "foreground_ip": "Foreground IP", "dispute_resolution": "Dispute resolution",
    "governing_law": "Governing law",
}
TEXT_LIMITS = {"licence_duration": 200, "governing_law": 200}
MAX_INCENTIVES = 10


def _url(endpoint: str, **kw) -> str:
    """A path for notifications; empty where no request is active (CLI, demo)."""
    try:
        return url_for(endpoint, **kw)
    except RuntimeError:
        return ""


def _ts(dt: datetime | None) -> str | None:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if dt else None


# --------------------------------------------------------------------------- incentives


def _money(value: Any, what: str, field: str = "amount") -> str:
    try:
        d = Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        raise ServiceError(f"{what}: enter an amount such as 20000 or 1500.50.", field=field)
    if not d.is_finite() or d <= 0 or d > Decimal("1e12") or d != d.quantize(Decimal("0.01")):
        raise ServiceError(f"{what}: the amount must be positive, with at most two decimals.", field=field)
    return str(d.quantize(Decimal("0.01")))


def _text(value: Any, what: str, limit: int = 300, required: bool = True, field: str = "description") -> str:
    text = (value or "").strip() if isinstance(value, str) or value is None else str(value).strip()
    if required and not text:
        raise ServiceError(f"{what} is required.", field=field)
    if len(text) > limit:
        raise ServiceError(f"{what}: at most {limit} characters.", field=field)
    return text


def normalise_incentive(raw: dict) -> dict:
    """One typed incentive entry, validated and in canonical form. A refusal names the part
    of the entry at fault (kind, amount, currency, winners, milestone, percentage, base,
    description): validate_terms turns it into the row's field."""
    kind = (raw.get("kind") or "").strip()
    if kind not in IncentiveKind.values():
        raise ServiceError(f"Unknown incentive type {kind!r}.", field="kind")
    label = IncentiveKind(kind).label
    out: dict[str, Any] = {"kind": kind}
    if kind == IncentiveKind.CASH_PRIZE.value:
        out["amount"] = _money(raw.get("amount"), label)
        out["currency"] = _currency(raw.get("currency"), label)
        try:
            winners = int(raw.get("winners") or 1)
        except (TypeError, ValueError):
            raise ServiceError(f"{label}: the number of winners must be a whole number.", field="winners")
        if not 1 <= winners <= 100:
            raise ServiceError(f"{label}: the number of winners must be between 1 and 100.", field="winners")
        out["winners"] = winners
    elif kind == IncentiveKind.MILESTONE_PAYMENT.value:
        out["milestone"] = _text(raw.get("milestone"), f"{label}: the milestone", 200, field="milestone")
        out["amount"] = _money(raw.get("amount"), label)
        out["currency"] = _currency(raw.get("currency"), label)
    elif kind == IncentiveKind.ROYALTY_SHARE.value:
        try:
            pct = Decimal(str(raw.get("percentage") or "").strip())
        except (InvalidOperation, ValueError):
            raise ServiceError(f"{label}: enter a percentage such as 3 or 2.5.", field="percentage")
        if not pct.is_finite() or pct <= 0 or pct > 100 or pct != pct.quantize(Decimal("0.01")):
            raise ServiceError(f"{label}: the percentage must be above 0 and at most 100.", field="percentage")
        out["percentage"] = str(pct.quantize(Decimal("0.01")))
        out["base"] = _text(raw.get("base"), f"{label}: the base (e.g. net sales of the product)", 200,
                            field="base")
    description = _text(raw.get("description"), f"{label}: the description", 500,
                        required=kind in (IncentiveKind.RECOGNITION.value,
                                          IncentiveKind.COLLABORATION_CONTRACT.value,
                                          IncentiveKind.ACCESS.value))
    if description:
        out["description"] = description
    return out


def _currency(value: Any, what: str, field: str = "currency") -> str:
    cur = (value or "").strip().upper()
    if not CURRENCY_RE.match(cur):
        raise ServiceError(f"{what}: the currency is a three-letter code such as EUR.", field=field)
    return cur


def describe_incentive(inc: dict) -> str:
    kind = inc.get("kind")
    if kind == IncentiveKind.CASH_PRIZE.value:
        n = inc.get("winners", 1)
        s = f"Cash prize of {inc['amount']} {inc['currency']}" + (f" for each of {n} winners" if n > 1 else "")
    elif kind == IncentiveKind.MILESTONE_PAYMENT.value:
        s = f"Milestone payment of {inc['amount']} {inc['currency']} on: {inc['milestone']}"
    elif kind == IncentiveKind.ROYALTY_SHARE.value:
        s = f"Royalty share of {inc['percentage']}% of {inc['base']}"
    else:
        s = IncentiveKind(kind).label if kind in IncentiveKind.values() else str(kind)
    if inc.get("description"):
        s += f" — {inc['description']}"
    return s


# --------------------------------------------------------------------------- terms


def canonical_terms(challenge_id: int, version: int, data: dict) -> dict:
    return {
        "schema": TERMS_SCHEMA,
        "challenge_id": challenge_id,
        "version": version,
        "ip_model": data["ip_model"],
        "open_licence": data["open_licence"],
        **{f: data[f] for f in TEXT_FIELDS},
        "confidentiality": data["confidentiality"],
        "reveal_at": _ts(data["reveal_at"]),
        "nda_text": data["nda_text"],
        "incentives": data["incentives"],
    }


def validate_terms(data: dict, now: datetime) -> dict:
    """Check and normalise a terms sheet. Every problem is found at once and raised together
    (FieldErrors), each naming its field; an incentive's names its row as the form posts it
    ("incentives-1-amount"; rows are counted in the list given, empty ones included)."""
    errors: list[tuple[str, str]] = []
    ip = chosen(data, "ip_model", IPModel, "Choose one of the IP models.", errors)
    licence = (data.get("open_licence") or "").strip()
    if ip == IPModel.OPEN_LICENCE.value and not licence:
        errors.append(("open_licence", "Name the open licence (for example CC-BY-4.0)."))
    elif len(licence) > 80:
        errors.append(("open_licence", "At most 80 characters."))
    if ip != IPModel.OPEN_LICENCE.value:
        licence = ""
    out: dict[str, Any] = {"ip_model": ip, "open_licence": licence}
    for f in TEXT_FIELDS:
        val = (data.get(f) or "").strip()
        if not val:
            errors.append((f, required_message(f)))
        elif len(val) > TEXT_LIMITS.get(f, 5000):
            errors.append((f, f"{TEXT_LABELS[f]}: at most {TEXT_LIMITS.get(f, 5000)} characters."))
        out[f] = val
    conf = out["confidentiality"] = chosen(data, "confidentiality", Confidentiality,
                                           "Choose sealed or open confidentiality.", errors)
    reveal = data.get("reveal_at")
    if reveal is not None and conf in Confidentiality.values() and conf != Confidentiality.SEALED.value:
        errors.append(("reveal_at", "A reveal date only applies to sealed ideas."))
    elif reveal is not None and reveal <= now:
        errors.append(("reveal_at", "The reveal date must be in the future."))
    out["reveal_at"] = reveal
    nda = (data.get("nda_text") or "").strip()
    if len(nda) > 20_000:
        errors.append(("nda_text", "The NDA: at most 20,000 characters."))
    out["nda_text"] = nda
    incentives = []
    for i, raw in enumerate(data.get("incentives") or []):
        if not raw or not (raw.get("kind") or "").strip():
            continue
        try:
            incentives.append(normalise_incentive(raw))
        except ServiceError as e:
            # normalise_incentive names the part of the row (kind, amount, ...).
            errors.append((f"incentives-{i}-{e.field}" if e.field else "incentives", e.message))
    if not incentives and not any(f.startswith("incentives") for f, _m in errors):
        errors.append(("incentives", "Declare at least one incentive: contributors must know what they get."))
    if len(incentives) > MAX_INCENTIVES:
        errors.append(("incentives", f"At most {MAX_INCENTIVES} incentives."))
    out["incentives"] = incentives
    if errors:
        raise FieldErrors(errors)
    return out


def required_message(field: str) -> str:
    return f"{TEXT_LABELS[field]} is required (write “not applicable” if it is not)."


def terms_problems(data: dict, now: datetime | None = None) -> list[tuple[str, str]]:
    """Every problem validate_terms finds in `data`, as (field, message); none: an empty list.
    The terms form lists them next to its own, so all errors show at once."""
    try:
        validate_terms(data, now or utcnow())
    except FieldErrors as e:
        return list(e.errors)
    return []


def terms_versions(challenge_id: int) -> list[ChallengeTerms]:
    return db.session.execute(
        select(ChallengeTerms).where(ChallengeTerms.challenge_id == challenge_id)
        .order_by(ChallengeTerms.version.desc())
    ).scalars().all()


def terms_digest_ok(terms: ChallengeTerms) -> bool:
    """The stored canonical JSON still hashes to the stored digest."""
    return hmac.compare_digest(sha256_hex(terms.canonical), terms.digest)


def save_terms(user: User, challenge: Item, data: dict, commit: bool = True) -> tuple[ChallengeTerms, bool]:
    """Add a new terms version (versions are never changed once written). ``commit=False``:
    the caller finishes the transaction.

    Returns (terms, created); an unchanged sheet returns the current version, created=False.
    People who accepted an older version are told that the terms changed.
    """
    if challenge.kind != ItemKind.CHALLENGE.value:
        raise ServiceError("Only challenges have terms sheets.", 404)
    if not policy.can(user, "manage_terms", challenge):
        raise ServiceError("Only the organisation's owners and admins can set the terms.", 403)
    now = utcnow()
    clean = validate_terms(data, now)
    lock_row(Item, challenge.id)  # version numbers: one writer at a time
    current = policy.current_terms(challenge.id)
    if current is not None:
        same = canonical_terms(challenge.id, current.version, clean)
        if canonical_json(same) == current.canonical:
            db.session.rollback()
            return current, False
    version = (current.version + 1) if current else 1
    canon = canonical_json(canonical_terms(challenge.id, version, clean))
    terms = ChallengeTerms(
        challenge_id=challenge.id, version=version, ip_model=clean["ip_model"],
        open_licence=clean["open_licence"], **{f: clean[f] for f in TEXT_FIELDS},
        confidentiality=clean["confidentiality"], reveal_at=clean["reveal_at"], nda_text=clean["nda_text"],
        incentives_json=canonical_json(clean["incentives"]), canonical=canon, digest=sha256_hex(canon),
        created_at=now, created_by_id=user.id,
    )
    db.session.add(terms)
    db.session.flush()
    audit.record("terms.version_created", "terms", terms.id, actor_id=user.id, item_id=challenge.id,
                 data={"version": version, "digest": terms.digest, "ip_model": terms.ip_model,
                       "confidentiality": terms.confidentiality,
                       "supersedes": current.version if current else None})
    if challenge_rules_or_none(challenge.id) is None:
        _create_default_rules(user, challenge)
    if current is not None:
        url = _url("ideas.terms_sheet", challenge_id=challenge.id)
        accepted_by = db.session.execute(
            select(TermsAcceptance.user_id).where(TermsAcceptance.challenge_id == challenge.id).distinct()
        ).scalars().all()
        for uid in accepted_by:
            notify(uid, "terms.changed",
                   f"The terms of “{challenge.title}” changed to version {version}. What you accepted "
                   "stands for what you submitted; new submissions and revisions need the new version.",
                   url, about=challenge)
    if commit:
        db.session.commit()
    return terms, True


# --------------------------------------------------------------------------- participation rules


def challenge_rules_or_none(challenge_id: int) -> ChallengeRules | None:
    return policy.challenge_rules(challenge_id)


def default_rules_for(challenge: Item) -> dict:
    who = {Visibility.INVITED.value: WhoMaySubmit.INVITED.value,
           Visibility.ORGANISATION.value: WhoMaySubmit.ORGANISATION.value}.get(
        challenge.visibility, WhoMaySubmit.REGISTERED.value)
    return {"who_may_submit": who, "max_ideas_per_contributor": 1, "team_allowed": False, "max_team_size": 1,
            "allowed_domains": "", "blocked_domains": "",
            "org_members_may_participate": who == WhoMaySubmit.ORGANISATION.value,
            "eligibility_statement": "", "coi_declaration": ""}


def _create_default_rules(user: User, challenge: Item) -> ChallengeRules:
    rules = ChallengeRules(challenge_id=challenge.id, updated_by_id=user.id, **default_rules_for(challenge))
    db.session.add(rules)
    db.session.flush()
    audit.record("challenge.rules_set", "challenge", challenge.id, actor_id=user.id, item_id=challenge.id,
                 data=rules_snapshot(rules) | {"defaults": True})
    return rules


def parse_domains(raw: str | None, what: str, fieldname: str) -> str:
    items = [d.strip().lower().lstrip("@") for d in re.split(r"[\s,;]+", raw or "") if d.strip()]
    bad = [d for d in items if not DOMAIN_RE.match(d)]
    if bad:
        raise ServiceError(f"{what}: {bad[0]!r} is not a domain name such as example.org.", field=fieldname)
    if len(items) > 100:
        raise ServiceError(f"{what}: at most 100 domains.", field=fieldname)
    return "\n".join(dict.fromkeys(items))


def rules_snapshot(rules: ChallengeRules) -> dict:
    return {
        "who_may_submit": rules.who_may_submit,
        "max_ideas_per_contributor": rules.max_ideas_per_contributor,
        "team_allowed": rules.team_allowed, "max_team_size": rules.max_team_size,
        "allowed_domains": rules.allowed_list, "blocked_domains": rules.blocked_list,
        "org_members_may_participate": rules.org_members_may_participate,
        "eligibility_statement": rules.eligibility_statement, "coi_declaration": rules.coi_declaration,
    }


def save_rules(user: User, challenge: Item, data: dict, commit: bool = True) -> ChallengeRules:
    """Set the participation rules (audited when they change). ``commit=False``: the caller
    finishes the transaction."""
    if challenge.kind != ItemKind.CHALLENGE.value:
        raise ServiceError("Only challenges have participation rules.", 404)
    if not policy.can(user, "manage_terms", challenge):
        raise ServiceError("Only the organisation's owners and admins can set the participation rules.", 403)
    who = chosen(data, "who_may_submit", WhoMaySubmit, "Choose who may submit.")
    try:
        max_ideas = int(data.get("max_ideas_per_contributor"))
    except (TypeError, ValueError):
        raise ServiceError("Enter a whole number.", field="max_ideas_per_contributor")
    if not 1 <= max_ideas <= 100:
        raise ServiceError("Between 1 and 100 ideas per contributor.", field="max_ideas_per_contributor")
    team = bool(data.get("team_allowed"))
    try:
        team_size = int(data.get("max_team_size") or 1)
    except (TypeError, ValueError):
        raise ServiceError("Enter a whole number.", field="max_team_size")
    if team and not 2 <= team_size <= 20:
        raise ServiceError("A team has between 2 and 20 people (the lead author included).", field="max_team_size")
    if not team:
        team_size = 1
    allowed = parse_domains(data.get("allowed_domains"), "Allowed domains", "allowed_domains")
    blocked = parse_domains(data.get("blocked_domains"), "Blocked domains", "blocked_domains")
    both = set(allowed.split()) & set(blocked.split())
    if both:
        raise ServiceError(f"{sorted(both)[0]} is both allowed and blocked.", field="blocked_domains")
    members_ok = bool(data.get("org_members_may_participate"))
    if who == WhoMaySubmit.ORGANISATION.value and not members_ok:
        raise ServiceError("Only members may submit, so members must be allowed to take part.",
                           field="org_members_may_participate")
    texts = {}
    for f in ("eligibility_statement", "coi_declaration"):
        val = (data.get(f) or "").strip()
        if len(val) > 5000:
            raise ServiceError("At most 5,000 characters.", field=f)
        texts[f] = val
    lock_row(Item, challenge.id)
    rules = challenge_rules_or_none(challenge.id)
    before = rules_snapshot(rules) if rules else None
    if rules is None:
        rules = ChallengeRules(challenge_id=challenge.id)
        db.session.add(rules)
    rules.who_may_submit = who
    rules.max_ideas_per_contributor = max_ideas
    rules.team_allowed = team
    rules.max_team_size = team_size
    rules.allowed_domains = allowed
    rules.blocked_domains = blocked
    rules.org_members_may_participate = members_ok
    rules.eligibility_statement = texts["eligibility_statement"]
    rules.coi_declaration = texts["coi_declaration"]
    rules.updated_by_id = user.id
    db.session.flush()
    after = rules_snapshot(rules)
    if after != before:
        audit.record("challenge.rules_set", "challenge", challenge.id, actor_id=user.id, item_id=challenge.id,
                     data=after)
    if commit:
        db.session.commit()
    return rules


def open_check(item: Item) -> str | None:
    """services.items.OPEN_CHECKS: a challenge cannot open without a terms sheet."""
    if item.kind != ItemKind.CHALLENGE.value:
        return None
    if item.id is None or policy.current_terms(item.id) is None:
        return "A challenge needs a terms sheet (IP, confidentiality, incentives) before it can open. " \
               "Save it as a draft, add the terms, then publish."
    return None


# --------------------------------------------------------------------------- acceptances


def acceptance_key(purpose: str, user_id: int, terms_id: int, idea_id: int | None, revision: int | None) -> str:
    return f"{purpose}:{user_id}:{terms_id}:{idea_id or 0}:{revision or 0}"


def find_acceptance(key: str) -> TermsAcceptance | None:
    return db.session.execute(select(TermsAcceptance).where(TermsAcceptance.dedupe_key == key)).scalar()


def add_acceptance(*, purpose: str, user: User, challenge: Item, terms: ChallengeTerms,
                   idea_id: int | None = None, revision: int | None = None, content_hash: str | None = None,
                   eligibility: bool = False, coi: bool = False, coi_note: str = "") -> TermsAcceptance:
    """Insert one acceptance inside the caller's transaction (the caller commits).

    The unique dedupe key makes a concurrent duplicate fail here; callers serialise on a row
    lock first, so that failure is a last line of defence, turned into the existing row.
    """
    key = acceptance_key(purpose, user.id, terms.id, idea_id, revision)
    existing = find_acceptance(key)
    if existing is not None:
        return existing
    # A re-acceptance names the version (and digest) this person accepted before.
    prev = db.session.execute(
        select(TermsAcceptance.terms_version, TermsAcceptance.terms_digest).where(
            TermsAcceptance.user_id == user.id, TermsAcceptance.challenge_id == challenge.id,
            TermsAcceptance.terms_version < terms.version)
        .order_by(TermsAcceptance.terms_version.desc(), TermsAcceptance.id.desc()).limit(1)).first()
    acc = TermsAcceptance(
        previous_terms_version=prev[0] if prev else None, previous_terms_digest=prev[1] if prev else None,
        dedupe_key=key, purpose=purpose, user_id=user.id, challenge_id=challenge.id, terms_id=terms.id,
        terms_version=terms.version, terms_digest=terms.digest, idea_id=idea_id, idea_revision=revision,
        content_hash=content_hash, eligibility_confirmed=eligibility, coi_confirmed=coi,
        coi_note=(coi_note or "")[:2000], accepted_at=utcnow(),
    )
    try:
        with db.session.begin_nested():
            db.session.add(acc)
    except IntegrityError:
        found = find_acceptance(key)
        if found is None:
            raise
        return found
    audit.record("terms.accepted", "acceptance", acc.id, actor_id=user.id, item_id=challenge.id,
                 data={"purpose": purpose, "terms_version": terms.version, "terms_digest": terms.digest,
                       "previous_terms_version": acc.previous_terms_version,
                       "previous_terms_digest": acc.previous_terms_digest,
                       "idea_id": idea_id, "idea_revision": revision, "content_sha256": content_hash})
    return acc


def check_posted_terms(terms: ChallengeTerms | None, posted_version: Any, posted_digest: Any) -> ChallengeTerms:
    """The form said which version (and digest) the person read: it must be the current one."""
    if terms is None:
        raise ServiceError("This challenge has no terms sheet yet, so it takes no ideas.", 409)
    try:
        version = int(posted_version)
    except (TypeError, ValueError):
        raise ServiceError("The form did not say which terms version you accepted; reload the page.", 400,
                           field="accept_terms")
    # Compared as bytes: compare_digest refuses str with non-ASCII characters (a TypeError,
    # i.e. a 500), and a posted digest can be any text.
    if version != terms.version or not hmac.compare_digest(str(posted_digest or "").encode("utf-8"),
                                                           terms.digest.encode("utf-8")):
        raise ServiceError(
            f"The terms you accepted (version {version}) are not the current terms (version {terms.version}, "
            f"digest {terms.digest[:12]}…). Read the current terms and accept them again.", 409,
            field="accept_terms")
    return terms


def accept_nda(user: User, challenge: Item, posted_version: Any, posted_digest: Any) -> TermsAcceptance:
    """Accept the NDA carried by the current terms version (needed to read the full brief)."""
    if not policy.can(user, "view", challenge):
        raise ServiceError("Not found.", 404)
    terms = policy.current_terms(challenge.id)
    if terms is None or not terms.nda_text:
        raise ServiceError("This challenge has no NDA to accept.", 409)
    check_posted_terms(terms, posted_version, posted_digest)
    lock_row(Item, challenge.id)
    acc = add_acceptance(purpose=AcceptancePurpose.NDA.value, user=user, challenge=challenge, terms=terms)
    db.session.commit()
    return acc


# --------------------------------------------------------------------------- receipts


def _legacy_keys() -> list[bytes]:
    """The HMAC keys old (schema /1) receipts may carry: derived from SECRET_KEY, from each of
    SECRET_KEY_FALLBACKS and from each of LEGACY_RECEIPT_SECRETS (so they survive rotations)."""
    cfg = current_app.config
    secrets = [cfg["SECRET_KEY"], *(cfg.get("SECRET_KEY_FALLBACKS") or []), *(cfg.get("LEGACY_RECEIPT_SECRETS") or [])]
    return [hmac.new(s.encode() if isinstance(s, str) else s, b"oim terms receipt v1", hashlib.sha256).digest()
            for s in secrets if s]


def _legacy_signature_ok(body: dict, sig: object) -> bool:
    if not isinstance(sig, str):
        return False
    message = canonical_json(body).encode("utf-8")
    return any(hmac.compare_digest(sig.encode(), hmac.new(k, message, hashlib.sha256).hexdigest().encode())
               for k in _legacy_keys())


def _sign(body: dict, key=None) -> str:
    """The signature of `body` (a receipt without its signature) by `key`, by default the
    current key; the caller has put that key's id in body["key_id"]."""
    if key is None:
        _kid, key = receipt_keys.signing_key()
    return receipt_keys.b64url(key.sign(canonical_json(body).encode("utf-8")))


RECORDED_FIELDS = ("purpose", "user_id", "challenge_id", "terms_version", "terms_digest", "idea_id",
                   "idea_revision", "content_sha256", "accepted_at", "eligibility_confirmed", "coi_confirmed",
                   "previous_terms_version", "previous_terms_digest")


def _recorded(acc: TermsAcceptance) -> dict:
    return {
        "purpose": acc.purpose, "user_id": acc.user_id, "challenge_id": acc.challenge_id,
        "terms_version": acc.terms_version, "terms_digest": acc.terms_digest, "idea_id": acc.idea_id,
        "idea_revision": acc.idea_revision, "content_sha256": acc.content_hash,
        "accepted_at": _ts(acc.accepted_at), "eligibility_confirmed": acc.eligibility_confirmed,
        "coi_confirmed": acc.coi_confirmed,
        # A re-acceptance names both versions and both digests (None on a first acceptance).
        "previous_terms_version": acc.previous_terms_version, "previous_terms_digest": acc.previous_terms_digest,
    }


def build_receipt(acc: TermsAcceptance) -> dict:
    kid, key = receipt_keys.signing_key()
    body = {"receipt": RECEIPT_SCHEMA, "acceptance_id": acc.id, **_recorded(acc),
            # For people reading it; signed, but not compared (titles and names may change).
            # Named only while the holder may see the challenge (moderators may hide it).
            "challenge_title": acc.challenge.title if acc.challenge is not None and acc.user is not None
            and policy.can(acc.user, "view", acc.challenge) else None,
            "accepted_by": acc.user.display_name if acc.user else None,
            "key_id": kid}
    return {**body, "signature": _sign(body, key)}


def receipt_json(acc: TermsAcceptance) -> str:
    return receipt_keys.receipt_text(build_receipt(acc))


def verify_receipt(raw: str | bytes | dict) -> ReceiptCheck:
    """Check a receipt (see the module docstring). Never raises on bad input."""
    if isinstance(raw, dict):
        data = raw
    else:
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return ReceiptCheck(False, ["This is not a receipt: it is not valid JSON."])
    schema = data.get("receipt") if isinstance(data, dict) else None
    if schema not in (RECEIPT_SCHEMA, LEGACY_RECEIPT_SCHEMA):
        return ReceiptCheck(False, [f"This is not a terms acceptance receipt (expected \"receipt\": "
                                    f"\"{RECEIPT_SCHEMA}\")."])
    sig = data.get("signature")
    body = {k: v for k, v in data.items() if k != "signature"}
    if schema == RECEIPT_SCHEMA:
        signed = receipt_keys.verify(data.get("key_id"), sig, canonical_json(body).encode("utf-8"))
    else:
        signed = _legacy_signature_ok(body, sig)
    if not signed:
        return ReceiptCheck(False, ["The signature does not match: this receipt was not issued by this site, "
                                    "or something in it was changed."], data)
    acc_id = data.get("acceptance_id")
    acc = db.session.get(TermsAcceptance, acc_id) if isinstance(acc_id, int) else None
    if acc is None:
        return ReceiptCheck(False, ["No acceptance with this number is on record."], data)
    problems = []
    recorded = _recorded(acc)
    for f in RECORDED_FIELDS:
        if data.get(f) != recorded[f]:
            problems.append(f"The record disagrees on {f}.")
    terms = acc.terms
    if terms is None or terms.version != acc.terms_version or terms.digest != acc.terms_digest:
        problems.append("The terms version on record does not match the acceptance.")
    elif not terms_digest_ok(terms):
        problems.append("The stored terms no longer hash to their digest.")
    if acc.idea_id is not None and acc.idea_revision is not None:
        rev = db.session.execute(select(IdeaRevision).where(
            IdeaRevision.idea_id == acc.idea_id, IdeaRevision.number == acc.idea_revision)).scalar()
        if rev is None or rev.content_hash != acc.content_hash:
            problems.append("The idea revision on record does not carry this content hash.")
    return ReceiptCheck(not problems, problems, data, acc.id)
