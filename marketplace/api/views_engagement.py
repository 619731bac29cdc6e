"""Questions and answers, discussion comments, and asset requests: lists start from
policy.visible(), writes go through marketplace/services/engagement.py."""
from __future__ import annotations

from flask import abort
from flask_login import current_user

from .. import policy
from ..models import Answer, AssetRequest, Comment, ItemKind, Question
from ..services import engagement as eng_svc
from . import schemas as s
from .core import PageQuery, listing, newest_visible, operation
from .serializers import comment_json, question_json, request_json
from .views import item_or_404


@operation("/v1/items/<int:item_id>/questions", summary="Questions on a challenge", tag="Engagement",
           query=PageQuery, response=s.QuestionList, paginated=True, errors=(404,))
def questions(item_id: int, q):
    """Answered questions for everyone who sees the challenge; unanswered ones for their
    askers and the organisation."""
    it = item_or_404(item_id)
    stmt = policy.visible(current_user, Question).where(Question.item_id == it.id) \
        .order_by(Question.created_at, Question.id)
    return listing("questions", stmt, q, lambda x: question_json(x, current_user))


@operation("/v1/questions/<int:question_id>", summary="Get a question", tag="Engagement",
           response=s.QuestionOut, errors=(404,))
def question(question_id: int):
    return question_json(policy.get_visible_or_404(Question, question_id), current_user)


@operation("/v1/items/<int:item_id>/questions", "POST", summary="Ask a question", tag="Engagement",
           scope="engagement:write", body=s.QuestionAsk, response=s.QuestionOut, status=201,
           errors=(403, 404, 409))
def question_ask(item_id: int, body: s.QuestionAsk):
    """Your name is shown only with `show_name`."""
    it = item_or_404(item_id, ItemKind.CHALLENGE.value)
    x = eng_svc.ask_question(current_user, it, body.body, show_name=body.show_name)
    return question_json(x, current_user)


@operation("/v1/questions/<int:question_id>/answer", "POST", summary="Answer a question (the organisation)",
           tag="Engagement", scope="engagement:write", body=s.PostBody, response=s.AnswerOut, status=201,
           errors=(403, 404, 409))
def question_answer(question_id: int, body: s.PostBody):
    x = policy.get_visible_or_404(Question, question_id)
    a: Answer = eng_svc.answer_question(current_user, x, body.body)
    return {"id": a.id, "question_id": a.question_id, "body_html": a.body_html}


@operation("/v1/items/<int:item_id>/comments", summary="A failure's discussion", tag="Engagement",
           query=PageQuery, response=s.CommentList, paginated=True, errors=(404,))
def comments(item_id: int, q):
    it = item_or_404(item_id)
    stmt = policy.visible(current_user, Comment).where(Comment.item_id == it.id) \
        .order_by(Comment.created_at, Comment.id)
    return listing("comments", stmt, q, comment_json)


@operation("/v1/items/<int:item_id>/comments", "POST", summary="Comment, or reply to a comment",
           tag="Engagement", scope="engagement:write", body=s.CommentAdd, response=s.CommentOut, status=201,
           errors=(403, 404, 409))
def comment_add(item_id: int, body: s.CommentAdd):
    it = item_or_404(item_id)
    parent = policy.get_visible_or_404(Comment, body.parent_id) if body.parent_id is not None else None
    c = eng_svc.add_comment(current_user, it, body.body, parent=parent)
    return comment_json(c)


@operation("/v1/asset-requests", summary="Asset requests you sent or received", tag="Engagement",
           query=PageQuery, response=s.RequestList, paginated=True, auth=True)
def asset_requests(q):
    return listing("requests", newest_visible(AssetRequest), q, request_json)


@operation("/v1/asset-requests/<int:request_id>", summary="Get an asset request", tag="Engagement",
           response=s.RequestOut, errors=(404,))
def asset_request(request_id: int):
    return request_json(policy.get_visible_or_404(AssetRequest, request_id))


@operation("/v1/items/<int:item_id>/requests", "POST", summary="Send an asset request", tag="Engagement",
           scope="engagement:write", body=s.RequestSend, response=s.RequestOut, status=201,
           errors=(403, 404, 409))
def asset_request_send(item_id: int, body: s.RequestSend):
    """Against the exact licence terms version and digest you saw (none for interest)."""
    it = item_or_404(item_id, ItemKind.ASSET.value)
    org = policy.get_visible_org_or_404(body.on_behalf_of) if body.on_behalf_of else None
    r = eng_svc.send_request(current_user, it, body.kind, body.message, terms_version=body.terms_version,
                             terms_digest=body.terms_digest, on_behalf_of=org)
    return request_json(r)


def _answer_request(request_id: int, act, *args) -> dict:
    """Load the request (404 if the caller may not see it), let the service `act` on it as the
    caller (it checks the rule: 403 or 409) and return the request as it now stands."""
    r = policy.get_visible_or_404(AssetRequest, request_id)
    act(current_user, r, *args)
    return request_json(r)


@operation("/v1/asset-requests/<int:request_id>/decision", "POST", summary="Decide on a request (the owner)",
           tag="Engagement", scope="engagement:write", body=s.RequestDecision, response=s.RequestOut,
           errors=(403, 404, 409))
def asset_request_decide(request_id: int, body: s.RequestDecision):
    return _answer_request(request_id, eng_svc.decide_request, body.decision, body.message)


@operation("/v1/asset-requests/<int:request_id>/withdraw", "POST", summary="Withdraw your request",
           tag="Engagement", scope="engagement:write", body=s.RequestWithdraw, response=s.RequestOut,
           errors=(403, 404, 409))
def asset_request_withdraw(request_id: int, body: s.RequestWithdraw):
    return _answer_request(request_id, eng_svc.withdraw_request, body.message)


__all__ = ["abort"]
