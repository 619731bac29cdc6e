"""Factories and a small world for the invitation and list tests."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from marketplace.extensions import db
from marketplace.models import Invitation, utcnow
from marketplace.services.invitations import hash_token, new_token


def make_invitation(item, email: str, invited_by=None, days: int = 14, **fields) -> tuple[Invitation, str]:
    """A pending invitation written directly (states are set with fields, e.g. expires_at=...)."""
    token = new_token()
    now = utcnow()
    fields.setdefault("expires_at", now + timedelta(days=days))
    inv = Invitation(item_id=item.id, email=email.strip().lower(), token_hash=hash_token(token),
                     invited_by_id=invited_by.id if invited_by else None, created_at=now, **fields)
    db.session.add(inv)
    db.session.commit()
    return inv, token


@dataclass
class World:
    """Acme (company) with owner/admin/member, a cluster with its curator and a plain member,
    an outsider, a guest to invite, an invited Acme challenge and an organisation-only one."""

    acme: object
    owner: object
    admin: object
    member: object
    cluster: object
    curator: object
    cluster_member: object
    other_co: object
    other_admin: object
    outsider: object
    guest: object
    item: object
    org_item: object


def make_world(f) -> World:
    owner, admin, member = f.make_user(), f.make_user(), f.make_user()
    curator, cluster_member = f.make_user(), f.make_user()
    other_admin, outsider = f.make_user(), f.make_user()
    guest = f.make_user(email="guest@invitee.test", name="Gina Guest")
    acme = f.make_org(kind="company", owner=owner, admins=(admin,), members=(member,))
    cluster = f.make_org(kind="cluster", owner=curator, members=(cluster_member,))
    other_co = f.make_org(kind="company", owner=other_admin)
    item = f.make_item(acme, kind="challenge", visibility="invited", title="Secret gripper brief")
    org_item = f.make_item(acme, kind="asset", visibility="organisation", title="Internal data")
    return World(acme, owner, admin, member, cluster, curator, cluster_member, other_co, other_admin, outsider,
                 guest, item, org_item)
