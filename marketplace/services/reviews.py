"""The learning loop: after-action reviews of closed challenges, publishing one as a lesson,
and starting a new challenge from a past one.

* `request_review` asks a closed challenge's owners and admins for a review (once per
  challenge): a notification through the notify layer (in-site and mail as each chose),
  and the prompt on the challenge page. It runs when a challenge's status becomes closed
  (services.items.STATUS_HOOKS) and, for challenges left open past their deadline, from
  `ask_for_reviews` (`flask insights ask-reviews`, daily).
* `save_review` writes what the challenge achieved, what each awarded idea became and what
  to do differently; `publish_review` turns it into a failure/lesson item through
  services.items.create_item (policy, audit, search indexing as for any item), at the
  visibility the admins choose. The lesson quotes only what the admins wrote: never an
  idea's title (ideas may be sealed or their challenge private).
* `start_from` copies a challenge's brief and then runs `COPY_STEPS` (participation rules,
  the terms as a new version with its own digest; judging rounds add theirs), all in one
  transaction: a refused step leaves nothing behind.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from flask import url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import audit, policy
from ..extensions import db
from ..models import (
    ChallengeReview,
    Idea,
    IdeaFate,
    IdeaStatus,
    Item,
    ItemKind,
    ReviewOutcome,
    Status,
    User,
    Visibility,
    utcnow,
)
from ..notify import notify
from . import items as items_svc
from . import judging as judging_svc
from . import terms as terms_svc
from .common import FieldErrors, ServiceError, chosen, lock_row

ACHIEVED_MAX = 5000
NOTE_MAX = 1000
FATE_LABELS = {
    IdeaFate.PILOTED.value: "Piloted",
    IdeaFate.LICENSED.value: "Licensed",
    IdeaFate.DROPPED.value: "Dropped",
    IdeaFate.UNDECIDED.value: "Not decided yet",
}


# --------------------------------------------------------------------------- asking


def review_of(challenge: Item) -> ChallengeReview | None:
    return db.session.execute(
        select(ChallengeReview).where(ChallengeReview.challenge_id == challenge.id)).scalar()


def _path(endpoint: str, **values) -> str:
    try:
        return url_for(endpoint, **values)
    except RuntimeError:  # outside a request (CLI): the path alone, as mails make it absolute
        from flask import current_app

        with current_app.test_request_context():
            return url_for(endpoint, **values)


def request_review(challenge: Item, now: datetime | None = None) -> ChallengeReview | None:
    """Ask the challenge's owners and admins for an after-action review, once. In the
    caller's transaction (the caller commits). None if it is not a closed challenge."""
    if challenge.kind != ItemKind.CHALLENGE.value or not policy.challenge_has_closed(challenge, now):
        return None
    existing = review_of(challenge)
    if existing is not None:
        return existing
    try:
        with db.session.begin_nested():
            review = ChallengeReview(challenge_id=challenge.id, requested_at=now or utcnow())
            db.session.add(review)
            db.session.flush()
    except IntegrityError:  # another worker asked first (unique challenge_id)
        return review_of(challenge)
    from .notifications import org_admins

    url = _path("insights.review", challenge_id=challenge.id)
    for u in org_admins(challenge.org_id):
        notify(u, "challenge.review_requested",
               f"“{challenge.title}” has closed. What did it achieve, what became of the awarded ideas, "
               "and what would you do differently? Write its after-action review.", url, about=challenge)
    return review


def _status_hook(item: Item, old: str, new: str) -> None:
    if new == Status.CLOSED.value:
        request_review(item)


def ask_for_reviews(now: datetime | None = None, batch: int = 500) -> int:
    """Ask for reviews of challenges still open past their deadline (closed ones were asked
    when they closed). Returns how many were asked."""
    now = now or utcnow()
    due = db.session.execute(
        select(Item).where(Item.kind == ItemKind.CHALLENGE.value, Item.status == Status.OPEN.value,
                           Item.deadline.is_not(None), Item.deadline <= now,
                           ~select(ChallengeReview.id).where(ChallengeReview.challenge_id == Item.id).exists())
        .order_by(Item.id).limit(batch)).scalars().all()
    asked = 0
    for ch in due:
        if request_review(ch, now) is not None:
            asked += 1
        db.session.commit()
    return asked


# --------------------------------------------------------------------------- writing


def awarded_ideas(user: Any, challenge: Item) -> list[Idea]:
    """The challenge's awarded ideas the viewer may see."""
    return list(db.session.execute(
        select(Idea).where(Idea.challenge_id == challenge.id, Idea.status == IdeaStatus.AWARDED.value,
                           policy.visible_clause(user, Idea)).order_by(Idea.id).limit(200)).scalars())


def save_review(user: User, challenge: Item, data: dict[str, Any]) -> ChallengeReview:
    """Write (or rewrite) the review. ``data``: achieved, differently, and per awarded idea
    ``fate-ID`` (piloted, licensed, dropped, undecided) and ``note-ID`` (why; required when
    dropped). Every problem is reported at once; nothing is saved unless all is well."""
    if not policy.can(user, "write_review", challenge):
        raise ServiceError("Only the organisation's owners and admins review a challenge, once it has closed.", 403)
    errors: list[tuple[str, str]] = []
    texts = {}
    for f, what in (("achieved", "What the challenge achieved"), ("differently", "What to do differently")):
        val = (data.get(f) or "").strip()
        if not val:
            errors.append((f, f"{what} is required."))
        elif len(val) > ACHIEVED_MAX:
            errors.append((f, f"{what}: at most {ACHIEVED_MAX:,} characters."))
        texts[f] = val
    outcomes = {}
    for idea in awarded_ideas(user, challenge):
        fate = (data.get(f"fate-{idea.id}") or IdeaFate.UNDECIDED.value).strip()
        note = (data.get(f"note-{idea.id}") or "").strip()
        if fate not in IdeaFate.values():
            errors.append((f"fate-{idea.id}", "Choose piloted, licensed, dropped or not decided yet."))
        if fate == IdeaFate.DROPPED.value and not note:
            errors.append((f"note-{idea.id}", "Say why the idea was dropped."))
        if len(note) > NOTE_MAX:
            errors.append((f"note-{idea.id}", f"At most {NOTE_MAX:,} characters."))
        outcomes[idea.id] = (fate, note)
    if errors:
        raise FieldErrors(errors)
    lock_row(Item, challenge.id)
    review = review_of(challenge)
    if review is None:
        review = ChallengeReview(challenge_id=challenge.id, requested_at=utcnow())
        db.session.add(review)
        db.session.flush()
    first = review.submitted_at is None
    review.achieved, review.differently = texts["achieved"], texts["differently"]
    review.submitted_at, review.submitted_by_id = utcnow(), user.id
    current = {o.idea_id: o for o in review.outcomes}
    for idea_id, (fate, note) in outcomes.items():
        row = current.get(idea_id)
        if row is None:
            review.outcomes.append(ReviewOutcome(idea_id=idea_id, fate=fate, note=note))
        else:
            row.fate, row.note = fate, note
    db.session.flush()
    audit.record("challenge.review_submitted" if first else "challenge.review_revised", "challenge", challenge.id,
                 actor_id=user.id, item_id=challenge.id,
                 data={"fates": sorted(f for f, _n in outcomes.values())})
    db.session.commit()
    return review


def fate_summary(review: ChallengeReview) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for o in review.outcomes:
        counts[o.fate] = counts.get(o.fate, 0) + 1
    return [(FATE_LABELS[f], counts[f]) for f in IdeaFate.values() if counts.get(f)]


def _lesson_text(review: ChallengeReview) -> str:
    lines = []
    summary = fate_summary(review)
    if summary:
        lines.append("What the awarded ideas became: " + ", ".join(f"{label.lower()}: {n}" for label, n in summary)
                     + ".")
        lines.append("")
        for i, o in enumerate(review.outcomes, 1):
            if o.note:
                lines.append(f"- Awarded idea {i} ({FATE_LABELS[o.fate].lower()}): {o.note}")
    else:
        lines.append("No idea was awarded.")
    return "\n".join(lines)


def publish_review(user: User, review: ChallengeReview, data: dict[str, Any]) -> Item:
    """Publish the review as a failure/lesson item of the challenge's organisation, at the
    visibility chosen (``visibility``), titled ``title``. Once per review."""
    if not policy.can(user, "view", review):
        raise ServiceError("No such review.", 404)
    if review.submitted_at is None:
        raise ServiceError("Write the review before publishing it.", 409)
    if not policy.can(user, "publish", review):
        raise ServiceError("This review was already published, or you may not publish it.", 409)
    visibility = chosen(data, "visibility", Visibility, "Choose who may read the lesson.")
    title = (data.get("title") or "").strip()
    if not title:
        raise ServiceError("Give the lesson a title.", field="title")
    if len(title) > 200:
        raise ServiceError("The title: at most 200 characters.", field="title")
    challenge = review.challenge
    lock_row(Item, challenge.id)
    db.session.refresh(review)
    if review.lesson_item_id is not None:
        raise ServiceError("This review was already published.", 409)
    fields = {"title": title, "summary": (data.get("summary") or "").strip()[:500],
              "body": review.achieved, "went_wrong": _lesson_text(review), "lessons": review.differently,
              "visibility": visibility, "tags": "lesson"}
    lesson = items_svc.create_item(user, challenge.organisation, ItemKind.FAILURE.value, fields, publish=True,
                                   commit=False)
    review.lesson_item_id = lesson.id
    audit.record("challenge.review_published", "challenge", challenge.id, actor_id=user.id, item_id=challenge.id,
                 data={"lesson_item_id": lesson.id, "visibility": visibility})
    db.session.commit()
    return lesson


def lesson_source(lesson: Item) -> Item | None:
    """The challenge a lesson item was published from (None if it is not a lesson)."""
    if lesson.kind != ItemKind.FAILURE.value:
        return None
    return db.session.execute(
        select(Item).join(ChallengeReview, ChallengeReview.challenge_id == Item.id)
        .where(ChallengeReview.lesson_item_id == lesson.id)).scalar()


# --------------------------------------------------------------------------- start from a past challenge

BRIEF_FIELDS = ("summary", "body", "context", "expected_outcome", "incentive_summary")
CopyStep = Callable[[User, Item, Item], None]


def copy_rules(user: User, source: Item, new: Item) -> None:
    rules = policy.challenge_rules(source.id)
    if rules is None:
        return
    data = terms_svc.rules_snapshot(rules)
    data["allowed_domains"] = "\n".join(data["allowed_domains"])
    data["blocked_domains"] = "\n".join(data["blocked_domains"])
    terms_svc.save_rules(user, new, data, commit=False)


def copy_terms(user: User, source: Item, new: Item) -> None:
    """The source's current terms as version 1 of the new challenge (its own canonical JSON
    and digest, which name the new challenge). A reveal date already past is dropped."""
    terms = policy.current_terms(source.id)
    if terms is None:
        return
    reveal = terms.reveal_at if terms.reveal_at is not None and terms.reveal_at > utcnow() else None
    data = {"ip_model": terms.ip_model, "open_licence": terms.open_licence,
            **{f: getattr(terms, f) for f in terms_svc.TEXT_FIELDS},
            "confidentiality": terms.confidentiality, "reveal_at": reveal, "nda_text": terms.nda_text,
            "incentives": terms.incentives}
    terms_svc.save_terms(user, new, data, commit=False)


# The parts copied after the brief, in order: (name, step). Judging rounds add
# ("rounds", copy_rounds) here; a step raises ServiceError to refuse the whole copy.
def copy_judging_rounds(user: User, source: Item, new: Item) -> None:
    """The source's judging rounds (criteria, weights, how many go through, dates shifted
    to the new deadline); panels are the new challenge's own reviewers."""
    judging_svc.copy_rounds(source, new, actor=user)


COPY_STEPS: list[tuple[str, CopyStep]] = [
    ("rules", copy_rules),
    ("terms", copy_terms),
    ("rounds", copy_judging_rounds),
]


def start_from(user: User, source: Item, data: dict[str, Any]) -> Item:
    """A new draft challenge of the source's organisation with the source's brief, then
    every COPY_STEPS part; ``data`` gives its title and visibility. One transaction."""
    if source.kind != ItemKind.CHALLENGE.value or not policy.can(user, "view", source):
        raise ServiceError("No such challenge.", 404)
    if not policy.can(user, "start_from", source):
        raise ServiceError("Only the organisation's owners and admins can start a challenge from this one.", 403)
    title = (data.get("title") or "").strip()
    if not title:
        raise ServiceError("Give the new challenge a title.", field="title")
    if len(title) > 200:
        raise ServiceError("The title: at most 200 characters.", field="title")
    visibility = (data.get("visibility") or source.visibility).strip()
    brief = {f: getattr(source, f) for f in BRIEF_FIELDS if getattr(source, f) is not None}
    brief.update(title=title, visibility=visibility, tags=", ".join(source.tags))
    try:
        new = items_svc.create_item(user, source.organisation, ItemKind.CHALLENGE.value, brief, commit=False)
        for _name, step in COPY_STEPS:
            step(user, source, new)
        audit.record("challenge.started_from", "challenge", new.id, actor_id=user.id, item_id=new.id,
                     data={"source_id": source.id, "parts": ["brief"] + [n for n, _s in COPY_STEPS]})
    except ServiceError:
        db.session.rollback()
        raise
    db.session.commit()
    return new


def started_from(challenge: Item) -> Item | None:
    """The challenge this one was started from, as the audit trail recorded it."""
    from ..models import AuditEvent
    import json

    row = db.session.execute(
        select(AuditEvent.data).where(AuditEvent.item_id == challenge.id, AuditEvent.action == "challenge.started_from")
        .order_by(AuditEvent.id).limit(1)).scalar()
    if row is None:
        return None
    source_id = json.loads(row).get("source_id")
    return db.session.get(Item, source_id) if source_id else None
