"""Read side: what each viewer sees of an item's Q&A, discussion, terms and requests.

Threads need tombstones (a deleted comment with replies, a hidden answered question), so
they load the item's rows and ask the policy row by row, passing the item check once;
anything the viewer may not see and that would not leave a tombstone is left out, so
nobody learns that an unanswered question or a removed comment exists.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from flask import abort, current_app
from werkzeug.local import LocalProxy
from sqlalchemy import and_, case, exists, func, or_, select
from sqlalchemy.orm import selectinload

from .. import policy
from ..extensions import db
from ..models import Item, Organisation
from ..models.engagement import Answer, AssetRequest, Comment, Question
from ..converters import MAX_ID
from ..pagination import Page, page_of_position
from ..params import parse_int
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
    ask the item's own rule once, and the row's own exceptions (such as a case on it) only
    for the rows that fail it, for a page of rows at once (`prime`) or row by row."""
    own_ok = policy.ITEMS.check(v, item)
    asked: dict[type, set] = {}          # ids whose exceptions were asked in a batch
    by_exception: dict[type, set] = {}   # ... and those they grant

    def prime(check, model, rows) -> None:
        failing = [r.id for r in rows if not check(v, r, own_ok)]
        asked.setdefault(model, set()).update(failing)
        by_exception.setdefault(model, set()).update(policy.seen_by_exception(v, model, failing))

    def sees(check, row) -> bool:
        if check(v, row, own_ok):
            return True
        if row.id in asked.get(type(row), ()):
            return row.id in by_exception[type(row)]
        return policy.can(v, "view", row)
    sees.prime = prime
    return sees


def _tomb_for(obj) -> str:
    if obj.hidden_at is not None:
        return "Hidden by moderators."
    return "Deleted by its author."


def _answered():
    return exists().where(Answer.question_id == Question.id)


def _before(M, row):
    """Rows of M listed before `row` in a thread (oldest first, ties by id)."""
    return or_(M.created_at < row.created_at, and_(M.created_at == row.created_at, M.id < row.id))


def thread_page_size() -> int:
    return current_app.config.get("THREAD_PAGE_SIZE", 25)


def qa_counts(v, item: Item, item_ok: bool) -> tuple[int, int]:
    """(published, waiting) questions the challenge's Q&A lists for the viewer: one COUNT."""
    answered = _answered()
    row = db.session.execute(
        select(func.count(), func.coalesce(func.sum(case((answered, 1), else_=0)), 0))
        .select_from(Question)
        .where(Question.item_id == item.id, policy.thread_questions_clause(v, item_ok))
    ).one()
    total, published = int(row[0]), int(row[1])
    return published, total - published


def _question_post(q: Question, sees, item_ok: bool) -> Post:
    # The SQL clause chose the row; its text is shown only when the rule says so.
    post = Post(q, True) if sees(policy.can_view_question, q) else Post(q, False, _tomb_for(q))
    if q.answer is not None:
        if sees(policy.can_view_answer, q.answer):
            post.answer = Post(q.answer, True)
        elif q.hidden_at is None and q.answer.hidden_at is not None:
            post.answer = Post(q.answer, False, "Answer hidden by moderators.")
    return post


def qa_posts(user, item: Item, page: int = 1, waiting_page: int = 1):
    """(published, waiting, published_page, waiting_page): one page each of the answered
    questions everyone who sees the challenge sees, and of the unanswered ones the viewer may
    see (their own, or all of them for the organisation); counts from one COUNT query."""
    v = policy.viewer_for(user)
    item_ok = policy.can(v, "view", item)
    sees = _row_check(v, item)
    size = thread_page_size()
    n_published, n_waiting = qa_counts(v, item, item_ok)
    pages = (Page.of(page, size, n_published), Page.of(waiting_page, size, n_waiting))
    clause = policy.thread_questions_clause(v, item_ok)
    lists: list[list[Post]] = []
    for answered, pg in zip((True, False), pages):
        if not pg.total:
            lists.append([])
            continue
        rows = db.session.execute(
            select(Question).where(Question.item_id == item.id, clause, _answered() if answered else ~_answered())
            .options(selectinload(Question.author), selectinload(Question.answer).selectinload(Answer.author))
            .order_by(Question.created_at, Question.id).limit(pg.size).offset(pg.offset)
        ).scalars().all()
        sees.prime(policy.can_view_question, Question, rows)
        sees.prime(policy.can_view_answer, Answer, [q.answer for q in rows if q.answer is not None])
        lists.append([_question_post(q, sees, item_ok) for q in rows])
    return lists[0], lists[1], pages[0], pages[1]


def question_position(user, item: Item, q: Question) -> tuple[str, int] | None:
    """("page" or "waiting_page", n): where the challenge's Q&A lists `q` for the viewer, or
    None when it does not list it (nothing is said about a question one may not see)."""
    v = policy.viewer_for(user)
    item_ok = policy.can(v, "view", item)
    clause = policy.thread_questions_clause(v, item_ok)
    listed = db.session.execute(select(Question.id).where(Question.id == q.id, Question.item_id == item.id,
                                                          clause)).first()
    if listed is None:
        return None
    answered = q.is_answered
    before = db.session.execute(
        select(func.count()).select_from(Question).where(
            Question.item_id == item.id, clause, _answered() if answered else ~_answered(),
            _before(Question, q))
    ).scalar_one()
    return ("page" if answered else "waiting_page"), page_of_position(before, thread_page_size())


def discussion_count(v, item: Item, item_ok: bool) -> int:
    """The threads (top-level comments) the failure's discussion lists for the viewer."""
    return db.session.execute(
        select(func.count()).select_from(Comment).where(
            Comment.item_id == item.id, policy.thread_comments_clause(v, item_ok, item.id))
    ).scalar_one()


def discussion_posts(user, item: Item, page: int = 1):
    """(threads, pinned lesson, page) for one page of a failure's discussion: top-level
    comments with all their replies."""
    v = policy.viewer_for(user)
    item_ok = policy.can(v, "view", item)
    sees = _row_check(v, item)
    pg = Page.of(page, thread_page_size(), discussion_count(v, item, item_ok))
    tops = []
    if pg.total:
        tops = db.session.execute(
            select(Comment).where(Comment.item_id == item.id, policy.thread_comments_clause(v, item_ok, item.id))
            .options(selectinload(Comment.author))
            .order_by(Comment.created_at, Comment.id).limit(pg.size).offset(pg.offset)
        ).scalars().all()
    replies: dict[int, list[Post]] = {}
    if tops:
        kids = db.session.execute(
            select(Comment).where(Comment.item_id == item.id, Comment.parent_id.in_([c.id for c in tops]),
                                  policy.thread_replies_clause(v, item_ok))
            .options(selectinload(Comment.author))
            .order_by(Comment.created_at, Comment.id)
        ).scalars().all()
        sees.prime(policy.can_view_comment, Comment, list(tops) + list(kids))
        for c in kids:
            shown = Post(c, True) if sees(policy.can_view_comment, c) else Post(c, False, _tomb_for(c))
            replies.setdefault(c.parent_id, []).append(shown)
    threads: list[Post] = []
    for c in tops:
        kids_of = replies.get(c.id, [])
        if sees(policy.can_view_comment, c):
            threads.append(Post(c, True, replies=kids_of))
        else:
            threads.append(Post(c, False, _tomb_for(c), replies=kids_of))
    pinned = None
    row = db.session.execute(
        select(Comment).where(Comment.item_id == item.id, Comment.pinned_at.is_not(None),
                              Comment.deleted_at.is_(None), Comment.hidden_at.is_(None))
        .order_by(Comment.created_at.desc(), Comment.id.desc()).limit(1)
    ).scalar()
    if row is not None and sees(policy.can_view_comment, row):
        pinned = Post(row, True)
    return threads, pinned, pg


def comment_position(user, item: Item, c: Comment) -> int | None:
    """The page of the failure's discussion holding `c`'s thread (a reply: its parent's), or
    None when the discussion does not list it for the viewer."""
    v = policy.viewer_for(user)
    item_ok = policy.can(v, "view", item)
    if c.parent_id is not None:
        listed = db.session.execute(select(Comment.id).where(
            Comment.id == c.id, Comment.item_id == item.id, policy.thread_replies_clause(v, item_ok))).first()
        if listed is None:
            return None
        c = c.parent
    clause = policy.thread_comments_clause(v, item_ok, item.id)
    listed = db.session.execute(select(Comment.id).where(Comment.id == c.id, Comment.item_id == item.id,
                                                         clause)).first()
    if listed is None:
        return None
    before = db.session.execute(select(func.count()).select_from(Comment).where(
        Comment.item_id == item.id, clause, _before(Comment, c))).scalar_one()
    return page_of_position(before, thread_page_size())


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


def post_page(user, item: Item, post: str) -> dict[str, int]:
    """The page arguments that show the post named by a permalink's ``post=`` (question-12,
    answer-5 or comment-7) in this item's thread; none when the thread does not list it for
    the viewer (a post one may not see, or of another item, lands on the first page)."""
    kind, _, raw = post.partition("-")
    post_id = parse_int(raw, 1, MAX_ID)
    if kind not in ("question", "answer", "comment") or post_id is None:
        abort(400, "The post to show is named like question-12, answer-5 or comment-7.")
    if kind == "comment":
        c = db.session.get(Comment, post_id)
        if c is None or c.item_id != item.id:
            return {}
        n = comment_position(user, item, c)
        return {"page": n} if n is not None else {}
    if kind == "answer":
        a = db.session.get(Answer, post_id)
        q = a.question if a is not None else None
    else:
        q = db.session.get(Question, post_id)
    if q is None or q.item_id != item.id:
        return {}
    found = question_position(user, item, q)
    return {found[0]: found[1]} if found is not None else {}


def panel_context(user, item: Item, page: int = 1, waiting_page: int = 1) -> dict[str, Any]:
    """Everything the engagement panels need (they receive only `item` and `kind`); `page`
    (and `waiting_page` for unanswered questions) choose the page of a thread."""
    from .forms import AnswerForm, AskForm, CommentForm, RequestForm

    v = policy.viewer_for(user)
    rules = policy.engagement_rules(item)
    ctx: dict[str, Any] = {"rules": rules, "manage": policy.can(user, "manage_engagement", item),
                           "edit_minutes": int(policy.engagement_edit_window().total_seconds() // 60)}
    if item.kind == "challenge":
        published, waiting, pub_page, wait_page = qa_posts(user, item, page, waiting_page)
        refusal = policy.ask_refusal(v, item)
        ctx.update(published=published, waiting=waiting, published_page=pub_page, waiting_page=wait_page,
                   refusal=refusal, cutoff=policy.question_cutoff(item, rules),
                   form=AskForm(formdata=None) if refusal is None else None,
                   # Built on first use: only where the viewer may answer a question does the
                   # page show the form, and building it puts a CSRF token in the session (a
                   # cookie for every anonymous visitor, and a page no cache may keep).
                   answer_form=LocalProxy(functools.cache(lambda: AnswerForm(formdata=None))))
    elif item.kind == "failure":
        threads, pinned, pg = discussion_posts(user, item, page)
        refusal = policy.discussion_refusal(v, item)
        # Whom each reply form is for, with the item's part of the rule asked once per page.
        may_reply = {t.obj.id for t in threads
                     if t.visible and policy.reply_refusal_given(refusal, t.obj) is None}
        ctx.update(threads=threads, pinned=pinned, refusal=refusal, may_reply=may_reply, thread_page=pg,
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
