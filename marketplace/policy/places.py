"""Who moderates which place, and the exceptions to visibility that follow from it.

A moderation *place* is where a target lives: its type, owning organisation, context item
(kind) and whether it is discussion content. Reports, actions and automatic flags store
their target's place when written, so `moderation_place_clause` is the same rule in SQL.

* site moderators and admins moderate everything;
* moderators scoped to an organisation (ModeratorScope) moderate its challenges and what is
  under them (ideas, questions, answers), never organisation profiles, user accounts or
  private asset requests;
* organisation owners/admins moderate discussion content (questions, answers, comments) on
  their own organisation's items, not the items themselves, not ideas, not other orgs'.

Moderators see what they moderate. Two declared exceptions carry that into the visibility
rules that list them in their ``exceptions``:

* `SeenInCases`: a report, action or flag on the row in the viewer's place lets them see it;
* `ScopedModeratorsSeeCaseContext`: a scoped moderator sees a published challenge of their
  organisations in which something was reported or acted on (the case's context).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, false, or_, select, true

from ..extensions import db
from ..models import Item, ItemKind, Status
from ..models.moderation import ItemModeration, ModerationAction, ModerationFlag, ModeratorScope, Report
from .core import Viewer, read_memo, request_memo

# Target types only site moderators act on.
MODERATION_SITE_ONLY_TYPES = frozenset({"organisation", "user", "asset_request"})
PUBLISHED_STATES = (Status.OPEN.value, Status.CLOSED.value, Status.ARCHIVED.value)
# The rows that open a moderation case on a target (each stores the target's place).
CASE_MODELS = (Report, ModerationAction, ModerationFlag)


def moderator_scope_org_ids(v: Viewer) -> frozenset[int]:
    """Organisations whose challenges the viewer moderates by appointment (memoised per request)."""
    if not v.is_authenticated:
        return frozenset()
    cache = request_memo("_policy_mod_scopes")
    if v.user_id not in cache:
        cache[v.user_id] = frozenset(db.session.execute(
            select(ModeratorScope.org_id).where(ModeratorScope.user_id == v.user_id)).scalars())
    return cache[v.user_id]


def forget_moderator_scopes(user_id: int | None = None) -> None:
    """Kept for the services' readability: scopes are one of the viewer memos."""
    from .core import forget_viewer

    forget_viewer(user_id)


def moderates_place(v: Viewer, target_type: str, org_id: int | None, context_kind: str | None,
                    is_discussion: bool) -> bool:
    """The moderation-scope rule (twin: moderation_place_clause)."""
    if not v.is_authenticated:
        return False
    if v.is_moderator:
        return True
    if target_type in MODERATION_SITE_ONLY_TYPES or org_id is None:
        return False
    if context_kind == ItemKind.CHALLENGE.value and org_id in moderator_scope_org_ids(v):
        return True
    return bool(is_discussion) and v.is_org_admin(org_id)


def moderation_place_clause(v: Viewer, model: type):
    """SQL twin of moderates_place over a model carrying the place snapshot
    (Report, ModerationAction, ModerationFlag)."""
    if not v.is_authenticated:
        return false()
    if v.is_moderator:
        return true()
    conds = []
    scoped = moderator_scope_org_ids(v)
    if scoped:
        conds.append(and_(model.context_kind == ItemKind.CHALLENGE.value, model.org_id.in_(list(scoped))))
    admins = list(v.admin_org_ids)
    if admins:
        conds.append(and_(model.is_discussion.is_(True), model.org_id.in_(admins)))
    if not conds:
        return false()
    return and_(model.target_type.not_in(list(MODERATION_SITE_ONLY_TYPES)), model.org_id.is_not(None),
                or_(*conds))


def in_place(v: Viewer, row: Any) -> bool:
    """A report, action or flag row lies in the viewer's moderation place."""
    return moderates_place(v, row.target_type, row.org_id, row.context_kind, row.is_discussion)


# --------------------------------------------------------------------------- the exceptions


@dataclass(frozen=True)
class SeenInCases:
    """Moderators see what they moderate: whoever moderates the place of a report, an action
    or an automatic flag on the row may see it (hidden, withdrawn or deleted)."""

    target_type: str

    def grants(self, v: Viewer, obj: Any) -> bool:
        if not v.is_authenticated or obj.id is None:
            return False
        for model in CASE_MODELS:
            rows = db.session.execute(
                select(model).where(model.target_type == self.target_type, model.target_id == obj.id)
            ).scalars()
            if any(in_place(v, r) for r in rows):
                return True
        return False

    def clause(self, v: Viewer, model: type):
        if not v.is_authenticated:
            return false()
        return or_(*[
            exists().where(case.target_type == self.target_type, case.target_id == model.id,
                           moderation_place_clause(v, case))
            for case in CASE_MODELS
        ])


@dataclass(frozen=True)
class ScopedModeratorsSeeCaseContext:
    """A moderator scoped to an organisation sees its published challenges in which something
    was reported or acted on: the context of the case they handle."""

    def grants(self, v: Viewer, item: Item) -> bool:
        if item.org_id not in moderator_scope_org_ids(v) or item.kind != ItemKind.CHALLENGE.value:
            return False
        if item.status not in PUBLISHED_STATES:
            return False
        for model in (Report, ModerationAction):
            if db.session.execute(select(model.id).where(model.context_item_id == item.id).limit(1)).first():
                return True
        return False

    def clause(self, v: Viewer, model: type):
        orgs = moderator_scope_org_ids(v)
        if not orgs:
            return false()
        return and_(
            model.org_id.in_(list(orgs)), model.kind == ItemKind.CHALLENGE.value, model.status.in_(PUBLISHED_STATES),
            or_(exists().where(Report.context_item_id == model.id),
                exists().where(ModerationAction.context_item_id == model.id)),
        )


def is_discussion_locked(item: Item) -> bool:
    """Moderators (or the org's admins) locked this item's discussion: no new questions,
    answers or comments. Engagement asks this before every contribution."""
    if item is None or item.id is None:
        return False
    # A page asks this for every post (its edit link); reads of GET and HEAD requests share
    # one answer per item (any write in the request drops it). Writes read it fresh, after
    # their row locks.
    memo = read_memo("_policy_locks")
    if item.id not in memo:
        memo[item.id] = db.session.execute(
            select(ItemModeration.id).where(ItemModeration.item_id == item.id,
                                            ItemModeration.discussion_locked_at.is_not(None))
        ).first() is not None
    return memo[item.id]
