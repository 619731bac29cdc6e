"""Who may see invitations, invitation lists, their members, shares and attachments
(issue 3, and the docstrings of the invitation and list rules):

* an invitation is seen by the owning organisation's owners and admins (who send, list and
  revoke them) and by the invitee: the signed-in account whose e-mail is the invited address
  (e-mail addresses compare without case or surrounding spaces), whatever the invitation's
  state (pending, accepted, declined, revoked, expired). Nobody else, not even the item's
  other members. A state the model does not know (no expiry) is refused;
* lists are curated by cluster organisations: a list is seen by the curating organisation's
  members, by site admins, and by the owners and admins of organisations it is shared with;
* who is on a list is seen by those who may see the list, and each person sees their own
  entry (an organisation's entry is its members' own), whatever the entry's state;
* a share is the curator's business (the cluster's owners and admins) and the receiving
  organisation's owners and admins';
* which lists an item uses is seen by the item's managers (its organisation's owners and
  admins) and by the list's curators for items they may see.
"""
from __future__ import annotations

from .items import UnknownState, sees_item


def _norm(email) -> str:
    return (email or "").strip().lower()


def sees_invitation(p, inv, facts) -> bool:
    if inv.expires_at is None:
        raise UnknownState("invitation without expiry")
    if not p.signed_in:
        return False
    return p.admin(facts.items[inv.item_id].org_id) or _norm(p.email) == _norm(inv.email)


def curates(p, lst, facts) -> bool:
    return p.admin(lst.org_id) and facts.orgs[lst.org_id].kind == "cluster"


def sees_list(p, lst, facts) -> bool:
    if not p.signed_in:
        return False
    if p.member(lst.org_id) or p.site_admin:
        return True
    return any(p.admin(s.org_id) for s in facts.shares_of_list.get(lst.id, []))


def sees_list_member(p, m, facts) -> bool:
    own = p.is_(m.user_id) or (m.member_org_id is not None and p.member(m.member_org_id))
    return own or sees_list(p, facts.lists[m.list_id], facts)


def sees_share(p, s, facts) -> bool:
    return curates(p, facts.lists[s.list_id], facts) or p.admin(s.org_id)


def sees_attachment(p, a, facts) -> bool:
    item = facts.items[a.item_id]
    if not sees_item(p, item, facts):
        return False
    return p.admin(item.org_id) or curates(p, facts.lists[a.list_id], facts)
