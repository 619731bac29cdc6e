"""A plain snapshot of the rows the visibility rules talk about, and what a viewer is.

Every table is read with a plain SELECT and each row copied into an attribute bag holding
its column values only (no relationships, no properties, no policy), so the oracles cannot
lean on the code they check. The snapshot is taken after a world is built and before the
policy is asked anything; `now` is fixed when it is taken (worlds put every date days away
from it, so the few milliseconds between the snapshot and the policy's own clock never
matter).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from types import SimpleNamespace

from sqlalchemy import inspect, select

from marketplace.extensions import db
from marketplace.models import (
    AccessGrant,
    ChallengeTerms,
    Idea,
    IdeaAttachment,
    IdeaAuthor,
    Invitation,
    InvitationList,
    Item,
    ItemList,
    ListMember,
    ListShare,
    Membership,
    Organisation,
    ReviewerAppointment,
    ReviewNote,
    TermsAcceptance,
    User,
    utcnow,
)
from marketplace.models.engagement import Answer, AssetRequest, AssetTerms, Comment, Question
from marketplace.models.moderation import (
    Appeal,
    ModerationAction,
    ModerationActionUser,
    ModerationFlag,
    ModeratorScope,
    Report,
)

TABLES = {
    "users": User, "memberships": Membership, "orgs": Organisation, "items": Item,
    "grants": AccessGrant, "lists": InvitationList, "list_members": ListMember, "list_shares": ListShare,
    "item_lists": ItemList, "invitations": Invitation, "scopes": ModeratorScope, "reports": Report,
    "actions": ModerationAction, "action_users": ModerationActionUser, "appeals": Appeal,
    "flags": ModerationFlag, "questions": Question, "answers": Answer, "comments": Comment,
    "requests": AssetRequest, "asset_terms": AssetTerms, "ideas": Idea, "idea_authors": IdeaAuthor,
    "attachments": IdeaAttachment,
    "terms": ChallengeTerms, "acceptances": TermsAcceptance, "appointments": ReviewerAppointment,
    "notes": ReviewNote,
}
# The table each model's rows live in, for the harness.
TABLE_OF = {model: name for name, model in TABLES.items()}


def _plain(row) -> SimpleNamespace:
    return SimpleNamespace(**{a.key: getattr(row, a.key) for a in inspect(type(row)).column_attrs})


class Facts:
    """Every row of TABLES as plain bags keyed by id, plus a few indexes by parent."""

    def __init__(self) -> None:
        self.now = utcnow()
        for name, model in TABLES.items():
            rows = db.session.execute(select(model)).scalars().all()
            setattr(self, name, {r.id: _plain(r) for r in rows})
        by = self._by
        self.roles: dict[int, dict[int, str]] = defaultdict(dict)
        for m in self.memberships.values():
            self.roles[m.user_id][m.org_id] = m.role
        self.scoped_orgs = by(self.scopes, "user_id")
        self.grants_of_item = by(self.grants, "item_id")
        self.lists_of_item = by(self.item_lists, "item_id")
        self.members_of_list = by(self.list_members, "list_id")
        self.shares_of_list = by(self.list_shares, "list_id")
        self.answer_of_question = {a.question_id: a for a in self.answers.values()}
        self.authors_of_idea = by(self.idea_authors, "idea_id")
        self.affected_by_action = by(self.action_users, "action_id")
        self.appointment = {(a.challenge_id, a.user_id): a for a in self.appointments.values()}
        self.cases: dict[tuple[str, int], list] = defaultdict(list)
        for table in (self.reports, self.actions, self.flags):
            for r in table.values():
                self.cases[(r.target_type, r.target_id)].append(r)

    @staticmethod
    def _by(table: dict, key: str) -> dict[int, list]:
        out: dict[int, list] = defaultdict(list)
        for r in table.values():
            out[getattr(r, key)].append(r)
        return out

    def person(self, name: str, user_id: int | None) -> "Person":
        """The viewer `user_id` (None: anonymous) as the rules see them."""
        if user_id is None:
            return Person(name)
        u = self.users[user_id]
        blocked = bool(u.banned) or (u.suspended_until is not None and u.suspended_until > self.now)
        if blocked:  # suspended or banned accounts are treated as anonymous
            return Person(name, id=u.id)
        return Person(name, id=u.id, email=u.email, signed_in=True, site_role=u.site_role,
                      roles=dict(self.roles.get(u.id, {})),
                      scoped=frozenset(s.org_id for s in self.scoped_orgs.get(u.id, [])))


@dataclass(frozen=True)
class Person:
    """A viewer in the rules' terms. A blocked account has its id (to name it in messages)
    but is not signed in, so nothing below grants it anything."""

    name: str
    id: int | None = None
    email: str | None = None
    signed_in: bool = False
    site_role: str = "user"
    roles: dict = field(default_factory=dict)  # org id -> owner/admin/member
    scoped: frozenset = frozenset()            # organisations whose challenges they moderate

    @property
    def staff(self) -> bool:
        """Site moderators and site admins (admins moderate too)."""
        return self.signed_in and self.site_role in ("moderator", "admin")

    @property
    def site_admin(self) -> bool:
        return self.signed_in and self.site_role == "admin"

    def member(self, org_id) -> bool:
        return self.signed_in and org_id in self.roles

    def admin(self, org_id) -> bool:
        """Owner or admin of the organisation."""
        return self.signed_in and self.roles.get(org_id) in ("owner", "admin")

    def is_(self, user_id) -> bool:
        return self.signed_in and user_id is not None and user_id == self.id

    def scoped_to(self, org_id) -> bool:
        return self.signed_in and org_id in self.scoped
