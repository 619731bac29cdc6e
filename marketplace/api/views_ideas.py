"""Ideas: list what the caller may see, submit under the current terms, revise, withdraw,
answer a co-authorship, and the review panel's actions. The same services as the pages, which hold every rule
(participation, terms acceptance, co-authors, limits, the sealed-view log)."""
from __future__ import annotations

import secrets

from flask import request
from flask_login import current_user
from sqlalchemy import select

from .. import policy
from ..models import Idea, IdeaAuthor, IdeaStatus, ItemKind
from ..services import ideas as ideas_svc
from ..services.common import ServiceError
from . import schemas as s
from .core import ApiError, listing, operation
from .serializers import idea_json
from .views import item_or_404


def _idea(idea_id: int) -> Idea:
    return policy.get_visible_or_404(Idea, idea_id)


def _terms_fields(challenge, body) -> dict:
    """The API's form of "I read and accept these terms": the digest of the current version.
    The service compares it with the current terms (409 if they differ)."""
    current = policy.current_terms(challenge.id)
    return {"terms_version": current.version if current is not None else None,
            "terms_digest": body.accept_terms_digest, "accept_terms": True,
            "confirm_eligibility": body.confirm_eligibility, "confirm_coi": body.confirm_coi,
            "coi_note": body.coi_note}


def _terms_conflict(challenge, e: ServiceError) -> None:
    """A 409 on the terms gains the current digest, so a program can show and accept it."""
    if e.status == 409 and e.field == "accept_terms":
        current = policy.current_terms(challenge.id)
        raise ApiError(409, e.message, code="terms_changed", fields={"accept_terms_digest": e.message},
                       extra={"current_terms_digest": current.digest if current else None,
                              "current_terms_version": current.version if current else None}) from None
    raise e


@operation("/v1/ideas", summary="List ideas the caller may see", tag="Ideas", query=s.IdeaQuery,
           response=s.IdeaList, paginated=True, errors=(404,))
def ideas(q: s.IdeaQuery):
    """Filters: `challenge_id`, `status`, `mine` (ideas you are an author of). A sealed idea
    you did not write is listed without its text."""
    stmt = policy.visible(current_user, Idea)
    if q.challenge_id is not None:
        stmt = stmt.where(Idea.challenge_id == item_or_404(q.challenge_id, ItemKind.CHALLENGE.value).id)
    if q.status:
        if q.status not in IdeaStatus.values():
            raise ApiError(400, f"Unknown status; use one of {', '.join(IdeaStatus.values())}.",
                           fields={"status": "Unknown status."})
        stmt = stmt.where(Idea.status == q.status)
    if q.mine:
        if not current_user.is_authenticated:
            raise ApiError(401, "Sign in to list your own ideas.", code="unauthenticated")
        stmt = stmt.where(Idea.id.in_(select(IdeaAuthor.idea_id).where(IdeaAuthor.user_id == current_user.id)))
    return listing("ideas", stmt.order_by(Idea.created_at.desc(), Idea.id.desc()), q,
                   lambda i: idea_json(i, current_user))


@operation("/v1/ideas/<int:idea_id>", summary="Get an idea", tag="Ideas", response=s.IdeaDetail, errors=(404,))
def idea(idea_id: int):
    """Opening a sealed idea you did not write is logged for its authors, as on the page."""
    i = _idea(idea_id)
    ideas_svc.log_sealed_view(current_user, i, "idea (API)")
    return idea_json(i, current_user, full=True)


@operation("/v1/challenges/<int:item_id>/ideas", "POST", summary="Submit an idea", tag="Ideas",
           scope="ideas:write", body=s.IdeaSubmit, response=s.IdeaDetail, status=201, errors=(403, 404, 409),
           extra_responses={200: "The same submission_key was sent before: the idea made then."})
def idea_submit(item_id: int, body: s.IdeaSubmit):
    """`accept_terms_digest` must equal the challenge's current terms digest
    (GET /v1/challenges/{id}/terms), else 409 `terms_changed` with `current_terms_digest`.
    Send `submission_key` (or an Idempotency-Key header) to make retries safe."""
    ch = item_or_404(item_id, ItemKind.CHALLENGE.value)
    key = body.submission_key or request.headers.get("Idempotency-Key") or secrets.token_urlsafe(24)
    data = {"title": body.title, "summary": body.summary, "body": body.body, "submission_key": key[:64],
            "coauthors": ", ".join(body.coauthors), **_terms_fields(ch, body)}
    try:
        i, created = ideas_svc.submit_idea(current_user, ch, data)
    except ServiceError as e:
        _terms_conflict(ch, e)
    return idea_json(i, current_user, full=True), (201 if created else 200)


@operation("/v1/ideas/<int:idea_id>/revisions", "POST", summary="Revise an idea", tag="Ideas",
           scope="ideas:write", body=s.IdeaRevise, response=s.IdeaDetail, status=201, errors=(403, 404, 409))
def idea_revise(idea_id: int, body: s.IdeaRevise):
    """A new revision under the current terms (`accept_terms_digest`, as for submitting)."""
    i = _idea(idea_id)
    data = {"title": body.title, "summary": body.summary, "body": body.body, **_terms_fields(i.challenge, body)}
    try:
        i = ideas_svc.revise_idea(current_user, i, data)
    except ServiceError as e:
        _terms_conflict(i.challenge, e)
    return idea_json(i, current_user, full=True)


@operation("/v1/ideas/<int:idea_id>/withdraw", "POST", summary="Withdraw an idea (lead author)", tag="Ideas",
           scope="ideas:write", response=s.IdeaDetail, errors=(403, 404))
def idea_withdraw(idea_id: int):
    i = _idea(idea_id)
    ideas_svc.withdraw_idea(current_user, i)
    return idea_json(i, current_user, full=True)


@operation("/v1/ideas/<int:idea_id>/coauthorship/accept", "POST", summary="Accept being a co-author",
           tag="Ideas", scope="ideas:write", body=s.CoauthorAccept, response=s.IdeaDetail,
           errors=(403, 404, 409))
def idea_coauthor_accept(idea_id: int, body: s.CoauthorAccept):
    """For a named, pending co-author: accept the current terms for the idea as it stands
    (`accept_terms_digest`, as for submitting: 409 `terms_changed` with the current digest).
    Accepting again changes nothing."""
    i = _idea(idea_id)
    try:
        ideas_svc.accept_coauthorship(current_user, i, _terms_fields(i.challenge, body))
    except ServiceError as e:
        _terms_conflict(i.challenge, e)
    return idea_json(i, current_user, full=True)


@operation("/v1/ideas/<int:idea_id>/coauthorship/decline", "POST", summary="Decline being a co-author",
           tag="Ideas", scope="ideas:write", status=204, errors=(403, 404))
def idea_coauthor_decline(idea_id: int):
    """No body: having declined, you no longer see the idea."""
    i = _idea(idea_id)
    ideas_svc.decline_coauthorship(current_user, i)


def _review(idea_id: int, action: str, act, *args) -> dict:
    """A review panel's step: load the idea (404), check the panel may take `action` on it (403),
    let the service `act` as the caller, and return the idea in full as it now stands."""
    i = _idea(idea_id)
    policy.require(action, i)
    act(current_user, i, *args)
    return idea_json(i, current_user, full=True)


@operation("/v1/ideas/<int:idea_id>/scores", "POST", summary="Score an idea (review panel)", tag="Reviews",
           scope="reviews:write", body=s.Scores, response=s.IdeaDetail, errors=(403, 404, 409))
def idea_score(idea_id: int, body: s.Scores):
    return _review(idea_id, "score", ideas_svc.score_idea, body.scores)


@operation("/v1/ideas/<int:idea_id>/shortlist", "POST", summary="Shortlist an idea (review panel)",
           tag="Reviews", scope="reviews:write", response=s.IdeaDetail, errors=(403, 404, 409))
def idea_shortlist(idea_id: int):
    return _review(idea_id, "shortlist", ideas_svc.shortlist_idea)


@operation("/v1/ideas/<int:idea_id>/decline", "POST", summary="Decline an idea (review panel)", tag="Reviews",
           scope="reviews:write", body=s.Reason, response=s.IdeaDetail, errors=(403, 404, 409))
def idea_decline(idea_id: int, body: s.Reason):
    return _review(idea_id, "decline", ideas_svc.decline_idea, body.reason)


@operation("/v1/ideas/<int:idea_id>/award", "POST", summary="Award a shortlisted idea (review panel)",
           tag="Reviews", scope="reviews:write", body=s.Award, response=s.IdeaDetail, errors=(403, 404, 409))
def idea_award(idea_id: int, body: s.Award):
    """`incentive` is the index of the incentive in the terms the authors accepted."""
    return _review(idea_id, "award", ideas_svc.award_idea, body.incentive, body.note)
