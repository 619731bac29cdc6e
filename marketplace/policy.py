"""The one place that decides who may see and do what.

Two faces of every rule, kept side by side so they cannot drift:

* ``can(user, action, obj) -> bool`` answers for one object;
* ``visible(user, Model) -> Select`` is the same rule as a SQL filter, for lists, feeds,
  exports and as the starting point of search; ``principals(user)`` and
  ``doc_principals(obj)`` are the same rule once more, as Whoosh terms.

Anonymous users are handled explicitly. Rules fail closed: an unknown action, model,
visibility level or status raises ``PolicyError``; nothing here grants by default.
A test (tests/test_policy_matrix.py) checks that ``can`` and ``visible`` agree for every
viewer x visibility x status combination.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from flask import g, has_request_context
from sqlalchemy import and_, exists, false, or_, select, true

from .extensions import db
from .models import (
    AccessGrant,
    InvitationList,
    Item,
    ItemList,
    ListMember,
    ListShare,
    Membership,
    Organisation,
    OrgKind,
    OrgRole,
    SiteRole,
    Status,
    User,
    Visibility,
    utcnow,
)


class PolicyError(RuntimeError):
    """An action, model or state the policy does not know: never granted."""


# --------------------------------------------------------------------------- viewer


@dataclass(frozen=True)
class Viewer:
    """What the policy needs to know about the person asking, loaded once per request."""

    user_id: int | None = None
    site_role: str = SiteRole.USER.value
    org_roles: dict[int, str] = field(default_factory=dict)
    blocked: bool = False

    @property
    def is_authenticated(self) -> bool:
        return self.user_id is not None and not self.blocked

    @property
    def is_site_admin(self) -> bool:
        return self.is_authenticated and self.site_role == SiteRole.ADMIN.value

    @property
    def is_moderator(self) -> bool:
        """Site-wide moderators (site admins moderate too)."""
        return self.is_authenticated and self.site_role in (
            SiteRole.MODERATOR.value,
            SiteRole.ADMIN.value,
        )

    @property
    def member_org_ids(self) -> frozenset[int]:
        return frozenset(self.org_roles) if self.is_authenticated else frozenset()

    @property
    def admin_org_ids(self) -> frozenset[int]:
        if not self.is_authenticated:
            return frozenset()
        return frozenset(
            o for o, r in self.org_roles.items() if r in (OrgRole.OWNER.value, OrgRole.ADMIN.value)
        )

    def is_member(self, org_id: int | None) -> bool:
        return org_id is not None and org_id in self.member_org_ids

    def is_org_admin(self, org_id: int | None) -> bool:
        return org_id is not None and org_id in self.admin_org_ids

    def is_org_owner(self, org_id: int | None) -> bool:
        return self.is_authenticated and self.org_roles.get(org_id) == OrgRole.OWNER.value


ANONYMOUS = Viewer()


def viewer_for(user: Any) -> Viewer:
    """The Viewer for a user (or None / AnonymousUserMixin), memoised per request."""
    if isinstance(user, Viewer):
        return user
    if user is None or not getattr(user, "is_authenticated", False):
        return ANONYMOUS
    uid = user.id
    cache = None
    if has_request_context():
        cache = g.setdefault("_policy_viewers", {})
        if uid in cache:
            return cache[uid]
    roles = dict(
        db.session.execute(
            select(Membership.org_id, Membership.role).where(Membership.user_id == uid)
        ).all()
    )
    v = Viewer(user_id=uid, site_role=user.site_role or SiteRole.USER.value, org_roles=roles,
               blocked=bool(getattr(user, "is_blocked", False)))
    if cache is not None:
        cache[uid] = v
    return v


def forget_viewer(user_id: int | None = None) -> None:
    """Drop the memoised viewer after membership/role changes inside one request."""
    if has_request_context() and "_policy_viewers" in g:
        if user_id is None:
            g._policy_viewers.clear()
        else:
            g._policy_viewers.pop(user_id, None)


# --------------------------------------------------------------------------- items

KNOWN_VISIBILITY = frozenset(Visibility.values())
KNOWN_STATUS = frozenset(Status.values())


def _check_known(item: Item) -> None:
    if item.visibility not in KNOWN_VISIBILITY:
        raise PolicyError(f"unknown visibility {item.visibility!r}")
    if item.status not in KNOWN_STATUS:
        raise PolicyError(f"unknown status {item.status!r}")


def _active_grant_clause(now: datetime):
    return and_(
        AccessGrant.revoked_at.is_(None),
        or_(AccessGrant.expires_at.is_(None), AccessGrant.expires_at > now),
    )


def _active_list_member_clause(now: datetime):
    return and_(
        ListMember.removed_at.is_(None),
        or_(ListMember.expires_at.is_(None), ListMember.expires_at > now),
    )


def _list_member_of_viewer(v: Viewer):
    orgs = list(v.member_org_ids)
    cond = ListMember.user_id == v.user_id
    if orgs:
        cond = or_(cond, ListMember.member_org_id.in_(orgs))
    return cond


def _grant_to_viewer(v: Viewer):
    orgs = list(v.member_org_ids)
    cond = AccessGrant.user_id == v.user_id
    if orgs:
        cond = or_(cond, AccessGrant.org_id.in_(orgs))
    return cond


def invited_access_clause(v: Viewer, now: datetime | None = None):
    """SQL: the viewer holds an active grant or active list membership for Item."""
    if not v.is_authenticated:
        return false()
    now = now or utcnow()
    grant = exists().where(
        AccessGrant.item_id == Item.id, _grant_to_viewer(v), _active_grant_clause(now)
    )
    via_list = exists().where(
        ItemList.item_id == Item.id,
        ListMember.list_id == ItemList.list_id,
        _list_member_of_viewer(v),
        _active_list_member_clause(now),
    )
    return or_(grant, via_list)


def has_invited_access(v: Viewer, item_id: int, now: datetime | None = None) -> bool:
    """Per-object twin of invited_access_clause."""
    if not v.is_authenticated:
        return False
    now = now or utcnow()
    grant = db.session.execute(
        select(AccessGrant.id).where(
            AccessGrant.item_id == item_id, _grant_to_viewer(v), _active_grant_clause(now)
        ).limit(1)
    ).first()
    if grant:
        return True
    via_list = db.session.execute(
        select(ItemList.id)
        .join(ListMember, ListMember.list_id == ItemList.list_id)
        .where(ItemList.item_id == item_id, _list_member_of_viewer(v), _active_list_member_clause(now))
        .limit(1)
    ).first()
    return via_list is not None


def item_visibility_clause(v: Viewer, now: datetime | None = None):
    """SQL WHERE clause: the items this viewer may see (twin of can_view_item)."""
    now = now or utcnow()
    published = Item.status.in_([Status.OPEN.value, Status.CLOSED.value, Status.ARCHIVED.value])
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
        # Moderators enforce the rules on everything that is published, hidden or not.
        seen = or_(seen, published)
    if admins:
        seen = or_(seen, and_(Item.status == Status.DRAFT.value, Item.org_id.in_(admins)))
    return seen


def can_view_item(v: Viewer, item: Item) -> bool:
    _check_known(item)
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
    raise PolicyError(f"unknown visibility {vis!r}")  # pragma: no cover - _check_known


def can_edit_item(v: Viewer, item: Item) -> bool:
    """The owning organisation's owners and admins edit; archived items are frozen."""
    _check_known(item)
    if item.status == Status.ARCHIVED.value:
        return False
    return v.is_org_admin(item.org_id)


def can_manage_item(v: Viewer, item: Item) -> bool:
    """Change visibility, status, grants, lists; delete: the owning org's owners/admins."""
    _check_known(item)
    return v.is_org_admin(item.org_id)


# --------------------------------------------------------------------------- organisations


def can_view_org(v: Viewer, org: Organisation) -> bool:
    return True  # organisation profiles are public; their items are filtered one by one


def can_edit_org(v: Viewer, org: Organisation) -> bool:
    return v.is_org_admin(org.id)


def can_manage_members(v: Viewer, org: Organisation) -> bool:
    return v.is_org_admin(org.id)


def can_create_item_in(v: Viewer, org: Organisation) -> bool:
    """Owners and admins post (drafts are theirs alone to see until published)."""
    return v.is_org_admin(org.id)


def can_curate_lists(v: Viewer, org: Organisation) -> bool:
    """Invitation lists are curated by cluster organisations' owners and admins."""
    return v.is_org_admin(org.id) and org.kind == OrgKind.CLUSTER.value


def can_use_list(v: Viewer, lst: InvitationList, for_org_id: int) -> bool:
    """Attach `lst` to an item of `for_org_id`: the curator, or an org it is shared with."""
    if not v.is_org_admin(for_org_id):
        return False
    if lst.org_id == for_org_id:
        return True
    return db.session.execute(
        select(ListShare.id).where(ListShare.list_id == lst.id, ListShare.org_id == for_org_id)
    ).first() is not None


def can_view_list(v: Viewer, lst: InvitationList) -> bool:
    if v.is_member(lst.org_id) or v.is_site_admin:
        return True
    return bool(v.admin_org_ids) and db.session.execute(
        select(ListShare.id).where(
            ListShare.list_id == lst.id, ListShare.org_id.in_(list(v.admin_org_ids))
        )
    ).first() is not None


# --------------------------------------------------------------------------- users


def can_view_user(v: Viewer, user: User) -> bool:
    return v.is_authenticated  # profiles (display name only) are for signed-in users


def can_administer_site(v: Viewer, _obj: Any = None) -> bool:
    return v.is_site_admin


def can_moderate(v: Viewer, _obj: Any = None) -> bool:
    return v.is_moderator


# --------------------------------------------------------------------------- registry

Rule = Callable[[Viewer, Any], bool]
RULES: dict[tuple[type, str], Rule] = {
    (Item, "view"): can_view_item,
    (Item, "edit"): can_edit_item,
    (Item, "change_visibility"): can_manage_item,
    (Item, "change_status"): can_manage_item,
    (Item, "manage_access"): can_manage_item,
    (Item, "delete"): can_manage_item,
    (Organisation, "view"): can_view_org,
    (Organisation, "edit"): can_edit_org,
    (Organisation, "manage_members"): can_manage_members,
    (Organisation, "create_item"): can_create_item_in,
    (Organisation, "curate_lists"): can_curate_lists,
    (InvitationList, "view"): can_view_list,
    (User, "view"): can_view_user,
}
SITE_RULES: dict[str, Rule] = {
    "administer": can_administer_site,
    "moderate": can_moderate,
}


def register(model: type, action: str) -> Callable[[Rule], Rule]:
    """Feature modules add their rules here so every rule still lives behind can()."""

    def deco(fn: Rule) -> Rule:
        RULES[(model, action)] = fn
        return fn

    return deco


def can(user: Any, action: str, obj: Any = None) -> bool:
    """May `user` do `action` to `obj`? Raises PolicyError for anything unknown."""
    v = viewer_for(user)
    if obj is None:
        rule = SITE_RULES.get(action)
        if rule is None:
            raise PolicyError(f"unknown site action {action!r}")
        return bool(rule(v, None))
    for cls in type(obj).__mro__:
        rule = RULES.get((cls, action))
        if rule is not None:
            # Viewing comes first: nothing may be done to what one may not see.
            if action != "view" and (cls, "view") in RULES and not RULES[(cls, "view")](v, obj):
                return False
            return bool(rule(v, obj))
    raise PolicyError(f"no rule for {action!r} on {type(obj).__name__}")


VISIBLE: dict[type, Callable[[Viewer], Any]] = {
    Item: lambda v: item_visibility_clause(v),
    Organisation: lambda v: true(),
}


def visible(user: Any, model: type = Item):
    """SELECT of the rows of `model` the user may see; add filters and ordering to it."""
    v = viewer_for(user)
    for cls in model.__mro__:
        clause = VISIBLE.get(cls)
        if clause is not None:
            return select(model).where(clause(v))
    raise PolicyError(f"no visibility rule for {model.__name__}")


def visible_clause(user: Any, model: type = Item):
    v = viewer_for(user)
    for cls in model.__mro__:
        clause = VISIBLE.get(cls)
        if clause is not None:
            return clause(v)
    raise PolicyError(f"no visibility rule for {model.__name__}")


# --------------------------------------------------------------------------- search principals


def principals(user: Any) -> list[str]:
    """Whoosh terms for what this viewer may see; the twin of doc_principals()."""
    v = viewer_for(user)
    out = ["public"]
    if not v.is_authenticated:
        return out
    out += ["registered", f"user:{v.user_id}"]
    out += [f"org:{o}" for o in sorted(v.member_org_ids)]
    out += [f"orgadmin:{o}" for o in sorted(v.admin_org_ids)]
    if v.is_moderator:
        out.append("staff")
    now = utcnow()
    list_ids = db.session.execute(
        select(ListMember.list_id).where(_list_member_of_viewer(v), _active_list_member_clause(now)).distinct()
    ).scalars().all()
    out += [f"list:{lid}" for lid in sorted(list_ids)]
    for extra in PRINCIPAL_PROVIDERS:
        out += extra(v)
    return out


# Feature modules (ideas: reviewers) add viewer principals here.
PRINCIPAL_PROVIDERS: list[Callable[[Viewer], list[str]]] = []


def item_doc_principals(item: Item, now: datetime | None = None) -> list[str]:
    """Who may find this item in search, as terms; the twin of can_view_item."""
    _check_known(item)
    now = now or utcnow()
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
        out.append(org)
        for gr in db.session.execute(
            select(AccessGrant).where(AccessGrant.item_id == item.id, _active_grant_clause(now))
        ).scalars():
            out.append(f"user:{gr.user_id}" if gr.user_id else f"org:{gr.org_id}")
        for lid in db.session.execute(
            select(ItemList.list_id).where(ItemList.item_id == item.id)
        ).scalars():
            out.append(f"list:{lid}")
        return sorted(set(out))
    raise PolicyError(f"unknown visibility {vis!r}")


# --------------------------------------------------------------------------- loaders


def get_visible_or_404(model: type, obj_id: Any, user: Any = None):
    """Load a row and check the viewer may see it; 404 either way, so hidden things
    are indistinguishable from missing ones."""
    from flask import abort
    from flask_login import current_user

    try:
        obj_id = int(obj_id)
    except (TypeError, ValueError):
        abort(404)
    obj = db.session.get(model, obj_id)
    if obj is None or not can(current_user if user is None else user, "view", obj):
        abort(404)
    return obj


def require(action: str, obj: Any = None, user: Any = None) -> None:
    """Abort 403 unless the action is allowed (for things the viewer may already see)."""
    from flask import abort
    from flask_login import current_user

    if not can(current_user if user is None else user, action, obj):
        abort(403)


# =========================================================================== feature rules
# Each feature's rules live in its own section below, registered into RULES / VISIBLE /
# PRINCIPAL_PROVIDERS so can(), visible() and principals() answer for them too.

# --- ideas, terms, acceptances, attachments, review (issue 3) ------------------ [ideas]
# (end of ideas section)

# --- invitations and invitation lists (issue 3) -------------------------------- [invitations]
# (end of invitations section)

# --- moderation and governance (issue 4) -------------------------------------- [moderation]
# (end of moderation section)

# --- engagement: Q&A, comments, asset requests (issue 6) ----------------------- [engagement]
# (end of engagement section)

# --- search (issue 5) ----------------------------------------------------------- [search]
# (end of search section)
