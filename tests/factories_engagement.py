"""Engagement test helpers: a world holding every kind of viewer, and the participation
rules of issue 6 written out independently of marketplace/policy.py.

The rules:
* nobody takes part in what they may not see (item visibility, issue 2);
* `registered`: any signed-in user (who may see the item);
* `invited`: members of the owning organisation, and holders of invited access (an active
  grant or an active place on an attached list);
* `organisation`: members of the owning organisation;
* `nobody`: nobody;
* requests never come from the owning organisation's own members.
"""
from __future__ import annotations

from datetime import timedelta

from marketplace.extensions import db
from marketplace.models import User, utcnow
from marketplace.models.engagement import AssetRequest, Comment, Question
from marketplace.services import engagement as svc

from .factories import Factories

VIEWERS = ("anonymous", "outsider", "granted", "listed", "member", "admin", "moderator")
VISIBILITIES = ("public", "registered", "invited", "organisation")
PARTICIPATION = ("registered", "invited", "organisation", "nobody")
ACTIONS = ("ask", "comment", "request")
KIND_FOR = {"ask": "challenge", "comment": "failure", "request": "asset"}
RULE_FIELD = {"ask": "ask_rule", "comment": "comment_rule", "request": "request_rule"}

# Who sees an open, shown item at each level (issue 2).
SEES = {
    "public": set(VIEWERS),
    "registered": set(VIEWERS) - {"anonymous"},
    "invited": {"granted", "listed", "member", "admin", "moderator"},
    "organisation": {"member", "admin", "moderator"},
}
# Who each participation rule admits (visibility aside).
RULE_ADMITS = {
    "registered": set(VIEWERS) - {"anonymous"},
    "invited": {"granted", "listed", "member", "admin"},
    "organisation": {"member", "admin"},
    "nobody": set(),
}
OWN_ORG = {"member", "admin"}


def expected(viewer: str, visibility: str, rule: str, action: str) -> str:
    """"ok", "hidden" (404: may not see the item) or "refused" (403, with a reason)."""
    if viewer not in SEES[visibility]:
        return "hidden"
    if viewer not in RULE_ADMITS[rule]:
        return "refused"
    if action == "request" and viewer in OWN_ORG:
        return "refused"
    return "ok"


class EngagementWorld:
    """An owning organisation (owner, admin, member), an outsider, a person holding a grant
    on every item, a person on an invitation list attached to every item, a site moderator
    and a third party with an organisation of their own."""

    def __init__(self, f: Factories):
        self.f = f
        self.owner = f.make_user(name="Olga Owner")
        self.admin = f.make_user(name="Adam Admin")
        self.member = f.make_user(name="Mia Member")
        self.outsider = f.make_user(name="Oscar Outsider")
        self.granted = f.make_user(name="Greta Granted")
        self.listed = f.make_user(name="Liam Listed")
        self.moderator = f.make_user(name="Mo Moderator", site_role="moderator")
        self.org = f.make_org(name="Owning Org", owner=self.owner, admins=(self.admin,), members=(self.member,))
        self.cluster = f.make_org(name="Cluster", kind="cluster", owner=f.make_user(name="Curator"))
        self.other_admin = f.make_user(name="Tara Third-party")
        self.other_org = f.make_org(name="Third Org", owner=self.other_admin)
        self.list = f.make_list(self.cluster)
        f.add_to_list(self.list, user=self.listed)

    @property
    def users(self) -> dict[str, User | None]:
        return {"anonymous": None, "outsider": self.outsider, "granted": self.granted, "listed": self.listed,
                "member": self.member, "admin": self.admin, "moderator": self.moderator}

    def item(self, kind: str = "challenge", visibility: str = "public", rules: dict | None = None,
             terms: bool = True, **kw):
        item = self.f.make_item(self.org, kind=kind, visibility=visibility, **kw)
        self.f.grant(item, user=self.granted)
        self.f.attach_list(item, self.list)
        if rules:
            svc.set_rules(self.admin, item, rules)
        if kind == "asset" and terms and item.status == "open":
            svc.publish_terms(self.admin, item, TERMS)
        return item


TERMS = {"licence_kind": "non-exclusive", "field_of_use": "Research", "territory": "Worldwide",
         "duration": "3 years", "fee_model": "royalty", "notes": ""}


def do(action: str, user: User, item, body: str = "Some text worth reading."):
    """Take part through the service, as the pages do."""
    if action == "ask":
        return svc.ask_question(user, item, body)
    if action == "comment":
        return svc.add_comment(user, item, body)
    if action == "request":
        t = svc.current_terms(item)
        return svc.send_request(user, item, "licence", body, terms_version=t.version if t else None,
                                terms_digest=t.digest if t else None)
    raise ValueError(action)


def count(model, **kw) -> int:
    return db.session.query(model).filter_by(**kw).count()


ROW_MODEL = {"ask": Question, "comment": Comment, "request": AssetRequest}


def backdate(obj, minutes: int) -> None:
    """Move a post's creation time into the past (the edit window is measured from it)."""
    obj.created_at = utcnow() - timedelta(minutes=minutes)
    db.session.commit()
