"""Who moderates what, and who sees reports, actions, appeals and automatic flags (issue 4
and the moderation section's statement of scopes):

* site moderators and site admins moderate everything;
* a moderator scoped to an organisation (ModeratorScope) moderates that organisation's
  challenges and everything under them (ideas, questions, answers), never organisation
  profiles, user accounts or private asset requests;
* an organisation's owners and admins moderate the discussion content (questions, answers,
  comments) on their own organisation's items: not the items themselves, not ideas, not
  other organisations' content;
* nobody signed out (or blocked) moderates anything.

A report, an action or a flag is seen by those who moderate where its target lives. Locking
or unlocking an item's discussion is moderation of that discussion, which the item's own
organisation admins moderate ("they moderate their own discussions", can_lock_discussion;
issue 4: "organisation admins can moderate their own challenges' discussions"). An action
is also seen by the people it affects (they are told its reason and may appeal it).
An appeal is seen by whoever sees the action appealed. Who filed a report is not a reason
to see it.

Moderators see what they moderate: a row with a report, an action or a flag on it that lies
in the viewer's scope is visible to them through the row's own "view" rule and list filter,
whatever its general rule says. The moderation section states this for those two faces
only; search keeps to the general rule (`case_in_scope` is not used for search).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

ITEM_KINDS = ("challenge", "failure", "asset")
DISCUSSION = ("question", "answer", "comment")
SITE_ONLY = ("organisation", "user", "asset_request")
ON_AN_ITEM = {"question": "questions", "answer": "answers", "comment": "comments", "asset_request": "requests"}


@dataclass(frozen=True)
class Place:
    org_id: int | None
    item_id: int | None     # the item the target lives in (the item itself for items)
    under_challenge: bool
    discussion: bool
    site_only: bool


def place_of(target_type: str, target_id: int, facts) -> Place:
    """Where a target lives, worked out from the target itself."""
    if target_type == "organisation":
        return Place(target_id, None, False, False, True)
    if target_type == "user":
        return Place(None, None, False, False, True)
    if target_type in ITEM_KINDS:
        item = facts.items[target_id]
    elif target_type in ON_AN_ITEM:
        item = facts.items[getattr(facts, ON_AN_ITEM[target_type])[target_id].item_id]
    elif target_type == "idea":
        item = facts.items[facts.ideas[target_id].challenge_id]
    else:
        raise ValueError(f"no such reportable type {target_type!r}")
    return Place(item.org_id, item.id, item.kind == "challenge", target_type in DISCUSSION,
                 target_type in SITE_ONLY)


def moderates(p, place: Place) -> bool:
    if not p.signed_in:
        return False
    if p.staff:
        return True
    if place.site_only or place.org_id is None:
        return False
    if place.under_challenge and p.scoped_to(place.org_id):
        return True
    return place.discussion and p.admin(place.org_id)


def case_in_scope(p, target_type: str, target_id: int, facts) -> bool:
    """A report, action or flag on this target, and the viewer moderates where it lives."""
    return bool(facts.cases.get((target_type, target_id))) and moderates(p, place_of(target_type, target_id, facts))


def sees_report(p, r, facts) -> bool:
    return moderates(p, place_of(r.target_type, r.target_id, facts))


def affected(p, action, facts) -> bool:
    return p.signed_in and any(a.user_id == p.id for a in facts.affected_by_action.get(action.id, []))


def sees_action(p, a, facts) -> bool:
    place = place_of(a.target_type, a.target_id, facts)
    if a.action in ("lock", "unlock"):
        place = replace(place, discussion=True)
    return moderates(p, place) or affected(p, a, facts)


def sees_appeal(p, ap, facts) -> bool:
    return sees_action(p, facts.actions[ap.action_id], facts)


def sees_flag(p, fl, facts) -> bool:
    return moderates(p, place_of(fl.target_type, fl.target_id, facts))
