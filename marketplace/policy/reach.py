"""Reaching people: notifications, mails, follows, announcements and the verified address.

* **What a message is about.** Notifications and mails record what they name
  (``about_type``/``about_id``: the table of any model with a view rule, and its id). A page that lists messages or events
  shows each one only as far as its reader may see what it names (`visible_about`, bounded:
  one query per type); a message is only created, and only sent, for a recipient who may see
  what it is about.
* **Notifications** are their recipient's alone; **delivery choices** and **follows** too.
* **The mail log and failures page** are for site admins (operations), and show a mail's
  subject only where the admin may see what it is about (`mail_subject_visible`); never a
  body (bodies carry one-time links).
* **Following**: a challenge one may see (published), any organisation, any tag; signed in.
* **Announcements** are seen by whoever sees their challenge; posted by the challenge
  organisation's owners and admins while it is published and not archived.
* **Taking part** (submitting ideas, being a co-author, asking, commenting, requesting) needs
  a verified e-mail address: `verification_refusal` is part of each participation rule.
* **Co-author invitations**: answered by the account holding the invited address.
"""
from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import select

from ..extensions import db
from ..models import (
    Announcement,
    CoauthorInvitation,
    Follow,
    Item,
    ItemKind,
    Notification,
    NotificationPref,
    OutgoingMail,
    Status,
    User,
)
from .core import Parent, PolicyError, Rule, Viewer, can, request_memo, rule, site_action, viewer_email, viewer_for
from .items import ITEMS, can_edit_item, can_view_item

UNVERIFIED_REFUSAL = ("Confirm your e-mail address to take part: follow the link we mailed you "
                      "(you can have it sent again from your account page).")


# --------------------------------------------------------------------------- the verified address


def email_verified(v: Viewer) -> bool:
    """The signed-in viewer's address is verified (memoised per request)."""
    if not v.is_authenticated:
        return False
    memo = request_memo("_policy_verified")
    if v.user_id not in memo:
        at = db.session.execute(select(User.email_verified_at).where(User.id == v.user_id)).scalar()
        memo[v.user_id] = at is not None
    return memo[v.user_id]


def verification_refusal(user: Any) -> str | None:
    """Why the viewer may not take part for want of a verified address (None: verified, or
    not signed in, which the caller's own rule refuses with its own words)."""
    v = viewer_for(user)
    if v.is_authenticated and not email_verified(v):
        return UNVERIFIED_REFUSAL
    return None


# --------------------------------------------------------------------------- what messages are about


def about_types() -> dict[str, type]:
    """Every model with a view rule, by table name: what a message may be about."""
    from .core import RULE_BOOK

    return {r.model.__tablename__: r.model for r in RULE_BOOK if r.has_view and hasattr(r.model, "__tablename__")}


def about_ref(obj: Any) -> tuple[str, int]:
    """(about_type, about_id) for a row; raises for a model without a view rule (a message
    about it could not be checked)."""
    from .core import RULE_BOOK

    r = RULE_BOOK.rule(type(obj))
    if not r.has_view:
        raise PolicyError(f"messages cannot be about a {type(obj).__name__}")
    return r.model.__tablename__, obj.id


def about_object(about_type: str | None, about_id: int | None) -> Any:
    if about_type is None:
        return None
    model = about_types().get(about_type)
    if model is None:
        raise PolicyError(f"unknown about type {about_type!r}")
    return db.session.get(model, about_id)


def can_view_about(user: Any, about_type: str | None, about_id: int | None) -> bool:
    """May the user see what a message names? (Nothing named: yes. Gone: no.)"""
    if about_type is None:
        return True
    obj = about_object(about_type, about_id)
    return obj is not None and can(user, "view", obj)


def visible_about(user: Any, refs: Iterable[tuple[str | None, int | None]]) -> set[tuple[str, int]]:
    """Of these (about_type, about_id) pairs, the ones the user may see: one query per type
    (the rule's SQL form), or one check per row where a rule has no SQL form."""
    from .core import RULE_BOOK

    by_type: dict[str, set[int]] = {}
    for t, i in refs:
        if t is not None and i is not None:
            by_type.setdefault(t, set()).add(i)
    out: set[tuple[str, int]] = set()
    v = viewer_for(user)
    for t, ids in by_type.items():
        model = about_types().get(t)
        if model is None:
            raise PolicyError(f"unknown about type {t!r}")
        r = RULE_BOOK.rule(model)
        try:
            clause = r.visible_clause(v)
        except PolicyError:
            clause = None
        if clause is not None:
            seen = db.session.execute(select(model.id).where(model.id.in_(ids), clause)).scalars()
            out.update((t, i) for i in seen)
        else:
            for obj in db.session.execute(select(model).where(model.id.in_(ids))).scalars():
                if r.can(v, "view", obj):
                    out.add((t, obj.id))
    return out


# --------------------------------------------------------------------------- rules


class NotificationRule(Rule):
    """A notification is its recipient's (the list then asks about what it names)."""

    model = Notification

    def check(self, v: Viewer, n: Notification) -> bool:
        return v.is_user(n.user_id)

    def clause(self, v: Viewer):
        return Notification.user_id == (v.user_id if v.is_authenticated else -1)


class NotificationPrefRule(Rule):
    model = NotificationPref

    def check(self, v: Viewer, p: NotificationPref) -> bool:
        return v.is_user(p.user_id)


class FollowRule(Rule):
    model = Follow

    def check(self, v: Viewer, f: Follow) -> bool:
        return v.is_user(f.user_id)

    def clause(self, v: Viewer):
        return Follow.user_id == (v.user_id if v.is_authenticated else -1)


class OutgoingMailRule(Rule):
    """The mail log is operations' view: site admins see that a mail exists (recipient,
    state, error); its subject only through `mail_subject_visible`, its body never."""

    model = OutgoingMail

    def check(self, v: Viewer, m: OutgoingMail) -> bool:
        return v.is_site_admin

    def clause(self, v: Viewer):
        from sqlalchemy import false, true
        return true() if v.is_site_admin else false()

    def __init__(self) -> None:
        super().__init__()
        self.actions["retry"] = lambda v, m: v.is_site_admin and m.status == "failed"


class AnnouncementRule(Rule):
    model = Announcement
    parent = Parent("item", "item_id", Item)

    def check(self, v: Viewer, a: Announcement) -> bool:
        return self.parent_ok(v, a)

    def clause(self, v: Viewer):
        return self.parent_clause(v)


class CoauthorInvitationRule(Rule):
    """Seen by the invited address's account and by the idea's lead author."""

    model = CoauthorInvitation

    def check(self, v: Viewer, inv: CoauthorInvitation) -> bool:
        return is_coauthor_invitee(v, inv) or (inv.idea is not None and v.is_user(inv.idea.author_id))


def is_coauthor_invitee(v: Viewer, inv: CoauthorInvitation) -> bool:
    """The signed-in account holds the invited address (or already answers for it)."""
    if not v.is_authenticated:
        return False
    if inv.user_id is not None:
        return inv.user_id == v.user_id
    return (viewer_email(v) or "") == inv.email


for _r in (NotificationRule(), NotificationPrefRule(), FollowRule(), OutgoingMailRule(), AnnouncementRule(),
           CoauthorInvitationRule()):
    rule(_r)


def mail_subject_visible(user: Any, mail: OutgoingMail, seen: set[tuple[str, int]] | None = None) -> bool:
    """May this reader of the mail log see the mail's subject? Only where they may see what
    the mail is about (`seen`: the result of visible_about for a page of mails)."""
    if not can(user, "view", mail):
        return False
    if mail.about_type is None:
        return True
    if seen is not None:
        return (mail.about_type, mail.about_id) in seen
    return can_view_about(user, mail.about_type, mail.about_id)


# --------------------------------------------------------------------------- following, announcing


@ITEMS.action("follow")
def can_follow_item(v: Viewer, item: Item) -> bool:
    """Follow a published challenge one may see (announcements and deadline reminders)."""
    return v.is_authenticated and item.kind == ItemKind.CHALLENGE.value and item.status != Status.DRAFT.value


@ITEMS.action("announce")
def can_announce(v: Viewer, item: Item) -> bool:
    """Post an announcement to a challenge's participants and followers: its organisation's
    owners and admins, while it is open or closed (not a draft, not archived)."""
    return (item.kind == ItemKind.CHALLENGE.value and item.status in (Status.OPEN.value, Status.CLOSED.value)
            and can_edit_item(v, item) and v.is_org_admin(item.org_id))


@site_action("follow_tag")
def can_follow_tag(v: Viewer) -> bool:
    return v.is_authenticated


@site_action("follow_org")
def can_follow_org(v: Viewer) -> bool:
    return v.is_authenticated


def may_be_told_about_item(user: Any, item: Item) -> bool:
    """A follower hears about a challenge (new, announced, closing) only if they may see it."""
    return can_view_item(viewer_for(user), item)
