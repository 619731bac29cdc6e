"""E-mail invitations to one item, invitation lists and their use.

Item visibility is not re-implemented here: an accepted invitation ends up as an AccessGrant
row and a list as ItemList/ListMember rows, which the item rule (items.py) reads.

* Invitations: seen by the item's managers and by the invited address (the signed-in
  account whose e-mail it is); the invitee accepts or declines a pending one (the service
  also requires the mailed token: addresses are not verified at registration); whoever holds
  the mailed link may decline without an account; managers revoke pending or accepted ones.
* What an invitation shows of its item before it is accepted (the e-mail, the link's page,
  "my invitations"): its title and summary only where accepting would let the invitee see
  the item now (published, not hidden, at a level an access grant opens: public, registered
  or invited). An invitation to a draft or an organisation-only item names the inviting
  organisation and the kind of item, and says the details come when the item opens.
* Invitation lists: seen by the curating organisation's members, site admins and the admins
  of organisations it is shared with; curated (edit, members, share) by the curating
  cluster's owners and admins.
* Exporting a list (CSV, with invited addresses) and importing rows into it: its curators.
* List members: seen by those who see the list, and each person or organisation their own
  entry. Shares: the curators and the receiving organisation's admins.
* List invitations (a person invited to a list by e-mail, account or not): seen by the
  list's curators and by the invited address; the invitee accepts or declines a pending one
  (with the mailed token); whoever holds the link may decline without an account; curators
  revoke pending or accepted ones (revoking an accepted one takes the person off the list).
  The mail and the link's page name the list and its organisation, never the items it opens.
* List attachments (which lists an item uses): the item's managers, and the list's curators
  for items they see; attaching needs a list the item's organisation curates or was given.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, false, or_, select, true

from ..extensions import db
from ..models import (
    AccessGrant,
    Invitation,
    InvitationList,
    InvitationState,
    Item,
    ItemList,
    ListInvitation,
    ListMember,
    ListShare,
    Organisation,
    OrgKind,
    Status,
    Visibility,
    utcnow,
)
from .core import Parent, PolicyError, Rule, Viewer, rule, viewer_email
from .items import (
    ITEMS,
    PUBLISHED,
    active_grant_clause,
    active_list_member_clause,
    can_manage_item,
    can_view_item,
    grant_to_viewer,
    list_member_of_viewer,
)
from .orgs import can_curate_lists

KNOWN_INVITATION_STATES = frozenset(InvitationState.values())


# --------------------------------------------------------------------------- invitations


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


class InvitationRule(Rule):
    model = Invitation

    def check(self, v: Viewer, inv: Invitation) -> bool:
        invitation_state(inv)  # fail closed on a corrupt row
        return can_manage_item(v, inv.item) or is_invitee(v, inv)

    def clause(self, v: Viewer):
        if not v.is_authenticated:
            return false()
        admins = list(v.admin_org_ids)
        cond = Invitation.email == (viewer_email(v) or "")
        if admins:
            cond = or_(cond, Invitation.item_id.in_(select(Item.id).where(Item.org_id.in_(admins))))
        return cond

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions.update({"revoke": can_revoke_invitation, "accept": can_answer_invitation,
                             "decline": can_answer_invitation, "preview_item": can_preview_invited_item})


def can_revoke_invitation(v: Viewer, inv: Invitation) -> bool:
    state = invitation_state(inv)
    return can_manage_item(v, inv.item) and state in (
        InvitationState.PENDING.value, InvitationState.ACCEPTED.value)


def can_answer_invitation(v: Viewer, inv: Invitation) -> bool:
    """Accept or decline: the invitee, while the invitation is pending."""
    return is_invitee(v, inv) and invitation_state(inv) == InvitationState.PENDING.value


GRANT_OPENS = frozenset({Visibility.PUBLIC.value, Visibility.REGISTERED.value, Visibility.INVITED.value})


def invitation_reveals_item(item: Item) -> bool:
    """May an invitation show this item's title and summary before it is accepted?"""
    return (item.status in PUBLISHED and item.hidden_at is None and item.visibility in GRANT_OPENS)


def can_preview_invited_item(v: Viewer, inv: Invitation) -> bool:
    """The item's title and summary on the invitation: those who see the item anyway, and the
    invitee where the invitation reveals the item."""
    return can_view_item(v, inv.item) or (is_invitee(v, inv) and invitation_reveals_item(inv.item))


def can_decline_with_token(v: Viewer, inv: Invitation) -> bool:
    """Whoever holds the mailed link may decline it without an account (the token proves
    the mailbox); a signed-in account must be the invited one."""
    if v.is_authenticated:
        return can_answer_invitation(v, inv)
    return invitation_state(inv) == InvitationState.PENDING.value


@ITEMS.action("invite")
def can_invite(v: Viewer, item: Item) -> bool:
    """Send e-mail invitations: the owning org's owners/admins; archived items are frozen."""
    return can_manage_item(v, item) and item.status != Status.ARCHIVED.value


@ITEMS.action("manage_invitations")
def can_manage_invitations(v: Viewer, item: Item) -> bool:
    """List and revoke invitations (revoking only narrows access, so archived items too)."""
    return can_manage_item(v, item)


@ITEMS.action("attach_list")
def can_attach_lists_to(v: Viewer, item: Item) -> bool:
    """Attach/detach invitation lists on this item (which lists: see ListUseRule)."""
    return can_manage_item(v, item) and item.status != Status.ARCHIVED.value


# --------------------------------------------------------------------------- lists


def can_curate_list(v: Viewer, lst: InvitationList) -> bool:
    """Edit, add/remove members, share: the curating cluster's owners and admins."""
    return can_curate_lists(v, lst.organisation)


def can_use_list(v: Viewer, lst: InvitationList, for_org_id: int) -> bool:
    """Attach `lst` to an item of `for_org_id`: the curator, or an org it is shared with."""
    if not v.is_org_admin(for_org_id):
        return False
    if lst.org_id == for_org_id:
        return True
    return db.session.execute(
        select(ListShare.id).where(ListShare.list_id == lst.id, ListShare.org_id == for_org_id)
    ).first() is not None


def usable_lists_clause(v: Viewer, org_id: int):
    """SQL twin of can_use_list for one organisation: lists it curates or that are shared
    with it, for its owners and admins."""
    if not v.is_org_admin(org_id):
        return false()
    return or_(InvitationList.org_id == org_id,
               exists().where(ListShare.list_id == InvitationList.id, ListShare.org_id == org_id))


class InvitationListRule(Rule):
    model = InvitationList

    def check(self, v: Viewer, lst: InvitationList) -> bool:
        if v.is_member(lst.org_id) or v.is_site_admin:
            return True
        return bool(v.admin_org_ids) and db.session.execute(
            select(ListShare.id).where(
                ListShare.list_id == lst.id, ListShare.org_id.in_(list(v.admin_org_ids)))
        ).first() is not None

    def clause(self, v: Viewer):
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

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions.update({"edit": can_curate_list, "manage_members": can_curate_list,
                             "share": can_curate_list,
                             # Where the list is attached (every use, see list_use_reveals_item).
                             "see_uses": can_curate_list})


LISTS = rule(InvitationListRule())


@LISTS.action("export_members")
def can_export_list(v: Viewer, lst: InvitationList) -> bool:
    """Download the list as CSV: its curators only. The file carries the addresses people
    were invited at, which only the curators see (as with ListInvitationRule); members of
    the curating organisation and organisations it is shared with may not."""
    return can_curate_list(v, lst)


@LISTS.action("import_members")
def can_import_list(v: Viewer, lst: InvitationList) -> bool:
    """Add rows from a CSV file: its curators, as for adding one member by hand."""
    return can_curate_list(v, lst)


def list_use_reveals_item(v: Viewer, a: ItemList) -> bool:
    """A curator sees every use of their list (see_uses): which organisation attached it,
    to what kind of item, since when; the item itself (title, link) only where they may see
    it, as anywhere else."""
    return can_curate_list(v, a.list) and ITEMS.can_view(v, a.item)


def list_uses_revealing_items(v: Viewer, lst: InvitationList, uses) -> set[int]:
    """list_use_reveals_item for many uses of one list at once (one query): the ids of the
    uses whose item the viewer may see."""
    if not can_curate_list(v, lst):
        return set()
    item_ids = {a.item_id for a in uses if a.list_id == lst.id}
    if not item_ids:
        return set()
    seen = set(db.session.execute(
        select(Item.id).where(Item.id.in_(item_ids), ITEMS.visible_clause(v))).scalars())
    return {a.id for a in uses if a.list_id == lst.id and a.item_id in seen}
can_view_list = LISTS.check


def _own_list_member(v: Viewer, m: ListMember) -> bool:
    return v.is_authenticated and (
        m.user_id == v.user_id or (m.member_org_id is not None and v.is_member(m.member_org_id)))


class ListMemberRule(Rule):
    model = ListMember
    parent = Parent("list", "list_id", InvitationList)

    def check(self, v: Viewer, m: ListMember) -> bool:
        return self.parent_ok(v, m) or _own_list_member(v, m)

    def clause(self, v: Viewer):
        if not v.is_authenticated:
            return false()
        return or_(self.parent_clause(v), list_member_of_viewer(v))

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions["remove"] = lambda v, m: can_curate_list(v, m.list)


class ListShareRule(Rule):
    """Sharing is the curator's business and the receiving organisation's admins'."""

    model = ListShare

    def check(self, v: Viewer, s: ListShare) -> bool:
        lst = db.session.get(InvitationList, s.list_id)
        return lst is not None and (can_curate_list(v, lst) or v.is_org_admin(s.org_id))

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions["delete"] = can_unshare


def can_unshare(v: Viewer, s: ListShare) -> bool:
    lst = db.session.get(InvitationList, s.list_id)
    return lst is not None and can_curate_list(v, lst)


def _curated_list_ids(v: Viewer):
    admins = list(v.admin_org_ids)
    return select(InvitationList.id).join(Organisation, Organisation.id == InvitationList.org_id).where(
        InvitationList.org_id.in_(admins), Organisation.kind == OrgKind.CLUSTER.value)


class ItemListRule(Rule):
    """Which lists an item uses: its managers, and the list's curators for items they see."""

    model = ItemList
    parent = Parent("item", "item_id", Item)

    def check(self, v: Viewer, a: ItemList) -> bool:
        return self.parent_ok(v, a) and (can_manage_item(v, a.item) or can_curate_list(v, a.list))

    def clause(self, v: Viewer):
        admins = list(v.admin_org_ids)
        if not v.is_authenticated or not admins:
            return false()
        return and_(self.parent_clause(v),
                    or_(ItemList.item_id.in_(select(Item.id).where(Item.org_id.in_(admins))),
                        ItemList.list_id.in_(_curated_list_ids(v))))

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        # The item's managers detach (also from archived items: detaching only narrows).
        self.actions["detach"] = lambda v, a: can_manage_item(v, a.item)


@dataclass(frozen=True)
class ListUse:
    """The question "may this list be attached to this item?" as one object for can()."""

    list: InvitationList
    item: Item


class ListUseRule(Rule):
    model = ListUse
    has_view = False

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions["attach"] = can_attach_list


def can_attach_list(v: Viewer, use: ListUse) -> bool:
    return (can_view_item(v, use.item) and can_attach_lists_to(v, use.item)
            and can_view_list(v, use.list) and can_use_list(v, use.list, use.item.org_id))


def _invited_to_list(v: Viewer, inv: ListInvitation) -> bool:
    email = viewer_email(v)
    return email is not None and email == (inv.email or "").strip().lower()


class ListInvitationRule(Rule):
    """A pending or past invitation to a list: the list's curators and the invited address
    (never other members of the curating organisation, nor organisations it is shared with:
    it carries a person's address)."""

    model = ListInvitation

    def check(self, v: Viewer, inv: ListInvitation) -> bool:
        invitation_state(inv)  # fail closed on a corrupt row
        return can_curate_list(v, inv.list) or _invited_to_list(v, inv)

    def clause(self, v: Viewer):
        if not v.is_authenticated:
            return false()
        cond = ListInvitation.email == (viewer_email(v) or "")
        if v.admin_org_ids:
            cond = or_(cond, ListInvitation.list_id.in_(_curated_list_ids(v)))
        return cond

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions.update({"revoke": can_revoke_list_invitation, "accept": can_answer_list_invitation,
                             "decline": can_answer_list_invitation})


def can_revoke_list_invitation(v: Viewer, inv: ListInvitation) -> bool:
    """The list's curators, while the invitation is pending or accepted."""
    return can_curate_list(v, inv.list) and invitation_state(inv) in (
        InvitationState.PENDING.value, InvitationState.ACCEPTED.value)


def can_answer_list_invitation(v: Viewer, inv: ListInvitation) -> bool:
    """Accept or decline: the signed-in holder of the invited address, while pending (the
    service also requires the mailed token)."""
    return _invited_to_list(v, inv) and invitation_state(inv) == InvitationState.PENDING.value


def can_decline_list_invitation_with_token(v: Viewer, inv: ListInvitation) -> bool:
    """Whoever holds the mailed link may decline it without an account; a signed-in account
    must hold the invited address."""
    if v.is_authenticated:
        return can_answer_list_invitation(v, inv)
    return invitation_state(inv) == InvitationState.PENDING.value


def is_list_invitee(v: Viewer, inv: ListInvitation) -> bool:
    return _invited_to_list(v, inv)


rule(InvitationRule())
rule(ListInvitationRule())
rule(ListMemberRule())
rule(ListShareRule())
rule(ItemListRule())
rule(ListUseRule())


# --------------------------------------------------------------------------- "my invitations"


def items_via_lists_clause(v: Viewer, now: datetime | None = None):
    """Item ids reached through an active list membership (the viewer's or their org's)."""
    if not v.is_authenticated:
        return false()
    now = now or utcnow()
    return Item.id.in_(
        select(ItemList.item_id).join(ListMember, ListMember.list_id == ItemList.list_id)
        .where(list_member_of_viewer(v), active_list_member_clause(now)))


def items_via_grants_clause(v: Viewer, now: datetime | None = None):
    """Item ids reached through an active access grant (the viewer's or their org's)."""
    if not v.is_authenticated:
        return false()
    now = now or utcnow()
    return Item.id.in_(select(AccessGrant.item_id).where(grant_to_viewer(v), active_grant_clause(now)))


def active_grants_for_viewer(v: Viewer, now: datetime | None = None):
    """SELECT of the active AccessGrant rows that reach the viewer (own or their org's)."""
    if not v.is_authenticated:
        return select(AccessGrant).where(false())
    now = now or utcnow()
    return select(AccessGrant).where(grant_to_viewer(v), active_grant_clause(now))


def active_list_memberships(v: Viewer, now: datetime | None = None):
    """SELECT of the viewer's active ListMember rows (own or through their organisations)."""
    if not v.is_authenticated:
        return select(ListMember).where(false())
    now = now or utcnow()
    return select(ListMember).where(list_member_of_viewer(v), active_list_member_clause(now))
