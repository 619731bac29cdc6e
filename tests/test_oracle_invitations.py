"""Invitations, invitation lists, list members, list shares and list attachments against
their oracle (tests/oracles/invitations.py): every viewer x every row, on can() and
visible() (shares have no list filter: can() only).

One world per module: a company (Acme) inviting by e-mail in every invitation state, a
cluster curating a shared and an unshared list, a company holding a list it cannot curate
(not a cluster), list entries for people and organisations in every state, and lists
attached to items at several levels and statuses.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from marketplace.extensions import db
from marketplace.models import Invitation, InvitationList, ItemList, ListMember, ListShare, utcnow

from .factories import Factories
from .factories_foundation import dispose, make_app
from .factories_invitations import make_invitation
from .oracles import invitations as oracle
from .oracles.harness import run_matrix

VIEWERS = ("anonymous", "outsider", "guest", "guest_other_case", "blocked_guest", "acme_owner", "acme_admin",
           "acme_member", "other_admin", "curator", "cluster_admin", "cluster_member", "shared_admin",
           "shared_member", "listed", "listed_expired", "listed_removed", "listed_org_member", "k_admin",
           "site_mod", "site_admin")
EMAILS = {"guest": "guest@invitee.test", "guest_other_case": "Other.Guest@Invitee.TEST",
          "blocked_guest": "blocked@invitee.test"}


def build():
    f = Factories()
    now = utcnow()
    past, future = now - timedelta(days=1), now + timedelta(days=30)
    U = {n: f.make_user(name=n.replace("_", " ").title(), email=EMAILS.get(n),
                        site_role={"site_mod": "moderator", "site_admin": "admin"}.get(n, "user"))
         for n in VIEWERS if n != "anonymous"}
    acme = f.make_org(name="Acme", owner=U["acme_owner"], admins=(U["acme_admin"],), members=(U["acme_member"],))
    f.make_org(name="Other Co", owner=U["other_admin"])
    cluster = f.make_org(name="Cluster", kind="cluster", owner=U["curator"], admins=(U["cluster_admin"],),
                         members=(U["cluster_member"],))
    shared = f.make_org(name="Shared Co", owner=U["shared_admin"], members=(U["shared_member"],))
    listed_org = f.make_org(name="Listed Org", members=(U["listed_org_member"],))
    k = f.make_org(name="K Company", owner=U["k_admin"])
    labels = {Invitation: {}, InvitationList: {}, ListMember: {}, ListShare: {}, ItemList: {}}

    def new_list(org, name):
        lst = f.make_list(org, name=name)
        labels[InvitationList][lst.id] = f"list {name}"
        return lst

    def place(lst, label, **kw):
        m = f.add_to_list(lst, **kw)
        labels[ListMember][m.id] = f"{label} on {lst.name}"
        return m

    def share(lst, org):
        s = ListShare(list_id=lst.id, org_id=org.id)
        db.session.add(s)
        db.session.commit()
        labels[ListShare][s.id] = f"{lst.name} shared with {org.name}"

    def attach(item, lst, label):
        a = f.attach_list(item, lst)
        labels[ItemList][a.id] = f"{lst.name} attached to {label}"

    shared_list = new_list(cluster, "shared list")
    private_list = new_list(cluster, "cluster-only list")
    k_list = new_list(k, "company's list")
    place(shared_list, "active person", user=U["listed"])
    place(shared_list, "expired person", user=U["listed_expired"], expires_at=past)
    place(shared_list, "person expiring later", user=U["guest"], expires_at=future)
    place(shared_list, "organisation", org=listed_org)
    place(private_list, "active person", user=U["listed"])
    place(k_list, "active person", user=U["listed"])
    removed = place(shared_list, "removed person", user=U["listed_removed"])
    removed.removed_at = past
    share(shared_list, shared)
    share(private_list, acme)

    invited = f.make_item(acme, visibility="invited", title="Acme invited challenge")
    internal = f.make_item(acme, kind="asset", visibility="organisation", title="Acme internal asset")
    draft = f.make_item(acme, visibility="invited", status="draft", title="Acme draft")
    archived = f.make_item(acme, kind="failure", visibility="invited", status="archived", title="Acme archived")
    public_s = f.make_item(shared, visibility="public", title="Shared Co public challenge")
    invited_s = f.make_item(shared, visibility="invited", title="Shared Co invited challenge")
    attach(invited, shared_list, "Acme's invited challenge")
    attach(internal, private_list, "Acme's organisation-only asset")
    attach(draft, shared_list, "Acme's draft")
    attach(archived, shared_list, "Acme's archived failure")
    attach(public_s, shared_list, "Shared Co's public challenge")
    attach(invited_s, shared_list, "Shared Co's invited challenge")

    def invite(item, email, label, by, **fields):
        inv, _token = make_invitation(item, email, invited_by=by, **fields)
        labels[Invitation][inv.id] = f"invitation {label} on {item.title}"

    owner = U["acme_owner"]
    invite(invited, "guest@invitee.test", "pending", owner)
    invite(invited, "guest@invitee.test", "accepted", owner, accepted_at=past, accepted_by_id=U["guest"].id)
    invite(invited, "guest@invitee.test", "declined", owner, declined_at=past)
    invite(invited, "guest@invitee.test", "revoked", owner, revoked_at=past, revoked_by_id=owner.id)
    invite(invited, "guest@invitee.test", "expired", owner, expires_at=past)
    invite(invited, "other.guest@invitee.test", "pending, account e-mail in other case", owner)
    invite(invited, "blocked@invitee.test", "pending, invitee banned", owner)
    invite(invited, "nobody@invitee.test", "pending, no account yet", owner)
    invite(internal, "guest@invitee.test", "pending", U["acme_admin"])
    invite(draft, "guest@invitee.test", "pending", owner)
    invite(archived, "guest@invitee.test", "expired", owner, expires_at=past)
    invite(invited_s, "guest@invitee.test", "pending", U["shared_admin"])

    U["blocked_guest"].banned = True
    db.session.commit()
    users = {n: (U[n].id if n != "anonymous" else None) for n in VIEWERS}
    return users, labels


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("oracle_invitations"), SEARCH_WORKER="off")
    with app.app_context():
        users, labels = build()
    yield run_matrix(
        app, users, labels,
        oracles={Invitation: oracle.sees_invitation, InvitationList: oracle.sees_list,
                 ListMember: oracle.sees_list_member, ListShare: oracle.sees_share,
                 ItemList: oracle.sees_attachment},
        no_sql=frozenset({ListShare}))
    dispose(app)


def test_every_face_of_every_invitation_and_list_view_rule_follows_the_rules(outcome):
    wrong = outcome.wrong()
    assert not wrong, "\n".join(wrong)


def test_the_matrix_is_not_degenerate(outcome):
    for model, (allowed, denied) in outcome.counts.items():
        assert allowed >= 5 and denied >= 10, model.__name__
    assert outcome.faces[Invitation] == outcome.faces[InvitationList] == outcome.faces[ListMember] \
        == outcome.faces[ItemList] == {"can", "visible"}
    assert "can" in outcome.faces[ListShare]
