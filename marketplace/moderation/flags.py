"""Automatic participation-rule checks, run when an idea is submitted. They never sanction:
each check that fires leaves a ModerationFlag for a moderator to confirm or dismiss.

* over-limit: the contributor's linked accounts (same e-mail domain, ignoring webmail, or
  co-authors in the same challenge) together submitted more ideas than one contributor may;
* blocked-domain: an author's e-mail domain is blocked site-wide or by the challenge;
* conflict-of-interest: an author belongs to the posting organisation when its rules do not
  allow that, or (when allowed) did not declare it on the terms acceptance;
* near-duplicate: word 3-shingle Jaccard similarity with another idea in the challenge at or
  above MODERATION_DUPLICATE_THRESHOLD (0.8).

``check_idea(idea)`` can be called directly; ``init_app`` also installs session hooks that
run it in the same transaction as any idea entering the "submitted" state, so the ideas
feature needs no call of its own. Checks are idempotent (one flag per kind per idea).
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any, Iterable

from flask import Flask, has_app_context
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from .. import policy
from ..extensions import db
from ..models import Membership, User, utcnow
from ..models import ideas as ideas_models
from ..models.moderation import BlockedDomain, FlagKind, FlagStatus, ModerationFlag
from ..workers import listen_on_sessions
from . import registry

log = logging.getLogger(__name__)

WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
SHINGLE = 3


# --------------------------------------------------------------------------- near-duplicates


def shingles(text: str, k: int = SHINGLE) -> frozenset[tuple[str, ...]]:
    words = WORD_RE.findall((text or "").lower())
    if not words:
        return frozenset()
    if len(words) < k:
        return frozenset({tuple(words)})
    return frozenset(tuple(words[i:i + k]) for i in range(len(words) - k + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def idea_text(idea: Any) -> str:
    return " ".join(filter(None, (idea.title, getattr(idea, "summary", ""), idea.body)))


# --------------------------------------------------------------------------- helpers


def _setting(name: str) -> Any:
    from ..services.moderation import setting

    return setting(name)


def _freemail() -> frozenset[str]:
    raw = _setting("MODERATION_FREEMAIL_DOMAINS")
    return frozenset(raw.split() if isinstance(raw, str) else raw)


def _domain_matches(domain: str, patterns: Iterable[str]) -> str | None:
    for p in patterns:
        if domain == p or domain.endswith("." + p):
            return p
    return None


def _counted_statuses() -> list[str]:
    """Ideas that count: submitted in the broad sense (not awaiting co-authors, not withdrawn)."""
    return [s for s in ideas_models.IdeaStatus.values()
            if s not in (ideas_models.IdeaStatus.AWAITING_COAUTHORS.value, ideas_models.IdeaStatus.WITHDRAWN.value)]


def _authors(idea: Any) -> list[int]:
    return registry.get("idea").author_ids(idea)


def _users(ids: Iterable[int]) -> dict[int, User]:
    ids = list(ids)
    if not ids:
        return {}
    return {u.id: u for u in db.session.execute(select(User).where(User.id.in_(ids))).scalars()}


# --------------------------------------------------------------------------- checks
# Each returns (detail, related) when it fires, else None.


def check_over_limit(idea: Any, rules: Any) -> tuple[str, dict] | None:
    if rules is None or not rules.max_ideas_per_contributor:
        return None
    limit = int(rules.max_ideas_per_contributor)
    counting_authors = (ideas_models.AuthorStatus.LEAD.value, ideas_models.AuthorStatus.ACCEPTED.value)
    rows = db.session.execute(
        select(ideas_models.IdeaAuthor.idea_id, ideas_models.IdeaAuthor.user_id).join(ideas_models.Idea, ideas_models.Idea.id == ideas_models.IdeaAuthor.idea_id).where(
            ideas_models.Idea.challenge_id == idea.challenge_id, ideas_models.Idea.status.in_(_counted_statuses()),
            ideas_models.IdeaAuthor.status.in_(counting_authors))
    ).all()
    ideas_by_user: dict[int, set[int]] = {}
    users_by_idea: dict[int, set[int]] = {}
    for iid, uid in rows:
        ideas_by_user.setdefault(uid, set()).add(iid)
        users_by_idea.setdefault(iid, set()).add(uid)
    for uid in _authors(idea):  # the idea being checked counts even before its status is flushed
        ideas_by_user.setdefault(uid, set()).add(idea.id)
        users_by_idea.setdefault(idea.id, set()).add(uid)
    participants = _users(ideas_by_user)
    freemail = _freemail()
    for author_id in _authors(idea):
        author = participants.get(author_id)
        if author is None:
            continue
        linked: dict[int, str] = {}
        dom = author.email_domain
        if dom not in freemail:
            for uid, u in participants.items():
                if uid != author_id and u.email_domain == dom:
                    linked[uid] = f"shares the e-mail domain {dom}"
        for iid in ideas_by_user.get(author_id, ()):
            for uid in users_by_idea.get(iid, ()):
                if uid != author_id:
                    linked.setdefault(uid, "co-authored an idea with them")
        if not linked:
            continue
        cluster = {author_id, *linked}
        ideas = set().union(*(ideas_by_user.get(u, set()) for u in cluster))
        own = len(ideas_by_user.get(author_id, ()))
        if len(ideas) > limit and len(ideas) > own:
            how = "; ".join(f"{participants[u].display_name} {why}" for u, why in sorted(linked.items()))
            detail = (f"{author.display_name} and {len(linked)} linked account(s) submitted {len(ideas)} ideas; "
                      f"the limit is {limit} per contributor. Links: {how}.")
            return detail, {"users": sorted(cluster), "ideas": sorted(ideas)}
    return None


def check_blocked_domain(idea: Any, rules: Any) -> tuple[str, dict] | None:
    site = list(db.session.execute(select(BlockedDomain.domain)).scalars())
    challenge = list(rules.blocked_list) if rules is not None else []
    hits = []
    users = _users(_authors(idea))
    for uid in _authors(idea):
        u = users.get(uid)
        if u is None:
            continue
        hit = _domain_matches(u.email_domain, site)
        where = "site-wide"
        if hit is None:
            hit, where = _domain_matches(u.email_domain, challenge), "by the challenge's rules"
        if hit:
            hits.append((u, hit, where))
    if not hits:
        return None
    detail = "; ".join(f"{u.display_name} writes from {u.email_domain}, blocked {where} ({hit})"
                       for u, hit, where in hits)
    return detail, {"users": [u.id for u, _, _ in hits], "domains": sorted({h for _, h, _ in hits})}


def check_conflict_of_interest(idea: Any, rules: Any) -> tuple[str, dict] | None:
    challenge = idea.challenge
    if challenge is None:
        return None
    if rules is not None and rules.who_may_submit == ideas_models.WhoMaySubmit.ORGANISATION.value:
        return None  # an internal challenge: members are who it is for
    authors = _authors(idea)
    members = set(db.session.execute(
        select(Membership.user_id).where(Membership.org_id == challenge.org_id, Membership.user_id.in_(authors))
    ).scalars()) if authors else set()
    if not members:
        return None
    allowed = bool(rules and rules.org_members_may_participate)
    declared = set()
    if allowed:
        declared = set(db.session.execute(
            select(ideas_models.TermsAcceptance.user_id).where(
                ideas_models.TermsAcceptance.idea_id == idea.id, ideas_models.TermsAcceptance.user_id.in_(members),
                ideas_models.TermsAcceptance.coi_note != "")
        ).scalars())
    undeclared = sorted(members - declared)
    if not undeclared:
        return None
    users = _users(undeclared)
    org = challenge.organisation.name if challenge.organisation else "the posting organisation"
    names = ", ".join(users[u].display_name for u in undeclared if u in users)
    if not allowed:
        detail = f"{names}: member(s) of {org}, whose rules do not let its members take part."
    else:
        detail = f"{names}: member(s) of {org} who did not declare the conflict of interest."
    return detail, {"users": undeclared, "allowed": allowed}


def check_near_duplicate(idea: Any, rules: Any = None) -> tuple[str, dict] | None:
    threshold = float(_setting("MODERATION_DUPLICATE_THRESHOLD"))
    mine = shingles(idea_text(idea))
    if not mine:
        return None
    others = db.session.execute(
        select(ideas_models.Idea).where(ideas_models.Idea.challenge_id == idea.challenge_id, ideas_models.Idea.id != idea.id,
                             ideas_models.Idea.status.in_(_counted_statuses()))
    ).scalars()
    matches = []
    for other in others:
        sim = jaccard(mine, shingles(idea_text(other)))
        if sim >= threshold:
            matches.append((sim, other.id))
    if not matches:
        return None
    matches.sort(reverse=True)
    detail = "; ".join(f"idea #{oid} (similarity {sim:.2f})" for sim, oid in matches[:10])
    return f"Near-duplicate of {detail}.", {"ideas": [oid for _, oid in matches],
                                             "similarity": [round(s, 3) for s, _ in matches]}


CHECKS = [
    (FlagKind.OVER_LIMIT.value, check_over_limit),
    (FlagKind.BLOCKED_DOMAIN.value, check_blocked_domain),
    (FlagKind.CONFLICT_OF_INTEREST.value, check_conflict_of_interest),
    (FlagKind.NEAR_DUPLICATE.value, check_near_duplicate),
]


def check_idea(idea: Any) -> list[ModerationFlag]:
    """Run every check on a submitted idea and add a flag for each that fires (once per
    kind). Notifies the moderators in scope; the caller commits."""
    entry = registry.get("idea")
    if entry is None or idea is None or idea.id is None:
        return []
    rules = policy.challenge_rules(idea.challenge_id)
    existing = set(db.session.execute(
        select(ModerationFlag.kind).where(ModerationFlag.target_type == "idea", ModerationFlag.target_id == idea.id)
    ).scalars())
    placement = entry.placement(idea)
    made = []
    for kind, check in CHECKS:
        if kind in existing:
            continue
        hit = check(idea, rules)
        if hit is None:
            continue
        detail, related = hit
        flag = ModerationFlag(kind=kind, target_id=idea.id, detail=detail[:4000], status=FlagStatus.OPEN.value,
                              related=json.dumps(related, sort_keys=True), created_at=utcnow())
        flag.target_type = placement.target_type
        flag.org_id, flag.context_item_id = placement.org_id, placement.context_item_id
        flag.context_kind, flag.is_discussion = placement.context_kind, placement.is_discussion
        db.session.add(flag)
        made.append(flag)
    if made:
        db.session.flush()
        from ..notify import notify
        from ..services.moderation import moderators_for

        kinds = ", ".join(FlagKind(f.kind).label.lower() for f in made)
        for mod in moderators_for(placement):
            notify(mod, "moderation.flag", f"Automatic check on idea #{idea.id}: {kinds}.",
                   registry.path_for("moderation.flags"), about=made[0])
    return made


# --------------------------------------------------------------------------- session hooks

_PENDING = "moderation_submitted_ideas"


def _collect(session: Session, flush_context, instances) -> None:
    """Before each flush: note ideas entering the submitted state."""
    submitted = ideas_models.IdeaStatus.SUBMITTED.value
    for obj in list(session.new) + list(session.dirty):
        if not isinstance(obj, ideas_models.Idea) or obj.status != submitted:
            continue
        if obj in session.new or inspect(obj).attrs.status.history.has_changes():
            session.info.setdefault(_PENDING, []).append(obj)


def _run(session: Session) -> None:
    """Before commit: run the checks in the same transaction (a failing check is logged and
    rolled back to its savepoint; it never blocks the submission)."""
    pending = session.info.pop(_PENDING, None)
    if not pending or not has_app_context():
        return
    session.flush()
    session.info.pop(_PENDING, None)
    done = set()
    for idea in pending:
        if idea.id is None or idea.id in done:
            continue
        done.add(idea.id)
        try:
            with session.begin_nested():
                check_idea(idea)
        except Exception:  # pragma: no cover - defensive: never block a submission
            log.exception("automatic moderation checks failed for idea %s", idea.id)


def _rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def init_app(app: Flask) -> None:
    listen_on_sessions("moderation flags", ("before_flush", _collect), ("before_commit", _run),
                       ("after_rollback", _rollback))
