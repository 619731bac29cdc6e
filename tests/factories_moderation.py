"""Moderation test helpers: a world with every kind of moderator, and shortcuts that go
through the real services (policy checks, audit, notifications)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from marketplace.extensions import db
from marketplace.models import AuditEvent, Notification, User, utcnow
from marketplace.models.moderation import ModeratorScope, Report
from marketplace.services import moderation as svc


class ModWorld:
    """Two organisations (A and B) with owners/admins/members; a site moderator, a second
    site moderator, a site admin; a moderator scoped to A's challenges and one scoped to B's;
    an outsider and a reporter. A and B each post a public challenge and a public failure."""

    def __init__(self, f):
        self.f = f
        self.site_mod = f.make_user(name="Sita SiteMod", site_role="moderator")
        self.site_mod2 = f.make_user(name="Sam SecondMod", site_role="moderator")
        self.site_admin = f.make_user(name="Ada Admin", site_role="admin")
        self.a_owner = f.make_user(name="Anna OwnerA")
        self.a_admin = f.make_user(name="Arne AdminA")
        self.a_member = f.make_user(name="Alma MemberA")
        self.b_owner = f.make_user(name="Bert OwnerB")
        self.b_admin = f.make_user(name="Bea AdminB")
        self.scoped_a = f.make_user(name="Scott ScopedA")
        self.scoped_b = f.make_user(name="Sue ScopedB")
        self.outsider = f.make_user(name="Otto Outsider")
        self.reporter = f.make_user(name="Rita Reporter")
        self.org_a = f.make_org(name="Org A", owner=self.a_owner, admins=(self.a_admin,), members=(self.a_member,))
        self.org_b = f.make_org(name="Org B", owner=self.b_owner, admins=(self.b_admin,))
        scope(self.scoped_a, self.org_a)
        scope(self.scoped_b, self.org_b)
        self.ch_a = f.make_item(self.org_a, kind="challenge", title="Challenge of A", created_by=self.a_owner)
        self.ch_b = f.make_item(self.org_b, kind="challenge", title="Challenge of B", created_by=self.b_owner)
        self.fail_a = f.make_item(self.org_a, kind="failure", title="Failure of A", created_by=self.a_owner)
        self.fail_b = f.make_item(self.org_b, kind="failure", title="Failure of B", created_by=self.b_owner)


def scope(user: User, org) -> ModeratorScope:
    s = ModeratorScope(user_id=user.id, org_id=org.id)
    db.session.add(s)
    db.session.commit()
    return s


def report(user: User, target_type: str, target_id: int, category: str = "spam", note: str = "Looks wrong.") -> Report:
    return svc.file_report(user, target_type, target_id, category, note)


def act(mod: User, target_type: str, target_id: int, kind: str, reason: str = "Breaks the rules.", **kw):
    return svc.take_action(mod, target_type, target_id, kind, reason, **kw)


def notes(user: User) -> list[str]:
    return list(db.session.execute(
        select(Notification.message).where(Notification.user_id == user.id).order_by(Notification.id)).scalars())


def audit_actions() -> list[str]:
    return list(db.session.execute(select(AuditEvent.action).order_by(AuditEvent.id)).scalars())


def backdate(obj, hours: float) -> None:
    obj.created_at = utcnow() - timedelta(hours=hours)
    db.session.commit()
