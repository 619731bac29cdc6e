"""Who may export or import an invitation list, and who may download or delete whose
account, against an oracle written from the rules as issue 11 and the README state them
(plain Python over plain attributes; nothing here reads marketplace.policy's code):

* a list is exported (CSV, with invited addresses) and imported into by its curators only:
  the owners and admins of the cluster organisation that curates it -- not its plain
  members, not organisations it is shared with, not site admins, not anyone signed out or
  blocked;
* a person's data is downloaded by that person only, signed in and not blocked (site
  admins and organisation admins included in "nobody else"); an account is deleted by its
  person only, once.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace import policy
from marketplace.extensions import db
from marketplace.models import ListShare, utcnow

PEOPLE = ("anonymous", "curator", "cluster_admin", "cluster_member", "shared_admin", "shared_member",
          "company_owner", "listed", "site_admin", "site_mod", "banned_curator", "suspended_admin")


def oracle_may_transfer_list(person: dict | None, lst: dict) -> bool:
    if person is None or person["banned"] or person["suspended"]:
        return False
    return lst["org_kind"] == "cluster" and person["roles"].get(lst["org_id"]) in ("owner", "admin")


def oracle_may_own_data(person: dict | None, subject: dict, action: str) -> bool:
    if person is None or person["banned"] or person["suspended"]:
        return False
    if person["id"] != subject["id"]:
        return False
    return action == "download_data" or subject["deleted_at"] is None


def _plain(user, memberships) -> dict | None:
    if user is None:
        return None
    return {"id": user.id, "banned": bool(user.banned),
            "suspended": user.suspended_until is not None and user.suspended_until > utcnow(),
            "roles": {m.org_id: m.role for m in memberships if m.user_id == user.id}}


@pytest.fixture
def world(f):
    U = {n: f.make_user(name=n.replace("_", " ").title(),
                        site_role={"site_admin": "admin", "site_mod": "moderator"}.get(n, "user"))
         for n in PEOPLE if n != "anonymous"}
    cluster = f.make_org(kind="cluster", owner=U["curator"], admins=(U["cluster_admin"], U["banned_curator"]),
                         members=(U["cluster_member"],))
    cluster2 = f.make_org(kind="cluster", owner=f.make_user(), admins=(U["suspended_admin"],))
    shared = f.make_org(kind="company", owner=U["shared_admin"], members=(U["shared_member"],))
    company = f.make_org(kind="company", owner=U["company_owner"])
    lists = [f.make_list(cluster, "Cluster list"), f.make_list(cluster2, "Other cluster list"),
             f.make_list(company, "A company's list (not a cluster)")]
    db.session.add(ListShare(list_id=lists[0].id, org_id=shared.id))
    f.add_to_list(lists[0], user=U["listed"])
    U["banned_curator"].banned = True
    U["suspended_admin"].suspended_until = utcnow() + timedelta(days=3)
    db.session.commit()
    return U, lists


def test_list_export_and_import_follow_the_oracle(world):
    from marketplace.models import Membership, Organisation

    U, lists = world
    memberships = db.session.query(Membership).all()
    kinds = {o.id: o.kind for o in db.session.query(Organisation).all()}
    allowed = denied = 0
    for name in PEOPLE:
        user = U.get(name)
        person = _plain(user, memberships)
        for lst in lists:
            want = oracle_may_transfer_list(person, {"org_id": lst.org_id, "org_kind": kinds[lst.org_id]})
            allowed, denied = allowed + want, denied + (not want)
            for action in ("export_members", "import_members"):
                policy.forget_viewer()
                assert policy.can(user, action, lst) == want, (name, lst.name, action)
    assert allowed == 2 and denied >= 20  # the curator and the cluster admin, on their list


def test_data_download_and_deletion_follow_the_oracle(world, f):
    from marketplace.models import Membership

    U, _lists = world
    gone = f.make_user(name="Gone")
    gone.deleted_at = utcnow()
    db.session.commit()
    memberships = db.session.query(Membership).all()
    subjects = [U["curator"], U["listed"], U["site_admin"], U["banned_curator"], gone]
    for name in (*PEOPLE, "gone"):
        user = gone if name == "gone" else U.get(name)
        person = _plain(user, memberships)
        if person is not None and user.deleted_at is not None:
            person["banned"] = True  # a deleted account can never sign in again
        for subject in subjects:
            for action in ("download_data", "delete_account"):
                want = oracle_may_own_data(person, {"id": subject.id, "deleted_at": subject.deleted_at}, action)
                assert policy.can(user, action, subject) == want, (name, subject.display_name, action)
