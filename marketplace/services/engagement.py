"""Writes for engagement: participation rules, challenge Q&A, failure discussions, asset
licence terms and requests.

Every function checks the policy itself (404 for what the user may not see, 403 with the
rule's "why you cannot" message), validates, writes, records governance events and
notifications in the same transaction, and commits. A ServiceError means nothing was
written: functions roll back before raising.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from .. import audit, policy
from ..extensions import db
from ..models import (
    Item,
    ItemKind,
    Organisation,
    User,
    utcnow,
)
from ..models.engagement import (
    Answer,
    AssetRequest,
    AssetTerms,
    Comment,
    EngagementRules,
    FeeModel,
    LicenceKind,
    Participation,
    Question,
    RequestEvent,
    RequestKind,
    RequestStatus,
)
from ..notify import notify
from ..sanitize import plain_text, render_markdown
from .common import ServiceError, lock_row
from .notifications import org_admins

MAX_QUESTION = 2_000
MAX_ANSWER = 10_000
MAX_COMMENT = 10_000
MAX_MESSAGE = 5_000
MAX_REASON = 2_000
MAX_CUTOFF_HOURS = 24 * 30
MAX_OPEN_REQUESTS = 20
# The whole-number participation rules: name -> (least, most, refusal when outside).
_WHOLE_NUMBER_RULES = {
    "question_cutoff_hours": (0, MAX_CUTOFF_HOURS,
                              f"The question cut-off must be between 0 and {MAX_CUTOFF_HOURS} hours."),
    "max_open_requests": (1, MAX_OPEN_REQUESTS, f"The limit of open requests must be between 1 and {MAX_OPEN_REQUESTS}."),
}

F = TypeVar("F", bound=Callable[..., Any])


def _atomic(fn: F) -> F:
    """Roll back whatever the function started (locks included) when it refuses or fails."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BaseException:
            db.session.rollback()
            raise

    return wrapper  # type: ignore[return-value]


def _must_see(user: User, obj: Any) -> None:
    if not policy.can(user, "view", obj):
        raise ServiceError("There is nothing here, or you may not see it.", 404)


def _refuse_if(msg: str | None, status: int = 403, field: str | None = None) -> None:
    if msg:
        raise ServiceError(msg, status, field)


def _text(value: str | None, max_len: int, what: str, field: str = "body", required: bool = True) -> str:
    text = (value or "").strip()
    if required and not text:
        raise ServiceError(f"The {what} is empty; write something first.", field=field)
    if len(text) > max_len:
        raise ServiceError(f"The {what} is too long: at most {max_len:,} characters (it has {len(text):,}).",
                           field=field)
    return text


_PLURAL = {"challenge": "challenges", "failure": "failures", "asset": "assets"}


def _url(endpoint: str, fallback: str, **values) -> str:
    """url_for when a request is active, else the same path built by hand (CLI, tests)."""
    from flask import url_for

    try:
        return url_for(endpoint, **values)
    except RuntimeError:
        return fallback


def item_url(item: Item, anchor: str = "") -> str:
    """The item's page; with the anchor of a post (question-12, comment-7), a permalink that
    opens the thread at the page holding it (``post=``, read by the engagement panel)."""
    if anchor.startswith(POST_ANCHORS):
        path = _url("items.detail", f"/{_PLURAL[item.kind]}/{item.id}?post={anchor}", kind=item.kind,
                    item_id=item.id, post=anchor)
    else:
        path = _url("items.detail", f"/{_PLURAL[item.kind]}/{item.id}", kind=item.kind, item_id=item.id)
    return path + (f"#{anchor}" if anchor else "")


POST_ANCHORS = ("question-", "answer-", "comment-")


def request_url(r: AssetRequest) -> str:
    return _url("engagement.request_detail", f"/engage/requests/{r.id}", request_id=r.id)


def _tell(users, kind: str, message: str, url: str, about: Any, item: Item, skip: int | None = None) -> None:
    """Notify each user who may see both the item and the object it is about."""
    seen: set[int] = set()
    for u in users:
        if u is None or u.id in seen or u.id == skip:
            continue
        seen.add(u.id)
        if policy.can(u, "view", item):
            notify(u, kind, message, url, about=about)


# --------------------------------------------------------------------------- rules


def rules_for(item: Item) -> EngagementRules:
    return policy.engagement_rules(item)


@_atomic
def set_rules(user: User, item: Item, data: dict[str, Any]) -> EngagementRules:
    """Declare the item's participation rules; keys not given keep their current value."""
    _must_see(user, item)
    if not policy.can(user, "manage_engagement", item):
        raise ServiceError("Only the organisation's owners and admins set participation rules.", 403)
    row = db.session.execute(select(EngagementRules).where(EngagementRules.item_id == item.id)).scalar()
    current = row or policy.engagement_rules(item)
    before = {k: getattr(current, k) for k in EngagementRules.DEFAULTS}
    values = dict(before)
    for name in ("comment_rule", "ask_rule", "request_rule"):
        if name in data and data[name] is not None:
            if data[name] not in Participation.values():
                raise ServiceError(f"Unknown participation rule {str(data[name])[:40]!r}.", field=name)
            values[name] = data[name]
    if "open_until" in data:
        until = data["open_until"]
        if until is not None and until <= utcnow() and until != before["open_until"]:
            raise ServiceError("“Open until” must be in the future (leave it empty for no end).", field="open_until")
        values["open_until"] = until
    for name, (least, most, refusal) in _WHOLE_NUMBER_RULES.items():
        if data.get(name) is not None:
            n = data[name]
            if not isinstance(n, int) or not least <= n <= most:
                raise ServiceError(refusal, field=name)
            values[name] = n
    if row is None:
        row = EngagementRules(item_id=item.id)
        db.session.add(row)
    for k, v in values.items():
        setattr(row, k, v)
    row.updated_by_id = user.id
    changed = {k: [_j(before[k]), _j(values[k])] for k in values if before[k] != values[k]}
    db.session.flush()
    if changed:
        audit.record("engagement.rules_changed", item.kind, item.id, actor_id=user.id, item_id=item.id,
                     data=changed)
    db.session.commit()
    return row


def _j(v: Any) -> Any:
    return v.isoformat() if isinstance(v, datetime) else v


# --------------------------------------------------------------------------- Q&A


@_atomic
def ask_question(user: User, item: Item, body: str, show_name: bool = False) -> Question:
    _must_see(user, item)
    _refuse_if(policy.ask_refusal(policy.viewer_for(user), item))
    text = _text(body, MAX_QUESTION, "question")
    q = Question(item_id=item.id, author_id=user.id, show_name=bool(show_name), body=text,
                 body_html=render_markdown(text))
    db.session.add(q)
    db.session.flush()
    audit.record("question.asked", "question", q.id, actor_id=user.id, item_id=item.id,
                 data={"show_name": q.show_name})
    asker = user.display_name if q.show_name else "A participant"
    _tell(org_admins(item.org_id), "question", f"{asker} asked a question on “{item.title}”.",
          item_url(item, f"question-{q.id}"), q, item, skip=user.id)
    db.session.commit()
    return q


@_atomic
def answer_question(user: User, q: Question, body: str) -> Answer:
    """The posting organisation answers: the question and its answer are then published."""
    _must_see(user, q)
    text = _text(body, MAX_ANSWER, "answer")
    lock_row(Question, q.id)  # one answer per question, even when two admins answer at once
    db.session.expire(q)
    _refuse_if(policy.question_answer_refusal(policy.viewer_for(user), q), 409 if q.is_answered else 403)
    a = Answer(question_id=q.id, item_id=q.item_id, author_id=user.id, body=text, body_html=render_markdown(text))
    db.session.add(a)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ServiceError("This question has already been answered.", 409)
    db.session.expire(q, ["answer"])
    audit.record("question.answered", "question", q.id, actor_id=user.id, item_id=q.item_id,
                 data={"answer_id": a.id})
    item = q.item
    _tell([q.author], "answer", f"Your question on “{item.title}” was answered.",
          item_url(item, f"question-{q.id}"), q, item, skip=user.id)
    db.session.commit()
    return a


# --------------------------------------------------------------------------- discussion


@_atomic
def add_comment(user: User, item: Item, body: str, parent: Comment | None = None) -> Comment:
    """A top-level comment, or a "what we learned too" reply. Threads are one level deep:
    a reply to a reply attaches to its top-level comment."""
    _must_see(user, item)
    v = policy.viewer_for(user)
    top = None
    if parent is not None:
        if parent.item_id != item.id:
            raise ServiceError("That comment belongs to another discussion.", 400)
        _must_see(user, parent)
        top = parent.parent if parent.parent_id is not None else parent
        _refuse_if(policy.discussion_reply_refusal(v, parent))
    else:
        _refuse_if(policy.discussion_refusal(v, item))
    text = _text(body, MAX_COMMENT, "comment")
    c = Comment(item_id=item.id, parent_id=top.id if top else None, author_id=user.id, body=text,
                body_html=render_markdown(text))
    db.session.add(c)
    db.session.flush()
    audit.record("comment.posted", "comment", c.id, actor_id=user.id, item_id=item.id,
                 data={"parent_id": c.parent_id})
    if top is not None:
        _tell([top.author], "reply", f"{user.display_name} replied to your comment on “{item.title}”.",
              item_url(item, f"comment-{c.id}"), c, item, skip=user.id)
    db.session.commit()
    return c


@_atomic
def pin_comment(user: User, c: Comment) -> None:
    """Pin one comment or reply as the discussion's most useful lesson (replacing any other)."""
    _must_see(user, c)
    if not policy.can(user, "pin", c):
        raise ServiceError("Only the organisation's owners and admins pin lessons, and only visible comments.", 403)
    lock_row(Item, c.item_id)
    for other in db.session.execute(
        select(Comment).where(Comment.item_id == c.item_id, Comment.pinned_at.is_not(None), Comment.id != c.id)
    ).scalars():
        other.pinned_at = None
        other.pinned_by_id = None
    c.pinned_at = utcnow()
    c.pinned_by_id = user.id
    audit.record("comment.pinned", "comment", c.id, actor_id=user.id, item_id=c.item_id)
    db.session.commit()


@_atomic
def unpin_comment(user: User, c: Comment) -> None:
    _must_see(user, c)
    if not policy.can(user, "manage_engagement", c.item):
        raise ServiceError("Only the organisation's owners and admins pin lessons.", 403)
    if c.pinned_at is None:
        return
    c.pinned_at = None
    c.pinned_by_id = None
    audit.record("comment.unpinned", "comment", c.id, actor_id=user.id, item_id=c.item_id)
    db.session.commit()


@_atomic
def set_discussion_closed(user: User, item: Item, closed: bool) -> EngagementRules:
    _must_see(user, item)
    if item.kind != ItemKind.FAILURE.value:
        raise ServiceError("Discussions are held on failures.", 400)
    if not policy.can(user, "manage_engagement", item):
        raise ServiceError("Only the organisation's owners and admins close or reopen the discussion.", 403)
    row = db.session.execute(select(EngagementRules).where(EngagementRules.item_id == item.id)).scalar()
    if row is not None and (row.discussion_closed_at is not None) == closed:
        return row
    if row is None:
        if not closed:
            return policy.engagement_rules(item)
        row = EngagementRules(item_id=item.id, **EngagementRules.DEFAULTS)
        db.session.add(row)
    row.discussion_closed_at = utcnow() if closed else None
    row.updated_by_id = user.id
    db.session.flush()
    audit.record("discussion.closed" if closed else "discussion.reopened", item.kind, item.id,
                 actor_id=user.id, item_id=item.id)
    db.session.commit()
    return row


# --------------------------------------------------------------------------- edits and deletions

_LIMITS = {Question: (MAX_QUESTION, "question"), Answer: (MAX_ANSWER, "answer"), Comment: (MAX_COMMENT, "comment")}
_SUBJECT = {Question: "question", Answer: "answer", Comment: "comment"}


@_atomic
def edit_post(user: User, obj: Question | Answer | Comment, body: str) -> None:
    """Authors edit within the window; the post is then marked as edited."""
    _must_see(user, obj)
    _refuse_if(policy.post_edit_refusal(policy.viewer_for(user), obj))
    max_len, what = _LIMITS[type(obj)]
    text = _text(body, max_len, what)
    if text == obj.body:
        return
    obj.body = text
    obj.body_html = render_markdown(text)
    obj.edited_at = utcnow()
    audit.record(f"{_SUBJECT[type(obj)]}.edited", _SUBJECT[type(obj)], obj.id, actor_id=user.id,
                 item_id=obj.item_id)
    db.session.commit()


@_atomic
def delete_post(user: User, obj: Question | Comment) -> None:
    """Authors delete their question or comment: it leaves a tombstone when it has an answer
    or replies, and otherwise disappears from view."""
    if not isinstance(obj, (Question, Comment)):
        raise ServiceError("Answers cannot be deleted.", 400)
    _must_see(user, obj)
    _refuse_if(policy.post_delete_refusal(policy.viewer_for(user), obj))
    obj.deleted_at = utcnow()
    if isinstance(obj, Comment):
        obj.pinned_at = None
        obj.pinned_by_id = None
    audit.record(f"{_SUBJECT[type(obj)]}.deleted", _SUBJECT[type(obj)], obj.id, actor_id=user.id,
                 item_id=obj.item_id)
    db.session.commit()


# --------------------------------------------------------------------------- asset terms

TERMS_FIELDS = ("licence_kind", "field_of_use", "territory", "duration", "fee_model", "notes")
TERMS_LIMITS = {"field_of_use": 200, "territory": 120, "duration": 120, "notes": 2_000}


def current_terms(item: Item) -> AssetTerms | None:
    return db.session.execute(
        select(AssetTerms).where(AssetTerms.item_id == item.id).order_by(AssetTerms.version.desc()).limit(1)
    ).scalar()


def terms_versions(item: Item) -> list[AssetTerms]:
    return list(db.session.execute(
        select(AssetTerms).where(AssetTerms.item_id == item.id).order_by(AssetTerms.version.desc())
    ).scalars())


def terms_document(item_id: int, version: int, fields: dict[str, str]) -> dict[str, Any]:
    """What the digest covers: the asset, the version and every term."""
    return {"asset_id": item_id, "version": version, **{f: fields[f] for f in TERMS_FIELDS}}


def validate_terms(data: dict[str, Any]) -> dict[str, str]:
    out = {f: (data.get(f) or "").strip() for f in TERMS_FIELDS}
    if out["licence_kind"] not in LicenceKind.values():
        raise ServiceError("Choose a licence kind.", field="licence_kind")
    if out["fee_model"] not in FeeModel.values():
        raise ServiceError("Choose a fee model.", field="fee_model")
    for f, n in TERMS_LIMITS.items():
        if len(out[f]) > n:
            raise ServiceError(f"At most {n} characters.", field=f)
    kind = out["licence_kind"]
    if kind == LicenceKind.COLLABORATION_ONLY.value:
        if out["fee_model"] not in (FeeModel.NONE.value, FeeModel.NEGOTIABLE.value):
            raise ServiceError("Collaboration-only terms license nothing: choose “none” or “negotiable” as "
                               "the fee model.", field="fee_model")
    else:
        if out["fee_model"] == FeeModel.NONE.value:
            raise ServiceError("A licence needs a fee model (choose “free” for a free licence).", field="fee_model")
        if kind == LicenceKind.OPEN.value and out["fee_model"] != FeeModel.FREE.value:
            raise ServiceError("An open licence is free of charge: choose “free” as the fee model.",
                               field="fee_model")
        for f, label in (("field_of_use", "field of use"), ("territory", "territory"), ("duration", "duration")):
            if not out[f]:
                raise ServiceError(f"A licence needs a {label} (for example “any”, “worldwide” or "
                                   f"“perpetual”).", field=f)
    return out


@_atomic
def publish_terms(user: User, item: Item, data: dict[str, Any]) -> AssetTerms:
    """Publish a new version of the asset's licence terms (versions are immutable)."""
    _must_see(user, item)
    if item.kind != ItemKind.ASSET.value:
        raise ServiceError("Licence terms are declared on assets.", 400)
    if not policy.can(user, "manage_engagement", item):
        raise ServiceError("Only the organisation's owners and admins declare licence terms.", 403)
    fields = validate_terms(data)
    lock_row(Item, item.id)  # versions are numbered one after the other
    current = current_terms(item)
    if current is not None and all(getattr(current, f) == fields[f] for f in TERMS_FIELDS):
        raise ServiceError(f"These are the terms of version {current.version} already; change something first.",
                           409)
    version = (current.version + 1) if current else 1
    canonical = audit.canonical_json(terms_document(item.id, version, fields))
    t = AssetTerms(item_id=item.id, version=version, canonical=canonical, digest=audit.sha256_hex(canonical),
                   created_by_id=user.id, **fields)
    db.session.add(t)
    db.session.flush()
    audit.record("asset.terms_published", "asset_terms", t.id, actor_id=user.id, item_id=item.id,
                 data={"version": version, "digest": t.digest})
    db.session.commit()
    return t


# --------------------------------------------------------------------------- requests


def _party(user: User, org: Organisation | None) -> str:
    return f"org:{org.id}" if org is not None else f"user:{user.id}"


@_atomic
def send_request(user: User, item: Item, kind: str, message: str, *, terms_version: int | None,
                 terms_digest: str | None, on_behalf_of: Organisation | None = None) -> AssetRequest:
    """Register interest or send a licence / collaboration request against the exact terms
    version and digest the sender saw. Private to the two parties."""
    _must_see(user, item)
    if kind not in RequestKind.values():
        raise ServiceError("Choose what you are asking for: interest, a licence or a collaboration.", field="kind")
    text = _text(message, MAX_MESSAGE, "message", field="message", required=kind != RequestKind.INTEREST.value)
    v = policy.viewer_for(user)
    party = _party(user, on_behalf_of)
    # Serialise requests to this organisation's assets: the limit and duplicate checks below
    # then see every committed request, so parallel submissions leave exactly one open
    # request. The organisation row, not the item: locking the item on SQLite bumps its
    # updated_at, which public feeds show, and requests are private.
    lock_row(Organisation, item.org_id)
    _refuse_if(policy.asset_request_refusal(v, item, party=party))
    terms = current_terms(item)
    if terms is None:
        if kind != RequestKind.INTEREST.value:
            raise ServiceError("This asset has no licence terms yet; register interest instead.", 409, "kind")
        if terms_version or terms_digest:
            raise ServiceError("The licence terms shown to you no longer exist; reload the page.", 409)
    else:
        if terms_version != terms.version or (terms_digest or "").strip().lower() != terms.digest:
            raise ServiceError(
                f"The licence terms changed since you loaded the page: you saw version {terms_version or '?'}, "
                f"the current one is version {terms.version} (digest {terms.digest[:12]}…). Read the current "
                f"terms and send your request again.", 409)
        if kind == RequestKind.LICENCE.value and terms.collaboration_only:
            raise ServiceError("This asset is offered for collaboration only; send a collaboration request.",
                               field="kind")
    dup = db.session.execute(
        select(AssetRequest.id).where(AssetRequest.open_key == _open_key(item.id, party, kind))
    ).first()
    if dup:
        raise ServiceError(f"You already have an open {kind} request for this asset.", 409)
    r = AssetRequest(item_id=item.id, author_id=user.id, requester_org_id=on_behalf_of.id if on_behalf_of else None,
                     kind=kind, terms_id=terms.id if terms else None,
                     terms_version=terms.version if terms else None, terms_digest=terms.digest if terms else None,
                     message=text, message_html=render_markdown(text), status=RequestStatus.PENDING.value,
                     open_key=_open_key(item.id, party, kind))
    db.session.add(r)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ServiceError(f"You already have an open {kind} request for this asset.", 409)
    db.session.add(RequestEvent(request_id=r.id, actor_id=user.id, action="sent", side="requester",
                                message=text, message_html=r.message_html))
    # Request events stay out of the per-item decision log (item_id None): requests are private.
    audit.record("request.sent", "asset_request", r.id, actor_id=user.id,
                 data={"kind": kind, "terms_version": r.terms_version, "terms_digest": r.terms_digest})
    who = on_behalf_of.name if on_behalf_of else user.display_name
    _tell(org_admins(item.org_id), "request", f"{who} sent a {kind} request for “{item.title}”.",
          request_url(r), r, item, skip=user.id)
    db.session.commit()
    return r


def _open_key(item_id: int, party: str, kind: str) -> str:
    return f"{item_id}:{party}:{kind}"


DECISIONS = {"accept": RequestStatus.ACCEPTED.value, "decline": RequestStatus.DECLINED.value,
             "follow-up": RequestStatus.FOLLOW_UP.value}
_DECISION_ACTION = {"accept": "accepted", "decline": "declined", "follow-up": "follow-up"}


def _lock_request(r: AssetRequest) -> None:
    lock_row(AssetRequest, r.id)
    db.session.expire(r)


def _tell_requester(r: AssetRequest, message: str, skip: int | None) -> None:
    users = [r.author]
    if r.requester_org_id:
        users += org_admins(r.requester_org_id)
    _tell(users, "request", message, request_url(r), r, r.item, skip=skip)


@_atomic
def decide_request(user: User, r: AssetRequest, decision: str, message: str = "") -> AssetRequest:
    """The owning organisation accepts, declines (with a reason) or proposes a follow-up."""
    _must_see(user, r)
    if decision not in DECISIONS:
        raise ServiceError("Choose accept, decline or propose a follow-up.", field="decision")
    text = _text(message, MAX_REASON if decision == "decline" else MAX_MESSAGE,
                 {"decline": "reason", "follow-up": "follow-up proposal"}.get(decision, "message"),
                 field="message", required=decision != "accept")
    _lock_request(r)
    if not policy.is_request_owner_side(policy.viewer_for(user), r):
        raise ServiceError("Only the owning organisation's owners and admins decide on requests.", 403)
    if not policy.can(user, "decide", r):
        raise ServiceError(f"This request is {r.status}; it can no longer be decided.", 409)
    r.status = DECISIONS[decision]
    if not r.is_open:
        r.open_key = None
    html = render_markdown(text)
    db.session.add(RequestEvent(request_id=r.id, actor_id=user.id, action=_DECISION_ACTION[decision],
                                side="owner", message=text, message_html=html))
    audit.record(f"request.{_DECISION_ACTION[decision]}", "asset_request", r.id, actor_id=user.id,
                 data={"terms_version": r.terms_version, "terms_digest": r.terms_digest})
    label = {"accept": "accepted", "decline": "declined", "follow-up": "answered with a follow-up proposal"}[decision]
    _tell_requester(r, f"Your {r.kind} request for “{r.item.title}” was {label}.", skip=user.id)
    if decision == "accept":
        # An accepted request for an asset with a data-sharing sheet, sent for an
        # organisation, becomes a proposed agreement in this same transaction.
        from .agreements import propose_for_request

        propose_for_request(user, r)
    db.session.commit()
    return r


@_atomic
def respond_to_request(user: User, r: AssetRequest, message: str) -> AssetRequest:
    """The requester adds to an open request (e.g. answers a follow-up proposal)."""
    _must_see(user, r)
    text = _text(message, MAX_MESSAGE, "message", field="message")
    return _requester_step(user, r, "respond", text, RequestStatus.PENDING.value, "replied",
                           "Only the requester can add to the request here.",
                           f"New message on a {r.kind} request for “{r.item.title}”.")


@_atomic
def withdraw_request(user: User, r: AssetRequest, message: str = "") -> AssetRequest:
    _must_see(user, r)
    text = _text(message, MAX_MESSAGE, "message", field="message", required=False)
    return _requester_step(user, r, "withdraw", text, RequestStatus.WITHDRAWN.value, "withdrawn",
                           "Only the requester can withdraw the request.",
                           f"A {r.kind} request for “{r.item.title}” was withdrawn.")


def _requester_step(user: User, r: AssetRequest, policy_action: str, text: str, status: str, event: str,
                    not_requester: str, org_message: str) -> AssetRequest:
    """The requester's side moves an open request on: under the row lock, check, set the
    status, record the event (with its message) and tell the organisation's admins."""
    _lock_request(r)
    if not policy.is_request_sender_side(policy.viewer_for(user), r):
        raise ServiceError(not_requester, 403)
    if not policy.can(user, policy_action, r):
        raise ServiceError(f"This request is {r.status}; it is closed.", 409)
    r.status = status
    if not r.is_open:
        r.open_key = None
    db.session.add(RequestEvent(request_id=r.id, actor_id=user.id, action=event, side="requester",
                                message=text, message_html=render_markdown(text)))
    audit.record(f"request.{event}", "asset_request", r.id, actor_id=user.id)
    _tell(org_admins(r.item.org_id), "request", org_message, request_url(r), r, r.item, skip=user.id)
    db.session.commit()
    return r


# --------------------------------------------------------------------------- search


def search_document(obj: Question | Comment) -> dict[str, Any]:
    """What the index stores for a question (with its answer, unless hidden) or a comment.

    Never the author of an anonymous question, never request content (requests are not
    searchable). Who may find it: the policy's doc_principals for the row. Like hidden items
    and ideas, a hidden post keeps its text, found only by those who may see it (its author,
    the organisation's admins, moderators); a post its author deleted is indexed empty. A
    hidden answer is never indexed with its question, which more people may see.
    """
    item = obj.item
    if isinstance(obj, Question):
        text = plain_text(obj.body)
        if obj.answer is not None and obj.answer.hidden_at is None:
            text += "\n" + plain_text(obj.answer.body)
        if obj.deleted_at is not None:
            text = ""
        return {"id": obj.id, "type": "question", "title": f"Q&A: {item.title}", "text": text,
                "org_id": item.org_id, "tags": list(item.tags),
                "status": "answered" if obj.is_answered else "unanswered", "created_at": obj.created_at,
                "item_id": item.id}
    if isinstance(obj, Comment):
        text = "" if obj.deleted_at is not None else plain_text(obj.body)
        return {"id": obj.id, "type": "comment", "title": f"Discussion: {item.title}", "text": text,
                "org_id": item.org_id, "tags": list(item.tags),
                "status": "reply" if obj.parent_id else "comment", "created_at": obj.created_at,
                "item_id": item.id}
    raise TypeError(f"no search document for {type(obj).__name__}")
