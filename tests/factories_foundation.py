"""Shared helpers for the foundation tests: the access rules of issue 2 written out once,
independently of marketplace/policy.py, and a builder for a world holding every kind of viewer.

The rules (issue 2 and the policy module):
* drafts: the owning organisation's owners and admins only, whatever the level;
* site moderators and site admins see every published item (hidden or not, any level);
* a hidden item: its organisation's members (and moderators) only;
* public: anyone; registered: any signed-in user; invited: the organisation's members plus
  holders of an active grant (to them or to an organisation they belong to) or an active
  place on an attached invitation list; organisation: the organisation's members only;
* suspended or banned accounts are treated as anonymous;
* nothing may be done to what one may not see; edit: the owning organisation's owners and
  admins, except archived items (frozen); change_visibility, change_status, delete and
  manage_access: the owning organisation's owners and admins.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from marketplace.extensions import db
from marketplace.models import AccessGrant, ListMember, utcnow

from .factories import Factories

VISIBILITIES = ("public", "registered", "invited", "organisation")
STATUSES = ("draft", "open", "closed", "archived")
ITEM_ACTIONS = ("view", "edit", "change_visibility", "change_status", "delete", "manage_access")
KINDS = ("challenge", "failure", "asset")


@dataclass(frozen=True)
class Profile:
    """What a kind of viewer is, in the terms the rules use."""

    name: str
    signed_in: bool = True
    member: bool = False        # member (any role) of the owning organisation
    org_admin: bool = False     # owner or admin of the owning organisation
    staff: bool = False         # site moderator or site admin
    invited_access: bool = False  # active grant or active list place for the item


PROFILES = {p.name: p for p in [
    Profile("anonymous", signed_in=False),
    Profile("outsider"),
    Profile("granted", invited_access=True),
    Profile("expired_grant"),
    Profile("revoked_grant"),
    Profile("org_granted", invited_access=True),       # member of an organisation holding a grant
    Profile("org_grant_expired"),                     # member of an org whose grant expired
    Profile("list_active", invited_access=True),
    Profile("list_expired"),
    Profile("list_removed"),
    Profile("list_via_org", invited_access=True),      # member of an org that is on the list
    Profile("member", member=True),
    Profile("admin", member=True, org_admin=True),
    Profile("owner", member=True, org_admin=True),
    Profile("other_member"),                          # member of another organisation
    Profile("other_admin"),                           # admin of another organisation
    Profile("moderator", staff=True),
    Profile("site_admin", staff=True),
    Profile("suspended_member", signed_in=False),     # blocked accounts count as anonymous
    Profile("banned_admin", signed_in=False),
]}


def expected(p: Profile, visibility: str, status: str, hidden: bool, action: str) -> bool:
    if status not in STATUSES or visibility not in VISIBILITIES:
        raise ValueError("the rules only know the listed states")
    if status == "draft":
        view = p.org_admin
    elif p.staff:
        view = True
    elif hidden and not p.member:
        view = False
    else:
        view = {
            "public": True,
            "registered": p.signed_in,
            "invited": p.member or p.invited_access,
            "organisation": p.member,
        }[visibility]
    if action == "view":
        return view
    if not view:
        return False
    if action == "edit":
        return p.org_admin and status != "archived"
    if action in ("change_visibility", "change_status", "delete", "manage_access"):
        return p.org_admin
    raise ValueError(action)


class World:
    """Organisations, lists and one user per Profile; `add_item` wires every grant and list
    place the profiles need onto a new item."""

    def __init__(self) -> None:
        f = self.f = Factories()
        now = utcnow()
        self.past = now - timedelta(days=1)
        self.future = now + timedelta(days=30)
        u = self.users = {name: f.make_user(name=name.replace("_", " ").title(),
                                            site_role={"moderator": "moderator",
                                                       "site_admin": "admin"}.get(name, "user"))
                          for name in PROFILES if name != "anonymous"}
        self.org = f.make_org(name="Owner Org", owner=u["owner"], admins=(u["admin"], u["banned_admin"]),
                              members=(u["member"], u["suspended_member"]))
        self.other_org = f.make_org(name="Other Org", admins=(u["other_admin"],), members=(u["other_member"],))
        self.granted_org = f.make_org(name="Granted Org", members=(u["org_granted"],))
        self.expired_org = f.make_org(name="Expired Grant Org", members=(u["org_grant_expired"],))
        self.list_org = f.make_org(name="Listed Org", members=(u["list_via_org"],))
        self.cluster = f.make_org(name="Cluster", kind="cluster")
        self.lst = f.make_list(self.cluster, name="Trusted experts")
        f.add_to_list(self.lst, user=u["list_active"])
        f.add_to_list(self.lst, user=u["list_expired"], expires_at=self.past)
        removed = f.add_to_list(self.lst, user=u["list_removed"])
        removed.removed_at = self.past
        f.add_to_list(self.lst, org=self.list_org)
        u["suspended_member"].suspended_until = self.future
        u["banned_admin"].banned = True
        db.session.commit()
        self._ids = {"users": {n: x.id for n, x in u.items()},
                     "orgs": {a: getattr(self, a).id for a in
                              ("org", "other_org", "granted_org", "expired_org", "list_org", "cluster")},
                     "lst": self.lst.id}

    def rebind(self) -> "World":
        """Reload the world's rows into the current session (for module-scoped worlds used
        from later application contexts)."""
        from marketplace.models import InvitationList, Organisation, User

        self.f = Factories()
        self.users = {n: db.session.get(User, i) for n, i in self._ids["users"].items()}
        for attr, i in self._ids["orgs"].items():
            setattr(self, attr, db.session.get(Organisation, i))
        self.lst = db.session.get(InvitationList, self._ids["lst"])
        return self

    def add_item(self, kind: str = "challenge", visibility: str = "public", status: str = "open",
                 hidden: bool = False, title: str | None = None, org=None, tags: tuple = ()):
        f, u = self.f, self.users
        item = f.make_item(org or self.org, kind=kind, visibility=visibility, status=status, title=title,
                           tags=tags)
        if hidden:
            item.hidden_at = self.past
            item.hidden_reason = "Reported and hidden"
        f.grant(item, user=u["granted"])
        f.grant(item, user=u["expired_grant"], expires_at=self.past)
        f.grant(item, user=u["revoked_grant"], revoked_at=self.past)
        f.grant(item, org=self.granted_org)
        f.grant(item, org=self.expired_org, expires_at=self.past)
        f.attach_list(item, self.lst)
        db.session.commit()
        return item

    def user(self, name: str):
        return None if name == "anonymous" else self.users[name]


def make_app(tmp_dir, **overrides):
    """An app like conftest's `app` fixture, for module-scoped worlds (tables created)."""
    from marketplace import create_app
    from marketplace.config import TestingConfig

    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_dir / 'test.db'}"
        SEARCH_INDEX_DIR = str(tmp_dir / "search")
        UPLOAD_DIR = str(tmp_dir / "uploads")

    for k, v in overrides.items():
        setattr(Cfg, k, v)
    app = create_app(Cfg)
    app.instance_path = str(tmp_dir)
    with app.app_context():
        db.create_all()
    return app


def dispose(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def count_rows(model) -> int:
    from sqlalchemy import func, select

    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


__all__ = ["PROFILES", "Profile", "World", "expected", "count_rows", "make_app", "dispose", "VISIBILITIES", "STATUSES",
           "ITEM_ACTIONS", "KINDS", "AccessGrant", "ListMember"]
