"""Moderation and governance: reporting, acting as a moderator, cases, appeals and flags.

Who moderates which place is in places.py. Here:

* anyone signed in who may see a thing may report it (never their own profile);
* acting on a target (dismiss, hide, restore, ask to edit) needs moderating its place;
  where a target lives is `placement(obj)`, one table for every reportable model;
* reports, actions and flags are seen by whoever moderates their place; an action also by
  the people it affects; who reported is shown to site moderators only;
* an affected author appeals a decision once, unless it was reversed or is not appealable;
  a moderator in scope who neither took the decision nor is affected by it decides;
* locking an item's discussion: moderators in scope and the item's own org admins;
  suspending accounts: site moderators (staff only by site admins, never oneself).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import exists, false, or_, select

from ..extensions import db
from ..models import (
    Answer,
    AssetRequest,
    Comment,
    Idea,
    Item,
    ItemKind,
    Organisation,
    Question,
    SiteRole,
    User,
)
from ..models.moderation import (
    APPEALABLE,
    ActionKind,
    Appeal,
    AppealStatus,
    FlagStatus,
    ModerationAction,
    ModerationActionUser,
    ModerationFlag,
    Report,
)
from .core import PolicyError, Rule, RULE_BOOK, Viewer, rule, site_action
from .items import ITEMS, check_known
from .orgs import can_administer_site, can_moderate
from .places import in_place, moderates_place, moderation_place_clause, moderator_scope_org_ids


@dataclass(frozen=True)
class Placement:
    """Where a target lives; snapshotted onto reports, actions and flags."""

    target_type: str
    org_id: int | None
    context_item_id: int | None
    context_kind: str | None
    is_discussion: bool


def _under_item(target_type: str, item: Item | None, discussion: bool = False) -> Placement:
    if item is None:
        return Placement(target_type, None, None, None, discussion)
    return Placement(target_type, item.org_id, item.id, item.kind, discussion)


def _item_place(item: Item) -> Placement:
    if item.kind not in ItemKind.values():
        raise PolicyError(f"unknown item kind {item.kind!r}")
    return _under_item(item.kind, item)


# Every reportable model and where its rows live. Questions, answers and comments are
# discussion content (their organisation's admins moderate them on their own items).
PLACES = {
    Item: _item_place,
    Organisation: lambda o: Placement("organisation", o.id, None, None, False),
    User: lambda u: Placement("user", None, None, None, False),
    Idea: lambda i: _under_item("idea", db.session.get(Item, i.challenge_id)),
    Question: lambda q: _under_item("question", db.session.get(Item, q.item_id), True),
    Answer: lambda a: _under_item("answer", db.session.get(Item, a.item_id), True),
    Comment: lambda c: _under_item("comment", db.session.get(Item, c.item_id), True),
    AssetRequest: lambda r: _under_item("asset_request", db.session.get(Item, r.item_id)),
}


def placement(target: Any) -> Placement:
    """Where a target lives; an unknown type fails closed."""
    for cls in type(target).__mro__:
        fn = PLACES.get(cls)
        if fn is not None:
            return fn(target)
    raise PolicyError(f"{type(target).__name__} is not a reportable type")


# Decisions about an item's discussion, not about the item: the item's own organisation
# admins take them (can_lock_discussion), so they are placed as discussion moderation.
DISCUSSION_DECISIONS = frozenset({ActionKind.LOCK.value, ActionKind.UNLOCK.value})


def decision_placement(kind: str, target: Any) -> Placement:
    """Where a moderation decision of `kind` on `target` lives (snapshotted on the action)."""
    p = placement(target)
    return replace(p, is_discussion=True) if kind in DISCUSSION_DECISIONS else p


def can_moderate_target(v: Viewer, target: Any) -> bool:
    """May the viewer act as a moderator on this target (dismiss, hide, restore, ask to edit)?"""
    p = placement(target)
    return moderates_place(v, p.target_type, p.org_id, p.context_kind, p.is_discussion)


def can_report(v: Viewer, obj: Any) -> bool:
    """Anyone signed in who may see a thing may report it (can() checks "view" first)."""
    if not v.is_authenticated:
        return False
    return not (isinstance(obj, User) and obj.id == v.user_id)


for _model in PLACES:
    RULE_BOOK.rule(_model).action("report")(can_report)
    RULE_BOOK.rule(_model).action("moderate")(can_moderate_target)


@ITEMS.action("lock_discussion")
def can_lock_discussion(v: Viewer, item: Item) -> bool:
    """Lock or unlock an item's discussion: moderators in scope, and the item's own org admins
    (they moderate their own discussions)."""
    check_known(item)
    return moderates_place(v, item.kind, item.org_id, item.kind, True)


@ITEMS.action("view_reviewer_names")
def can_view_reviewer_names(v: Viewer, item: Item) -> bool:
    """Who reviews a challenge is named to its organisation and to moderators only."""
    return v.is_member(item.org_id) or v.is_moderator


@RULE_BOOK.rule(User).action("suspend")
def can_suspend_account(v: Viewer, user: User) -> bool:
    """Suspend, ban or reinstate: site moderators; never oneself; staff only by site admins."""
    if not v.is_moderator or user.id == v.user_id:
        return False
    return user.site_role == SiteRole.USER.value or v.is_site_admin


# --------------------------------------------------------------------------- cases


class PlacedRule(Rule):
    """Reports and flags: seen by whoever moderates the place they record."""

    def check(self, v: Viewer, row: Any) -> bool:
        return in_place(v, row)

    def clause(self, v: Viewer):
        return moderation_place_clause(v, self.model)


class ReportRule(PlacedRule):
    model = Report

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        # Who reported is shown to site moderators only (no retaliation by the reported org).
        self.actions["see_reporter"] = lambda v, r: v.is_moderator


class ModerationActionRule(Rule):
    model = ModerationAction

    def check(self, v: Viewer, a: ModerationAction) -> bool:
        return in_place(v, a) or (v.is_authenticated and v.user_id in a.affected_ids)

    def clause(self, v: Viewer):
        if not v.is_authenticated:
            return false()
        mine = exists().where(ModerationActionUser.action_id == ModerationAction.id,
                              ModerationActionUser.user_id == v.user_id)
        return or_(moderation_place_clause(v, ModerationAction), mine)

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions["appeal"] = lambda v, a: v.is_authenticated and appeal_refusal(v.user_id, a) is None


def action_is_reversed(a: ModerationAction) -> bool:
    return db.session.execute(
        select(ModerationAction.id).where(ModerationAction.reverses_id == a.id).limit(1)).first() is not None


def appeal_refusal(user_id: int | None, a: ModerationAction) -> str | None:
    """Why this account may not appeal this action (None: it may). Also used for the mailed
    appeal link of suspended or banned accounts, which cannot sign in."""
    if a.action not in ActionKind.values():
        raise PolicyError(f"unknown moderation action {a.action!r}")
    if user_id is None or user_id not in a.affected_ids:
        return "Only the author this decision affects may appeal it."
    if a.action not in APPEALABLE:
        return "This decision cannot be appealed."
    if db.session.execute(select(Appeal.id).where(Appeal.action_id == a.id)).first():
        return "This decision has already been appealed; each decision can be appealed once."
    if action_is_reversed(a):
        return "This decision has already been reversed."
    return None


ACTIONS = rule(ModerationActionRule())


class AppealRule(Rule):
    """An appeal is seen by whoever sees the decision it appeals."""

    model = Appeal

    def check(self, v: Viewer, ap: Appeal) -> bool:
        return ACTIONS.check(v, ap.action)

    def clause(self, v: Viewer):
        return Appeal.action_id.in_(select(ModerationAction.id).where(ACTIONS.clause(v)))

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions["decide"] = can_decide_appeal


def can_decide_appeal(v: Viewer, ap: Appeal) -> bool:
    """A moderator in scope who neither took the decision nor is affected by it."""
    if ap.status not in AppealStatus.values():
        raise PolicyError(f"unknown appeal status {ap.status!r}")
    a = ap.action
    return (ap.status == AppealStatus.PENDING.value and in_place(v, a)
            and v.user_id != a.moderator_id and v.user_id not in a.affected_ids)


class ModerationFlagRule(PlacedRule):
    model = ModerationFlag

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions["resolve"] = can_resolve_flag


def can_resolve_flag(v: Viewer, f: ModerationFlag) -> bool:
    if f.status not in FlagStatus.values():
        raise PolicyError(f"unknown flag status {f.status!r}")
    return f.status == FlagStatus.OPEN.value and in_place(v, f)


rule(ReportRule())
rule(AppealRule())
rule(ModerationFlagRule())


@site_action("use_moderation")
def can_use_moderation(v: Viewer) -> bool:
    """Has some moderation role: site-wide, scoped, or as an organisation admin."""
    return v.is_moderator or bool(moderator_scope_org_ids(v)) or bool(v.admin_org_ids)


site_action("manage_moderator_scopes")(can_administer_site)
site_action("manage_blocked_domains")(can_moderate)
