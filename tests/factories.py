"""Small factories returning real rows in the test database."""
from __future__ import annotations

import itertools
from datetime import timedelta

from marketplace.extensions import db
from marketplace.models import (
    MODEL_BY_KIND,
    AccessGrant,
    InvitationList,
    ItemList,
    ItemTag,
    ListMember,
    Membership,
    Organisation,
    User,
    utcnow,
)
from marketplace.sanitize import render_markdown
from marketplace.security import hash_password

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)
_HASH = None


def _pw_hash() -> str:
    global _HASH
    if _HASH is None:  # Argon2 is deliberately slow: hash once per test run
        _HASH = hash_password(PASSWORD)
    return _HASH


def sign_in_client(client, app, user_id: int) -> None:
    """Sign a test client in as `user_id` without the sign-in form (no password check): a real
    server-side session is begun and its id put in the client's cookie, as sign-in does."""
    from marketplace.services import sessions

    with app.app_context():
        _row, token = sessions.begin(db.session.get(User, user_id))
    with client.session_transaction() as sess:
        sess["_user_id"] = str(user_id)
        sess["_sid"] = token
        sess["_fresh"] = True


class Factories:
    def make_user(self, email: str | None = None, name: str | None = None, site_role: str = "user", **kw) -> User:
        """A user with a verified address unless ``email_verified_at=None`` is given."""
        n = next(_seq)
        kw.setdefault("email_verified_at", utcnow())
        u = User(email=email or f"user{n}@example.test", display_name=name or f"User {n}",
                 password_hash=_pw_hash(), site_role=site_role, **kw)
        db.session.add(u)
        db.session.commit()
        return u

    def make_org(self, name: str | None = None, kind: str = "company", owner: User | None = None,
                 admins: tuple = (), members: tuple = ()) -> Organisation:
        n = next(_seq)
        name = name or f"Org {n}"
        org = Organisation(name=name, slug=f"org-{n}", kind=kind, description="", description_html="")
        db.session.add(org)
        db.session.flush()
        if owner:
            db.session.add(Membership(org_id=org.id, user_id=owner.id, role="owner"))
        for a in admins:
            db.session.add(Membership(org_id=org.id, user_id=a.id, role="admin"))
        for m in members:
            db.session.add(Membership(org_id=org.id, user_id=m.id, role="member"))
        db.session.commit()
        return org

    def add_member(self, org: Organisation, user: User, role: str = "member") -> Membership:
        m = Membership(org_id=org.id, user_id=user.id, role=role)
        db.session.add(m)
        db.session.commit()
        return m

    def make_item(self, org: Organisation, kind: str = "challenge", visibility: str = "public",
                  status: str = "open", title: str | None = None, body: str = "Some body text.",
                  tags: tuple = (), created_by: User | None = None, **kw):
        n = next(_seq)
        now = utcnow()
        item = MODEL_BY_KIND[kind](org_id=org.id, title=title or f"{kind.title()} {n}", body=body,
                                   body_html=render_markdown(body), visibility=visibility, status=status,
                                   created_by_id=created_by.id if created_by else None, **kw)
        if kind == "challenge" and "deadline" not in kw:
            item.deadline = now + timedelta(days=30)
        if status != "draft":
            item.published_at = now
        item.tag_rows = [ItemTag(tag=t) for t in tags]
        db.session.add(item)
        db.session.commit()
        return item

    def grant(self, item, user: User | None = None, org: Organisation | None = None,
              expires_at=None, revoked_at=None) -> AccessGrant:
        g = AccessGrant(item_id=item.id, user_id=user.id if user else None, org_id=org.id if org else None,
                        expires_at=expires_at, revoked_at=revoked_at)
        db.session.add(g)
        db.session.commit()
        return g

    def make_list(self, org: Organisation, name: str | None = None) -> InvitationList:
        lst = InvitationList(org_id=org.id, name=name or f"List {next(_seq)}")
        db.session.add(lst)
        db.session.commit()
        return lst

    def add_to_list(self, lst: InvitationList, user: User | None = None, org: Organisation | None = None,
                    expires_at=None) -> ListMember:
        m = ListMember(list_id=lst.id, user_id=user.id if user else None,
                       member_org_id=org.id if org else None, expires_at=expires_at)
        db.session.add(m)
        db.session.commit()
        return m

    def attach_list(self, item, lst: InvitationList) -> ItemList:
        a = ItemList(item_id=item.id, list_id=lst.id)
        db.session.add(a)
        db.session.commit()
        return a


def appoint_reviewer(owner, challenge, user, nda_text: str = ""):
    """Appoint `user` as a reviewer of `challenge` as the site does: a member of the
    organisation at once, anyone else by the mailed invitation, accepted here from its link.
    Returns the appointment."""
    from marketplace.models import ReviewerInvitation
    from marketplace.services import ideas as ideas_svc

    appt = ideas_svc.appoint_reviewer(owner, challenge, user.email, nda_text)
    if isinstance(appt, ReviewerInvitation):
        appt = ideas_svc.accept_reviewer_invitation(user, appt.token)
    return appt
