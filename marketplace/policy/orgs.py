"""Organisations, user profiles and the site-wide roles.

* Organisation profiles are public (their items are filtered one by one); their owners and
  admins edit them, manage members, post items, and (for clusters) curate invitation lists.
  Only owners make, unmake or remove owners; anyone may leave.
* User profiles (display name only) are seen by signed-in users.
* Site actions: ``administer`` (site admins), ``moderate`` (site moderators and admins).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import true

from ..models import Organisation, OrgKind, OrgRole, User
from .core import Rule, Viewer, rule, site_action


class OrganisationRule(Rule):
    model = Organisation

    def check(self, v: Viewer, org: Organisation) -> bool:
        return True

    def clause(self, v: Viewer):
        return true()

    def doc_principals(self, org: Organisation, now: datetime) -> list[str]:
        return ["public"]

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions.update({
            "edit": self.administers,
            "manage_members": self.administers,
            "create_item": self.administers,   # drafts are theirs alone to see until published
            "curate_lists": can_curate_lists,
        })

    @staticmethod
    def administers(v: Viewer, org: Organisation) -> bool:
        return v.is_org_admin(org.id)


def can_curate_lists(v: Viewer, org: Organisation) -> bool:
    """Invitation lists are curated by cluster organisations' owners and admins."""
    return v.is_org_admin(org.id) and org.kind == OrgKind.CLUSTER.value


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


class UserRule(Rule):
    """Profiles (display name only) are for signed-in users; there is no list of users."""

    model = User

    def check(self, v: Viewer, user: User) -> bool:
        return v.is_authenticated


ORGANISATIONS = rule(OrganisationRule())
USERS = rule(UserRule())


@site_action("administer")
def can_administer_site(v: Viewer) -> bool:
    return v.is_site_admin


@site_action("moderate")
def can_moderate(v: Viewer) -> bool:
    return v.is_moderator
