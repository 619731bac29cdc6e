"""Who may see an item, from the README's visibility table and issue 2:

* drafts: the owning organisation's owners and admins only, whatever the level;
* site moderators and site admins: every published item, hidden or not, at any level;
* hidden by moderators: the owning organisation's members (and moderators) only;
* `public`: anyone; `registered`: anyone signed in; `organisation`: the owning
  organisation's members; `invited`: those members plus people and organisations holding an
  active access grant (not revoked, not expired) or an active place (not removed, not
  expired) on an invitation list attached to the item; an organisation's grant or place
  counts for each of its members;
* suspended or banned accounts are treated as anonymous (see facts.Person).

Moderation adds one exception (issue 4, "moderators act within the scope they are given"):
a moderator scoped to an organisation sees a published challenge of that organisation while
something in it has been reported or acted on, as context for the case. Everything else on
the challenge (terms, questions, ideas, attachments) keeps following the general rules: the
exception covers the reported row itself (moderation.py) and the challenge as its context.
"""
from __future__ import annotations

LEVELS = ("public", "registered", "invited", "organisation")
STATUSES = ("draft", "open", "closed", "archived")
PUBLISHED = ("open", "closed", "archived")


class UnknownState(Exception):
    """The rules only know the listed states; the policy must refuse (PolicyError) too."""


def active(row, now) -> bool:
    """A grant or list place that is neither revoked/removed nor expired."""
    ended = getattr(row, "revoked_at", None) or getattr(row, "removed_at", None)
    return ended is None and (row.expires_at is None or row.expires_at > now)


def reaches(p, user_id, org_id) -> bool:
    """A grant or list place held by this person, or by an organisation they belong to."""
    return p.is_(user_id) or (org_id is not None and p.member(org_id))


def invited_access(p, item_id, facts) -> bool:
    if not p.signed_in:
        return False
    if any(active(g, facts.now) and reaches(p, g.user_id, g.org_id) for g in facts.grants_of_item.get(item_id, [])):
        return True
    return any(active(m, facts.now) and reaches(p, m.user_id, m.member_org_id)
               for a in facts.lists_of_item.get(item_id, [])
               for m in facts.members_of_list.get(a.list_id, []))


def sees_item(p, item, facts) -> bool:
    """The general rule (no moderation case exception)."""
    if item.status not in STATUSES or item.visibility not in LEVELS:
        raise UnknownState(item.status, item.visibility)
    if item.status == "draft":
        return p.admin(item.org_id)
    if p.staff:
        return True
    member = p.member(item.org_id)
    if item.hidden_at is not None and not member:
        return False
    return {
        "public": True,
        "registered": p.signed_in,
        "organisation": member,
        "invited": member or invited_access(p, item.id, facts),
    }[item.visibility]


def sees_item_as_case_context(p, item, facts) -> bool:
    """The scoped moderator's exception: a published challenge of their organisation with a
    report or an action on it or on anything in it."""
    from .moderation import place_of

    if not (p.scoped_to(item.org_id) and item.kind == "challenge" and item.status in PUBLISHED):
        return False
    return any(place_of(r.target_type, r.target_id, facts).item_id == item.id
               for table in (facts.reports, facts.actions) for r in table.values())


def may_see_item(p, item, facts) -> bool:
    """can(user, "view", item) and visible(user, Item)."""
    return sees_item(p, item, facts) or sees_item_as_case_context(p, item, facts)
