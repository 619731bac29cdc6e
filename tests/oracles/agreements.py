"""Who may reach an asset's files and data-sharing agreements (issue 17, README "Data-sharing
agreements"), written from the issue's words, not from the policy:

* an asset's files are downloaded by the members of the asset's organisation (any role);
* and by the people a partner organisation named in an agreement on that asset, in a role
  the agreement's sheet lists, while the agreement is in force: accepted, not ended early,
  and the clock between its start and its end date (after the end date it is over, whether
  or not anything ran); never while the asset is hidden by moderation (its organisation
  still reaches it);
* a removed file is reached by nobody; anonymous visitors reach nothing; site staff get
  nothing from their site role;
* an agreement is seen by the owners and admins of its two organisations and by the people
  named in it; the partner's owners and admins accept or decline it while it is proposed;
  the owners and admins of either side end it while it is proposed or in force; both sides'
  owners and admins read the usage log; only the data owner's owners and admins export it.

Rows are read with plain SELECTs into attribute bags (no relationships, no policy).
"""
from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from marketplace.extensions import db

ADMIN_ROLES = ("owner", "admin")


def snapshot(now) -> SimpleNamespace:
    """The tables these rules read, as plain rows."""
    def rows(table: str) -> list[SimpleNamespace]:
        t = db.metadata.tables[table]
        return [SimpleNamespace(**dict(r._mapping)) for r in db.session.execute(select(t)).all()]

    return SimpleNamespace(
        now=now,
        items={r.id: r for r in rows("items")},
        sheets={r.id: r for r in rows("data_sharing_sheets")},
        agreements={r.id: r for r in rows("data_agreements")},
        people=rows("agreement_people"),
        roles={(r.org_id, r.user_id): r.role for r in rows("memberships")},
        users={r.id: r for r in rows("users")},
    )


def _role(facts, org_id, user_id):
    return facts.roles.get((org_id, user_id)) if user_id else None


def _admin(facts, org_id, user_id) -> bool:
    return _role(facts, org_id, user_id) in ADMIN_ROLES


def _in_force(a, now) -> bool:
    return (a.status == "active" and a.ended_at is None and a.starts_at is not None and a.ends_at is not None
            and a.starts_at <= now < a.ends_at)


def reaches_file(user_id, f, facts) -> bool:
    if user_id is None or f.removed_at is not None:
        return False
    item = facts.items[f.item_id]
    if _role(facts, item.org_id, user_id) is not None:
        return True
    if item.hidden_at is not None:
        return False
    for a in facts.agreements.values():
        if a.item_id != f.item_id or not _in_force(a, facts.now):
            continue
        sheet_roles = facts.sheets[a.sheet_id].access_roles.split("\n")
        if any(p.agreement_id == a.id and p.user_id == user_id and p.role in sheet_roles for p in facts.people):
            return True
    return False


def sees_agreement(user_id, a, facts) -> bool:
    if user_id is None:
        return False
    return (_admin(facts, a.owner_org_id, user_id) or _admin(facts, a.partner_org_id, user_id)
            or any(p.agreement_id == a.id and p.user_id == user_id for p in facts.people))


def state(a, now) -> str:
    if a.status == "active":
        if a.ended_at is not None:
            return "ended"
        return "active" if a.starts_at <= now < a.ends_at else ("expired" if now >= a.ends_at else "proposed")
    return a.status


def may(action: str, user_id, a, facts) -> bool:
    if not sees_agreement(user_id, a, facts):
        return False
    owner, partner = _admin(facts, a.owner_org_id, user_id), _admin(facts, a.partner_org_id, user_id)
    s = state(a, facts.now)
    if action in ("accept", "decline"):
        return partner and a.status == "proposed"
    if action == "end":
        return (owner or partner) and s in ("proposed", "active")
    if action == "view_usage":
        return owner or partner
    if action == "export_usage":
        return owner
    raise KeyError(action)
