"""Challenges, failures and assets: who may see an item, and who may change it.

Who may see an item (one rule, three forms in `ItemRule`):

* drafts: the owning organisation's owners and admins only;
* published (open, closed, archived) items, by visibility level:
  ``public`` anyone; ``registered`` any signed-in user; ``invited`` the owning
  organisation's members and whoever holds invited access (an active access grant, to the
  person or one of their organisations, or an active membership of an attached invitation
  list); ``organisation`` the owning organisation's members;
* hidden by moderators: the owning organisation's members only, and
* site moderators and admins see every published item (hidden ones too: they moderate
  them); a moderator scoped to an organisation sees the challenges in which something was
  reported or acted on (declared exception, see places.py).

Unknown visibility levels or statuses raise `PolicyError`.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, false, func, not_, or_, select

from ..extensions import db
from ..models import AccessGrant, Item, ItemList, ListMember, Status, Visibility, utcnow
from .core import PolicyError, Rule, Viewer, read_memo, rule, site_action
from .places import ScopedModeratorsSeeCaseContext

KNOWN_VISIBILITY = frozenset(Visibility.values())
KNOWN_STATUS = frozenset(Status.values())
PUBLISHED = (Status.OPEN.value, Status.CLOSED.value, Status.ARCHIVED.value)
AUDIENCES = ("registered", "invited", "organisation")


@site_action("list_drafts")
def can_list_drafts(v: Viewer) -> bool:
    """Drafts are seen only by their organisation's owners and admins: only they are offered
    a "Draft" filter on the lists."""
    return bool(v.admin_org_ids)


def check_known(item: Item) -> None:
    """Fail closed on a row with a visibility level or status the policy does not know."""
    if item.visibility not in KNOWN_VISIBILITY:
        raise PolicyError(f"unknown visibility {item.visibility!r}")
    if item.status not in KNOWN_STATUS:
        raise PolicyError(f"unknown status {item.status!r}")


# --------------------------------------------------------------------------- invited access


def active_grant_clause(now: datetime):
    return and_(
        AccessGrant.revoked_at.is_(None),
        or_(AccessGrant.expires_at.is_(None), AccessGrant.expires_at > now),
    )


def active_list_member_clause(now: datetime):
    return and_(
        ListMember.removed_at.is_(None),
        or_(ListMember.expires_at.is_(None), ListMember.expires_at > now),
    )


def _names_viewer(v: Viewer, user_col, org_col):
    """SQL: the row names the viewer (user_col) or one of their organisations (org_col)."""
    orgs = list(v.member_org_ids)
    return or_(user_col == v.user_id, org_col.in_(orgs)) if orgs else user_col == v.user_id


def list_member_of_viewer(v: Viewer):
    """SQL: the ListMember row names the viewer or one of their organisations."""
    return _names_viewer(v, ListMember.user_id, ListMember.member_org_id)


def grant_to_viewer(v: Viewer):
    """SQL: the AccessGrant row names the viewer or one of their organisations."""
    return _names_viewer(v, AccessGrant.user_id, AccessGrant.org_id)


def invited_access_clause(v: Viewer, now: datetime | None = None):
    """SQL: the viewer holds an active grant or active list membership for Item."""
    if not v.is_authenticated:
        return false()
    now = now or utcnow()
    grant = exists().where(AccessGrant.item_id == Item.id, grant_to_viewer(v), active_grant_clause(now))
    via_list = exists().where(
        ItemList.item_id == Item.id,
        ListMember.list_id == ItemList.list_id,
        list_member_of_viewer(v),
        active_list_member_clause(now),
    )
    return or_(grant, via_list)


def has_invited_access(v: Viewer, item_id: int, now: datetime | None = None) -> bool:
    """Per-object twin of invited_access_clause. Asked at the current time, the answer is
    memoised for the request (a page asks it for the item and again for each post's links);
    forget_viewer() and any write in the request drop it."""
    if not v.is_authenticated:
        return False
    if now is not None:
        return _has_invited_access(v, item_id, now)
    memo = read_memo("_policy_grants").setdefault(v.user_id, {})
    key = (item_id, tuple(sorted(v.member_org_ids)))
    if key not in memo:
        memo[key] = _has_invited_access(v, item_id, utcnow())
    return memo[key]


def _has_invited_access(v: Viewer, item_id: int, now: datetime) -> bool:
    grant = db.session.execute(
        select(AccessGrant.id).where(
            AccessGrant.item_id == item_id, grant_to_viewer(v), active_grant_clause(now)
        ).limit(1)
    ).first()
    if grant:
        return True
    via_list = db.session.execute(
        select(ItemList.id)
        .join(ListMember, ListMember.list_id == ItemList.list_id)
        .where(ItemList.item_id == item_id, list_member_of_viewer(v), active_list_member_clause(now))
        .limit(1)
    ).first()
    return via_list is not None


def in_audience(v: Viewer, item: Item, audience: str, now: datetime | None = None) -> bool:
    """Is the viewer in the group a participation rule names for `item`?

    "registered": any signed-in user; "invited": the owning organisation's members and
    holders of invited access (grant or list); "organisation": its members. Used by every
    feature's "who may take part" rule; an unknown group raises.
    """
    if audience not in AUDIENCES:
        raise PolicyError(f"unknown participation rule {audience!r}")
    if not v.is_authenticated:
        return False
    if audience == "registered":
        return True
    if v.is_member(item.org_id):
        return True
    return audience == "invited" and has_invited_access(v, item.id, now)


def lapsed_access_item_ids(user: Any, now: datetime | None = None) -> list[int]:
    """Items on which the viewer (or one of their organisations) holds a grant that is no
    longer active: until reindexed, the index may still list the viewer for them, so search
    re-checks these with visible() and drops the ones the viewer may no longer see."""
    from .core import viewer_for

    v = viewer_for(user)
    if not v.is_authenticated:
        return []
    now = now or utcnow()
    return list(db.session.execute(
        select(AccessGrant.item_id).where(grant_to_viewer(v), not_(active_grant_clause(now))).distinct()
    ).scalars())


# --------------------------------------------------------------------------- the rule


class ItemRule(Rule):
    model = Item
    exceptions = (ScopedModeratorsSeeCaseContext(),)

    def check(self, v: Viewer, item: Item) -> bool:
        check_known(item)
        if item.status == Status.DRAFT.value:
            return v.is_org_admin(item.org_id)
        if v.is_moderator:
            return True
        member = v.is_member(item.org_id)
        if item.hidden_at is not None and not member:
            return False
        vis = item.visibility
        if vis == Visibility.PUBLIC.value:
            return True
        if vis == Visibility.REGISTERED.value:
            return v.is_authenticated
        if vis == Visibility.ORGANISATION.value:
            return member
        if vis == Visibility.INVITED.value:
            return member or has_invited_access(v, item.id)
        raise PolicyError(f"unknown visibility {vis!r}")  # pragma: no cover - check_known

    def clause(self, v: Viewer, now: datetime | None = None):
        now = now or utcnow()
        published = Item.status.in_(PUBLISHED)
        members = list(v.member_org_ids)
        admins = list(v.admin_org_ids)
        is_member = Item.org_id.in_(members) if members else false()

        level = Item.visibility == Visibility.PUBLIC.value
        if v.is_authenticated:
            level = or_(
                level,
                Item.visibility == Visibility.REGISTERED.value,
                and_(Item.visibility == Visibility.INVITED.value,
                     or_(is_member, invited_access_clause(v, now))),
                and_(Item.visibility == Visibility.ORGANISATION.value, is_member),
            )
        seen = and_(published, level, or_(Item.hidden_at.is_(None), is_member))
        if v.is_moderator:
            seen = or_(seen, published)
        if admins:
            seen = or_(seen, and_(Item.status == Status.DRAFT.value, Item.org_id.in_(admins)))
        # Fail closed like check(): a row with an unknown visibility is in nobody's list
        # (the moderator and draft branches above do not look at the level).
        return and_(Item.visibility.in_(sorted(KNOWN_VISIBILITY)), seen)

    def doc_principals(self, item: Item, now: datetime) -> list[str]:
        check_known(item)
        org = f"org:{item.org_id}"
        if item.status == Status.DRAFT.value:
            return [f"orgadmin:{item.org_id}"]
        out = ["staff"]
        if item.hidden_at is not None:
            return out + [org]
        vis = item.visibility
        if vis == Visibility.PUBLIC.value:
            return out + ["public"]
        if vis == Visibility.REGISTERED.value:
            return out + ["registered"]
        if vis == Visibility.ORGANISATION.value:
            return out + [org]
        if vis == Visibility.INVITED.value:
            terms, _ = self._invited_terms([item.id], now)
            return sorted({"staff", org} | terms[item.id])
        raise PolicyError(f"unknown visibility {vis!r}")  # pragma: no cover - check_known

    def valid_until(self, item: Item, now: datetime) -> datetime | None:
        """Invited items name their grantees until the first active grant expires."""
        if not self._names_grantees(item):
            return None
        return db.session.execute(
            select(func.min(AccessGrant.expires_at)).where(
                AccessGrant.item_id == item.id, AccessGrant.expires_at.is_not(None), active_grant_clause(now))
        ).scalar()

    # -- many at once (rebuilds): the same rule, two queries for all invited items

    @staticmethod
    def _names_grantees(item: Item) -> bool:
        return (item.visibility == Visibility.INVITED.value and item.status != Status.DRAFT.value
                and item.hidden_at is None)

    @staticmethod
    def _invited_terms(item_ids, now: datetime) -> tuple[dict[int, set[str]], dict[int, datetime]]:
        """Grant and list principals of invited items, and their first grant expiry."""
        terms: dict[int, set[str]] = {i: set() for i in item_ids}
        expiry: dict[int, datetime] = {}
        if not terms:
            return terms, expiry
        for item_id, user_id, org_id, expires_at in db.session.execute(
                select(AccessGrant.item_id, AccessGrant.user_id, AccessGrant.org_id, AccessGrant.expires_at)
                .where(AccessGrant.item_id.in_(list(terms)), active_grant_clause(now))):
            terms[item_id].add(f"user:{user_id}" if user_id else f"org:{org_id}")
            if expires_at is not None and (item_id not in expiry or expires_at < expiry[item_id]):
                expiry[item_id] = expires_at
        for item_id, list_id in db.session.execute(
                select(ItemList.item_id, ItemList.list_id).where(ItemList.item_id.in_(list(terms)))):
            terms[item_id].add(f"list:{list_id}")
        return terms, expiry

    def principals_many(self, items, now: datetime | None = None) -> dict[int, tuple[list[str], datetime | None]]:
        """doc_principals and valid_until for many items (tests compare them cell by cell)."""
        now = now or utcnow()
        invited = [i for i in items if self._names_grantees(i)]
        for i in invited:
            check_known(i)
        terms, expiry = self._invited_terms([i.id for i in invited], now)
        out = {}
        for item in items:
            if item.id in terms:
                out[item.id] = (sorted({"staff", f"org:{item.org_id}"} | terms[item.id]), expiry.get(item.id))
            else:
                out[item.id] = (self.doc_principals(item, now), None)  # no query outside "invited"
        return out

    # -- actions

    def editable(self, v: Viewer, item: Item) -> bool:
        """The owning organisation's owners and admins edit; archived items are frozen."""
        check_known(item)
        return item.status != Status.ARCHIVED.value and v.is_org_admin(item.org_id)

    def manageable(self, v: Viewer, item: Item) -> bool:
        """Change visibility, status, grants, lists; delete: the owning org's owners/admins."""
        check_known(item)
        return v.is_org_admin(item.org_id)

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions.update({
            "edit": self.editable,
            "change_visibility": self.manageable,
            "change_status": self.manageable,
            "manage_access": self.manageable,
            "delete": self.manageable,
        })


ITEMS = rule(ItemRule())
can_view_item = ITEMS.check              # the item's own rule (without case exceptions)
item_visibility_clause = ITEMS.clause
can_edit_item = ITEMS.editable
can_manage_item = ITEMS.manageable
