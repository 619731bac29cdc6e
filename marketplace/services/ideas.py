"""Writes for ideas: submit, revise, withdraw, co-authorship, the sealed-view log, reviewers,
criteria, scores, private notes, shortlist/decline/award/payment and disqualification.

Every function asks the policy itself (so pages, API and CLI get the same rules), takes a
row lock before check-then-write rules (limits, double posts, double acceptances), records
governance events with ``item_id=challenge.id`` and commits. Nothing is half-written:
files stored for a transaction that fails are removed again.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from .. import audit, email_address, policy
from ..audit import canonical_json, sha256_hex
from ..extensions import db
from ..models import (
    AcceptancePurpose,
    AccessGrant,
    AuthorStatus,
    ChallengeTerms,
    CoauthorInvitation,
    Confidentiality,
    Idea,
    IdeaAttachment,
    IdeaAuthor,
    IdeaAward,
    IdeaRevision,
    IdeaScore,
    IdeaStatus,
    InvitationState,
    IncentiveKind,
    IPModel,
    Item,
    ItemKind,
    Membership,
    ReviewCriterion,
    ReviewerAppointment,
    ReviewerInvitation,
    ReviewerKind,
    ReviewNote,
    SealedViewLog,
    User,
    Visibility,
    utcnow,
)
from ..notify import notify
from ..sanitize import plain_text, render_markdown
from ..timezones import format_dt
from . import attachments as files_svc
from .accounts import find_user, normalise_email
from .common import ServiceError, lock_row
from .terms import _url, add_acceptance, check_posted_terms, describe_incentive

COAUTHOR_LINK_DAYS = 30
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
LIMITS = {"title": 200, "summary": 500, "body": 50_000}


def _challenge_or_404(user: Any, challenge: Item | None) -> Item:
    if challenge is None or challenge.kind != ItemKind.CHALLENGE.value or not policy.can(user, "view", challenge):
        raise ServiceError("There is no such challenge, or you may not see it.", 404)
    return challenge


def content_hash(title: str, summary: str, body: str, attachments: list[dict]) -> str:
    """SHA-256 of the idea content as submitted: text and the hashes of its files."""
    files = sorted(({"name": a["name"], "sha256": a["sha256"], "size": a["size"]} for a in attachments),
                   key=lambda a: (a["sha256"], a["name"]))
    return sha256_hex(canonical_json({"title": title, "summary": summary, "body": body, "attachments": files}))


def _clean_text(data: dict) -> dict:
    out = {}
    for f, limit in LIMITS.items():
        val = data.get(f) or ""
        val = val.strip() if f != "body" else val.strip("\n")
        if f in ("title", "body") and not val.strip():
            raise ServiceError("Give the idea a title." if f == "title" else "Describe the idea.", field=f)
        if len(val) > limit:
            raise ServiceError(f"At most {limit:,} characters.", field=f)
        out[f] = val
    return out


def _merge_confidentiality(idea: Idea, terms: ChallengeTerms) -> None:
    """The idea keeps the strictest confidentiality any of its authors accepted."""
    new_sealed = terms.confidentiality == Confidentiality.SEALED.value
    if idea.confidentiality is None:
        idea.confidentiality, idea.reveal_at = terms.confidentiality, terms.reveal_at
        return
    old_sealed = idea.confidentiality == Confidentiality.SEALED.value
    if old_sealed and new_sealed:
        idea.reveal_at = None if (idea.reveal_at is None or terms.reveal_at is None) \
            else max(idea.reveal_at, terms.reveal_at)
    elif new_sealed:
        idea.confidentiality, idea.reveal_at = Confidentiality.SEALED.value, terms.reveal_at


def _confirmations(challenge: Item, data: dict) -> tuple[bool, bool]:
    rules = policy.challenge_rules(challenge.id)
    elig = bool(data.get("confirm_eligibility"))
    coi = bool(data.get("confirm_coi"))
    if rules is not None and rules.eligibility_statement and not elig:
        raise ServiceError("Confirm that you meet the eligibility statement.", field="confirm_eligibility")
    if rules is not None and rules.coi_declaration and not coi:
        raise ServiceError("Confirm the conflict-of-interest declaration.", field="confirm_coi")
    return elig, coi


def _require_accept(terms: ChallengeTerms, data: dict) -> None:
    if not data.get("accept_terms"):
        raise ServiceError(f"Tick the box to accept the terms (version {terms.version}); ideas are only "
                           "taken under accepted terms.", field="accept_terms")


def _take_part(user: User, challenge: Item, data: dict):
    """The checks every author passes to join a challenge's idea: the participation rules
    (403 naming the rule), the exact terms shown (409 if they changed), their acceptance and
    the confirmations. Returns (terms, eligibility, conflict-of-interest note)."""
    why = policy.participation_refusal(user, challenge)
    if why:
        raise ServiceError(why, 403)
    terms = check_posted_terms(policy.current_terms(challenge.id), data.get("terms_version"),
                               data.get("terms_digest"))
    _require_accept(terms, data)
    elig, coi = _confirmations(challenge, data)
    return terms, elig, coi


def _parse_coauthors(lead: User, challenge: Item, raw: str | None) -> list[str]:
    """The co-authors' addresses, checked only by what an address shows (its form and its
    domain), never by whether it has an account: the answer is the same either way, and each
    co-author's own eligibility is checked when they accept."""
    parts = [e.strip() for e in re.split(r"[\s,;]+", raw or "") if e.strip()]
    if not parts:
        return []
    rules = policy.challenge_rules(challenge.id)
    if rules is None or not rules.team_allowed:
        raise ServiceError("This challenge takes no team submissions (rule: team submissions), so an idea "
                           "cannot have co-authors.", 403, field="coauthors")
    emails: list[str] = []
    for raw_address in parts:
        try:
            e = email_address.check(raw_address)
        except email_address.InvalidEmail as err:
            raise ServiceError(f"{raw_address[:80]} is not an e-mail address: {err}", field="coauthors") from None
        if e == normalise_email(lead.email):
            raise ServiceError("You are the lead author; list only your co-authors.", field="coauthors")
        why = policy.address_domain_refusal(rules, e.rsplit("@", 1)[-1])
        if why:
            raise ServiceError(f"{e} cannot be a co-author: {why}", 403, field="coauthors")
        if e not in emails:
            emails.append(e)
    if 1 + len(emails) > rules.max_team_size:
        raise ServiceError(f"A team may have at most {rules.max_team_size} people, the lead author included "
                           "(rule: maximum team size).", 403, field="coauthors")
    return emails


def _invite_coauthor(idea: Idea, lead: User, challenge: Item, email: str, now) -> CoauthorInvitation:
    """Name a co-author by address: a link mailed there lets its owner (with an account or
    after registering from the link) answer. An existing account is also a pending author
    at once; the lead author sees the address as typed either way."""
    from ..mail.outbox import link, queue
    from .invitations import hash_token, new_token

    token = new_token()
    co = find_user(email)
    expires = challenge.deadline if challenge.deadline is not None else now + timedelta(days=COAUTHOR_LINK_DAYS)
    inv = CoauthorInvitation(idea_id=idea.id, email=email, token_hash=hash_token(token), invited_by_id=lead.id,
                             created_at=now, expires_at=expires, user_id=co.id if co is not None else None)
    db.session.add(inv)
    if co is not None:
        idea.authors.append(IdeaAuthor(user_id=co.id, status=AuthorStatus.PENDING.value))
    db.session.flush()
    if co is not None:
        notify(co, "idea.coauthor_invited",
               f"{lead.display_name} named you as a co-author of an idea for “{challenge.title}”. "
               "Accept the terms to take part, or decline.", _url("ideas.coauthor", idea_id=idea.id),
               about=idea, mail=False)  # the invitation mail below is the e-mail
    reveals = policy.invitation_reveals_item(challenge)
    queue(co if co is not None else email, "invite_coauthor",
          f"{lead.display_name} named you as a co-author on the Open Innovation Marketplace",
          kind="invitation.coauthor", about=idea, secret=True,
          context={"lead": lead.display_name, "challenge": challenge.title if reveals else None,
                   "org": challenge.organisation.name, "url": link("ideas.coauthor_link", token=token),
                   "has_account": co is not None, "expires_at": expires})
    return inv


def find_coauthor_invitation(token: str) -> CoauthorInvitation | None:
    from .invitations import find_mailed

    return find_mailed(CoauthorInvitation, token)


def coauthor_link_refusal(inv: CoauthorInvitation | None, user: Any) -> tuple[str, int] | None:
    """Why this co-author link cannot be used by `user` now (message, status), or None."""
    if inv is None:
        return "This link is not valid. Check that you copied the whole link.", 404
    if inv.declined_at is not None:
        return "This co-authorship was declined, so the link no longer works.", 410
    idea = inv.idea
    if idea is None or idea.status in (IdeaStatus.WITHDRAWN.value, IdeaStatus.DISQUALIFIED.value):
        return "This idea was withdrawn, so the link no longer works.", 410
    if inv.user_id is None and inv.expires_at <= utcnow():
        return f"This link expired on {inv.expires_at:%Y-%m-%d %H:%M} UTC.", 410
    v = policy.viewer_for(user)
    if v.is_authenticated and not policy.is_coauthor_invitee(v, inv):
        return (f"This link was sent to {inv.masked_email}, not to the account you are signed in with. "
                "Sign out and sign in (or register) with that address."), 403
    return None


def coauthor_link_address(token: str) -> str | None:
    """The address a co-author link proves while it can still be claimed by registering."""
    inv = find_coauthor_invitation(token)
    if inv is None or inv.user_id is not None or coauthor_link_refusal(inv, None) is not None:
        return None
    return inv.email


def _locked_coauthor_invitation(user: Any, token: str) -> CoauthorInvitation:
    """The invitation `token` proves, if `user` may use it now (else the refusal, raised), with
    its idea locked until commit and the invitation read again under that lock."""
    inv = find_coauthor_invitation(token)
    problem = coauthor_link_refusal(inv, user)
    if problem:
        raise ServiceError(*problem)
    lock_row(Idea, inv.idea_id)
    db.session.refresh(inv)
    return inv


def claim_coauthor_invitation(user: User, token: str) -> Idea:
    """The signed-in holder of the invited address takes up the invitation: a pending author
    of the idea (then answers on the co-author page). The link proves the address."""
    inv = _locked_coauthor_invitation(user, token)
    problem = coauthor_link_refusal(inv, user)
    if problem:
        db.session.rollback()
        raise ServiceError(*problem)
    idea = inv.idea
    if inv.user_id is None:
        inv.user_id = user.id
        if not any(a.user_id == user.id for a in idea.authors):
            idea.authors.append(IdeaAuthor(user_id=user.id, status=AuthorStatus.PENDING.value))
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    db.session.commit()
    policy.forget_viewer(user.id)
    return idea


def decline_coauthor_invitation(user: Any, token: str) -> Idea:
    """Decline with the link, with or without an account (the token proves the mailbox)."""
    inv = _locked_coauthor_invitation(user, token)
    idea = inv.idea
    now = utcnow()
    row = next((a for a in idea.authors if inv.user_id is not None and a.user_id == inv.user_id), None)
    if row is not None and row.status != AuthorStatus.PENDING.value:
        db.session.rollback()
        raise ServiceError("This co-authorship was already answered.", 409)
    inv.declined_at = now
    if row is not None:
        row.status = AuthorStatus.DECLINED.value
        row.responded_at = now
    actor_id = user.id if getattr(user, "is_authenticated", False) else None
    audit.record("idea.coauthor_declined", "idea", idea.id, actor_id=actor_id, item_id=idea.challenge_id,
                 data={"by": "mailed link"})
    _maybe_complete(idea, None, now)
    _notify_authors(idea, "idea.coauthor_declined",
                    f"{inv.masked_email} declined to be a co-author of “{idea.title}”.", skip=inv.user_id)
    db.session.commit()
    return idea


def coauthor_invitations(idea: Idea) -> list[CoauthorInvitation]:
    return list(db.session.execute(select(CoauthorInvitation).where(CoauthorInvitation.idea_id == idea.id)
                                   .order_by(CoauthorInvitation.id)).scalars())


def team_lines(idea: Idea) -> list[tuple[str, str]]:
    """The authors as shown on the idea: (name, state). A co-author named by address shows as
    that address (masked) until they accept, whether or not it has an account."""
    invited = {i.user_id: i for i in coauthor_invitations(idea) if i.user_id is not None}
    out = []
    for a in idea.authors:
        if a.status in (AuthorStatus.LEAD.value, AuthorStatus.ACCEPTED.value):
            out.append((a.user.display_name, "lead author" if a.status == AuthorStatus.LEAD.value else ""))
        elif a.status == AuthorStatus.PENDING.value:
            inv = invited.get(a.user_id)
            out.append((inv.masked_email if inv is not None else a.user.display_name, "not yet accepted"))
    now = utcnow()
    for inv in coauthor_invitations(idea):
        if inv.user_id is None and inv.declined_at is None and inv.expires_at > now:
            out.append((inv.masked_email, "not yet accepted"))
    return out


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise ServiceError("The form is incomplete (no submission key); reload the page and try again.")
    return key


def _find_by_key(user: User, key: str) -> Idea | None:
    return db.session.execute(
        select(Idea).where(Idea.author_id == user.id, Idea.submission_key == key)).scalar()


def _store_files(idea: Idea, checked: list[files_svc.CheckedFile], user: User, revision: int,
                 stored: list[str]) -> list[IdeaAttachment]:
    rows = []
    for c in checked:
        name = files_svc.store(c)
        stored.append(name)
        att = IdeaAttachment(idea_id=idea.id, uploaded_by_id=user.id, filename=c.filename, stored_name=name,
                             content_type=c.content_type, size=c.size, sha256=c.sha256,
                             added_in_revision=revision)
        db.session.add(att)
        rows.append(att)
    return rows


def _summaries_of(checked: list[files_svc.CheckedFile]) -> list[dict]:
    return [{"name": c.filename, "sha256": c.sha256, "size": c.size} for c in checked]


def _add_revision(idea: Idea, user: User, terms: ChallengeTerms) -> IdeaRevision:
    db.session.flush()
    rev = IdeaRevision(idea_id=idea.id, number=idea.revision, title=idea.title, summary=idea.summary,
                       body=idea.body, body_html=idea.body_html, content_hash=idea.content_hash,
                       terms_id=terms.id, created_by_id=user.id,
                       attachments_json=canonical_json([a.summary() for a in idea.current_attachments]))
    db.session.add(rev)
    return rev


# --------------------------------------------------------------------------- submit


def submit_idea(user: User, challenge: Item | None, data: dict, uploads=None) -> tuple[Idea, bool]:
    """Submit an idea under the current terms. Returns (idea, created): a form posted twice
    (same submission key) returns the idea made the first time, created=False."""
    challenge = _challenge_or_404(user, challenge)
    posted_cid = data.get("challenge_id")
    if posted_cid not in (None, "") and str(posted_cid) != str(challenge.id):
        raise ServiceError("This form belongs to a different challenge; reload the challenge page and "
                           "submit from there.", 400)
    key = _check_key(data.get("submission_key"))
    text = _clean_text(data)
    checked = files_svc.read_uploads(uploads)
    if len(checked) > files_svc.MAX_FILES_PER_IDEA:
        raise ServiceError(f"At most {files_svc.MAX_FILES_PER_IDEA} attachments per idea.", field="attachments")

    lock_row(Item, challenge.id)  # serialise submissions to this challenge until commit
    existing = _find_by_key(user, key)
    if existing is not None:
        db.session.rollback()
        return existing, False
    terms, elig, coi = _take_part(user, challenge, data)
    coauthors = _parse_coauthors(user, challenge, data.get("coauthors"))

    now = utcnow()
    chash = content_hash(text["title"], text["summary"], text["body"], _summaries_of(checked))
    idea = Idea(challenge_id=challenge.id, author_id=user.id, title=text["title"], summary=text["summary"],
                body=text["body"], body_html=render_markdown(text["body"]), revision=1, terms_id=terms.id,
                content_hash=chash, submission_key=key, created_at=now, updated_at=now,
                status=IdeaStatus.AWAITING_COAUTHORS.value if coauthors else IdeaStatus.SUBMITTED.value,
                submitted_at=None if coauthors else now)
    idea.confidentiality = None
    _merge_confidentiality(idea, terms)
    idea.authors.append(IdeaAuthor(user_id=user.id, status=AuthorStatus.LEAD.value, responded_at=now))
    stored: list[str] = []
    try:
        db.session.add(idea)
        db.session.flush()
        _store_files(idea, checked, user, 1, stored)
        db.session.flush()
        db.session.refresh(idea, ["attachments"])
        _add_revision(idea, user, terms)
        add_acceptance(purpose=AcceptancePurpose.SUBMISSION.value, user=user, challenge=challenge, terms=terms,
                       idea_id=idea.id, revision=1, content_hash=chash, eligibility=elig, coi=coi,
                       coi_note=data.get("coi_note") or "")
        audit.record("idea.submitted" if not coauthors else "idea.created", "idea", idea.id, actor_id=user.id,
                     item_id=challenge.id,
                     data={"revision": 1, "content_sha256": chash, "terms_version": terms.version,
                           "terms_digest": terms.digest, "coauthors": len(coauthors)})
        for email in coauthors:
            _invite_coauthor(idea, user, challenge, email, now)
        if not coauthors:
            from .notifications import tell_sponsor_idea_submitted
            tell_sponsor_idea_submitted(idea)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        files_svc.discard(stored)
        again = _find_by_key(user, key)
        if again is not None:
            return again, False
        raise
    except BaseException:
        db.session.rollback()
        files_svc.discard(stored)
        raise
    return idea, True


# --------------------------------------------------------------------------- revise / withdraw


def _refusal_for_author_action(idea: Idea, verb: str) -> str:
    ch = idea.challenge
    now = utcnow()
    if ch.deadline is not None and now >= ch.deadline:
        return f"The deadline passed at {format_dt(ch.deadline)}; ideas can no longer be {verb}."
    if ch.status != "open":
        return f"The challenge is {ch.status}; ideas can no longer be {verb}."
    return f"An idea that is {idea.status_label.lower()} cannot be {verb}."


def revise_idea(user: User, idea: Idea, data: dict, uploads=None, remove_ids: list[int] | None = None) -> Idea:
    if not policy.can(user, "view", idea):
        raise ServiceError("There is no such idea, or you may not see it.", 404)
    if not policy.is_idea_author(policy.viewer_for(user), idea, include_pending=False):
        raise ServiceError("Only the idea's authors can revise it.", 403)
    text = _clean_text(data)
    checked = files_svc.read_uploads(uploads)
    lock_row(Idea, idea.id)
    db.session.refresh(idea)
    if not policy.can(user, "revise", idea):
        raise ServiceError(_refusal_for_author_action(idea, "revised"), 403)
    challenge = idea.challenge
    terms = check_posted_terms(policy.current_terms(challenge.id), data.get("terms_version"),
                               data.get("terms_digest"))
    _require_accept(terms, data)
    elig, coi = _confirmations(challenge, data)
    current = {a.id: a for a in idea.current_attachments}
    remove = set()
    for rid in remove_ids or []:
        try:
            rid = int(rid)
        except (TypeError, ValueError):
            raise ServiceError("Unknown attachment.", field="attachments")
        if rid not in current:
            raise ServiceError("That attachment is not part of the current idea.", field="attachments")
        remove.add(rid)
    kept = [a.summary() for a in current.values() if a.id not in remove]
    if len(kept) + len(checked) > files_svc.MAX_FILES_PER_IDEA:
        raise ServiceError(f"At most {files_svc.MAX_FILES_PER_IDEA} attachments per idea.", field="attachments")
    chash = content_hash(text["title"], text["summary"], text["body"], kept + _summaries_of(checked))
    if chash == idea.content_hash and terms.id == idea.terms_id:
        raise ServiceError("Nothing changed: edit the idea or its files before saving a revision.")
    now = utcnow()
    stored: list[str] = []
    try:
        idea.revision += 1
        idea.title, idea.summary, idea.body = text["title"], text["summary"], text["body"]
        idea.body_html = render_markdown(text["body"])
        idea.content_hash = chash
        idea.terms_id = terms.id
        idea.updated_at = now
        _merge_confidentiality(idea, terms)
        for rid in remove:
            current[rid].removed_at = now
            current[rid].removed_in_revision = idea.revision
        _store_files(idea, checked, user, idea.revision, stored)
        db.session.flush()
        db.session.refresh(idea, ["attachments"])
        _add_revision(idea, user, terms)
        add_acceptance(purpose=AcceptancePurpose.REVISION.value, user=user, challenge=challenge, terms=terms,
                       idea_id=idea.id, revision=idea.revision, content_hash=chash, eligibility=elig, coi=coi,
                       coi_note=data.get("coi_note") or "")
        audit.record("idea.revised", "idea", idea.id, actor_id=user.id, item_id=challenge.id,
                     data={"revision": idea.revision, "content_sha256": chash, "terms_version": terms.version,
                           "terms_digest": terms.digest})
        db.session.commit()
    except BaseException:
        db.session.rollback()
        files_svc.discard(stored)
        raise
    return idea


def _notify_authors(idea: Idea, kind: str, message: str, skip: int | None = None) -> None:
    url = _url("ideas.detail", idea_id=idea.id)
    for a in idea.authors:
        if a.status in policy.IDEA_VISIBLE_AUTHOR_STATES and a.user_id != skip:
            notify(a.user_id, kind, message, url, about=idea)


def withdraw_idea(user: User, idea: Idea) -> None:
    if not policy.can(user, "view", idea):
        raise ServiceError("There is no such idea, or you may not see it.", 404)
    lock_row(Idea, idea.id)
    db.session.refresh(idea)
    if idea.status == IdeaStatus.WITHDRAWN.value:
        db.session.rollback()
        return
    if not policy.can(user, "withdraw", idea):
        if policy.idea_author_status(policy.viewer_for(user), idea) != AuthorStatus.LEAD.value:
            raise ServiceError("Only the lead author can withdraw the idea.", 403)
        raise ServiceError(_refusal_for_author_action(idea, "withdrawn"), 403)
    old = idea.status
    idea.status = IdeaStatus.WITHDRAWN.value
    idea.updated_at = idea.decided_at = utcnow()
    audit.record("idea.withdrawn", "idea", idea.id, actor_id=user.id, item_id=idea.challenge_id,
                 data={"from": old})
    _notify_authors(idea, "idea.withdrawn", f"“{idea.title}” was withdrawn by its lead author.", skip=user.id)
    db.session.commit()


# --------------------------------------------------------------------------- co-authors


def accept_coauthorship(user: User, idea: Idea, data: dict):
    """A named co-author accepts the current terms for the idea as it stands now.
    Idempotent: accepting twice (even at once) leaves one acceptance."""
    from ..models import TermsAcceptance

    if not policy.can(user, "view", idea):
        raise ServiceError("There is no such idea, or you may not see it.", 404)
    lock_row(Idea, idea.id)
    db.session.refresh(idea)
    for a in idea.authors:
        db.session.refresh(a)
    v = policy.viewer_for(user)
    status = policy.idea_author_status(v, idea)
    if status == AuthorStatus.ACCEPTED.value:
        acc = db.session.execute(
            select(TermsAcceptance).where(TermsAcceptance.idea_id == idea.id, TermsAcceptance.user_id == user.id,
                                          TermsAcceptance.purpose == AcceptancePurpose.COAUTHOR.value)
            .order_by(TermsAcceptance.id.desc())).scalar()
        db.session.rollback()
        return acc
    if not policy.can(user, "answer_coauthorship", idea):
        raise ServiceError("You are not a pending co-author of this idea.", 403)
    challenge = idea.challenge
    terms, elig, coi = _take_part(user, challenge, data)
    now = utcnow()
    row = next(a for a in idea.authors if a.user_id == user.id)
    row.status = AuthorStatus.ACCEPTED.value
    row.responded_at = now
    _merge_confidentiality(idea, terms)
    acc = add_acceptance(purpose=AcceptancePurpose.COAUTHOR.value, user=user, challenge=challenge, terms=terms,
                         idea_id=idea.id, revision=idea.revision, content_hash=idea.content_hash,
                         eligibility=elig, coi=coi, coi_note=data.get("coi_note") or "")
    _maybe_complete(idea, user, now)
    _notify_authors(idea, "idea.coauthor_accepted",
                    f"{user.display_name} accepted the terms as a co-author of “{idea.title}”.", skip=user.id)
    db.session.commit()
    return acc


def decline_coauthorship(user: User, idea: Idea) -> None:
    if not policy.can(user, "view", idea):
        raise ServiceError("There is no such idea, or you may not see it.", 404)
    lock_row(Idea, idea.id)
    db.session.refresh(idea)
    if not policy.can(user, "answer_coauthorship", idea):
        raise ServiceError("You are not a pending co-author of this idea.", 403)
    now = utcnow()
    row = next(a for a in idea.authors if a.user_id == user.id)
    row.status = AuthorStatus.DECLINED.value
    row.responded_at = now
    audit.record("idea.coauthor_declined", "idea", idea.id, actor_id=user.id, item_id=idea.challenge_id)
    _maybe_complete(idea, user, now)
    _notify_authors(idea, "idea.coauthor_declined",
                    f"{user.display_name} declined to be a co-author of “{idea.title}”.", skip=user.id)
    db.session.commit()


def _maybe_complete(idea: Idea, actor: User | None, now) -> None:
    """Submitted once no co-author is pending: no pending author row, and no invitation by
    address still open (not taken up, declined or expired)."""
    if idea.status != IdeaStatus.AWAITING_COAUTHORS.value:
        return
    if any(a.status == AuthorStatus.PENDING.value for a in idea.authors):
        return
    if db.session.execute(select(CoauthorInvitation.id).where(
            CoauthorInvitation.idea_id == idea.id, CoauthorInvitation.user_id.is_(None),
            CoauthorInvitation.declined_at.is_(None), CoauthorInvitation.expires_at > now).limit(1)).first():
        return
    idea.status = IdeaStatus.SUBMITTED.value
    idea.submitted_at = now
    audit.record("idea.submitted", "idea", idea.id, actor_id=actor.id if actor is not None else None,
                 item_id=idea.challenge_id,
                 data={"revision": idea.revision, "content_sha256": idea.content_hash,
                       "author_ids": [a.user_id for a in idea.authors
                                      if a.status in policy.IDEA_COUNTING_AUTHOR_STATES]})
    from .notifications import tell_sponsor_idea_submitted
    tell_sponsor_idea_submitted(idea)


# --------------------------------------------------------------------------- sealed-view log


def viewer_role(user: Any, idea: Idea) -> str:
    v = policy.viewer_for(user)
    if policy.is_active_reviewer(v, idea.challenge):
        return "reviewer"
    if v.is_org_admin(idea.challenge.org_id):
        return "org-admin"
    if v.is_moderator:
        return "moderator"
    return "other"


def log_sealed_view(user: Any, idea: Idea, what: str = "idea", now: datetime | None = None) -> SealedViewLog | None:
    """Record that someone other than an author opened a sealed idea (shown to its authors):
    once per viewer, idea, thing opened and UTC day, however often the page is loaded, so the
    authors read who looked and when, not how often the page was refreshed. Returns the new
    row, or None when nothing was logged (not sealed, an author, or already logged today)."""
    v = policy.viewer_for(user)
    if not v.is_authenticated or policy.is_idea_author(v, idea) or not policy.idea_is_sealed(idea):
        return None
    if not policy.can(user, "view", idea):
        return None
    what = what[:120]
    now = now or utcnow()
    key = f"{idea.id}:{v.user_id}:{now:%Y-%m-%d}:{sha256_hex(what)[:32]}"
    if db.session.execute(select(SealedViewLog.id).where(SealedViewLog.dedupe_key == key)).first():
        return None
    row = SealedViewLog(idea_id=idea.id, viewer_id=v.user_id, role=viewer_role(user, idea), what=what,
                        created_at=now, dedupe_key=key)
    try:
        with db.session.begin_nested():  # two loads at once: the unique key keeps one row
            db.session.add(row)
    except IntegrityError:
        return None
    db.session.commit()
    return row


def view_log(idea: Idea, limit: int = 200) -> list[SealedViewLog]:
    return db.session.execute(
        select(SealedViewLog).where(SealedViewLog.idea_id == idea.id)
        .order_by(SealedViewLog.id.desc()).limit(limit)).scalars().all()


# --------------------------------------------------------------------------- reviewers and criteria


def _require_manage(user: User, challenge: Item) -> None:
    if challenge.kind != ItemKind.CHALLENGE.value:
        raise ServiceError("Only challenges have reviewers.", 404)
    if not policy.can(user, "manage_terms", challenge):
        raise ServiceError("Only the organisation's owners and admins can manage reviewers and criteria.", 403)


def _is_contributor(user_id: int, challenge_id: int) -> bool:
    return db.session.execute(
        select(IdeaAuthor.id).join(Idea, Idea.id == IdeaAuthor.idea_id).where(
            Idea.challenge_id == challenge_id, IdeaAuthor.user_id == user_id,
            IdeaAuthor.status != AuthorStatus.DECLINED.value).limit(1)).first() is not None


REVIEWER_LINK_DAYS = 30


def _is_member(user_id: int, org_id: int) -> bool:
    return db.session.execute(select(func.count()).select_from(
        select(1).where(Membership.org_id == org_id, Membership.user_id == user_id).subquery())).scalar_one() > 0


def _check_nda(kind: str, challenge: Item, nda_text: str) -> str:
    nda_text = (nda_text or "").strip()
    if kind == ReviewerKind.JUDGE.value:
        if not nda_text:
            raise ServiceError("Outside judges must accept a reviewer NDA: write its text.", field="nda_text")
        if challenge.visibility == Visibility.ORGANISATION.value:
            raise ServiceError("Outside judges cannot see an organisation-only challenge; make it invited "
                               "first (judges are then granted access).", 409, field="email")
    if len(nda_text) > 20_000:
        raise ServiceError("At most 20,000 characters.", field="nda_text")
    return nda_text


def appoint_reviewer(actor: User, challenge: Item, email: str,
                     nda_text: str = "") -> ReviewerAppointment | ReviewerInvitation:
    """Members of the challenge's organisation are appointed at once (an appointment is
    returned). Anyone else is an outside judge invited by address (an invitation is returned
    and mailed): the answer is the same whether or not the address has an account, and the
    appointment is made when the address's owner takes it up from the link."""
    _require_manage(actor, challenge)
    try:
        email = email_address.check(email or "")
    except email_address.InvalidEmail as e:
        raise ServiceError(str(e), field="email") from None
    user = find_user(email)
    if user is None or not _is_member(user.id, challenge.org_id):
        return invite_reviewer(actor, challenge, email, nda_text)
    if _is_contributor(user.id, challenge.id):
        raise ServiceError(f"{user.display_name} has taken part in this challenge and cannot review it.",
                           409, field="email")
    _check_nda(ReviewerKind.MEMBER.value, challenge, nda_text)
    lock_row(Item, challenge.id)
    appt = _appoint(actor.id, actor.id, challenge, user, ReviewerKind.MEMBER.value, "")
    db.session.commit()
    return appt


def _appoint(actor_id: int, appointed_by_id: int | None, challenge: Item, user: User, kind: str,
             nda_text: str) -> ReviewerAppointment:
    """Make (or renew) the appointment row, the access grant an outside judge needs, and tell
    the reviewer. The caller holds the challenge's row lock and commits."""
    appt = db.session.execute(select(ReviewerAppointment).where(
        ReviewerAppointment.challenge_id == challenge.id, ReviewerAppointment.user_id == user.id)).scalar()
    if appt is not None and appt.revoked_at is None:
        db.session.rollback()
        raise ServiceError(f"{user.display_name} is already a reviewer of this challenge.", 409, field="email")
    if appt is None:
        appt = ReviewerAppointment(challenge_id=challenge.id, user_id=user.id)
        db.session.add(appt)
    appt.kind = kind
    appt.appointed_by_id = appointed_by_id
    appt.created_at = utcnow()
    appt.revoked_at = None
    appt.nda_text = nda_text if kind == ReviewerKind.JUDGE.value else ""
    appt.nda_digest = sha256_hex(appt.nda_text) if appt.nda_text else ""
    appt.nda_accepted_at = None
    appt.grant_id = None
    if kind == ReviewerKind.JUDGE.value and challenge.visibility == Visibility.INVITED.value \
            and not policy.has_invited_access(policy.viewer_for(user), challenge.id):
        grant = AccessGrant(item_id=challenge.id, user_id=user.id, granted_by_id=appointed_by_id, reason="reviewer")
        db.session.add(grant)
        db.session.flush()
        appt.grant_id = grant.id
        audit.record("access.granted", "grant", grant.id, actor_id=actor_id, item_id=challenge.id,
                     data={"user_id": user.id, "org_id": None, "expires_at": None, "reason": "reviewer"})
    db.session.flush()
    policy.forget_viewer(user.id)  # the new grant counts from now on in this request
    audit.record("reviewer.appointed", "reviewer", appt.id, actor_id=actor_id, item_id=challenge.id,
                 data={"user_id": user.id, "kind": kind, "nda_digest": appt.nda_digest or None})
    if kind == ReviewerKind.JUDGE.value:
        # The judge took the appointment up from the mailed link: an in-site notice suffices.
        notify(user, "review.appointed", f"You are a reviewer of “{challenge.title}”. Accept the reviewer NDA "
               "to start.", _url("ideas.reviewer_nda", challenge_id=challenge.id), about=challenge, mail=False)
        return appt
    url = _url("ideas.review_dashboard", challenge_id=challenge.id)
    # A challenge still a draft (or otherwise closed to the reviewer) is named once it opens
    # to them, as invitations do: neither the mail nor the notification may name it before
    # (and, naming nothing private, they are not tied to it).
    if policy.can(user, "view", challenge):
        what, subject, about = f"“{challenge.title}”", f"Reviewer appointment: {challenge.title}", challenge
    else:
        org = challenge.organisation.name if challenge.organisation else "an organisation"
        what = f"a challenge of {org} (its details are shown when it opens to you)"
        subject, about = f"Reviewer appointment: a challenge of {org}", None
    msg = f"You were appointed as a reviewer of {what}."
    # An appointment is an invitation: always mailed (the in-site notice follows the person's choice).
    notify(user, "review.appointed", msg, url, about=about, mail=False)
    from ..mail.outbox import link, queue_text
    queue_text(user, subject, f"{msg}\n\n{link('ideas.review_dashboard', challenge_id=challenge.id)}",
               kind="invitation.reviewer", about=about)
    return appt


# --------------------------------------------------------------------------- outside judges by e-mail


def find_reviewer_invitation(token: str) -> ReviewerInvitation | None:
    from .invitations import find_mailed

    return find_mailed(ReviewerInvitation, token)


def reviewer_link_refusal(inv: ReviewerInvitation | None, user) -> tuple[str, int] | None:
    """Why this reviewer link cannot be used by `user` now (message, HTTP status), or None."""
    from .invitations import mailed_refusal

    return mailed_refusal(inv, user, policy.is_reviewer_invitee, asked="the challenge's organisation")


def reviewer_link_address(token: str) -> str | None:
    """The address a pending reviewer link proves (registering from it confirms it)."""
    inv = find_reviewer_invitation(token)
    if inv is None or policy.invitation_state(inv) != InvitationState.PENDING.value:
        return None
    return inv.email


def reviewer_invitations_for_user(user: User) -> list[ReviewerInvitation]:
    """Reviewer invitations addressed to the user's e-mail (through the policy's SQL filter)."""
    from .accounts import normalise_email

    return list(db.session.execute(
        policy.visible(user, ReviewerInvitation).where(ReviewerInvitation.email == normalise_email(user.email))
        .order_by(ReviewerInvitation.created_at.desc(), ReviewerInvitation.id.desc()).limit(200)).scalars())


def reviewer_invitation_names_challenge(user, inv: ReviewerInvitation) -> bool:
    """Whether the mail and the link page may name the challenge (else only its organisation)."""
    return policy.can(user, "view", inv.challenge) or policy.invitation_reveals_item(inv.challenge)


def invite_reviewer(actor: User, challenge: Item, email: str, nda_text: str = "",
                    days: int = REVIEWER_LINK_DAYS) -> ReviewerInvitation:
    """Invite an outside judge by address and mail the single-use link. Nothing here depends
    on whether the address has an account, so the organisation learns nothing from it."""
    from ..mail.outbox import link, queue
    from .invitations import checked_link, hash_token, new_token, pending_mailed

    _require_manage(actor, challenge)
    email = checked_link(email or "", days)
    nda_text = _check_nda(ReviewerKind.JUDGE.value, challenge, nda_text)
    now = utcnow()
    lock_row(Item, challenge.id)  # one live link per address, even from two admins at once
    pending = pending_mailed(ReviewerInvitation, email, now, ReviewerInvitation.challenge_id == challenge.id)
    if pending is not None:
        db.session.rollback()
        raise ServiceError(f"{email} already has a pending reviewer invitation for this challenge (sent "
                           f"{format_dt(pending.created_at)}). Revoke it first to send a new link.", 409,
                           field="email")
    token = new_token()
    inv = ReviewerInvitation(challenge_id=challenge.id, email=email, token_hash=hash_token(token),
                             invited_by_id=actor.id, created_at=now, expires_at=now + timedelta(days=days),
                             nda_text=nda_text)
    db.session.add(inv)
    db.session.flush()
    audit.record("reviewer.invitation_sent", "reviewer_invitation", inv.id, actor_id=actor.id,
                 item_id=challenge.id, data={"to_domain": email.rsplit("@", 1)[-1],
                                             "expires_at": inv.expires_at.isoformat(),
                                             "nda_digest": sha256_hex(nda_text)})
    org = challenge.organisation.name if challenge.organisation else "an organisation"
    # Named only where an invitation may reveal the item (published, not hidden, not
    # organisation-only); a draft challenge is "a challenge of <org>" until it opens.
    title = challenge.title if policy.invitation_reveals_item(challenge) else None
    subject = (f"{org} invites you to review “{title}”" if title
               else f"{org} invites you to review one of its challenges") + " on the Open Innovation Marketplace"
    queue(email, "invite_reviewer", subject, kind="invitation.reviewer", secret=True,
          context={"inviter": actor.display_name, "org": org, "title": title,
                   "url": link("invitations.reviewer_link", token=token),
                   "has_account": find_user(email) is not None, "expires_at": inv.expires_at})
    db.session.commit()
    inv.token = token  # the raw link token, on this object only (never stored): for the demo loader
    return inv


def _locked_reviewer_invitation(user, token: str | None, *, to_accept: bool = False,
                                inv: ReviewerInvitation | None = None) -> ReviewerInvitation:
    from .invitations import locked_mailed

    find = find_reviewer_invitation if inv is None else (lambda _token: inv)
    return locked_mailed(ReviewerInvitation, find, reviewer_link_refusal, user, token, to_accept=to_accept)


def accept_reviewer_invitation(user: User, token: str | None = None, *,
                               inv: ReviewerInvitation | None = None) -> ReviewerAppointment:
    """The signed-in holder of the invited address becomes an outside judge of the challenge
    (next: the reviewer NDA). The link proves the address, so it is confirmed too. Without
    the link (`inv` given: "Challenges you review"), the address must be confirmed already."""
    on_site = inv is not None
    inv = _locked_reviewer_invitation(user, token, to_accept=True, inv=inv)
    if not policy.can(user, "accept_on_site" if on_site else "accept", inv):  # pragma: no cover - the refusal covers every case
        db.session.rollback()
        raise ServiceError("You may not accept this invitation.", 403)
    challenge = inv.challenge
    if _is_contributor(user.id, challenge.id):
        db.session.rollback()
        raise ServiceError("You have taken part in this challenge, so you cannot review it. "
                           "Decline the invitation or tell the organisation.", 409)
    try:
        _check_nda(ReviewerKind.JUDGE.value, challenge, inv.nda_text)
    except ServiceError:
        db.session.rollback()
        raise ServiceError("This challenge is no longer open to outside judges; ask the organisation.", 409)
    lock_row(Item, challenge.id)
    now = utcnow()
    # The appointment is the inviter's decision (the public decision log names its maker, and
    # must not name an outside judge to those who may not see reviewer names).
    appt = _appoint(inv.invited_by_id or user.id, inv.invited_by_id, challenge, user, ReviewerKind.JUDGE.value,
                    inv.nda_text)
    inv.accepted_at, inv.accepted_by_id, inv.appointment_id = now, user.id, appt.id
    if user.email_verified_at is None:
        user.email_verified_at = now
    audit.record("reviewer.invitation_accepted", "reviewer_invitation", inv.id, actor_id=user.id,
                 item_id=challenge.id, data={"appointment_id": appt.id})
    if inv.invited_by_id:
        notify(inv.invited_by_id, "invitation.accepted",
               f"{user.display_name} accepted your invitation to review “{challenge.title}”.",
               _url("ideas.reviewers", challenge_id=challenge.id), about=challenge)
    db.session.commit()
    return appt


def decline_reviewer_invitation(user, token: str) -> ReviewerInvitation:
    """Decline with the link (see invitations.decline_mailed)."""
    from .invitations import decline_mailed

    inv = _locked_reviewer_invitation(user, token)
    decline_mailed(inv, user, policy.can_decline_reviewer_invitation_with_token,
                   ("reviewer.invitation_declined", "reviewer_invitation", inv.id),
                   f"A reviewer invitation for “{inv.challenge.title}” ({inv.masked_email}) was declined.",
                   _url("ideas.reviewers", challenge_id=inv.challenge_id), inv.challenge,
                   item_id=inv.challenge_id, data={})
    return inv


def revoke_reviewer_invitation(actor: User, inv: ReviewerInvitation) -> ReviewerInvitation:
    """Withdraw a pending invitation, or end an accepted one (the judge is removed)."""
    _require_manage(actor, inv.challenge)
    lock_row(ReviewerInvitation, inv.id)
    db.session.refresh(inv)
    if not policy.can(actor, "revoke", inv):
        state = policy.invitation_state(inv)
        db.session.rollback()
        raise ServiceError(f"This invitation is already {state}; there is nothing to revoke.", 409)
    was = policy.invitation_state(inv)
    inv.revoked_at, inv.revoked_by_id = utcnow(), actor.id
    audit.record("reviewer.invitation_revoked", "reviewer_invitation", inv.id, actor_id=actor.id,
                 item_id=inv.challenge_id, data={"was": was})
    appt = inv.appointment
    if appt is not None and appt.revoked_at is None:
        revoke_reviewer(actor, appt)  # commits
    else:
        db.session.commit()
    return inv


def pending_reviewer_invitations(challenge: Item) -> list[ReviewerInvitation]:
    now = utcnow()
    rows = db.session.execute(select(ReviewerInvitation).where(ReviewerInvitation.challenge_id == challenge.id)
                              .order_by(ReviewerInvitation.created_at.desc(), ReviewerInvitation.id.desc())
                              .limit(200)).scalars().all()
    return [i for i in rows if policy.invitation_state(i, now) == InvitationState.PENDING.value]


def revoke_reviewer(actor: User, appt: ReviewerAppointment) -> None:
    _require_manage(actor, appt.challenge)
    if appt.revoked_at is not None:
        return
    now = utcnow()
    appt.revoked_at = now
    if appt.grant_id:
        grant = db.session.get(AccessGrant, appt.grant_id)
        if grant is not None and grant.revoked_at is None:
            grant.revoked_at = now
            audit.record("access.revoked", "grant", grant.id, actor_id=actor.id, item_id=appt.challenge_id,
                         data={"user_id": grant.user_id, "org_id": None, "reason": "reviewer"})
    audit.record("reviewer.revoked", "reviewer", appt.id, actor_id=actor.id, item_id=appt.challenge_id,
                 data={"user_id": appt.user_id})
    db.session.commit()


def accept_reviewer_nda(user: User, appt: ReviewerAppointment, posted_digest: str) -> None:
    lock_row(ReviewerAppointment, appt.id)
    db.session.refresh(appt)
    if appt.nda_accepted_at is not None and appt.user_id == user.id:
        db.session.rollback()
        return
    if not policy.can(user, "accept_reviewer_nda", appt):
        raise ServiceError("There is no reviewer NDA for you to accept here.", 403)
    if (posted_digest or "") != appt.nda_digest:
        raise ServiceError("The NDA changed since you opened the page; read it again.", 409)
    appt.nda_accepted_at = utcnow()
    audit.record("reviewer.nda_accepted", "reviewer", appt.id, actor_id=user.id, item_id=appt.challenge_id,
                 data={"nda_digest": appt.nda_digest})
    db.session.commit()


def reviewers_of(challenge: Item) -> list[ReviewerAppointment]:
    return db.session.execute(select(ReviewerAppointment).where(ReviewerAppointment.challenge_id == challenge.id)
                              .order_by(ReviewerAppointment.revoked_at.is_not(None), ReviewerAppointment.id)
                              ).scalars().all()


def criteria_of(challenge_id: int) -> list[ReviewCriterion]:
    return db.session.execute(select(ReviewCriterion).where(ReviewCriterion.challenge_id == challenge_id)
                              .order_by(ReviewCriterion.id)).scalars().all()


def add_criterion(actor: User, challenge: Item, name: str, weight: int, description: str = "") -> ReviewCriterion:
    _require_manage(actor, challenge)
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ServiceError("Name the criterion (at most 120 characters).", field="name")
    try:
        weight = int(weight)
    except (TypeError, ValueError):
        raise ServiceError("The weight is a whole number.", field="weight")
    if not 1 <= weight <= 100:
        raise ServiceError("The weight is between 1 and 100.", field="weight")
    lock_row(Item, challenge.id)
    existing = criteria_of(challenge.id)
    if any(c.name.lower() == name.lower() for c in existing):
        raise ServiceError("There is already a criterion with this name.", 409, field="name")
    if len(existing) >= 20:
        raise ServiceError("At most 20 criteria.", 409, field="name")
    crit = ReviewCriterion(challenge_id=challenge.id, name=name, weight=weight,
                           description=(description or "").strip()[:500])
    db.session.add(crit)
    db.session.flush()
    audit.record("review.criterion_added", "criterion", crit.id, actor_id=actor.id, item_id=challenge.id,
                 data={"name": name, "weight": weight})
    db.session.commit()
    return crit


def remove_criterion(actor: User, crit: ReviewCriterion) -> None:
    challenge = db.session.get(Item, crit.challenge_id)
    _require_manage(actor, challenge)
    used = db.session.execute(select(IdeaScore.id).where(IdeaScore.criterion_id == crit.id).limit(1)).first()
    if used:
        raise ServiceError("Ideas were already scored on this criterion; it cannot be removed.", 409)
    audit.record("review.criterion_removed", "criterion", crit.id, actor_id=actor.id, item_id=challenge.id,
                 data={"name": crit.name})
    db.session.delete(crit)
    db.session.commit()


# --------------------------------------------------------------------------- scores and notes


def _start_review(user: User, idea: Idea) -> None:
    if idea.status == IdeaStatus.SUBMITTED.value:
        idea.status = IdeaStatus.UNDER_REVIEW.value
        audit.record("idea.review_started", "idea", idea.id, actor_id=user.id, item_id=idea.challenge_id)


def score_idea(user: User, idea: Idea, scores: dict[Any, Any]) -> None:
    if not policy.can(user, "score", idea):
        raise ServiceError("Only active reviewers who are not its authors can score this idea now.", 403)
    criteria = {c.id: c for c in criteria_of(idea.challenge_id)}
    if not criteria:
        raise ServiceError("This challenge has no review criteria yet.", 409)
    clean: dict[int, int] = {}
    for k, val in scores.items():
        try:
            cid, s = int(k), int(val)
        except (TypeError, ValueError):
            raise ServiceError("Scores are whole numbers from 0 to 10.", field="scores")
        if cid not in criteria:
            raise ServiceError("Unknown criterion.", field="scores")
        if not 0 <= s <= 10:
            raise ServiceError("Scores are whole numbers from 0 to 10.", field="scores")
        clean[cid] = s
    if not clean:
        raise ServiceError("Give at least one score.", field="scores")
    lock_row(Idea, idea.id)
    db.session.refresh(idea)
    if not policy.can(user, "score", idea):
        raise ServiceError("This idea can no longer be scored.", 409)
    rows = {r.criterion_id: r for r in db.session.execute(select(IdeaScore).where(
        IdeaScore.idea_id == idea.id, IdeaScore.reviewer_id == user.id)).scalars()}
    for cid, s in clean.items():
        if cid in rows:
            rows[cid].score = s
        else:
            db.session.add(IdeaScore(idea_id=idea.id, reviewer_id=user.id, criterion_id=cid, score=s))
    _start_review(user, idea)
    db.session.commit()


def add_note(user: User, idea: Idea, body: str) -> ReviewNote:
    if not policy.can(user, "score", idea):
        raise ServiceError("Only active reviewers who are not its authors can keep notes on this idea.", 403)
    body = (body or "").strip()
    if not body:
        raise ServiceError("Write the note.", field="body")
    if len(body) > 10_000:
        raise ServiceError("At most 10,000 characters.", field="body")
    note = ReviewNote(idea_id=idea.id, author_id=user.id, body=body)
    db.session.add(note)
    db.session.commit()
    return note


def my_notes(user: User, idea: Idea) -> list[ReviewNote]:
    return db.session.execute(select(ReviewNote).where(ReviewNote.idea_id == idea.id,
                                                       ReviewNote.author_id == user.id)
                              .order_by(ReviewNote.id.desc())).scalars().all()


def score_summary(idea: Idea) -> dict:
    """Average per criterion and the weighted total (0-10), averaged over reviewers."""
    return score_summaries(idea.challenge_id, [idea])[idea.id]


def score_summaries(challenge_id: int, ideas) -> dict[int, dict]:
    """score_summary of each of a page of ideas of one challenge: the criteria and the scores
    in one query each, not per idea."""
    criteria = criteria_of(challenge_id)
    ids = [i.id for i in ideas]
    scores: dict[int, list] = defaultdict(list)
    if ids:
        for r in db.session.execute(select(IdeaScore).where(IdeaScore.idea_id.in_(ids))).scalars():
            scores[r.idea_id].append(r)
    return {i: _summary(criteria, scores[i]) for i in ids}


def _summary(criteria, rows) -> dict:
    by_crit: dict[int, list[int]] = defaultdict(list)
    by_rev: dict[int, dict[int, int]] = defaultdict(dict)
    for r in rows:
        by_crit[r.criterion_id].append(r.score)
        by_rev[r.reviewer_id][r.criterion_id] = r.score
    weights = {c.id: c.weight for c in criteria}
    totals = []
    for scored in by_rev.values():
        w = sum(weights.get(cid, 0) for cid in scored)
        if w:
            totals.append(sum(weights.get(cid, 0) * s for cid, s in scored.items()) / w)
    return {
        "criteria": [(c, (sum(by_crit[c.id]) / len(by_crit[c.id])) if by_crit[c.id] else None, len(by_crit[c.id]))
                     for c in criteria],
        "weighted": (sum(totals) / len(totals)) if totals else None,
        "reviewers": len(by_rev),
    }


def my_scores(user: User, idea: Idea) -> dict[int, int]:
    return {r.criterion_id: r.score for r in db.session.execute(select(IdeaScore).where(
        IdeaScore.idea_id == idea.id, IdeaScore.reviewer_id == user.id)).scalars()}


# --------------------------------------------------------------------------- decisions


def _decide(user: User, idea: Idea, action: str, refusal: str) -> None:
    if not policy.can(user, "view", idea):
        raise ServiceError("There is no such idea, or you may not see it.", 404)
    lock_row(Idea, idea.id)
    db.session.refresh(idea)
    if not policy.can(user, action, idea):
        raise ServiceError(refusal.format(status=idea.status_label.lower()), 403 if idea.status in
                           policy.IDEA_REVIEWABLE_STATES else 409)


def shortlist_idea(user: User, idea: Idea) -> None:
    _decide(user, idea, "shortlist", "Only the review panel can shortlist, and not an idea that is {status}.")
    mark_shortlisted(user, idea)
    db.session.commit()


def mark_shortlisted(user: User, idea: Idea, extra: dict | None = None) -> None:
    """Shortlist, record and tell the authors; the caller checked the policy, holds the
    idea's lock and commits (judging rounds shortlist many ideas in one transaction)."""
    old = idea.status
    idea.status = IdeaStatus.SHORTLISTED.value
    idea.decided_at = utcnow()
    audit.record("idea.shortlisted", "idea", idea.id, actor_id=user.id, item_id=idea.challenge_id,
                 data={"from": old, **(extra or {})})
    _notify_authors(idea, "idea.shortlisted", f"Your idea “{idea.title}” was shortlisted.")


def decline_idea(user: User, idea: Idea, reason: str) -> None:
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("Give the authors a reason for declining.", field="reason")
    if len(reason) > 2000:
        raise ServiceError("At most 2,000 characters.", field="reason")
    _decide(user, idea, "decline", "Only the review panel can decline, and not an idea that is {status}.")
    mark_declined(user, idea, reason)
    db.session.commit()


def check_decline_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("Give the authors a reason for declining.", field="reason")
    if len(reason) > 2000:
        raise ServiceError("At most 2,000 characters.", field="reason")
    return reason


def mark_declined(user: User, idea: Idea, reason: str, extra: dict | None = None) -> None:
    """Decline, record and tell the authors; the caller checked the policy and the reason,
    holds the idea's lock and commits."""
    old = idea.status
    idea.status = IdeaStatus.DECLINED.value
    idea.decided_at = utcnow()
    idea.decision_reason = reason
    audit.record("idea.declined", "idea", idea.id, actor_id=user.id, item_id=idea.challenge_id,
                 data={"from": old, "reason": reason, **(extra or {})})
    _notify_authors(idea, "idea.declined", f"Your idea “{idea.title}” was declined: {reason}")


def award_idea(user: User, idea: Idea, incentive_index: Any, note: str = "") -> IdeaAward:
    try:
        index = int(incentive_index)
    except (TypeError, ValueError):
        raise ServiceError("Choose the incentive to grant.", field="incentive")
    _decide(user, idea, "award", "Only the review panel can award, and only a shortlisted idea (this one is "
                                 "{status}).")
    terms = idea.terms
    incentives = terms.incentives
    if not 0 <= index < len(incentives):
        raise ServiceError("Choose one of the incentives in the terms the authors accepted.", field="incentive")
    incentive = incentives[index]
    inc_json = canonical_json(incentive)
    lock_row(Item, idea.challenge_id)
    if incentive.get("kind") == IncentiveKind.CASH_PRIZE.value:
        given = db.session.execute(select(func.count()).select_from(IdeaAward).where(
            IdeaAward.challenge_id == idea.challenge_id, IdeaAward.incentive_json == inc_json)).scalar_one()
        if given >= int(incentive.get("winners", 1)):
            raise ServiceError(f"This prize has {incentive.get('winners', 1)} winner(s) and all were awarded.",
                               409, field="incentive")
    award = IdeaAward(idea_id=idea.id, challenge_id=idea.challenge_id, terms_id=terms.id, incentive_index=index,
                      incentive_json=inc_json, note=(note or "").strip()[:2000], awarded_by_id=user.id)
    db.session.add(award)
    idea.status = IdeaStatus.AWARDED.value
    idea.decided_at = utcnow()
    db.session.flush()
    audit.record("idea.awarded", "idea", idea.id, actor_id=user.id, item_id=idea.challenge_id,
                 data={"award_id": award.id, "incentive": incentive, "terms_version": terms.version,
                       "terms_digest": terms.digest, "ip_model": terms.ip_model,
                       "content_sha256": idea.content_hash})
    msg = f"Your idea “{idea.title}” was awarded: {describe_incentive(incentive)}."
    if terms.ip_model == IPModel.ASSIGNMENT_ON_AWARD.value:
        msg += " Under the accepted terms the IP passes to the organisation when the award is paid."
    _notify_authors(idea, "idea.awarded", msg)
    db.session.commit()
    return award


def award_of(idea: Idea) -> IdeaAward | None:
    return db.session.execute(select(IdeaAward).where(IdeaAward.idea_id == idea.id)).scalar()


def confirm_payment(user: User, idea: Idea) -> IdeaAward:
    """The organisation confirms the award was paid (delivered); for assignment-on-award the
    IP transfer is recorded now, as the terms say."""
    if not policy.can(user, "view", idea):
        raise ServiceError("There is no such idea, or you may not see it.", 404)
    if not policy.can(user, "confirm_payment", idea):
        raise ServiceError("Only the organisation's owners and admins confirm payment of an award.", 403)
    award = award_of(idea)
    if award is None:
        raise ServiceError("This idea has no award.", 409)
    lock_row(IdeaAward, award.id)
    db.session.refresh(award)
    if award.paid_at is not None:
        db.session.rollback()
        return award
    award.paid_at = utcnow()
    award.paid_confirmed_by_id = user.id
    terms = db.session.get(ChallengeTerms, award.terms_id)
    audit.record("award.paid", "award", award.id, actor_id=user.id, item_id=idea.challenge_id,
                 data={"idea_id": idea.id, "incentive": award.incentive})
    if terms.ip_model == IPModel.ASSIGNMENT_ON_AWARD.value:
        audit.record("ip.transferred", "idea", idea.id, actor_id=user.id, item_id=idea.challenge_id,
                     data={"from_user_ids": [a.user_id for a in idea.authors
                                             if a.status in policy.IDEA_COUNTING_AUTHOR_STATES],
                           "to_org_id": idea.challenge.org_id, "ip_model": terms.ip_model,
                           "terms_version": terms.version, "terms_digest": terms.digest,
                           "content_sha256": idea.content_hash, "award_id": award.id,
                           "field_of_use": terms.field_of_use, "territory": terms.territory})
        _notify_authors(idea, "ip.transferred",
                        f"The award for “{idea.title}” was paid; under the accepted terms (assignment on award) "
                        f"the IP now belongs to {idea.challenge.organisation.name}.")
    else:
        _notify_authors(idea, "award.paid", f"The award for “{idea.title}” was marked as paid.")
    db.session.commit()
    return award


# --------------------------------------------------------------------------- queries and search


def revisions_of(idea: Idea) -> list[IdeaRevision]:
    return db.session.execute(select(IdeaRevision).where(IdeaRevision.idea_id == idea.id)
                              .order_by(IdeaRevision.number.desc())).scalars().all()


def team_of(idea: Idea) -> list[IdeaAuthor]:
    """The idea's author rows (lead first, then co-authors in the order they were named),
    with their accounts loaded in the same query."""
    from sqlalchemy.orm import joinedload

    return db.session.execute(select(IdeaAuthor).options(joinedload(IdeaAuthor.user))
                              .where(IdeaAuthor.idea_id == idea.id)
                              .order_by(IdeaAuthor.status != AuthorStatus.LEAD.value, IdeaAuthor.id)).scalars().all()


def acceptances_of(idea: Idea):
    from ..models import TermsAcceptance

    return db.session.execute(select(TermsAcceptance).where(TermsAcceptance.idea_id == idea.id)
                              .order_by(TermsAcceptance.id)).scalars().all()


def search_document(idea: Idea) -> dict:
    """What the search index stores for an idea (never notes, scores or reasons). Its
    challenge's tags only while every author may see the challenge: its authors keep an idea
    whose challenge moderators hid, and its tags (facets, tag: filters) would name it."""
    ch = idea.challenge
    tags = list(ch.tags) if ch is not None and all(
        policy.can(a.user, "view", ch) for a in idea.authors
        if a.status in policy.IDEA_VISIBLE_AUTHOR_STATES and a.user is not None) else []
    return {
        "id": idea.id,
        "type": "idea",
        "title": idea.title,
        "text": " ".join(p for p in (idea.summary, plain_text(idea.body)) if p),
        "org_id": ch.org_id if ch else None,
        "tags": tags,
        "status": idea.status,
        "created_at": idea.created_at,
        "challenge_id": idea.challenge_id,
    }


def idea_payload(idea: Idea) -> dict:
    """The idea as JSON for its authors (e.g. an export)."""
    return json.loads(canonical_json({
        "id": idea.id, "challenge_id": idea.challenge_id, "title": idea.title, "summary": idea.summary,
        "body": idea.body, "status": idea.status, "revision": idea.revision, "content_sha256": idea.content_hash,
        "attachments": [a.summary() for a in idea.current_attachments],
    }))
