"""Engagement: questions and answers on challenges, discussions on failures, asset terms and
requests for assets.

Participation rules are layered on item visibility: nobody may take part in what they may
not see (can() checks "view" first; the services check it again). Each refusal function
returns the "why you cannot" message naming the rule, or None; the boolean rules are
``refusal is None``, so the message shown and the rule enforced cannot drift apart.

Who sees what (each on items the viewer may see; site moderators see all of it, deleted
included, and whoever moderates a case on a row sees that row: declared `SeenInCases`):

* questions: answered ones everyone; unanswered ones the asker and the posting organisation;
  hidden ones the asker and the organisation's admins; deleted ones nobody else;
* answers: follow their question (a hidden question hides its answer from all but its asker
  and the organisation's admins); a hidden answer is seen by its author and those admins;
* comments: everyone; hidden ones their author and the organisation's admins; deleted ones
  nobody else;
* asset terms: whoever sees the asset;
* asset requests: only the two parties (the sender, or the admins of the organisation it was
  sent for, and the asset owner's admins); site moderators while a report on it is open
  (and no case exception: a closed case shows nothing more of a private request).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, false, func, or_, select, true

from ..extensions import db
from ..models import Answer, AssetRequest, AssetTerms, Comment, EngagementRules, Item, Question, Status, User, utcnow
from ..models.engagement import OPEN_REQUEST_STATUSES, Participation, RequestKind, RequestStatus
from ..models.moderation import Report, ReportStatus
from ..timezones import format_dt
from .core import RULE_BOOK, Parent, ParentRule, PolicyError, Rule, Viewer, rule, viewer_for
from .items import ITEMS, can_view_item, check_known, in_audience
from .places import SeenInCases, is_discussion_locked
from .reach import verification_refusal

ENGAGEMENT_EDIT_WINDOW_MINUTES = 15
KNOWN_PARTICIPATION = frozenset(Participation.values())
KNOWN_ASSET_REQUEST_STATUS = frozenset(RequestStatus.values())
_KIND_NOUN = {"challenge": "challenge", "failure": "failure", "asset": "asset"}


def engagement_rules(item: Item) -> EngagementRules:
    """The item's declared participation rules, or an unsaved row holding the defaults."""
    row = None
    if item.id is not None:
        row = db.session.execute(
            select(EngagementRules).where(EngagementRules.item_id == item.id)
        ).scalar()
    if row is None:
        row = EngagementRules(item_id=item.id, **EngagementRules.DEFAULTS)
    for name in ("comment_rule", "ask_rule", "request_rule"):
        if getattr(row, name) not in KNOWN_PARTICIPATION:
            raise PolicyError(f"unknown participation rule {getattr(row, name)!r}")
    return row


def engagement_edit_window() -> timedelta:
    from flask import current_app, has_app_context

    minutes = ENGAGEMENT_EDIT_WINDOW_MINUTES
    if has_app_context():
        minutes = current_app.config.get("ENGAGEMENT_EDIT_WINDOW_MINUTES", minutes)
    return timedelta(minutes=int(minutes))


def _fmt(dt: datetime) -> str:
    return format_dt(dt)  # in the viewer's time zone


def _item_state_refusal(item: Item) -> str | None:
    """New contributions need a published, open item that moderators have not hidden."""
    check_known(item)
    noun = _KIND_NOUN.get(item.kind, "item")
    if item.hidden_at is not None:
        return f"This {noun} is hidden by moderators; nothing can be added to it."
    if item.status == Status.OPEN.value:
        return None
    if item.status == Status.DRAFT.value:
        return f"This {noun} is not published yet."
    if item.status == Status.CLOSED.value:
        return f"This {noun} is closed; it no longer takes contributions."
    if item.status == Status.ARCHIVED.value:
        return f"This {noun} is archived; it no longer takes contributions."
    raise PolicyError(f"unknown status {item.status!r}")  # pragma: no cover - check_known


def engagement_participation_refusal(v: Viewer, item: Item, rule_name: str, verb: str) -> str | None:
    """Does the participation rule `rule_name` let the viewer `verb` on `item`? (visibility aside)"""
    if rule_name not in KNOWN_PARTICIPATION:
        raise PolicyError(f"unknown participation rule {rule_name!r}")
    if rule_name == Participation.NOBODY.value:
        return f"The organisation does not let anyone {verb} here (rule: who may {verb} — nobody)."
    if not v.is_authenticated:
        return f"Sign in to {verb}."
    if in_audience(v, item, rule_name):
        return verification_refusal(v)
    if rule_name == Participation.ORGANISATION.value:
        return f"Only members of the organisation may {verb} here (rule: who may {verb} — organisation)."
    return f"Only invited people and organisations may {verb} here (rule: who may {verb} — invited)."


def _until_refusal(rules: EngagementRules, now: datetime) -> str | None:
    if rules.open_until is not None and now >= rules.open_until:
        return (f"Participation closed on {_fmt(rules.open_until)} "
                f"(rule: open until {_fmt(rules.open_until)}).")
    return None


def question_cutoff(item: Item, rules: EngagementRules | None = None) -> datetime | None:
    """When questions stop: the rule's hours before the deadline (None: no deadline)."""
    if item.deadline is None:
        return None
    rules = rules if rules is not None else engagement_rules(item)
    return item.deadline - timedelta(hours=max(0, int(rules.question_cutoff_hours or 0)))


def _thread_refusal(item: Item, kind: str, elsewhere: str, locked: str) -> str | None:
    """What questions and comments are refused for alike, in this order: an item of another
    kind than `kind` (`elsewhere`), the item's own state, a moderation lock (`locked`)."""
    if item.kind != kind:
        return elsewhere
    return _item_state_refusal(item) or (locked if is_discussion_locked(item) else None)


def ask_refusal(v: Viewer, item: Item, now: datetime | None = None) -> str | None:
    """Why the viewer may not ask a question on this challenge (None: they may)."""
    msg = _thread_refusal(item, "challenge", "Questions are asked on challenges.",
                          "The discussion of this challenge is locked by moderation.")
    if msg:
        return msg
    now = now or utcnow()
    rules = engagement_rules(item)
    msg = engagement_participation_refusal(v, item, rules.ask_rule, "ask questions") or _until_refusal(rules, now)
    if msg:
        return msg
    cutoff = question_cutoff(item, rules)
    if cutoff is not None and now >= cutoff:
        return (f"Questions closed on {_fmt(cutoff)}, {rules.question_cutoff_hours} hours before the "
                f"deadline (rule: question cut-off).")
    return None


def discussion_refusal(v: Viewer, item: Item, now: datetime | None = None) -> str | None:
    """Why the viewer may not comment on (or reply in) this failure's discussion."""
    msg = _thread_refusal(item, "failure", "Discussions are held on failures.",
                          "This discussion is locked by moderation.")
    if msg:
        return msg
    now = now or utcnow()
    rules = engagement_rules(item)
    if rules.discussion_closed_at is not None:
        return f"The organisation closed this discussion on {_fmt(rules.discussion_closed_at)}."
    return engagement_participation_refusal(v, item, rules.comment_rule, "comment") or _until_refusal(rules, now)


def asset_open_request_count(item_id: int, party: str) -> int:
    """Open requests the party ("user:ID" or "org:ID") has on this asset."""
    kind, _, pid = party.partition(":")
    who = (and_(AssetRequest.author_id == int(pid), AssetRequest.requester_org_id.is_(None)) if kind == "user"
           else AssetRequest.requester_org_id == int(pid))
    return db.session.execute(
        select(func.count()).where(AssetRequest.item_id == item_id, who,
                                   AssetRequest.status.in_(OPEN_REQUEST_STATUSES))
    ).scalar_one()


def asset_request_refusal(v: Viewer, item: Item, party: str | None = None,
                          now: datetime | None = None) -> str | None:
    """Why the viewer may not send a request for this asset; with `party` ("user:ID" or
    "org:ID") the per-requester limit of open requests is checked too."""
    if item.kind != "asset":
        return "Requests are sent for assets."
    now = now or utcnow()
    msg = _item_state_refusal(item)
    if msg:
        return msg
    rules = engagement_rules(item)
    msg = engagement_participation_refusal(v, item, rules.request_rule, "send requests") or _until_refusal(rules, now)
    if msg:
        return msg
    if v.is_member(item.org_id):
        return "Your organisation owns this asset; requests come from outside it."
    if party is not None:
        if party.startswith("org:"):
            org_id = int(party[4:])
            if org_id == item.org_id:
                return "Your organisation owns this asset; requests come from outside it."
            if not v.is_org_admin(org_id):
                return "You can only send requests on behalf of an organisation you own or administer."
        elif party != f"user:{v.user_id}":
            raise PolicyError(f"unknown requesting party {party!r}")
        n = asset_open_request_count(item.id, party)
        if n >= rules.max_open_requests:
            return (f"You already have {n} open request{'s' if n != 1 else ''} for this asset; the organisation "
                    f"allows {rules.max_open_requests} per requester (rule: max open requests).")
    return None


@ITEMS.action("manage_engagement")
def can_manage_engagement(v: Viewer, item: Item) -> bool:
    """Declare participation rules and licence terms, pin, close discussions."""
    check_known(item)
    return v.is_org_admin(item.org_id) and item.status != Status.ARCHIVED.value


ITEMS.action("ask")(lambda v, item: ask_refusal(v, item) is None)
ITEMS.action("comment")(lambda v, item: discussion_refusal(v, item) is None)
ITEMS.action("request")(lambda v, item: asset_request_refusal(v, item) is None)


def _items_of(org_ids) -> Any:
    return select(Item.id).where(Item.org_id.in_(list(org_ids)))


def _item_ok(v: Viewer, item: Item, item_ok: bool | None) -> bool:
    return can_view_item(v, item) if item_ok is None else item_ok


# --------------------------------------------------------------------------- questions and answers


def can_view_question(v: Viewer, q: Question, item_ok: bool | None = None) -> bool:
    """The question rule; ``item_ok`` passes a known answer for its challenge (threads)."""
    item = q.item
    if not _item_ok(v, item, item_ok):
        return False
    if v.is_moderator:
        return True
    if q.deleted_at is not None:
        return False
    mine = v.is_user(q.author_id)
    if q.hidden_at is not None:
        return mine or v.is_org_admin(item.org_id)
    return q.is_answered or mine or v.is_member(item.org_id)


def _author_principal(author_id: int | None, item: Item) -> set[str]:
    if author_id is None:
        return set()
    author = db.session.get(User, author_id)
    if author is None or not can_view_item(viewer_for(author), item):
        return set()
    return {f"user:{author_id}"}


def _post_principals(post: Question | Comment, now: datetime, *, published: bool) -> list[str]:
    """Search terms of a question or comment: deleted, staff only (nobody under a draft, which
    moderators do not see); under a draft, its item's;
    hidden, staff, the organisation's admins and the author (while they see the item);
    otherwise whoever sees the item when `published`, else staff, the organisation's members
    and the author."""
    item = post.item
    if post.deleted_at is not None:  # moderators only, and they see no drafts
        return [] if item.status == Status.DRAFT.value else ["staff"]
    if item.status == Status.DRAFT.value:
        return ITEMS.doc_principals(item, now)
    if post.hidden_at is not None:
        return sorted({"staff", f"orgadmin:{item.org_id}"} | _author_principal(post.author_id, item))
    if published:
        return ITEMS.doc_principals(item, now)
    return sorted({"staff", f"org:{item.org_id}"} | _author_principal(post.author_id, item))


def _post_clause(rule_: Rule, v: Viewer, *, shown):
    """SQL for a question or comment (twin of can_view_question / can_view_comment): on a
    visible item; moderators all of them; others nothing deleted, a visible one when `shown`
    or their own, a hidden one when their own or they administer the organisation."""
    M = rule_.model
    item_ok = rule_.parent_clause(v)
    if v.is_moderator:
        return item_ok
    mine = M.author_id == v.user_id if v.is_authenticated else false()
    admin = M.item_id.in_(_items_of(v.admin_org_ids)) if v.admin_org_ids else false()
    return and_(item_ok, M.deleted_at.is_(None), or_(
        and_(M.hidden_at.is_(None), or_(shown, mine)),
        and_(M.hidden_at.is_not(None), or_(mine, admin)),
    ))


class QuestionRule(Rule):
    model = Question
    parent = Parent("item", "item_id", Item)
    exceptions = (SeenInCases("question"),)

    check = staticmethod(can_view_question)

    def clause(self, v: Viewer):
        Q = Question
        member = Q.item_id.in_(_items_of(v.member_org_ids)) if v.member_org_ids else false()
        answered = exists().where(Answer.question_id == Q.id)
        return _post_clause(self, v, shown=or_(answered, member))

    def doc_principals(self, q: Question, now: datetime) -> list[str]:
        """(The answer's text is indexed with its question only while it is not hidden.)"""
        return _post_principals(q, now, published=q.is_answered)

    def valid_until(self, q: Question, now: datetime) -> datetime | None:
        return ITEMS.valid_until(q.item, now)

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions.update({
            "answer": lambda v, q: question_answer_refusal(v, q) is None,
            "edit": lambda v, q: post_edit_refusal(v, q) is None,
            "delete": lambda v, q: post_delete_refusal(v, q) is None,
        })


def question_answer_refusal(v: Viewer, q: Question) -> str | None:
    item = q.item
    check_known(item)
    if not v.is_org_admin(item.org_id):
        return "Only the posting organisation's owners and admins answer questions."
    if item.hidden_at is not None:
        return "This challenge is hidden by moderators."
    if item.status not in (Status.OPEN.value, Status.CLOSED.value):
        return f"This challenge is {item.status}; its questions can no longer be answered."
    if q.deleted_at is not None:
        return "The asker deleted this question."
    if q.hidden_at is not None:
        return "Moderators hid this question."
    if q.is_answered:
        return "This question has already been answered."
    if is_discussion_locked(item):
        return "The discussion of this challenge is locked by moderation."
    return None


def can_view_answer(v: Viewer, a: Answer, item_ok: bool | None = None) -> bool:
    """The answer rule; ``item_ok`` passes a known answer for its challenge (threads)."""
    q = a.question
    item = q.item
    if not _item_ok(v, item, item_ok):
        return False
    if v.is_moderator:
        return True
    admin = v.is_org_admin(item.org_id)
    if q.hidden_at is not None and not (v.is_user(q.author_id) or admin):
        return False
    if a.hidden_at is not None:
        return v.is_user(a.author_id) or admin
    return True


class AnswerRule(Rule):
    model = Answer
    parent = Parent("item", "item_id", Item)
    exceptions = (SeenInCases("answer"),)

    check = staticmethod(can_view_answer)

    def clause(self, v: Viewer):
        A, Q = Answer, Question
        item_ok = self.parent_clause(v)
        if v.is_moderator:
            return item_ok
        admin = A.item_id.in_(_items_of(v.admin_org_ids)) if v.admin_org_ids else false()
        uid = v.user_id if v.is_authenticated else None
        q_ok = A.question_id.in_(select(Q.id).where(or_(
            Q.hidden_at.is_(None), (Q.author_id == uid) if uid else false())))
        a_ok = or_(A.hidden_at.is_(None), (A.author_id == uid) if uid else false())
        return and_(item_ok, or_(admin, and_(q_ok, a_ok)))

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions["edit"] = lambda v, a: post_edit_refusal(v, a) is None


# --------------------------------------------------------------------------- comments


def can_view_comment(v: Viewer, c: Comment, item_ok: bool | None = None) -> bool:
    """The comment rule; ``item_ok`` passes a known answer for its failure (threads)."""
    item = c.item
    if not _item_ok(v, item, item_ok):
        return False
    if v.is_moderator:
        return True
    if c.deleted_at is not None:
        return False
    if c.hidden_at is not None:
        return v.is_user(c.author_id) or v.is_org_admin(item.org_id)
    return True


class CommentRule(Rule):
    model = Comment
    parent = Parent("item", "item_id", Item)
    exceptions = (SeenInCases("comment"),)

    check = staticmethod(can_view_comment)

    def clause(self, v: Viewer):
        return _post_clause(self, v, shown=true())

    def doc_principals(self, c: Comment, now: datetime) -> list[str]:
        return _post_principals(c, now, published=True)

    def valid_until(self, c: Comment, now: datetime) -> datetime | None:
        return ITEMS.valid_until(c.item, now)

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions.update({
            "reply": lambda v, c: discussion_reply_refusal(v, c) is None,
            "pin": can_pin_comment,
            "edit": lambda v, c: post_edit_refusal(v, c) is None,
            "delete": lambda v, c: post_delete_refusal(v, c) is None,
        })


# --------------------------------------------------------------------------- threads, as pages


def thread_questions_clause(v: Viewer, item_ok: bool):
    """The questions a challenge's Q&A lists for the viewer (SQL over Question, to page and
    count them): those they may see (the Question rule with its exceptions) and, when they
    see the challenge (`item_ok`), answered ones deleted or hidden, shown as tombstones
    without their text. Anything else is left out, so nobody learns that an unanswered
    question or a removed one they may not see exists."""
    seen = RULE_BOOK.rule(Question).visible_clause(v)
    if not item_ok:
        return seen
    answered = exists().where(Answer.question_id == Question.id)
    return or_(seen, and_(answered, or_(Question.deleted_at.is_not(None), Question.hidden_at.is_not(None))))


def thread_replies_clause(v: Viewer, item_ok: bool):
    """The comments (replies included) a failure's discussion lists: those the viewer may see
    and, when they see the failure, hidden (not deleted) ones as tombstones."""
    seen = RULE_BOOK.rule(Comment).visible_clause(v)
    if not item_ok:
        return seen
    return or_(seen, and_(Comment.hidden_at.is_not(None), Comment.deleted_at.is_(None)))


def thread_comments_clause(v: Viewer, item_ok: bool, item_id: int):
    """The top-level comments of the failure `item_id` its discussion lists, one per thread:
    as `thread_replies_clause`, and, when the viewer sees the failure, a removed comment
    that has a listed reply (a tombstone keeps the replies in their thread)."""
    own = thread_replies_clause(v, item_ok)
    if not item_ok:
        return and_(Comment.parent_id.is_(None), own)
    with_replies = Comment.id.in_(
        select(Comment.parent_id).where(Comment.item_id == item_id, Comment.parent_id.is_not(None), own)
        .correlate(None))
    return and_(Comment.parent_id.is_(None), or_(own, with_replies))


def discussion_reply_refusal(v: Viewer, parent: Comment) -> str | None:
    return reply_refusal_given(discussion_refusal(v, parent.item), parent)


def reply_refusal_given(item_refusal: str | None, parent: Comment) -> str | None:
    """discussion_reply_refusal with its item part, ``discussion_refusal(v, parent.item)``,
    computed once by the caller: the batch form for a page of comments on one failure (the
    item part reads the rules and the moderation lock; asking it per comment is an N+1)."""
    if item_refusal:
        return item_refusal
    top = parent.parent if parent.parent_id is not None else parent
    if top.deleted_at is not None:
        return "That comment was deleted; add a new comment instead."
    if top.hidden_at is not None:
        return "That comment was hidden by moderators; add a new comment instead."
    return None


def can_pin_comment(v: Viewer, c: Comment) -> bool:
    return (can_manage_engagement(v, c.item) and c.item.kind == "failure"
            and c.deleted_at is None and c.hidden_at is None)


# --------------------------------------------------------------------------- edits and deletions


def post_edit_refusal(v: Viewer, obj: Any, now: datetime | None = None) -> str | None:
    """Authors edit their own question, answer or comment within the edit window."""
    now = now or utcnow()
    if not v.is_user(obj.author_id):
        return "Only the author can edit this."
    if getattr(obj, "deleted_at", None) is not None:
        return "This was deleted."
    if obj.hidden_at is not None:
        return "Moderators hid this; it can no longer be edited."
    if isinstance(obj, Question) and obj.is_answered:
        return "This question has been answered; it can no longer be edited."
    window = engagement_edit_window()
    if now > obj.created_at + window:
        minutes = int(window.total_seconds() // 60)
        return f"The edit window has passed: posts can be edited for {minutes} minutes after posting."
    item = obj.item
    msg = _item_state_refusal(item) if not isinstance(obj, Answer) else None
    if msg:
        return msg
    if is_discussion_locked(item):
        return "This discussion is locked by moderation; posts cannot be edited."
    return None


def post_delete_refusal(v: Viewer, obj: Any) -> str | None:
    """Authors delete their own question or comment at any time."""
    if not v.is_user(obj.author_id):
        return "Only the author can delete this."
    if obj.deleted_at is not None:
        return "This was already deleted."
    return None


# --------------------------------------------------------------------------- asset terms and requests


class AssetTermsRule(ParentRule):
    model = AssetTerms
    parent = Parent("item", "item_id", Item)


def engagement_open_report_clause(target_type: str, target_id: Any):
    """SQL: an open moderation report exists on this target."""
    return exists().where(Report.target_type == target_type, Report.target_id == target_id,
                          Report.status == ReportStatus.OPEN.value)


def engagement_has_open_report(target_type: str, target_id: int) -> bool:
    return bool(db.session.execute(select(engagement_open_report_clause(target_type, target_id))).scalar())


def _check_request(r: AssetRequest) -> None:
    if r.status not in KNOWN_ASSET_REQUEST_STATUS:
        raise PolicyError(f"unknown request status {r.status!r}")
    if r.kind not in RequestKind.values():
        raise PolicyError(f"unknown request kind {r.kind!r}")


def is_request_sender_side(v: Viewer, r: AssetRequest) -> bool:
    """The person who sent it, or the owners/admins of the organisation it was sent for."""
    return v.is_user(r.author_id) or (r.requester_org_id is not None and v.is_org_admin(r.requester_org_id))


def is_request_owner_side(v: Viewer, r: AssetRequest) -> bool:
    return v.is_org_admin(r.item.org_id)


class AssetRequestRule(Rule):
    """Private to its two parties; site moderators see it only while a report on it is open
    (no case exception: a closed case on a private request shows nothing more)."""

    model = AssetRequest

    def check(self, v: Viewer, r: AssetRequest) -> bool:
        _check_request(r)
        if is_request_sender_side(v, r) or is_request_owner_side(v, r):
            return True
        return v.is_moderator and engagement_has_open_report("asset_request", r.id)

    def clause(self, v: Viewer):
        AR = AssetRequest
        if not v.is_authenticated:
            return false()
        conds = [AR.author_id == v.user_id]
        if v.admin_org_ids:
            conds.append(AR.requester_org_id.in_(list(v.admin_org_ids)))
            conds.append(AR.item_id.in_(_items_of(v.admin_org_ids)))
        if v.is_moderator:
            conds.append(engagement_open_report_clause("asset_request", AR.id))
        return or_(*conds)

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions.update({
            "decide": can_decide_request,
            "respond": can_respond_to_request,
            "withdraw": can_respond_to_request,
        })


def can_decide_request(v: Viewer, r: AssetRequest) -> bool:
    """Accept, decline or propose a follow-up: the owning organisation, while it is open."""
    _check_request(r)
    return is_request_owner_side(v, r) and r.is_open


def can_respond_to_request(v: Viewer, r: AssetRequest) -> bool:
    _check_request(r)
    return is_request_sender_side(v, r) and r.is_open


for _r in (QuestionRule(), AnswerRule(), CommentRule(), AssetTermsRule(), AssetRequestRule()):
    rule(_r)
