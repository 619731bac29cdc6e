"""Programs' access: API tokens, organisation integrations and webhooks.

* A personal token is seen (listed, revoked) by its owner only.
* An organisation token is managed by the organisation's owners and admins; it acts as an
  integration account holding a role in the organisation, and an admin may give it no more
  than their own role (`may_give_token_role`): an admin makes admin or member tokens, only
  owners make owner tokens.
* Webhooks and their deliveries are the organisation's owners' and admins' (seen, added,
  removed, re-sent by them only).
* What a webhook delivery may carry is what the organisation sees as its admins do
  (`organisation_viewer`): not what only the review panel, its owners' own tokens or
  moderators see. A sealed idea's content, for instance, stays out of it.

Token *scopes* (read, write, ideas:write, ...) are not rules about people: they narrow what
one token may do and are checked in one place, marketplace/api/auth.py.
"""
from __future__ import annotations

from sqlalchemy import and_, false, or_

from ..models import ApiToken, OrgRole, Webhook, WebhookDelivery
from .core import Parent, Rule, Viewer, rule
from .orgs import ORGANISATIONS

# No account has id 0 (ids start at 1): the organisation viewer matches no person's rules.
ORGANISATION_VIEWER_ID = 0
_RANK = {OrgRole.MEMBER.value: 1, OrgRole.ADMIN.value: 2, OrgRole.OWNER.value: 3}


class ApiTokenRule(Rule):
    model = ApiToken

    def check(self, v: Viewer, t: ApiToken) -> bool:
        if t.org_id is None:
            return v.is_user(t.owner_id)
        return v.is_org_admin(t.org_id)

    def clause(self, v: Viewer):
        if not v.is_authenticated:
            return false()
        personal = and_(ApiToken.org_id.is_(None), ApiToken.owner_id == v.user_id)
        admin_orgs = list(v.admin_org_ids)
        return or_(personal, ApiToken.org_id.in_(admin_orgs)) if admin_orgs else personal

    def __init__(self) -> None:
        super().__init__()
        self.actions["revoke"] = self.check


class WebhookRule(Rule):
    model = Webhook

    def check(self, v: Viewer, w: Webhook) -> bool:
        return v.is_org_admin(w.org_id)

    def clause(self, v: Viewer):
        admin_orgs = list(v.admin_org_ids)
        return Webhook.org_id.in_(admin_orgs) if admin_orgs else false()

    def __init__(self) -> None:
        super().__init__()
        self.actions["manage"] = self.check


class WebhookDeliveryRule(Rule):
    """A delivery is seen, and re-sent, by whoever manages its webhook."""

    model = WebhookDelivery
    parent = Parent("webhook", "webhook_id", Webhook)

    def check(self, v: Viewer, d: WebhookDelivery) -> bool:
        return self.parent_ok(v, d)

    def clause(self, v: Viewer):
        return self.parent_clause(v)

    def __init__(self) -> None:
        super().__init__()
        self.actions["redeliver"] = self.check


API_TOKENS = rule(ApiTokenRule())
WEBHOOKS = rule(WebhookRule())
WEBHOOK_DELIVERIES = rule(WebhookDeliveryRule())


@ORGANISATIONS.action("manage_integrations")
def can_manage_integrations(v: Viewer, org) -> bool:
    """Organisation tokens and webhooks: the organisation's owners and admins."""
    return v.is_org_admin(org.id)


def may_give_token_role(v: Viewer, org_id: int, role: str) -> bool:
    """May this viewer make an organisation token acting with `role`? Admins of the
    organisation, up to their own role (an admin cannot mint an owner)."""
    if role not in _RANK or not v.is_org_admin(org_id):
        return False
    return _RANK[role] <= _RANK.get(v.org_roles.get(org_id, ""), 0)


def organisation_viewer(org_id: int) -> Viewer:
    """The organisation as a reader of webhook deliveries: what its admins see of its own
    items, without any one person's grants, reviewer appointments or site roles."""
    return Viewer(user_id=ORGANISATION_VIEWER_ID, org_roles={org_id: OrgRole.ADMIN.value})
