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


def in_audience(v: Viewer, item: Item, audience: str, now: datetime | None = None) -> bool:
    """Is the viewer in the group a participation rule names for `item`?

    "registered": any signed-in user; "invited": the owning organisation's members and
    holders of invited access (grant or list); "organisation": its members. Used by every
    feature's "who may take part" rule; an unknown group raises.
    """
    if audience not in ("registered", "invited", "organisation"):
        raise PolicyError(f"unknown participation rule {audience!r}")
    if not v.is_authenticated:
        return False
    if audience == "registered":
        return True
    if v.is_member(item.org_id):
        return True
    return audience == "invited" and has_invited_access(v, item.id, now)


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
    # Fail closed like can_view_item: a row with an unknown visibility is in nobody's list
    # (the moderator and draft branches above do not look at the level).
    return and_(Item.visibility.in_(sorted(KNOWN_VISIBILITY)), seen)


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


def may_set_member_role(v: Viewer, org_id: int, current: str | None, new: str | None,
                        *, self_leave: bool = False) -> bool:
    """Moving a membership from role `current` to `new` (None: not a member).

    Owners and admins manage members; only owners make, unmake or remove owners; anyone
    may leave. (Keeping at least one owner is an invariant the service enforces.)
    """
    if self_leave and new is None:
        return True
    if not v.is_org_admin(org_id):
        return False
    if OrgRole.OWNER.value in (current, new):
        return v.is_org_owner(org_id)
    return True


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
# Who may see an idea (twins: can_view_idea / idea_visibility_clause / idea_doc_principals):
#   * its authors (lead, co-authors, and invited co-authors who have not answered) always;
#   * nobody else while it waits for co-authors (it is not submitted yet);
#   * moderators everything else (hidden and withdrawn ideas included: they moderate them);
#   * everyone else only submitted ideas that are not hidden or withdrawn, and only if they
#     may see the challenge; then an open (or revealed) idea is seen by all of them, a sealed
#     one only by the posting organisation's owners/admins and the challenge's active reviewers.
# "Sealed" is the strictest confidentiality any author of the idea accepted, stored on the
# idea itself, so a later, more open terms version never opens an earlier sealed idea.

from .models import (  # noqa: E402
    AuthorStatus,
    ChallengeRules,
    ChallengeTerms,
    Confidentiality,
    Idea,
    IdeaAttachment,
    IdeaAuthor,
    IdeaStatus,
    ItemKind,
    ReviewerAppointment,
    ReviewerKind,
    ReviewNote,
    TermsAcceptance,
    AcceptancePurpose,
    WhoMaySubmit,
)

KNOWN_IDEA_STATUS = frozenset(IdeaStatus.values())
KNOWN_CONFIDENTIALITY = frozenset(Confidentiality.values())
# Submitted in the broad sense: others may see these (subject to the rules above).
IDEA_SHOWN_STATES = frozenset({
    IdeaStatus.SUBMITTED.value, IdeaStatus.UNDER_REVIEW.value, IdeaStatus.SHORTLISTED.value,
    IdeaStatus.AWARDED.value, IdeaStatus.DECLINED.value, IdeaStatus.DISQUALIFIED.value,
})
IDEA_REVISABLE_STATES = frozenset({
    IdeaStatus.AWAITING_COAUTHORS.value, IdeaStatus.SUBMITTED.value, IdeaStatus.UNDER_REVIEW.value,
})
IDEA_WITHDRAWABLE_STATES = frozenset({
    IdeaStatus.AWAITING_COAUTHORS.value, IdeaStatus.SUBMITTED.value, IdeaStatus.UNDER_REVIEW.value,
    IdeaStatus.SHORTLISTED.value,
})
IDEA_REVIEWABLE_STATES = frozenset({
    IdeaStatus.SUBMITTED.value, IdeaStatus.UNDER_REVIEW.value, IdeaStatus.SHORTLISTED.value,
})
IDEA_VISIBLE_AUTHOR_STATES = (AuthorStatus.LEAD.value, AuthorStatus.ACCEPTED.value, AuthorStatus.PENDING.value)
IDEA_COUNTING_AUTHOR_STATES = (AuthorStatus.LEAD.value, AuthorStatus.ACCEPTED.value)


def _check_idea(idea: Idea) -> None:
    if idea.status not in KNOWN_IDEA_STATUS:
        raise PolicyError(f"unknown idea status {idea.status!r}")
    if idea.confidentiality not in KNOWN_CONFIDENTIALITY:
        raise PolicyError(f"unknown confidentiality {idea.confidentiality!r}")


def current_terms(challenge_id: int) -> ChallengeTerms | None:
    """The challenge's current (highest) terms version, or None."""
    return db.session.execute(
        select(ChallengeTerms).where(ChallengeTerms.challenge_id == challenge_id)
        .order_by(ChallengeTerms.version.desc()).limit(1)
    ).scalar()


def challenge_rules(challenge_id: int) -> ChallengeRules | None:
    return db.session.execute(
        select(ChallengeRules).where(ChallengeRules.challenge_id == challenge_id)
    ).scalar()


def idea_is_sealed(idea: Idea, now: datetime | None = None) -> bool:
    """Sealed and not yet revealed (fails closed on an unknown confidentiality)."""
    _check_idea(idea)
    if idea.confidentiality == Confidentiality.OPEN.value:
        return False
    now = now or utcnow()
    return idea.reveal_at is None or idea.reveal_at > now


def idea_author_status(v: Viewer, idea: Idea) -> str | None:
    """The viewer's author row status on this idea (lead/accepted/pending/declined) or None."""
    if not v.is_authenticated:
        return None
    for a in idea.authors:
        if a.user_id == v.user_id:
            return a.status
    return None


def is_idea_author(v: Viewer, idea: Idea, *, include_pending: bool = True) -> bool:
    states = IDEA_VISIBLE_AUTHOR_STATES if include_pending else IDEA_COUNTING_AUTHOR_STATES
    return idea_author_status(v, idea) in states


def _reviewer_active_clause(v: Viewer, challenge_id_col):
    """SQL: the viewer holds an active reviewer appointment on the challenge in
    ``challenge_id_col``: not revoked, and either NDA accepted or still a member."""
    members = list(v.member_org_ids)
    member_ok = and_(
        ReviewerAppointment.kind == ReviewerKind.MEMBER.value,
        exists().where(Item.id == ReviewerAppointment.challenge_id, Item.org_id.in_(members)),
    ) if members else false()
    return exists().where(
        ReviewerAppointment.challenge_id == challenge_id_col,
        ReviewerAppointment.user_id == v.user_id,
        ReviewerAppointment.revoked_at.is_(None),
        or_(ReviewerAppointment.nda_accepted_at.is_not(None), member_ok),
    )


def reviewer_appointment(v: Viewer, challenge_id: int) -> ReviewerAppointment | None:
    if not v.is_authenticated:
        return None
    return db.session.execute(
        select(ReviewerAppointment).where(ReviewerAppointment.challenge_id == challenge_id,
                                          ReviewerAppointment.user_id == v.user_id)
    ).scalar()


def appointment_is_active(appt: ReviewerAppointment | None, v: Viewer, org_id: int) -> bool:
    if appt is None or appt.revoked_at is not None:
        return False
    if appt.kind not in (ReviewerKind.MEMBER.value, ReviewerKind.JUDGE.value):
        raise PolicyError(f"unknown reviewer kind {appt.kind!r}")
    if appt.nda_accepted_at is not None:
        return True
    return appt.kind == ReviewerKind.MEMBER.value and v.is_member(org_id)


def is_active_reviewer(v: Viewer, challenge: Item) -> bool:
    """An appointed reviewer of the challenge who may act now (twin of _reviewer_active_clause)."""
    return appointment_is_active(reviewer_appointment(v, challenge.id), v, challenge.org_id)


def is_review_panel(v: Viewer, challenge: Item) -> bool:
    """The people who may read sealed ideas and decide: org owners/admins and active reviewers."""
    return v.is_org_admin(challenge.org_id) or is_active_reviewer(v, challenge)


@register(Idea, "view")
def can_view_idea(v: Viewer, idea: Idea) -> bool:
    _check_idea(idea)
    if is_idea_author(v, idea):
        return True
    if idea.status == IdeaStatus.AWAITING_COAUTHORS.value:
        return False
    if v.is_moderator:
        return True
    if idea.status not in IDEA_SHOWN_STATES or idea.hidden_at is not None:
        return False
    challenge = idea.challenge
    if not can_view_item(v, challenge):
        return False
    if not idea_is_sealed(idea):
        return True
    return is_review_panel(v, challenge)


def idea_visibility_clause(v: Viewer, now: datetime | None = None):
    """SQL twin of can_view_idea."""
    now = now or utcnow()
    if not v.is_authenticated:
        author = false()
    else:
        author = exists().where(
            IdeaAuthor.idea_id == Idea.id, IdeaAuthor.user_id == v.user_id,
            IdeaAuthor.status.in_(IDEA_VISIBLE_AUTHOR_STATES),
        )
    challenge_seen = Idea.challenge_id.in_(select(Item.id).where(item_visibility_clause(v, now)))
    revealed = or_(
        Idea.confidentiality == Confidentiality.OPEN.value,
        and_(Idea.confidentiality == Confidentiality.SEALED.value,
             Idea.reveal_at.is_not(None), Idea.reveal_at <= now),
    )
    panel = false()
    if v.is_authenticated:
        admins = list(v.admin_org_ids)
        org_admin = Idea.challenge_id.in_(select(Item.id).where(Item.org_id.in_(admins))) if admins else false()
        panel = or_(org_admin, _reviewer_active_clause(v, Idea.challenge_id))
    seen = and_(
        Idea.status.in_(IDEA_SHOWN_STATES), Idea.hidden_at.is_(None), challenge_seen,
        Idea.confidentiality.in_(KNOWN_CONFIDENTIALITY), or_(revealed, panel),
    )
    if v.is_moderator:
        seen = Idea.status.in_(KNOWN_IDEA_STATUS - {IdeaStatus.AWAITING_COAUTHORS.value})
    return or_(author, seen)


def _challenge_open_for_submissions(challenge: Item, now: datetime) -> str | None:
    if challenge.kind != ItemKind.CHALLENGE.value:
        return "Ideas can only be submitted to challenges."
    _check_known(challenge)
    if challenge.hidden_at is not None:
        return "This challenge is hidden by moderators and takes no ideas."
    if challenge.status != Status.OPEN.value:
        return f"This challenge is not open for ideas (it is {challenge.status})."
    if challenge.opens_at is not None and now < challenge.opens_at:
        return f"Submissions open at {challenge.opens_at:%Y-%m-%d %H:%M} UTC."
    if challenge.deadline is None:
        return "This challenge has no deadline, so it takes no ideas."
    if now >= challenge.deadline:
        return f"The deadline passed at {challenge.deadline:%Y-%m-%d %H:%M} UTC."
    return None


def _domain_matches(domain: str, patterns: list[str]) -> bool:
    return any(domain == p or domain.endswith("." + p) for p in patterns)


def has_accepted_nda(v: Viewer, terms: ChallengeTerms) -> bool:
    if not v.is_authenticated:
        return False
    return db.session.execute(
        select(TermsAcceptance.id).where(
            TermsAcceptance.user_id == v.user_id, TermsAcceptance.terms_id == terms.id,
            TermsAcceptance.purpose == AcceptancePurpose.NDA.value,
        ).limit(1)
    ).first() is not None


def counted_ideas(user_id: int, challenge_id: int) -> int:
    """Ideas that count against a contributor's limit: theirs (lead or accepted co-author),
    not withdrawn."""
    from sqlalchemy import func

    return db.session.execute(
        select(func.count(Idea.id.distinct())).join(IdeaAuthor, IdeaAuthor.idea_id == Idea.id).where(
            Idea.challenge_id == challenge_id, IdeaAuthor.user_id == user_id,
            IdeaAuthor.status.in_(IDEA_COUNTING_AUTHOR_STATES),
            Idea.status != IdeaStatus.WITHDRAWN.value,
        )
    ).scalar_one()


def participation_refusal(user: Any, challenge: Item, now: datetime | None = None, *,
                          count_limit: bool = True, check_nda: bool = True) -> str | None:
    """Why `user` may not take part in `challenge` now, naming the rule; None when they may.

    Services call it again after locking the challenge row, so the limit holds under races.
    """
    now = now or utcnow()
    v = viewer_for(user)
    if not v.is_authenticated:
        return "Sign in to submit an idea."
    if not can_view_item(v, challenge):
        return "You may not see this challenge."
    msg = _challenge_open_for_submissions(challenge, now)
    if msg:
        return msg
    terms = current_terms(challenge.id)
    if terms is None:
        return "This challenge has no terms sheet yet, so it takes no ideas."
    rules = challenge_rules(challenge.id)
    if rules is None:
        return "This challenge has no participation rules yet, so it takes no ideas."
    appt = reviewer_appointment(v, challenge.id)
    if appt is not None and appt.revoked_at is None:
        return "Reviewers of this challenge may not take part in it."
    org_name = challenge.organisation.name if challenge.organisation else "the posting organisation"
    member = v.is_member(challenge.org_id)
    who = rules.who_may_submit
    if not in_audience(v, challenge, who, now):
        if who == WhoMaySubmit.ORGANISATION.value:
            return f"Only members of {org_name} may take part (rule: who may submit = organisation)."
        return "Only people invited to this challenge may take part (rule: who may submit = invited)."
    if member and who != WhoMaySubmit.ORGANISATION.value and not rules.org_members_may_participate:
        return f"Members of {org_name} may not take part in its own challenge (participation rules)."
    u = user if isinstance(user, User) else db.session.get(User, v.user_id)
    domain = u.email_domain if u is not None else ""
    if _domain_matches(domain, rules.blocked_list):
        return f"E-mail addresses at {domain} may not take part (rule: blocked e-mail domains)."
    if rules.allowed_list and not _domain_matches(domain, rules.allowed_list):
        return ("Only e-mail addresses at " + ", ".join(rules.allowed_list)
                + " may take part (rule: allowed e-mail domains).")
    if check_nda and terms.nda_text and not member and not has_accepted_nda(v, terms):
        return f"Accept the challenge's NDA (terms version {terms.version}) before taking part."
    if count_limit:
        n = counted_ideas(v.user_id, challenge.id)
        if n >= rules.max_ideas_per_contributor:
            return (f"You have reached the limit of {rules.max_ideas_per_contributor} "
                    f"idea{'s' if rules.max_ideas_per_contributor != 1 else ''} per contributor "
                    "for this challenge (rule: maximum ideas per contributor).")
    return None


@register(Item, "submit_idea")
def can_submit_idea(v: Viewer, item: Item) -> bool:
    return item.kind == ItemKind.CHALLENGE.value and participation_refusal(v, item) is None


@register(Item, "manage_terms")
def can_manage_terms(v: Viewer, item: Item) -> bool:
    """Terms sheet, participation rules, reviewers and criteria: the owning org's owners/admins."""
    return item.kind == ItemKind.CHALLENGE.value and can_edit_item(v, item)


@register(Item, "review_ideas")
def can_open_review(v: Viewer, item: Item) -> bool:
    """The review dashboard of a challenge."""
    return item.kind == ItemKind.CHALLENGE.value and is_review_panel(v, item)


@register(Item, "view_brief")
def can_view_brief(v: Viewer, item: Item) -> bool:
    """The full brief of a challenge whose terms carry an NDA: after accepting it (members,
    reviewers and moderators need not)."""
    if not can_view_item(v, item):
        return False
    if item.kind != ItemKind.CHALLENGE.value:
        return True
    terms = current_terms(item.id)
    if terms is None or not terms.nda_text:
        return True
    if v.is_member(item.org_id) or v.is_moderator or is_active_reviewer(v, item):
        return True
    return has_accepted_nda(v, terms)


@register(Item, "accept_nda")
def can_accept_nda(v: Viewer, item: Item) -> bool:
    if not v.is_authenticated or item.kind != ItemKind.CHALLENGE.value:
        return False
    terms = current_terms(item.id)
    return terms is not None and bool(terms.nda_text) and not has_accepted_nda(v, terms)


def _before_deadline(challenge: Item, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (challenge.status == Status.OPEN.value and challenge.deadline is not None
            and now < challenge.deadline and (challenge.opens_at is None or challenge.opens_at <= now))


@register(Idea, "revise")
def can_revise_idea(v: Viewer, idea: Idea) -> bool:
    """Authors (lead and accepted co-authors) revise before the deadline, until a decision."""
    _check_idea(idea)
    return (is_idea_author(v, idea, include_pending=False) and idea.status in IDEA_REVISABLE_STATES
            and _before_deadline(idea.challenge))


@register(Idea, "withdraw")
def can_withdraw_idea(v: Viewer, idea: Idea) -> bool:
    """The lead author withdraws, before the deadline."""
    _check_idea(idea)
    return (idea_author_status(v, idea) == AuthorStatus.LEAD.value
            and idea.status in IDEA_WITHDRAWABLE_STATES and _before_deadline(idea.challenge))


@register(Idea, "answer_coauthorship")
def can_answer_coauthorship(v: Viewer, idea: Idea) -> bool:
    _check_idea(idea)
    return (idea_author_status(v, idea) == AuthorStatus.PENDING.value
            and idea.status not in (IdeaStatus.WITHDRAWN.value, IdeaStatus.DISQUALIFIED.value))


@register(Idea, "view_view_log")
def can_view_view_log(v: Viewer, idea: Idea) -> bool:
    return is_idea_author(v, idea)


@register(Idea, "view_review")
def can_view_review(v: Viewer, idea: Idea) -> bool:
    """Scores and the review panel: reviewers and org admins, never an author of the idea."""
    _check_idea(idea)
    return not is_idea_author(v, idea) and is_review_panel(v, idea.challenge)


@register(Idea, "score")
def can_score_idea(v: Viewer, idea: Idea) -> bool:
    """Scores and private notes: active reviewers who are not authors of the idea."""
    _check_idea(idea)
    return (idea.status in IDEA_REVIEWABLE_STATES and idea.hidden_at is None
            and not is_idea_author(v, idea) and is_active_reviewer(v, idea.challenge))


def _can_decide(v: Viewer, idea: Idea, states: set[str]) -> bool:
    _check_idea(idea)
    return (idea.status in states and idea.hidden_at is None and not is_idea_author(v, idea)
            and is_review_panel(v, idea.challenge))


@register(Idea, "shortlist")
def can_shortlist_idea(v: Viewer, idea: Idea) -> bool:
    return _can_decide(v, idea, {IdeaStatus.SUBMITTED.value, IdeaStatus.UNDER_REVIEW.value})


@register(Idea, "decline")
def can_decline_idea(v: Viewer, idea: Idea) -> bool:
    return _can_decide(v, idea, set(IDEA_REVIEWABLE_STATES))


@register(Idea, "award")
def can_award_idea(v: Viewer, idea: Idea) -> bool:
    return _can_decide(v, idea, {IdeaStatus.SHORTLISTED.value})


@register(Idea, "confirm_payment")
def can_confirm_payment(v: Viewer, idea: Idea) -> bool:
    """Confirm an award was paid (for assignment-on-award, the IP passes then): org admins."""
    _check_idea(idea)
    return idea.status == IdeaStatus.AWARDED.value and v.is_org_admin(idea.challenge.org_id)


@register(Idea, "disqualify")
def can_disqualify_idea(v: Viewer, idea: Idea) -> bool:
    _check_idea(idea)
    return v.is_moderator and idea.status in (IDEA_SHOWN_STATES - {IdeaStatus.DISQUALIFIED.value})


@register(IdeaAttachment, "view")
def can_view_attachment(v: Viewer, att: IdeaAttachment) -> bool:
    return can_view_idea(v, att.idea)


@register(ChallengeTerms, "view")
def can_view_terms(v: Viewer, terms: ChallengeTerms) -> bool:
    return can_view_item(v, terms.challenge)


@register(TermsAcceptance, "view")
def can_view_acceptance(v: Viewer, acc: TermsAcceptance) -> bool:
    """A receipt is its accepter's (anyone may verify one they are given, via the HMAC)."""
    return v.is_authenticated and acc.user_id == v.user_id


@register(ReviewNote, "view")
def can_view_note(v: Viewer, note: ReviewNote) -> bool:
    return v.is_authenticated and note.author_id == v.user_id


@register(ReviewerAppointment, "view")
def can_view_appointment(v: Viewer, appt: ReviewerAppointment) -> bool:
    return v.is_authenticated and (appt.user_id == v.user_id or v.is_org_admin(appt.challenge.org_id))


@register(ReviewerAppointment, "accept_reviewer_nda")
def can_accept_reviewer_nda(v: Viewer, appt: ReviewerAppointment) -> bool:
    return (v.is_authenticated and appt.user_id == v.user_id and appt.revoked_at is None
            and appt.nda_accepted_at is None and bool(appt.nda_text))


VISIBLE[Idea] = lambda v: idea_visibility_clause(v)
VISIBLE[IdeaAttachment] = lambda v: IdeaAttachment.idea_id.in_(
    select(Idea.id).where(idea_visibility_clause(v)))


def reviewer_principals(v: Viewer) -> list[str]:
    """`reviewers:CHALLENGE_ID` for each challenge the viewer actively reviews and may see."""
    if not v.is_authenticated:
        return []
    out = []
    appts = db.session.execute(
        select(ReviewerAppointment).where(ReviewerAppointment.user_id == v.user_id,
                                          ReviewerAppointment.revoked_at.is_(None))
    ).scalars().all()
    for appt in appts:
        ch = appt.challenge
        if appointment_is_active(appt, v, ch.org_id) and can_view_item(v, ch):
            out.append(f"reviewers:{ch.id}")
    return out


PRINCIPAL_PROVIDERS.append(reviewer_principals)


def idea_doc_principals(idea: Idea, now: datetime | None = None) -> list[str]:
    """Who may find this idea in search, as terms; the twin of can_view_idea.

    Time-dependent for sealed ideas with a reveal date: reindex at ``idea.reveal_at``.
    """
    _check_idea(idea)
    now = now or utcnow()
    authors = [f"user:{a.user_id}" for a in idea.authors if a.status in IDEA_VISIBLE_AUTHOR_STATES]
    if idea.status == IdeaStatus.AWAITING_COAUTHORS.value:
        return sorted(set(authors))
    out = set(authors) | {"staff"}
    if idea.status not in IDEA_SHOWN_STATES or idea.hidden_at is not None:
        return sorted(out)
    challenge = idea.challenge
    seen_challenge = set(item_doc_principals(challenge, now))
    if not idea_is_sealed(idea, now):
        return sorted(out | seen_challenge)
    # Org admins always see their own challenges; reviewer principals are only issued to
    # reviewers who may see the challenge (reviewer_principals), so no intersection is lost.
    panel = {f"orgadmin:{challenge.org_id}"}
    if challenge.status != Status.DRAFT.value:
        panel.add(f"reviewers:{challenge.id}")
    return sorted(out | panel)
# (end of ideas section)

# --- invitations and invitation lists (issue 3) -------------------------------- [invitations]
# E-mail invitations to one item, and the use of curated lists. Item visibility itself is
# not re-implemented here: invitations end up as AccessGrant rows and lists as
# ItemList/ListMember rows, which invited_access_clause/has_invited_access already read.

from .models import Invitation, InvitationState  # noqa: E402

KNOWN_INVITATION_STATES = frozenset(InvitationState.values())


def viewer_email(v: Viewer) -> str | None:
    """The signed-in viewer's e-mail, lower-case (None when anonymous or blocked)."""
    if not v.is_authenticated:
        return None
    cache = g.setdefault("_policy_emails", {}) if has_request_context() else {}
    if v.user_id not in cache:
        user = db.session.get(User, v.user_id)
        cache[v.user_id] = user.email.strip().lower() if user is not None else None
    return cache[v.user_id]


def invitation_state(inv: Invitation, now: datetime | None = None) -> str:
    try:
        state = inv.state(now)
    except ValueError as e:
        raise PolicyError(str(e)) from e
    if state not in KNOWN_INVITATION_STATES:  # pragma: no cover - state() only returns these
        raise PolicyError(f"unknown invitation state {state!r}")
    return state


def is_invitee(v: Viewer, inv: Invitation) -> bool:
    """The signed-in account's e-mail is the invited address.

    E-mail addresses are not verified at registration, so this alone never accepts: the
    service also requires the token that was mailed to that address.
    """
    email = viewer_email(v)
    return email is not None and email == (inv.email or "").strip().lower()


@register(Item, "invite")
def can_invite(v: Viewer, item: Item) -> bool:
    """Send e-mail invitations: the owning org's owners/admins; archived items are frozen."""
    return can_manage_item(v, item) and item.status != Status.ARCHIVED.value


@register(Item, "manage_invitations")
def can_manage_invitations(v: Viewer, item: Item) -> bool:
    """List and revoke invitations (revoking only narrows access, so archived items too)."""
    return can_manage_item(v, item)


@register(Item, "attach_list")
def can_attach_lists_to(v: Viewer, item: Item) -> bool:
    """Attach/detach invitation lists on this item (which lists: see can_attach_list)."""
    return can_manage_item(v, item) and item.status != Status.ARCHIVED.value


@register(Invitation, "view")
def can_view_invitation(v: Viewer, inv: Invitation) -> bool:
    invitation_state(inv)  # fail closed on a corrupt row
    return can_manage_item(v, inv.item) or is_invitee(v, inv)


@register(Invitation, "revoke")
def can_revoke_invitation(v: Viewer, inv: Invitation) -> bool:
    state = invitation_state(inv)
    return can_manage_item(v, inv.item) and state in (
        InvitationState.PENDING.value, InvitationState.ACCEPTED.value)


@register(Invitation, "accept")
def can_accept_invitation(v: Viewer, inv: Invitation) -> bool:
    return is_invitee(v, inv) and invitation_state(inv) == InvitationState.PENDING.value


@register(Invitation, "decline")
def can_decline_invitation(v: Viewer, inv: Invitation) -> bool:
    return is_invitee(v, inv) and invitation_state(inv) == InvitationState.PENDING.value


def can_decline_with_token(v: Viewer, inv: Invitation) -> bool:
    """Whoever holds the mailed link may decline it without an account (the token proves
    the mailbox); a signed-in account must be the invited one."""
    if v.is_authenticated:
        return can_decline_invitation(v, inv)
    return invitation_state(inv) == InvitationState.PENDING.value


def invitation_visibility_clause(v: Viewer):
    """SQL twin of can_view_invitation."""
    if not v.is_authenticated:
        return false()
    admins = list(v.admin_org_ids)
    cond = Invitation.email == (viewer_email(v) or "")
    if admins:
        cond = or_(cond, Invitation.item_id.in_(select(Item.id).where(Item.org_id.in_(admins))))
    return cond


# Lists --------------------------------------------------------------------------------


def can_curate_list(v: Viewer, lst: InvitationList) -> bool:
    """Edit, add/remove members, share: the curating cluster's owners and admins."""
    return can_curate_lists(v, lst.organisation)


def list_visibility_clause(v: Viewer):
    """SQL twin of can_view_list: the curator's members, site admins, admins of orgs it is
    shared with."""
    if not v.is_authenticated:
        return false()
    if v.is_site_admin:
        return true()
    members = list(v.member_org_ids)
    admins = list(v.admin_org_ids)
    cond = InvitationList.org_id.in_(members) if members else false()
    if admins:
        cond = or_(cond, exists().where(ListShare.list_id == InvitationList.id,
                                        ListShare.org_id.in_(admins)))
    return cond


def _own_list_member(v: Viewer, m: ListMember) -> bool:
    return v.is_authenticated and (
        m.user_id == v.user_id or (m.member_org_id is not None and v.is_member(m.member_org_id)))


@register(ListMember, "view")
def can_view_list_member(v: Viewer, m: ListMember) -> bool:
    """Who is on a list: those who may see the list; and each person their own entry."""
    return can_view_list(v, m.list) or _own_list_member(v, m)


@register(ListMember, "remove")
def can_remove_list_member(v: Viewer, m: ListMember) -> bool:
    return can_curate_list(v, m.list)


def list_member_visibility_clause(v: Viewer):
    if not v.is_authenticated:
        return false()
    return or_(ListMember.list_id.in_(select(InvitationList.id).where(list_visibility_clause(v))),
               _list_member_of_viewer(v))


@register(ListShare, "view")
def can_view_list_share(v: Viewer, s: ListShare) -> bool:
    """Sharing is the curator's business and the receiving organisation's admins'."""
    lst = db.session.get(InvitationList, s.list_id)
    return lst is not None and (can_curate_list(v, lst) or v.is_org_admin(s.org_id))


@register(ListShare, "delete")
def can_unshare(v: Viewer, s: ListShare) -> bool:
    lst = db.session.get(InvitationList, s.list_id)
    return lst is not None and can_curate_list(v, lst)


def _curated_list_ids(v: Viewer):
    admins = list(v.admin_org_ids)
    if not admins:
        return None
    return select(InvitationList.id).join(Organisation, Organisation.id == InvitationList.org_id).where(
        InvitationList.org_id.in_(admins), Organisation.kind == OrgKind.CLUSTER.value)


@register(ItemList, "view")
def can_view_list_attachment(v: Viewer, a: ItemList) -> bool:
    """Which lists an item uses: its managers, and the list's curators for items they see."""
    return can_view_item(v, a.item) and (can_manage_item(v, a.item) or can_curate_list(v, a.list))


@register(ItemList, "detach")
def can_detach_list(v: Viewer, a: ItemList) -> bool:
    """The item's managers detach (also from archived items: detaching only narrows)."""
    return can_manage_item(v, a.item)


def attachment_visibility_clause(v: Viewer):
    """SQL twin of can_view_list_attachment."""
    if not v.is_authenticated:
        return false()
    admins = list(v.admin_org_ids)
    curated = _curated_list_ids(v)
    if not admins:
        return false()
    seen = select(Item.id).where(item_visibility_clause(v))
    return and_(ItemList.item_id.in_(seen),
                or_(ItemList.item_id.in_(select(Item.id).where(Item.org_id.in_(admins))),
                    ItemList.list_id.in_(curated)))


@dataclass(frozen=True)
class ListUse:
    """The question "may this list be attached to this item?" as one object for can()."""

    list: InvitationList
    item: Item


@register(ListUse, "attach")
def can_attach_list(v: Viewer, use: ListUse) -> bool:
    return (can_view_item(v, use.item) and can_attach_lists_to(v, use.item)
            and can_view_list(v, use.list) and can_use_list(v, use.list, use.item.org_id))


def usable_lists_clause(v: Viewer, org_id: int):
    """SQL twin of can_use_list for one organisation: lists it curates or that are shared
    with it, for its owners and admins."""
    if not v.is_org_admin(org_id):
        return false()
    return or_(InvitationList.org_id == org_id,
               exists().where(ListShare.list_id == InvitationList.id, ListShare.org_id == org_id))


RULES[(InvitationList, "edit")] = can_curate_list
RULES[(InvitationList, "manage_members")] = can_curate_list
RULES[(InvitationList, "share")] = can_curate_list
VISIBLE[Invitation] = invitation_visibility_clause
VISIBLE[InvitationList] = list_visibility_clause
VISIBLE[ListMember] = list_member_visibility_clause
VISIBLE[ItemList] = attachment_visibility_clause


# "My invitations": what the viewer sees through lists and through grants ----------------


def items_via_lists_clause(v: Viewer, now: datetime | None = None):
    """Item ids reached through an active list membership (the viewer's or their org's)."""
    if not v.is_authenticated:
        return false()
    now = now or utcnow()
    return Item.id.in_(
        select(ItemList.item_id).join(ListMember, ListMember.list_id == ItemList.list_id)
        .where(_list_member_of_viewer(v), _active_list_member_clause(now)))


def items_via_grants_clause(v: Viewer, now: datetime | None = None):
    """Item ids reached through an active access grant (the viewer's or their org's)."""
    if not v.is_authenticated:
        return false()
    now = now or utcnow()
    return Item.id.in_(select(AccessGrant.item_id).where(_grant_to_viewer(v), _active_grant_clause(now)))


def active_grants_for_viewer(v: Viewer, now: datetime | None = None):
    """SELECT of the active AccessGrant rows that reach the viewer (own or their org's)."""
    if not v.is_authenticated:
        return select(AccessGrant).where(false())
    now = now or utcnow()
    return select(AccessGrant).where(_grant_to_viewer(v), _active_grant_clause(now))


def active_list_memberships(v: Viewer, now: datetime | None = None):
    """SELECT of the viewer's active ListMember rows (own or through their organisations)."""
    if not v.is_authenticated:
        return select(ListMember).where(false())
    now = now or utcnow()
    return select(ListMember).where(_list_member_of_viewer(v), _active_list_member_clause(now))
# (end of invitations section)

# --- moderation and governance (issue 4) -------------------------------------- [moderation]
# Who moderates what. One rule, ``moderates_place``, decides it from where a target lives
# (owning organisation, context item kind, discussion or not); reports, actions and flags
# store that placement when written, so ``moderation_place_clause`` is the same rule in SQL:
#   * site moderators and admins: everything;
#   * moderators scoped to an organisation (ModeratorScope): the challenges of that
#     organisation and everything under them (ideas, questions, answers) -- never
#     organisation profiles, user accounts or private asset requests;
#   * organisation owners/admins: discussion content (questions, answers, comments) on their
#     own organisation's items -- not the items themselves, not ideas, not other orgs'.
# Moderators see what they moderate: content with a report or an action in their scope is
# added to its model's "view" rule and VISIBLE clause (nothing is loosened for anyone else).
from .models.moderation import (  # noqa: E402
    APPEALABLE,
    ActionKind,
    Appeal,
    AppealStatus,
    FlagStatus,
    ItemModeration,
    ModerationAction,
    ModerationActionUser,
    ModerationFlag,
    ModeratorScope,
    Report,
)

# Target types only site moderators act on.
MODERATION_SITE_ONLY_TYPES = frozenset({"organisation", "user", "asset_request"})
PUBLISHED_STATES = (Status.OPEN.value, Status.CLOSED.value, Status.ARCHIVED.value)


def moderator_scope_org_ids(v: Viewer) -> frozenset[int]:
    """Organisations whose challenges the viewer moderates by appointment (memoised per request)."""
    if not v.is_authenticated:
        return frozenset()
    cache = g.setdefault("_policy_mod_scopes", {}) if has_request_context() else {}
    if v.user_id not in cache:
        cache[v.user_id] = frozenset(db.session.execute(
            select(ModeratorScope.org_id).where(ModeratorScope.user_id == v.user_id)).scalars())
    return cache[v.user_id]


def forget_moderator_scopes(user_id: int | None = None) -> None:
    if has_request_context() and "_policy_mod_scopes" in g:
        if user_id is None:
            g._policy_mod_scopes.clear()
        else:
            g._policy_mod_scopes.pop(user_id, None)


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
    """SQL twin of moderates_place over a model carrying the placement snapshot
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


def _placed(v: Viewer, row) -> bool:
    return moderates_place(v, row.target_type, row.org_id, row.context_kind, row.is_discussion)


def moderation_placement(target: Any):
    """Where a target lives, from the reportable registry; unknown types fail closed."""
    from .moderation import registry

    entry = registry.entry_for(target)
    if entry is None:
        raise PolicyError(f"{type(target).__name__} is not a reportable type")
    return entry.placement(target)


def can_moderate_target(v: Viewer, target: Any) -> bool:
    """May the viewer act as a moderator on this target (dismiss, hide, restore, ask to edit)?"""
    p = moderation_placement(target)
    return moderates_place(v, p.target_type, p.org_id, p.context_kind, p.is_discussion)


def can_lock_discussion(v: Viewer, item: Item) -> bool:
    """Lock or unlock an item's discussion: moderators in scope, and the item's own org admins
    (they moderate their own discussions)."""
    _check_known(item)
    return moderates_place(v, item.kind, item.org_id, item.kind, True)


def can_suspend_account(v: Viewer, user: User) -> bool:
    """Suspend, ban or reinstate: site moderators; never oneself; staff only by site admins."""
    if not v.is_moderator or user.id == v.user_id:
        return False
    return user.site_role == SiteRole.USER.value or v.is_site_admin


def can_report(v: Viewer, obj: Any) -> bool:
    """Anyone signed in who may see a thing may report it (can() checks "view" first)."""
    if not v.is_authenticated:
        return False
    return not (isinstance(obj, User) and obj.id == v.user_id)


def is_discussion_locked(item: Item) -> bool:
    """Moderators (or the org's admins) locked this item's discussion: no new questions,
    answers or comments. Engagement asks this before every contribution."""
    if item is None or item.id is None:
        return False
    return db.session.execute(
        select(ItemModeration.id).where(ItemModeration.item_id == item.id,
                                        ItemModeration.discussion_locked_at.is_not(None))
    ).first() is not None


# ---- seeing what one moderates


def _mod_sees_target(v: Viewer, target_type: str, target_id: int | None) -> bool:
    """A report, an action or an automatic flag on this target lies in the viewer's scope."""
    if not v.is_authenticated or target_id is None:
        return False
    for model in (Report, ModerationAction, ModerationFlag):
        rows = db.session.execute(
            select(model).where(model.target_type == target_type, model.target_id == target_id)
        ).scalars()
        if any(_placed(v, r) for r in rows):
            return True
    return False


def _mod_sees_target_clause(v: Viewer, type_expr, id_col):
    if not v.is_authenticated:
        return false()
    return or_(*[
        exists().where(model.target_type == type_expr, model.target_id == id_col,
                       moderation_place_clause(v, model))
        for model in (Report, ModerationAction, ModerationFlag)
    ])


def _scoped_mod_sees_item(v: Viewer, item: Item) -> bool:
    """A scoped moderator sees a published challenge of their organisations when something
    in it was reported or acted on (context for the case they handle)."""
    if item.org_id not in moderator_scope_org_ids(v) or item.kind != ItemKind.CHALLENGE.value:
        return False
    if item.status not in PUBLISHED_STATES:
        return False
    for model in (Report, ModerationAction):
        if db.session.execute(select(model.id).where(model.context_item_id == item.id).limit(1)).first():
            return True
    return False


def _scoped_mod_item_clause(v: Viewer):
    orgs = moderator_scope_org_ids(v)
    if not orgs:
        return false()
    return and_(
        Item.org_id.in_(list(orgs)), Item.kind == ItemKind.CHALLENGE.value, Item.status.in_(PUBLISHED_STATES),
        or_(exists().where(Report.context_item_id == Item.id),
            exists().where(ModerationAction.context_item_id == Item.id)),
    )


_core_view_item = RULES[(Item, "view")]
_core_item_clause = VISIBLE[Item]


def can_view_item_moderated(v: Viewer, item: Item) -> bool:
    return _core_view_item(v, item) or _scoped_mod_sees_item(v, item)


RULES[(Item, "view")] = can_view_item_moderated
VISIBLE[Item] = lambda v: or_(_core_item_clause(v), _scoped_mod_item_clause(v))

_moderation_wrapped: set[type] = set()


def register_moderation_rules(model: type, type_name: str) -> None:
    """Called by the reportable registry for each reportable model: "report" and "moderate"
    rules, and the model's view rule/VISIBLE clause extended to moderators in scope of a
    report or action on the row. Idempotent."""
    RULES.setdefault((model, "report"), can_report)
    RULES.setdefault((model, "moderate"), can_moderate_target)
    if model in _moderation_wrapped or model is Item or model in (Organisation, User):
        return
    _moderation_wrapped.add(model)
    core_view = RULES.get((model, "view"))
    if core_view is not None:
        def view(v: Viewer, obj: Any, _core=core_view, _t=type_name) -> bool:
            return _core(v, obj) or _mod_sees_target(v, _t, obj.id)
        RULES[(model, "view")] = view
    core_clause = VISIBLE.get(model)
    if core_clause is not None:
        VISIBLE[model] = lambda v, _core=core_clause, _t=type_name: or_(
            _core(v), _mod_sees_target_clause(v, _t, model.id))


def _wrap_disqualify() -> None:
    """Moderators scoped to the challenge's organisation may disqualify too."""
    core = RULES.get((Idea, "disqualify"))
    if core is None:
        return

    def can_disqualify(v: Viewer, idea: Idea) -> bool:
        if core(v, idea):
            return True
        ch = idea.challenge
        return (ch is not None and ch.org_id in moderator_scope_org_ids(v)
                and idea.status in (IDEA_SHOWN_STATES - {IdeaStatus.DISQUALIFIED.value}))
    RULES[(Idea, "disqualify")] = can_disqualify


_wrap_disqualify()


# ---- reports, actions, appeals, flags


def can_view_report(v: Viewer, r: Report) -> bool:
    return _placed(v, r)


def can_see_reporter(v: Viewer, r: Report) -> bool:
    """Who reported is shown to site moderators only (no retaliation by the reported org)."""
    return v.is_moderator


def can_view_action(v: Viewer, a: ModerationAction) -> bool:
    return _placed(v, a) or (v.is_authenticated and v.user_id in a.affected_ids)


def action_visibility_clause(v: Viewer):
    if not v.is_authenticated:
        return false()
    mine = exists().where(ModerationActionUser.action_id == ModerationAction.id,
                          ModerationActionUser.user_id == v.user_id)
    return or_(moderation_place_clause(v, ModerationAction), mine)


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


def can_appeal(v: Viewer, a: ModerationAction) -> bool:
    return v.is_authenticated and appeal_refusal(v.user_id, a) is None


def can_view_appeal(v: Viewer, ap: Appeal) -> bool:
    return can_view_action(v, ap.action)


def can_decide_appeal(v: Viewer, ap: Appeal) -> bool:
    """A moderator in scope who neither took the decision nor is affected by it."""
    if ap.status not in AppealStatus.values():
        raise PolicyError(f"unknown appeal status {ap.status!r}")
    a = ap.action
    return (ap.status == AppealStatus.PENDING.value and _placed(v, a)
            and v.user_id != a.moderator_id and v.user_id not in a.affected_ids)


def can_view_flag(v: Viewer, f: ModerationFlag) -> bool:
    return _placed(v, f)


def can_resolve_flag(v: Viewer, f: ModerationFlag) -> bool:
    if f.status not in FlagStatus.values():
        raise PolicyError(f"unknown flag status {f.status!r}")
    return f.status == FlagStatus.OPEN.value and _placed(v, f)


def can_use_moderation(v: Viewer, _obj: Any = None) -> bool:
    """Has some moderation role: site-wide, scoped, or as an organisation admin."""
    return v.is_moderator or bool(moderator_scope_org_ids(v)) or bool(v.admin_org_ids)


RULES[(Report, "view")] = can_view_report
RULES[(Report, "see_reporter")] = can_see_reporter
RULES[(ModerationAction, "view")] = can_view_action
RULES[(ModerationAction, "appeal")] = can_appeal
RULES[(Appeal, "view")] = can_view_appeal
RULES[(Appeal, "decide")] = can_decide_appeal
RULES[(ModerationFlag, "view")] = can_view_flag
RULES[(ModerationFlag, "resolve")] = can_resolve_flag
RULES[(Item, "lock_discussion")] = can_lock_discussion
RULES[(User, "suspend")] = can_suspend_account
SITE_RULES["use_moderation"] = can_use_moderation
SITE_RULES["manage_moderator_scopes"] = can_administer_site
SITE_RULES["manage_blocked_domains"] = can_moderate
VISIBLE[Report] = lambda v: moderation_place_clause(v, Report)
VISIBLE[ModerationAction] = action_visibility_clause
VISIBLE[Appeal] = lambda v: Appeal.action_id.in_(
    select(ModerationAction.id).where(action_visibility_clause(v)))
VISIBLE[ModerationFlag] = lambda v: moderation_place_clause(v, ModerationFlag)
# Items, organisations and users: "report"/"moderate" are registered with the reportable
# registry (marketplace/moderation/registry.py) through register_moderation_rules.
for _m in (Item, Organisation, User):
    register_moderation_rules(_m, "")
@register(Item, "view_reviewer_names")
def can_view_reviewer_names(v: Viewer, item: Item) -> bool:
    """Who reviews a challenge is named to its organisation and to moderators only."""
    return v.is_member(item.org_id) or v.is_moderator


# (end of moderation section)

# --- engagement: Q&A, comments, asset requests (issue 6) ----------------------- [engagement]
# Participation rules are layered on item visibility: nobody may take part in what they may
# not see (can() checks "view" first; the services check it again). Each refusal function
# returns the "why you cannot" message naming the rule, or None; the boolean rules are
# `refusal is None`, so the message shown and the rule enforced cannot drift apart.
from datetime import timedelta as _timedelta  # noqa: E402

from .models import engagement as _eng  # noqa: E402

ENGAGEMENT_EDIT_WINDOW_MINUTES = 15
KNOWN_PARTICIPATION = frozenset(_eng.Participation.values())
KNOWN_ASSET_REQUEST_STATUS = frozenset(_eng.RequestStatus.values())
_ENG_KIND_NOUN = {"challenge": "challenge", "failure": "failure", "asset": "asset"}


def engagement_rules(item: Item) -> "_eng.EngagementRules":
    """The item's declared participation rules, or an unsaved row holding the defaults."""
    row = None
    if item.id is not None:
        row = db.session.execute(
            select(_eng.EngagementRules).where(_eng.EngagementRules.item_id == item.id)
        ).scalar()
    if row is None:
        row = _eng.EngagementRules(item_id=item.id, **_eng.EngagementRules.DEFAULTS)
    for name in ("comment_rule", "ask_rule", "request_rule"):
        if getattr(row, name) not in KNOWN_PARTICIPATION:
            raise PolicyError(f"unknown participation rule {getattr(row, name)!r}")
    return row


def engagement_edit_window() -> _timedelta:
    from flask import current_app, has_app_context

    minutes = ENGAGEMENT_EDIT_WINDOW_MINUTES
    if has_app_context():
        minutes = current_app.config.get("ENGAGEMENT_EDIT_WINDOW_MINUTES", minutes)
    return _timedelta(minutes=int(minutes))


def _eng_discussion_locked(item: Item) -> bool:
    # Moderation (issue 4) defines is_discussion_locked in its section; until then nothing is locked.
    fn = globals().get("is_discussion_locked")
    return bool(fn(item)) if fn is not None else False


def _eng_fmt(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC")


def _eng_is_author(v: Viewer, author_id: int | None) -> bool:
    return v.is_authenticated and author_id is not None and author_id == v.user_id


def _eng_item_state_refusal(item: Item) -> str | None:
    """New contributions need a published, open item that moderators have not hidden."""
    _check_known(item)
    noun = _ENG_KIND_NOUN.get(item.kind, "item")
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
    raise PolicyError(f"unknown status {item.status!r}")  # pragma: no cover - _check_known


def engagement_participation_refusal(v: Viewer, item: Item, rule: str, verb: str) -> str | None:
    """Does the participation rule `rule` let the viewer `verb` on `item`? (visibility aside)"""
    if rule not in KNOWN_PARTICIPATION:
        raise PolicyError(f"unknown participation rule {rule!r}")
    if rule == _eng.Participation.NOBODY.value:
        return f"The organisation does not let anyone {verb} here (rule: who may {verb} — nobody)."
    if not v.is_authenticated:
        return f"Sign in to {verb}."
    if in_audience(v, item, rule):
        return None
    if rule == _eng.Participation.ORGANISATION.value:
        return f"Only members of the organisation may {verb} here (rule: who may {verb} — organisation)."
    return f"Only invited people and organisations may {verb} here (rule: who may {verb} — invited)."


def _eng_until_refusal(rules, now: datetime) -> str | None:
    if rules.open_until is not None and now >= rules.open_until:
        return (f"Participation closed on {_eng_fmt(rules.open_until)} "
                f"(rule: open until {_eng_fmt(rules.open_until)}).")
    return None


def question_cutoff(item: Item, rules=None) -> datetime | None:
    """When questions stop: the rule's hours before the deadline (None: no deadline)."""
    if item.deadline is None:
        return None
    rules = rules if rules is not None else engagement_rules(item)
    return item.deadline - _timedelta(hours=max(0, int(rules.question_cutoff_hours or 0)))


def ask_refusal(v: Viewer, item: Item, now: datetime | None = None) -> str | None:
    """Why the viewer may not ask a question on this challenge (None: they may)."""
    if item.kind != "challenge":
        return "Questions are asked on challenges."
    now = now or utcnow()
    msg = _eng_item_state_refusal(item)
    if msg:
        return msg
    if _eng_discussion_locked(item):
        return "The discussion of this challenge is locked by moderation."
    rules = engagement_rules(item)
    msg = engagement_participation_refusal(v, item, rules.ask_rule, "ask questions") or _eng_until_refusal(rules, now)
    if msg:
        return msg
    cutoff = question_cutoff(item, rules)
    if cutoff is not None and now >= cutoff:
        return (f"Questions closed on {_eng_fmt(cutoff)}, {rules.question_cutoff_hours} hours before the "
                f"deadline (rule: question cut-off).")
    return None


def discussion_refusal(v: Viewer, item: Item, now: datetime | None = None) -> str | None:
    """Why the viewer may not comment on (or reply in) this failure's discussion."""
    if item.kind != "failure":
        return "Discussions are held on failures."
    now = now or utcnow()
    msg = _eng_item_state_refusal(item)
    if msg:
        return msg
    if _eng_discussion_locked(item):
        return "This discussion is locked by moderation."
    rules = engagement_rules(item)
    if rules.discussion_closed_at is not None:
        return f"The organisation closed this discussion on {_eng_fmt(rules.discussion_closed_at)}."
    return engagement_participation_refusal(v, item, rules.comment_rule, "comment") or _eng_until_refusal(rules, now)


def asset_open_request_count(item_id: int, party: str) -> int:
    """Open requests the party ("user:ID" or "org:ID") has on this asset."""
    from sqlalchemy import func

    AR = _eng.AssetRequest
    kind, _, pid = party.partition(":")
    who = (and_(AR.author_id == int(pid), AR.requester_org_id.is_(None)) if kind == "user"
           else AR.requester_org_id == int(pid))
    return db.session.execute(
        select(func.count()).where(AR.item_id == item_id, who, AR.status.in_(_eng.OPEN_REQUEST_STATUSES))
    ).scalar_one()


def asset_request_refusal(v: Viewer, item: Item, party: str | None = None,
                    now: datetime | None = None) -> str | None:
    """Why the viewer may not send a request for this asset; with `party` ("user:ID" or
    "org:ID") the per-requester limit of open requests is checked too."""
    if item.kind != "asset":
        return "Requests are sent for assets."
    now = now or utcnow()
    msg = _eng_item_state_refusal(item)
    if msg:
        return msg
    rules = engagement_rules(item)
    msg = engagement_participation_refusal(v, item, rules.request_rule, "send requests") or _eng_until_refusal(rules, now)
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


def can_manage_engagement(v: Viewer, item: Item) -> bool:
    """Declare participation rules and licence terms, pin, close discussions."""
    _check_known(item)
    return v.is_org_admin(item.org_id) and item.status != Status.ARCHIVED.value


register(Item, "ask")(lambda v, item: ask_refusal(v, item) is None)
register(Item, "comment")(lambda v, item: discussion_refusal(v, item) is None)
register(Item, "request")(lambda v, item: asset_request_refusal(v, item) is None)
register(Item, "manage_engagement")(can_manage_engagement)


# ---- questions and answers


@register(_eng.Question, "view")
def can_view_question(v: Viewer, q, item_ok: bool | None = None) -> bool:
    """Answered questions are published to everyone who may see the challenge; unanswered
    ones are seen by the asker and the posting organisation; hidden ones by the asker and
    the organisation's admins; moderators see all (deleted included) on what they can see."""
    item = q.item
    if not (can_view_item(v, item) if item_ok is None else item_ok):
        return False
    if v.is_moderator:
        return True
    if q.deleted_at is not None:
        return False
    mine = _eng_is_author(v, q.author_id)
    if q.hidden_at is not None:
        return mine or v.is_org_admin(item.org_id)
    return q.is_answered or mine or v.is_member(item.org_id)


def _eng_items_of(org_ids) -> Any:
    return select(Item.id).where(Item.org_id.in_(list(org_ids)))


def question_visibility_clause(v: Viewer):
    Q, A = _eng.Question, _eng.Answer
    item_ok = Q.item_id.in_(select(Item.id).where(item_visibility_clause(v)))
    if v.is_moderator:
        return item_ok
    mine = Q.author_id == v.user_id if v.is_authenticated else false()
    member = Q.item_id.in_(_eng_items_of(v.member_org_ids)) if v.member_org_ids else false()
    admin = Q.item_id.in_(_eng_items_of(v.admin_org_ids)) if v.admin_org_ids else false()
    answered = exists().where(A.question_id == Q.id)
    return and_(item_ok, Q.deleted_at.is_(None), or_(
        and_(Q.hidden_at.is_(None), or_(answered, mine, member)),
        and_(Q.hidden_at.is_not(None), or_(mine, admin)),
    ))


def question_answer_refusal(v: Viewer, q) -> str | None:
    item = q.item
    _check_known(item)
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
    if _eng_discussion_locked(item):
        return "The discussion of this challenge is locked by moderation."
    return None


register(_eng.Question, "answer")(lambda v, q: question_answer_refusal(v, q) is None)


@register(_eng.Answer, "view")
def can_view_answer(v: Viewer, a, item_ok: bool | None = None) -> bool:
    """An answer follows its question's item; a hidden question hides its answer too."""
    q = a.question
    item = q.item
    if not (can_view_item(v, item) if item_ok is None else item_ok):
        return False
    if v.is_moderator:
        return True
    admin = v.is_org_admin(item.org_id)
    if q.hidden_at is not None and not (_eng_is_author(v, q.author_id) or admin):
        return False
    if a.hidden_at is not None:
        return _eng_is_author(v, a.author_id) or admin
    return True


def answer_visibility_clause(v: Viewer):
    A, Q = _eng.Answer, _eng.Question
    item_ok = A.item_id.in_(select(Item.id).where(item_visibility_clause(v)))
    if v.is_moderator:
        return item_ok
    admin = A.item_id.in_(_eng_items_of(v.admin_org_ids)) if v.admin_org_ids else false()
    uid = v.user_id if v.is_authenticated else None
    q_ok = A.question_id.in_(select(Q.id).where(or_(
        Q.hidden_at.is_(None), (Q.author_id == uid) if uid else false())))
    a_ok = or_(A.hidden_at.is_(None), (A.author_id == uid) if uid else false())
    return and_(item_ok, or_(admin, and_(q_ok, a_ok)))


# ---- comments


@register(_eng.Comment, "view")
def can_view_comment(v: Viewer, c, item_ok: bool | None = None) -> bool:
    """Comments are seen by everyone who may see the failure; hidden ones by their author,
    the organisation's admins and moderators; deleted ones by moderators only."""
    item = c.item
    if not (can_view_item(v, item) if item_ok is None else item_ok):
        return False
    if v.is_moderator:
        return True
    if c.deleted_at is not None:
        return False
    if c.hidden_at is not None:
        return _eng_is_author(v, c.author_id) or v.is_org_admin(item.org_id)
    return True


def comment_visibility_clause(v: Viewer):
    C = _eng.Comment
    item_ok = C.item_id.in_(select(Item.id).where(item_visibility_clause(v)))
    if v.is_moderator:
        return item_ok
    mine = C.author_id == v.user_id if v.is_authenticated else false()
    admin = C.item_id.in_(_eng_items_of(v.admin_org_ids)) if v.admin_org_ids else false()
    return and_(item_ok, C.deleted_at.is_(None), or_(C.hidden_at.is_(None), mine, admin))


def discussion_reply_refusal(v: Viewer, parent) -> str | None:
    msg = discussion_refusal(v, parent.item)
    if msg:
        return msg
    top = parent.parent if parent.parent_id is not None else parent
    if top.deleted_at is not None:
        return "That comment was deleted; add a new comment instead."
    if top.hidden_at is not None:
        return "That comment was hidden by moderators; add a new comment instead."
    return None


register(_eng.Comment, "reply")(lambda v, c: discussion_reply_refusal(v, c) is None)


@register(_eng.Comment, "pin")
def can_pin_comment(v: Viewer, c) -> bool:
    return (can_manage_engagement(v, c.item) and c.item.kind == "failure"
            and c.deleted_at is None and c.hidden_at is None)


# ---- edits and deletions by authors (questions and comments)


def post_edit_refusal(v: Viewer, obj, now: datetime | None = None) -> str | None:
    """Authors edit their own question, answer or comment within the edit window."""
    now = now or utcnow()
    if not _eng_is_author(v, obj.author_id):
        return "Only the author can edit this."
    if getattr(obj, "deleted_at", None) is not None:
        return "This was deleted."
    if obj.hidden_at is not None:
        return "Moderators hid this; it can no longer be edited."
    if isinstance(obj, _eng.Question) and obj.is_answered:
        return "This question has been answered; it can no longer be edited."
    window = engagement_edit_window()
    if now > obj.created_at + window:
        minutes = int(window.total_seconds() // 60)
        return f"The edit window has passed: posts can be edited for {minutes} minutes after posting."
    item = obj.item
    msg = _eng_item_state_refusal(item) if not isinstance(obj, _eng.Answer) else None
    if msg:
        return msg
    if _eng_discussion_locked(item):
        return "This discussion is locked by moderation; posts cannot be edited."
    return None


def post_delete_refusal(v: Viewer, obj) -> str | None:
    """Authors delete their own question or comment at any time."""
    if not _eng_is_author(v, obj.author_id):
        return "Only the author can delete this."
    if obj.deleted_at is not None:
        return "This was already deleted."
    return None


for _eng_model in (_eng.Question, _eng.Comment):
    register(_eng_model, "edit")(lambda v, o: post_edit_refusal(v, o) is None)
    register(_eng_model, "delete")(lambda v, o: post_delete_refusal(v, o) is None)
register(_eng.Answer, "edit")(lambda v, o: post_edit_refusal(v, o) is None)


# ---- asset terms and requests


@register(_eng.AssetTerms, "view")
def can_view_asset_terms(v: Viewer, t) -> bool:
    return can_view_item(v, t.item)


def engagement_open_report_clause(target_type: str, target_id) -> Any:
    """SQL: an open moderation report exists on this target. Moderation's Report model may not
    exist yet, and its shape is only guessed: anything unrecognised grants nothing."""
    try:
        from .models.moderation import Report  # type: ignore[import-not-found]
    except ImportError:
        return false()
    if not (hasattr(Report, "target_type") and hasattr(Report, "target_id")):
        return false()
    if hasattr(Report, "status"):
        is_open = Report.status == "open"
    elif hasattr(Report, "resolved_at"):
        is_open = Report.resolved_at.is_(None)
    else:
        return false()
    return exists().where(Report.target_type == target_type, Report.target_id == target_id, is_open)


def engagement_has_open_report(target_type: str, target_id: int) -> bool:
    return bool(db.session.execute(select(engagement_open_report_clause(target_type, target_id))).scalar())


def _eng_check_request(r) -> None:
    if r.status not in KNOWN_ASSET_REQUEST_STATUS:
        raise PolicyError(f"unknown request status {r.status!r}")
    if r.kind not in _eng.RequestKind.values():
        raise PolicyError(f"unknown request kind {r.kind!r}")


def is_request_sender_side(v: Viewer, r) -> bool:
    """The person who sent it, or the owners/admins of the organisation it was sent for."""
    return _eng_is_author(v, r.author_id) or (r.requester_org_id is not None and v.is_org_admin(r.requester_org_id))


def is_request_owner_side(v: Viewer, r) -> bool:
    return v.is_org_admin(r.item.org_id)


@register(_eng.AssetRequest, "view")
def can_view_asset_request(v: Viewer, r) -> bool:
    """Only the two parties; site moderators only while the request has an open report."""
    _eng_check_request(r)
    if is_request_sender_side(v, r) or is_request_owner_side(v, r):
        return True
    return v.is_moderator and engagement_has_open_report("asset_request", r.id)


def asset_request_visibility_clause(v: Viewer):
    AR = _eng.AssetRequest
    if not v.is_authenticated:
        return false()
    conds = [AR.author_id == v.user_id]
    if v.admin_org_ids:
        conds.append(AR.requester_org_id.in_(list(v.admin_org_ids)))
        conds.append(AR.item_id.in_(_eng_items_of(v.admin_org_ids)))
    if v.is_moderator:
        conds.append(engagement_open_report_clause("asset_request", AR.id))
    return or_(*conds)


@register(_eng.AssetRequest, "decide")
def can_decide_request(v: Viewer, r) -> bool:
    """Accept, decline or propose a follow-up: the owning organisation, while it is open."""
    _eng_check_request(r)
    return is_request_owner_side(v, r) and r.is_open


@register(_eng.AssetRequest, "respond")
def can_respond_to_request(v: Viewer, r) -> bool:
    _eng_check_request(r)
    return is_request_sender_side(v, r) and r.is_open


register(_eng.AssetRequest, "withdraw")(can_respond_to_request)


def _eng_author_principal(author_id: int | None, item: Item) -> set[str]:
    if author_id is None:
        return set()
    author = db.session.get(User, author_id)
    if author is None or not can_view_item(viewer_for(author), item):
        return set()
    return {f"user:{author_id}"}


def question_doc_principals(q) -> list[str]:
    """Search twin of can_view_question (the answer's text is indexed with its question only
    while the answer is not hidden)."""
    item = q.item
    base = item_doc_principals(item)
    if item.status == Status.DRAFT.value:
        return base
    if q.deleted_at is not None:
        return ["staff"]
    if q.hidden_at is not None:
        return sorted({"staff", f"orgadmin:{item.org_id}"} | _eng_author_principal(q.author_id, item))
    if q.is_answered:
        return base
    return sorted({"staff", f"org:{item.org_id}"} | _eng_author_principal(q.author_id, item))


def comment_doc_principals(c) -> list[str]:
    """Search twin of can_view_comment."""
    item = c.item
    base = item_doc_principals(item)
    if item.status == Status.DRAFT.value:
        return base
    if c.deleted_at is not None:
        return ["staff"]
    if c.hidden_at is not None:
        return sorted({"staff", f"orgadmin:{item.org_id}"} | _eng_author_principal(c.author_id, item))
    return base


VISIBLE[_eng.Question] = question_visibility_clause
VISIBLE[_eng.Answer] = answer_visibility_clause
VISIBLE[_eng.Comment] = comment_visibility_clause
VISIBLE[_eng.AssetRequest] = asset_request_visibility_clause
VISIBLE[_eng.AssetTerms] = lambda v: _eng.AssetTerms.item_id.in_(select(Item.id).where(item_visibility_clause(v)))
# (end of engagement section)

# --- search (issue 5) ----------------------------------------------------------- [search]
# The document side of search, per model: who may find a row (`doc_principals`: the twin of
# can(user, "view", row) as the terms `principals(user)` matches), until when that answer
# holds without any write (`doc_principals_valid_until`: a grant expiring, a sealed idea's
# reveal date), and which items a stale index may still show a viewer whose grant lapsed
# (`lapsed_access_item_ids`). Feature modules register their models with
# `register_doc_principals`. Unknown models raise: nothing is indexed for everyone by default.

from sqlalchemy import func, not_  # noqa: E402

DOC_PRINCIPALS: dict[type, Callable[[Any, datetime], list[str]]] = {}
DOC_VALID_UNTIL: dict[type, Callable[[Any, datetime], datetime | None]] = {}


def register_doc_principals(model: type, valid_until: Callable[[Any, datetime], datetime | None] | None = None):
    def deco(fn: Callable[[Any, datetime], list[str]]):
        DOC_PRINCIPALS[model] = fn
        if valid_until is not None:
            DOC_VALID_UNTIL[model] = valid_until
        return fn

    return deco


def doc_principals(obj: Any, now: datetime | None = None) -> list[str]:
    """Who may find `obj` in search, as principal terms (twin of can(_, "view", obj))."""
    now = now or utcnow()
    for cls in type(obj).__mro__:
        fn = DOC_PRINCIPALS.get(cls)
        if fn is not None:
            return list(fn(obj, now))
    raise PolicyError(f"no search principals rule for {type(obj).__name__}")


def doc_principals_valid_until(obj: Any, now: datetime | None = None) -> datetime | None:
    """The next moment doc_principals(obj) changes by the clock alone, if any."""
    now = now or utcnow()
    for cls in type(obj).__mro__:
        fn = DOC_VALID_UNTIL.get(cls)
        if fn is not None:
            return fn(obj, now)
    return None


def item_principals_valid_until(item: Item, now: datetime) -> datetime | None:
    """Invited items name their grantees until the first active grant expires."""
    if item.visibility != Visibility.INVITED.value or item.status == Status.DRAFT.value \
            or item.hidden_at is not None:
        return None
    return db.session.execute(
        select(func.min(AccessGrant.expires_at)).where(
            AccessGrant.item_id == item.id, AccessGrant.expires_at.is_not(None), _active_grant_clause(now))
    ).scalar()


def _earliest(*times: datetime | None) -> datetime | None:
    found = [t for t in times if t is not None]
    return min(found) if found else None


def idea_principals_valid_until(idea: Idea, now: datetime) -> datetime | None:
    reveal = idea.reveal_at if idea.reveal_at is not None and idea.reveal_at > now \
        and idea_is_sealed(idea, now) else None
    return _earliest(reveal, item_principals_valid_until(idea.challenge, now))


def lapsed_access_item_ids(user: Any, now: datetime | None = None) -> list[int]:
    """Items on which the viewer (or one of their organisations) holds a grant that is no
    longer active: until reindexed, the index may still list the viewer for them, so search
    re-checks these with visible() and drops the ones the viewer may no longer see."""
    v = viewer_for(user)
    if not v.is_authenticated:
        return []
    now = now or utcnow()
    return list(db.session.execute(
        select(AccessGrant.item_id).where(_grant_to_viewer(v), not_(_active_grant_clause(now))).distinct()
    ).scalars())


def item_doc_principals_many(items, now: datetime | None = None) -> dict[int, tuple[list[str], datetime | None]]:
    """item_doc_principals and item_principals_valid_until for many items, reading the
    grants and list attachments of all invited ones in two queries (rebuilds). The same
    rule as the one-item functions; tests/test_search.py compares them cell by cell."""
    now = now or utcnow()
    invited = {i.id for i in items if i.visibility == Visibility.INVITED.value
               and i.status != Status.DRAFT.value and i.hidden_at is None}
    terms: dict[int, set[str]] = {i: set() for i in invited}
    expiry: dict[int, datetime] = {}
    if invited:
        for item_id, user_id, org_id, expires_at in db.session.execute(
                select(AccessGrant.item_id, AccessGrant.user_id, AccessGrant.org_id, AccessGrant.expires_at)
                .where(AccessGrant.item_id.in_(invited), _active_grant_clause(now))):
            terms[item_id].add(f"user:{user_id}" if user_id else f"org:{org_id}")
            if expires_at is not None and (item_id not in expiry or expires_at < expiry[item_id]):
                expiry[item_id] = expires_at
        for item_id, list_id in db.session.execute(
                select(ItemList.item_id, ItemList.list_id).where(ItemList.item_id.in_(invited))):
            terms[item_id].add(f"list:{list_id}")
    out = {}
    for item in items:
        if item.id in invited:
            _check_known(item)
            out[item.id] = (sorted({"staff", f"org:{item.org_id}"} | terms[item.id]), expiry.get(item.id))
        else:
            out[item.id] = (item_doc_principals(item, now), None)  # no query outside "invited"
    return out


DOC_PRINCIPALS[Item] = item_doc_principals
DOC_VALID_UNTIL[Item] = item_principals_valid_until
DOC_PRINCIPALS[Organisation] = lambda org, now: ["public"]  # twin of can_view_org
DOC_PRINCIPALS[Idea] = idea_doc_principals
DOC_VALID_UNTIL[Idea] = idea_principals_valid_until
DOC_PRINCIPALS[_eng.Question] = lambda q, now: question_doc_principals(q)
DOC_VALID_UNTIL[_eng.Question] = lambda q, now: item_principals_valid_until(q.item, now)
DOC_PRINCIPALS[_eng.Comment] = lambda c, now: comment_doc_principals(c)
DOC_VALID_UNTIL[_eng.Comment] = lambda c, now: item_principals_valid_until(c.item, now)
# (end of search section)
