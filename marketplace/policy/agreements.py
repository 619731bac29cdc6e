"""Data-sharing agreements on assets, their files and usage log; phasing a partner out.

The rules, in prose (issue 17):

* a data-sharing sheet is the public offer an asset is made under: whoever sees the asset
  sees its sheets (like the asset's licence terms);
* an asset's files are seen (downloaded) by the members of the asset's organisation, and by
  the people of a partner organisation named in an agreement *in force* on that asset, in a
  role the agreement's sheet lists, while the asset is not hidden by moderation. An
  agreement is in force when it was accepted (status ``active``), not ended early, and the
  clock is between its start and its end date: the end is read at access time, so access
  ends by itself. Removed files are seen by nobody. Files are never in search: this rule has
  no search principals (asking for them raises), and the search indexer never reads files;
* an agreement is seen by the owners and admins of its two organisations and by the people
  named in it; the partner's owners and admins accept or decline a proposal; the owners and
  admins of either side end it early (with a reason) while it is proposed or in force; both
  sides' owners and admins read its usage log; the owning side's owners and admins export it;
* an organisation's owners and admins see what a partner organisation is part of with it,
  phase it out, and read what remains after termination ("what remains" page).

Unknown agreement statuses raise ``PolicyError``; nothing is granted by default.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, literal, or_, select

from ..extensions import db
from ..models import Item, ItemKind, Organisation, Status, utcnow
from ..models.agreements import AgreementPerson, AgreementStatus, AssetFile, DataAgreement, DataSharingSheet
from .core import Parent, ParentRule, PolicyError, Rule, Viewer, rule
from .items import ITEMS, check_known
from .orgs import ORGANISATIONS

KNOWN_AGREEMENT_STATUS = frozenset(AgreementStatus.values())


def _check_agreement(a: DataAgreement) -> None:
    if a.status not in KNOWN_AGREEMENT_STATUS:
        raise PolicyError(f"unknown agreement status {a.status!r}")


def agreement_state(a: DataAgreement, now: datetime | None = None) -> str:
    """proposed, active (in force), expired (past its end date), ended (early), declined."""
    _check_agreement(a)
    now = now or utcnow()
    if a.status == AgreementStatus.ACTIVE.value:
        if a.ended_at is not None:
            return "ended"
        if a.starts_at is None or a.ends_at is None or now < a.starts_at:
            return "proposed"
        return "active" if now < a.ends_at else "expired"
    return a.status


def in_force(a: DataAgreement, now: datetime | None = None) -> bool:
    """Accepted, not ended early, and now between its start and its end date."""
    return agreement_state(a, now) == "active"


def in_force_clause(now: datetime):
    """SQL twin of in_force over DataAgreement."""
    A = DataAgreement
    return and_(A.status == AgreementStatus.ACTIVE.value, A.ended_at.is_(None), A.starts_at.is_not(None),
                A.starts_at <= now, A.ends_at.is_not(None), A.ends_at > now)


def _role_listed_clause():
    """SQL: the person's role is one of the sheet's roles (a line of access_roles; roles hold
    no LIKE wildcards, see services.agreements.ROLE_RE)."""
    nl = literal("\n")
    return nl.concat(DataSharingSheet.access_roles).concat(nl).contains(
        nl.concat(AgreementPerson.role).concat(nl))


def is_owner_side(v: Viewer, a: DataAgreement) -> bool:
    return v.is_org_admin(a.owner_org_id)


def is_partner_side(v: Viewer, a: DataAgreement) -> bool:
    return v.is_org_admin(a.partner_org_id)


def named_person(v: Viewer, a: DataAgreement) -> AgreementPerson | None:
    if not v.is_authenticated:
        return None
    return next((p for p in a.people if p.user_id == v.user_id), None)


def access_agreement(v: Viewer, f: AssetFile, now: datetime | None = None) -> DataAgreement | None:
    """The agreement in force under which the viewer may reach this file (None: none).
    Members of the owning organisation reach their own files without one."""
    if not v.is_authenticated or f.removed_at is not None:
        return None
    now = now or utcnow()
    row = db.session.execute(
        select(DataAgreement).join(AgreementPerson, AgreementPerson.agreement_id == DataAgreement.id)
        .join(DataSharingSheet, DataSharingSheet.id == DataAgreement.sheet_id)
        .where(DataAgreement.item_id == f.item_id, AgreementPerson.user_id == v.user_id,
               in_force_clause(now), _role_listed_clause())
        .order_by(DataAgreement.id).limit(1)
    ).scalar()
    if row is not None:
        _check_agreement(row)
    return row


class DataSharingSheetRule(ParentRule):
    """A sheet is the public offer: seen by whoever sees its asset."""

    model = DataSharingSheet
    parent = Parent("item", "item_id", Item)


class AssetFileRule(Rule):
    """Members of the asset's organisation; people named in an agreement in force on the
    asset, in a role of its sheet, while the asset is not hidden. Removed files: nobody.
    Not searchable (no doc_principals: asking raises)."""

    model = AssetFile

    def check(self, v: Viewer, f: AssetFile) -> bool:
        if f.removed_at is not None or not v.is_authenticated:
            return False
        item = f.item
        check_known(item)
        if v.is_member(item.org_id):
            return True
        if item.hidden_at is not None:
            return False
        return access_agreement(v, f) is not None

    def clause(self, v: Viewer):
        if not v.is_authenticated:
            return false()
        F = AssetFile
        now = utcnow()
        conds = []
        if v.member_org_ids:
            conds.append(F.item_id.in_(select(Item.id).where(Item.org_id.in_(sorted(v.member_org_ids)))))
        conds.append(and_(
            F.item_id.in_(select(Item.id).where(Item.hidden_at.is_(None))),
            F.item_id.in_(
                select(DataAgreement.item_id)
                .join(AgreementPerson, AgreementPerson.agreement_id == DataAgreement.id)
                .join(DataSharingSheet, DataSharingSheet.id == DataAgreement.sheet_id)
                .where(AgreementPerson.user_id == v.user_id, in_force_clause(now), _role_listed_clause()))))
        return and_(F.removed_at.is_(None), or_(*conds))


class DataAgreementRule(Rule):
    """The owners and admins of both organisations, and the people named in it."""

    model = DataAgreement

    def check(self, v: Viewer, a: DataAgreement) -> bool:
        _check_agreement(a)
        return is_owner_side(v, a) or is_partner_side(v, a) or named_person(v, a) is not None

    def clause(self, v: Viewer):
        if not v.is_authenticated:
            return false()
        A = DataAgreement
        conds = [A.id.in_(select(AgreementPerson.agreement_id).where(AgreementPerson.user_id == v.user_id))]
        if v.admin_org_ids:
            admin = sorted(v.admin_org_ids)
            conds += [A.owner_org_id.in_(admin), A.partner_org_id.in_(admin)]
        return or_(*conds)

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions.update({
            "accept": can_accept_agreement,
            "decline": can_accept_agreement,
            "end": can_end_agreement,
            "view_usage": can_view_usage,
            "export_usage": can_export_usage,
        })


def can_accept_agreement(v: Viewer, a: DataAgreement) -> bool:
    """The partner's owners and admins, while the proposal stands."""
    return is_partner_side(v, a) and agreement_state(a) == "proposed" and a.status == AgreementStatus.PROPOSED.value


def can_end_agreement(v: Viewer, a: DataAgreement) -> bool:
    """Either side's owners and admins, while it is proposed or in force."""
    return (is_owner_side(v, a) or is_partner_side(v, a)) and agreement_state(a) in ("proposed", "active")


def can_view_usage(v: Viewer, a: DataAgreement) -> bool:
    _check_agreement(a)
    return is_owner_side(v, a) or is_partner_side(v, a)


def can_export_usage(v: Viewer, a: DataAgreement) -> bool:
    """The data owner exports the usage log."""
    _check_agreement(a)
    return is_owner_side(v, a)


@ITEMS.action("manage_sharing")
def can_manage_sharing(v: Viewer, item: Item) -> bool:
    """Publish data-sharing sheets and add or remove files: the asset organisation's owners
    and admins, on an asset that is not archived."""
    check_known(item)
    return v.is_org_admin(item.org_id) and item.kind == ItemKind.ASSET.value and item.status != Status.ARCHIVED.value


@ORGANISATIONS.action("phase_out")
def can_phase_out(v: Viewer, org: Organisation) -> bool:
    """See a partner's participation, end it, and read what remains: the owners and admins."""
    return v.is_org_admin(org.id)


def partner_refusal(v: Viewer, org: Organisation, partner: Any) -> str | None:
    """Why `org` may not phase out `partner` (None: it may)."""
    if not can_phase_out(v, org):
        return "Only the organisation's owners and admins phase partners out."
    if partner is None or partner.id == org.id:
        return "Choose another organisation to phase out."
    return None


for _r in (DataSharingSheetRule(), AssetFileRule(), DataAgreementRule()):
    rule(_r)
