"""Read side: what each viewer sees of an item's Q&A, discussion, terms and requests.

Threads need tombstones (a deleted comment with replies, a hidden answered question), so
they load the item's rows and ask the policy row by row, passing the item check once;
anything the viewer may not see and that would not leave a tombstone is left out, so
nobody learns that an unanswered question or a removed comment exists.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from .. import policy
from ..extensions import db
from ..models import Item, Organisation
from ..models.engagement import AssetRequest, Comment, Question
from ..services import engagement as svc


@dataclass
class Post:
    obj: Any
    visible: bool                  # content may be shown
    tombstone: str | None = None   # shown instead of the content
    replies: list[Post] = field(default_factory=list)
    answer: Post | None = None


def _row_check(v, item: Item):
    """Rows inherit their item's own rule, not the exceptions that let a viewer see the item
    (a case on a challenge shows a scoped moderator the challenge, not everything under it):
    ask the item's own rule once, and the full rule (with the row's own exceptions, such as
    a case on it) only for the rows that fail it."""
    own_ok = policy.ITEMS.check(v, item)

    def sees(check, row) -> bool:
        return check(v, row, own_ok) or policy.can(v, "view", row)
    return sees


def _tomb_for(obj) -> str:
    if obj.hidden_at is not None:
        return "Hidden by moderators."
    return "Deleted by its author."


def qa_posts(user, item: Item) -> tuple[list[Post], list[Post]]:
    """(published, waiting): answered questions everyone who sees the challenge sees, and
    unanswered ones the viewer may see (their own, or all of them for the organisation)."""
    v = policy.viewer_for(user)
    item_ok = policy.can(v, "view", item)
    sees = _row_check(v, item)
    published: list[Post] = []
    waiting: list[Post] = []
    rows = db.session.execute(
        select(Question).where(Question.item_id == item.id).order_by(Question.created_at, Question.id)
    ).scalars()
    for q in rows:
        if sees(policy.can_view_question, q):
            post = Post(q, True)
        elif item_ok and q.is_answered and (q.deleted_at is not None or q.hidden_at is not None):
            post = Post(q, False, _tomb_for(q))
        else:
            continue
        if q.answer is not None:
            if sees(policy.can_view_answer, q.answer):
                post.answer = Post(q.answer, True)
            elif q.hidden_at is None and q.answer.hidden_at is not None:
                post.answer = Post(q.answer, False, "Answer hidden by moderators.")
        (published if q.is_answered else waiting).append(post)
    return published, waiting


def discussion_posts(user, item: Item) -> tuple[list[Post], Post | None]:
    """(threads, pinned lesson) for a failure's discussion."""
    v = policy.viewer_for(user)
    item_ok = policy.can(v, "view", item)
    sees = _row_check(v, item)
    rows = list(db.session.execute(
        select(Comment).where(Comment.item_id == item.id).order_by(Comment.created_at, Comment.id)
    ).scalars())
    replies: dict[int, list[Post]] = {}
    for c in rows:
        if c.parent_id is None:
            continue
        if sees(policy.can_view_comment, c):
            replies.setdefault(c.parent_id, []).append(Post(c, True))
        elif item_ok and c.hidden_at is not None and c.deleted_at is None:
            replies.setdefault(c.parent_id, []).append(Post(c, False, _tomb_for(c)))
    threads: list[Post] = []
    pinned = None
    for c in rows:
        if c.parent_id is not None:
            continue
        kids = replies.get(c.id, [])
        if sees(policy.can_view_comment, c):
            post = Post(c, True, replies=kids)
        elif item_ok and ((c.hidden_at is not None and c.deleted_at is None) or kids):
            post = Post(c, False, _tomb_for(c), replies=kids)
        else:
            continue
        threads.append(post)
    for c in rows:
        if c.pinned_at is not None and c.deleted_at is None and c.hidden_at is None \
                and sees(policy.can_view_comment, c):
            pinned = Post(c, True)
    return threads, pinned


def admin_orgs_for_requests(user, item: Item) -> list[Organisation]:
    """Organisations the user may send requests for (they own/admin it; not the asset's owner)."""
    v = policy.viewer_for(user)
    ids = [o for o in v.admin_org_ids if o != item.org_id]
    if not ids:
        return []
    return list(db.session.execute(
        select(Organisation).where(Organisation.id.in_(ids)).order_by(Organisation.name)).scalars())


def my_requests_for(user, item: Item) -> list[AssetRequest]:
    """The user's own side of requests on this asset (sent by them or for orgs they admin)."""
    q = policy.visible(user, AssetRequest).where(AssetRequest.item_id == item.id)
    v = policy.viewer_for(user)
    rows = db.session.execute(q.order_by(AssetRequest.created_at.desc())).scalars()
    return [r for r in rows if policy.is_request_sender_side(v, r)]


def open_incoming_count(item: Item) -> int:
    from ..models.engagement import OPEN_REQUEST_STATUSES

    return db.session.execute(
        select(func.count()).where(AssetRequest.item_id == item.id, AssetRequest.status.in_(OPEN_REQUEST_STATUSES))
    ).scalar_one()


def panel_context(user, item: Item) -> dict[str, Any]:
    """Everything the engagement panels need (they receive only `item` and `kind`)."""
    from .forms import AnswerForm, AskForm, CommentForm, RequestForm

    v = policy.viewer_for(user)
    rules = policy.engagement_rules(item)
    ctx: dict[str, Any] = {"rules": rules, "manage": policy.can(user, "manage_engagement", item),
                           "edit_minutes": int(policy.engagement_edit_window().total_seconds() // 60)}
    if item.kind == "challenge":
        published, waiting = qa_posts(user, item)
        refusal = policy.ask_refusal(v, item)
        ctx.update(published=published, waiting=waiting, refusal=refusal,
                   cutoff=policy.question_cutoff(item, rules),
                   form=AskForm(formdata=None) if refusal is None else None,
                   answer_form=AnswerForm(formdata=None))
    elif item.kind == "failure":
        threads, pinned = discussion_posts(user, item)
        refusal = policy.discussion_refusal(v, item)
        # Whom each reply form is for, with the item's part of the rule asked once per page.
        may_reply = {t.obj.id for t in threads
                     if t.visible and policy.reply_refusal_given(refusal, t.obj) is None}
        ctx.update(threads=threads, pinned=pinned, refusal=refusal, may_reply=may_reply,
                   form=CommentForm(formdata=None) if refusal is None else None)
    elif item.kind == "asset":
        terms = svc.current_terms(item)
        refusal = policy.asset_request_refusal(v, item)
        form = None
        if refusal is None:
            form = RequestForm(formdata=None)
            configure_request_form(form, user, item, terms)
        ctx.update(terms=terms, refusal=refusal, form=form,
                   mine=my_requests_for(user, item) if v.is_authenticated else [],
                   incoming=open_incoming_count(item) if ctx["manage"] or v.is_org_admin(item.org_id) else None)
    return ctx


def configure_request_form(form, user, item: Item, terms) -> None:
    """Choices depend on the terms (no licence on collaboration-only terms, no interest-only
    wording once terms exist) and on the organisations the user may speak for."""
    from .forms import REQUEST_KIND_CHOICES

    choices = list(REQUEST_KIND_CHOICES)
    if terms is None:
        choices = [c for c in choices if c[0] == "interest"]
    elif terms.collaboration_only:
        choices = [c for c in choices if c[0] != "licence"]
    form.kind.choices = choices
    form.on_behalf_of.choices = [("", "Myself")] + [
        (str(o.id), f"{o.name} (as its owner/admin)") for o in admin_orgs_for_requests(user, item)]
    if form.terms_version.data in (None, "") and terms is not None:
        form.terms_version.data = str(terms.version)
        form.terms_digest.data = terms.digest
