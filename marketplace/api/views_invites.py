"""Invitations (create, accept, decline, revoke) and invitation lists with their members,
through marketplace/services/invitations.py and lists.py."""
from __future__ import annotations

from flask import abort
from flask_login import current_user

from .. import policy
from ..models import Invitation, InvitationList, ListMember
from ..services import invitations as inv_svc
from ..services import lists as lists_svc
from ..services.accounts import find_user
from ..services.common import ServiceError
from . import schemas as s
from .core import PageQuery, listing, newest_visible, operation, page_list
from .serializers import invitation_json, list_json, list_member_json
from .views import item_or_404


@operation("/v1/items/<int:item_id>/invitations", summary="An item's invitations (its organisation)",
           tag="Invitations", query=PageQuery, response=s.InvitationList, paginated=True, errors=(403, 404),
           auth=True)
def item_invitations(item_id: int, q):
    it = item_or_404(item_id)
    policy.require("manage_invitations", it)
    return listing("invitations", newest_visible(Invitation, Invitation.item_id == it.id), q, invitation_json)


@operation("/v1/items/<int:item_id>/invitations", "POST", summary="Invite someone to an item",
           tag="Invitations", scope="invitations:write", body=s.InvitationCreate, response=s.InvitationCreated,
           status=201, errors=(403, 404, 409))
def invitation_create(item_id: int, body: s.InvitationCreate):
    """The e-mail is queued as from the page; `accept_url` (with the token) is shown once."""
    it = item_or_404(item_id)
    inv, token = inv_svc.create_invitation(current_user, it, body.email, days=body.days,
                                           access_until=body.access_until)
    return {**invitation_json(inv), "accept_url": inv_svc.accept_url(token)}


@operation("/v1/me/invitations", summary="Invitations to your e-mail address", tag="Invitations",
           query=PageQuery, response=s.InvitationList, paginated=True, auth=True)
def my_invitations(q):
    rows = [i for i in inv_svc.invitations_for_user(current_user) if policy.can(current_user, "view", i)]
    page, meta = page_list(rows, q)
    return {"invitations": [invitation_json(i) for i in page], **meta}


def _answer(inv: Invitation) -> dict:
    return {"id": inv.id, "item_id": inv.item_id, "state": policy.invitation_state(inv)}


@operation("/v1/invitations/accept", "POST", summary="Accept an invitation (its token)", tag="Invitations",
           scope="invitations:write", body=s.InvitationToken, response=s.InvitationAnswer,
           errors=(403, 404, 409, 410))
def invitation_accept(body: s.InvitationToken):
    return _answer(inv_svc.accept(current_user, body.token))


@operation("/v1/invitations/decline", "POST", summary="Decline an invitation (its token)", tag="Invitations",
           scope="invitations:write", body=s.InvitationToken, response=s.InvitationAnswer,
           errors=(403, 404, 409, 410))
def invitation_decline(body: s.InvitationToken):
    return _answer(inv_svc.decline(current_user, body.token))


@operation("/v1/invitations/<int:invitation_id>", "DELETE", summary="Revoke an invitation", tag="Invitations",
           scope="invitations:write", response=s.InvitationAnswer, errors=(403, 404, 409))
def invitation_revoke(invitation_id: int):
    inv = policy.get_visible_or_404(Invitation, invitation_id)
    return _answer(inv_svc.revoke(current_user, inv))


# --------------------------------------------------------------------------- lists


@operation("/v1/lists", summary="Invitation lists you may see", tag="Lists", query=PageQuery,
           response=s.ListList, paginated=True, auth=True)
def lists(q):
    stmt = policy.visible(current_user, InvitationList).order_by(InvitationList.name, InvitationList.id)
    return listing("lists", stmt, q, list_json)


@operation("/v1/lists/<int:list_id>", summary="Get an invitation list", tag="Lists", response=s.ListOut,
           errors=(404,))
def list_get(list_id: int):
    return list_json(policy.get_visible_or_404(InvitationList, list_id))


@operation("/v1/orgs/<slug>/lists", "POST", summary="Create an invitation list (clusters)", tag="Lists",
           scope="lists:write", body=s.ListCreate, response=s.ListOut, status=201, errors=(403, 404, 409))
def list_create(slug: str, body: s.ListCreate):
    return list_json(lists_svc.create_list(current_user, policy.get_visible_org_or_404(slug), body.name, body.description))


@operation("/v1/lists/<int:list_id>/members", summary="A list's members", tag="Lists", query=PageQuery,
           response=s.ListMemberList, paginated=True, errors=(404,))
def list_members(list_id: int, q):
    lst = policy.get_visible_or_404(InvitationList, list_id)
    stmt = policy.visible(current_user, ListMember).where(ListMember.list_id == lst.id).order_by(ListMember.id)
    return listing("members", stmt, q, list_member_json)


@operation("/v1/lists/<int:list_id>/members", "POST", summary="Add an organisation to a list, or invite a person",
           tag="Lists", scope="lists:write", body=s.ListMemberAdd, response=s.ListMemberOut, status=201,
           errors=(403, 404, 409),
           extra_responses={202: "An e-mail address: an invitation link was mailed (the same answer whether or "
                                 "not the address has an account); the person joins when they accept it."})
def list_member_add(list_id: int, body: s.ListMemberAdd):
    """Send `email` (a person, invited by mail) or `org` (an organisation's slug), not both."""
    lst = policy.get_visible_or_404(InvitationList, list_id)
    if (body.email is None) == (body.org is None):
        raise ServiceError("Send exactly one of email and org.", 422, field="email")
    if body.email is not None:
        inv = lists_svc.invite_to_list(current_user, lst, body.email, member_until=body.expires_at)
        return {"invited": inv.email, "state": "pending", "expires_at": inv.expires_at.isoformat(),
                "message": f"Invitation mailed to {inv.email}."}, 202
    m = lists_svc.add_member(current_user, lst, org=policy.get_visible_org_or_404(body.org), expires_at=body.expires_at)
    return list_member_json(m)


@operation("/v1/lists/<int:list_id>/members/<int:member_id>", "DELETE", summary="Take someone off a list",
           tag="Lists", scope="lists:write", status=204, errors=(403, 404, 409))
def list_member_remove(list_id: int, member_id: int):
    m = policy.get_visible_or_404(ListMember, member_id)
    if m.list_id != list_id:
        abort(404)
    lists_svc.remove_member(current_user, m)
    return None
