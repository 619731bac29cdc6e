"""Demo data (called inside `flask demo load`; idempotent): the cluster's "Trusted energy
experts" list shared with Acme and attached to Acme's invited lidar challenge, and a
pending invitation for an address that has no account yet (its link is in the mail log)."""
from __future__ import annotations

from sqlalchemy import select

from ..extensions import db
from ..models import Invitation, InvitationList, Item, ItemList, ListMember, ListShare

LIST_NAME = "Trusted energy experts"
LIST_DESCRIPTION = ("Researchers and contributors the cluster's members have worked with and trust with "
                    "confidential briefs.")
ITEM_TITLE = "Confidential: next-generation lidar fusion"
PENDING_EMAIL = "newcomer@expert.test"


def load_demo(users: dict, orgs: dict) -> None:
    from ..services import invitations as inv_svc, lists as list_svc

    cluster, acme = orgs.get("North Sea Energy Cluster"), orgs.get("Acme Robotics")
    curator, acme_owner = users.get("curator@cluster.test"), users.get("owner@acme.test")
    if not (cluster and acme and curator and acme_owner):
        return
    db.session.flush()
    lst = db.session.execute(select(InvitationList).where(InvitationList.org_id == cluster.id,
                                                          InvitationList.name == LIST_NAME)).scalar()
    if lst is None:
        lst = list_svc.create_list(curator, cluster, LIST_NAME, LIST_DESCRIPTION)
    for email in ("researcher@uni.test", "invited@contributor.test"):
        user = users.get(email)
        if user is None:
            continue
        on = db.session.execute(select(ListMember.id).where(ListMember.list_id == lst.id,
                                                            ListMember.user_id == user.id,
                                                            ListMember.removed_at.is_(None))).first()
        if not on:
            list_svc.add_member(curator, lst, user=user)
    if not db.session.execute(select(ListShare.id).where(ListShare.list_id == lst.id,
                                                         ListShare.org_id == acme.id)).first():
        list_svc.share(curator, lst, acme)
    item = db.session.execute(select(Item).where(Item.org_id == acme.id, Item.title == ITEM_TITLE)).scalar()
    if item is None:
        return
    if not db.session.execute(select(ItemList.id).where(ItemList.item_id == item.id,
                                                        ItemList.list_id == lst.id)).first():
        list_svc.attach(acme_owner, item, lst)
    if not db.session.execute(select(Invitation.id).where(Invitation.item_id == item.id,
                                                          Invitation.email == PENDING_EMAIL)).first():
        inv_svc.create_invitation(acme_owner, item, PENDING_EMAIL)
