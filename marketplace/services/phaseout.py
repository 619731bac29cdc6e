"""Partner phase-out and post-termination duties (issue 17).

* ``participation(org, partner)``: what a partner organisation is part of with `org`: access
  grants on `org`'s items (to the partner or to its people), memberships of `org`'s
  invitation lists, reviewer appointments on `org`'s challenges, and data-sharing
  agreements between the two (either direction). People who are also members of `org`
  itself are left out: they are `org`'s own people.
* ``phase_out(user, org, partner, reason)``: ends all of it in one transaction, each end
  recorded in the audit trail with the reason.
* ``duties(org)``: the "what remains" list: post-termination duties from agreements the
  organisation is a party to (deletion or return of the data, the confidentiality period,
  the terms that survive the end) and from challenge terms its challenges' participants
  accepted (sealed ideas stay confidential until the reveal date; post-termination rights),
  for both sides, with dates.
* ``send_reminders(days)``: notifies both sides before each dated duty falls due, once per
  duty, person and date (``DutyReminder``), so the command may run as often as wanted.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from .. import audit, policy
from ..extensions import db
from ..models import (
    AccessGrant,
    ChallengeTerms,
    InvitationList,
    Item,
    ItemKind,
    ListMember,
    Membership,
    Organisation,
    ReviewerAppointment,
    TermsAcceptance,
    User,
    utcnow,
)
from ..models.agreements import DataAgreement, DutyReminder, EndOfTerm
from ..notify import notify
from .agreements import _end, _reason, _url
from .common import ServiceError, lock_row
from .notifications import org_admins


@dataclass
class Participation:
    grants: list[AccessGrant]
    list_members: list[ListMember]
    reviewers: list[ReviewerAppointment]
    agreements: list[DataAgreement]
    challenges: list[Item]

    @property
    def empty(self) -> bool:
        return not (self.grants or self.list_members or self.reviewers or self.agreements)


def _partner_people(org: Organisation, partner: Organisation) -> list[int]:
    ours = select(Membership.user_id).where(Membership.org_id == org.id)
    return list(db.session.execute(select(Membership.user_id).where(
        Membership.org_id == partner.id, Membership.user_id.not_in(ours))).scalars())


def participation(org: Organisation, partner: Organisation, now: datetime | None = None) -> Participation:
    now = now or utcnow()
    people = _partner_people(org, partner)
    our_items = select(Item.id).where(Item.org_id == org.id)
    grants = list(db.session.execute(select(AccessGrant).where(
        AccessGrant.item_id.in_(our_items), AccessGrant.revoked_at.is_(None),
        or_(AccessGrant.expires_at.is_(None), AccessGrant.expires_at > now),
        or_(AccessGrant.org_id == partner.id, AccessGrant.user_id.in_(people))).order_by(AccessGrant.id)).scalars())
    members = list(db.session.execute(select(ListMember).join(InvitationList).where(
        InvitationList.org_id == org.id, ListMember.removed_at.is_(None),
        or_(ListMember.expires_at.is_(None), ListMember.expires_at > now),
        or_(ListMember.member_org_id == partner.id, ListMember.user_id.in_(people))).order_by(ListMember.id)).scalars())
    reviewers = list(db.session.execute(select(ReviewerAppointment).where(
        ReviewerAppointment.challenge_id.in_(our_items), ReviewerAppointment.revoked_at.is_(None),
        ReviewerAppointment.user_id.in_(people)).order_by(ReviewerAppointment.id)).scalars())
    agreements = [a for a in db.session.execute(select(DataAgreement).where(
        or_((DataAgreement.owner_org_id == org.id) & (DataAgreement.partner_org_id == partner.id),
            (DataAgreement.owner_org_id == partner.id) & (DataAgreement.partner_org_id == org.id)))
        .order_by(DataAgreement.id)).scalars() if policy.agreement_state(a, now) in ("proposed", "active")]
    challenge_ids = {g.item_id for g in grants} | {r.challenge_id for r in reviewers}
    challenges = list(db.session.execute(select(Item).where(
        Item.id.in_(challenge_ids), Item.kind == ItemKind.CHALLENGE.value).order_by(Item.id)).scalars()) \
        if challenge_ids else []
    return Participation(grants, members, reviewers, agreements, challenges)


def partners(org: Organisation, now: datetime | None = None) -> list[tuple[Organisation, Participation]]:
    """Every other organisation taking part in something of `org`'s (or in an agreement with
    it), with what it is part of; bounded by the organisations that appear, one query each."""
    now = now or utcnow()
    our_items = select(Item.id).where(Item.org_id == org.id)
    ids: set[int] = set()
    ids |= set(db.session.execute(select(AccessGrant.org_id).where(
        AccessGrant.item_id.in_(our_items), AccessGrant.org_id.is_not(None), AccessGrant.revoked_at.is_(None))).scalars())
    ids |= set(db.session.execute(select(ListMember.member_org_id).join(InvitationList).where(
        InvitationList.org_id == org.id, ListMember.member_org_id.is_not(None),
        ListMember.removed_at.is_(None))).scalars())
    ids |= set(db.session.execute(select(DataAgreement.partner_org_id).where(DataAgreement.owner_org_id == org.id)).scalars())
    ids |= set(db.session.execute(select(DataAgreement.owner_org_id).where(DataAgreement.partner_org_id == org.id)).scalars())
    # Organisations of the people on our lists, granted access or reviewing our challenges.
    user_ids = select(ListMember.user_id).join(InvitationList).where(
        InvitationList.org_id == org.id, ListMember.user_id.is_not(None), ListMember.removed_at.is_(None)).union(
        select(AccessGrant.user_id).where(AccessGrant.item_id.in_(our_items), AccessGrant.user_id.is_not(None),
                                          AccessGrant.revoked_at.is_(None)),
        select(ReviewerAppointment.user_id).where(ReviewerAppointment.challenge_id.in_(our_items),
                                                  ReviewerAppointment.revoked_at.is_(None)))
    ids |= set(db.session.execute(select(Membership.org_id).where(Membership.user_id.in_(user_ids))).scalars())
    ids.discard(org.id)
    ids.discard(None)
    orgs = list(db.session.execute(select(Organisation).where(Organisation.id.in_(ids))
                                   .order_by(Organisation.name).limit(200)).scalars()) if ids else []
    out = [(o, participation(org, o, now)) for o in orgs]
    return [(o, p) for o, p in out if not p.empty]


def phase_out(user: User, org: Organisation, partner: Organisation | None, reason: str) -> Participation:
    """End the partner's participation in one step: its grants, list memberships, reviewer
    appointments and agreements with `org` end at once, each recorded with the reason."""
    refusal = policy.partner_refusal(policy.viewer_for(user), org, partner)
    if refusal:
        raise ServiceError(refusal, 403 if "owners and admins" in refusal else 400, field="partner")
    text = _reason(reason)
    lock_row(Organisation, org.id)
    now = utcnow()
    p = participation(org, partner, now)
    if p.empty:
        db.session.rollback()
        raise ServiceError(f"{partner.name} takes part in nothing of {org.name}'s; there is nothing to end.", 409)
    base = {"reason": text, "partner_org_id": partner.id}
    for g in p.grants:
        g.revoked_at = now
        audit.record("partner.grant_revoked", "grant", g.id, actor_id=user.id, item_id=g.item_id, data=base)
    for m in p.list_members:
        m.removed_at = now
        audit.record("partner.list_member_removed", "list_member", m.id, actor_id=user.id,
                     data=base | {"list_id": m.list_id})
    for r in p.reviewers:
        r.revoked_at = now
        audit.record("partner.reviewer_revoked", "reviewer", r.id, actor_id=user.id, item_id=r.challenge_id,
                     data=base)
    side_of = {True: "owner", False: "partner"}
    for a in p.agreements:
        _end(user, a, text, side_of[a.owner_org_id == org.id], "agreement.ended_by_phase_out")
    audit.record("partner.phased_out", "organisation", partner.id, actor_id=user.id,
                 data=base | {"org_id": org.id, "grants": len(p.grants), "list_members": len(p.list_members),
                              "reviewers": len(p.reviewers), "agreements": len(p.agreements)})
    for u in org_admins(partner.id):
        notify(u, "agreement", f"{org.name} ended {partner.name}'s participation: {text}",
               _url("agreements.remains", slug=partner.slug))
    db.session.commit()
    policy.forget_viewer()
    return p


# --------------------------------------------------------------------------- what remains


@dataclass
class Duty:
    key: str            # stable: reminders are deduplicated on it
    side: str           # owner | partner | both | organisation | participants
    org_ids: tuple      # whose admins are reminded
    what: str
    due: datetime | None
    source: str         # what it comes from (an agreement, a challenge's terms)
    url: str = ""


def agreement_duties(a: DataAgreement, now: datetime | None = None) -> list[Duty]:
    """The duties an agreement leaves once access ends (its end date, or the early end)."""
    state = policy.agreement_state(a, now)
    if state not in ("active", "expired", "ended") or a.accepted_at is None:
        return []
    s = a.sheet
    end = a.finished_at
    # No asset title: a party may no longer see the asset (the agreement page names it to those who may).
    src = f"Data-sharing agreement #{a.id} with {a.partner_org.name} (sheet v{a.sheet_version})"
    url = _url("agreements.detail", agreement_id=a.id)
    both = (a.owner_org_id, a.partner_org_id)
    verb = "Delete" if s.end_of_term == EndOfTerm.DELETE.value else "Return"
    out = [Duty(f"a{a.id}:data", "partner", both,
                f"{verb} all copies of the data{' (personal data)' if s.personal_data else ''} and confirm it "
                f"to {a.owner_org.name}", end + timedelta(days=s.end_of_term_days), src, url)]
    if s.confidentiality_days:
        out.append(Duty(f"a{a.id}:conf", "both", both, "Confidentiality of what was shared ends",
                        end + timedelta(days=s.confidentiality_days), src, url))
    if s.surviving_terms:
        out.append(Duty(f"a{a.id}:survive", "both", both, f"Terms that survive the end: {s.surviving_terms}",
                        end, src, url))
    return out


def challenge_duties(org: Organisation, now: datetime | None = None) -> list[Duty]:
    """From the terms accepted on `org`'s challenges: sealed ideas stay confidential until the
    reveal date, and post-termination rights (licence survival) from the challenge's close."""
    rows = db.session.execute(
        select(ChallengeTerms, Item).join(Item, Item.id == ChallengeTerms.challenge_id)
        .where(Item.org_id == org.id, ChallengeTerms.id.in_(select(TermsAcceptance.terms_id).distinct()))
        .order_by(ChallengeTerms.challenge_id, ChallengeTerms.version)).all()
    out = []
    for t, item in rows:
        src = f"Terms v{t.version} of “{item.title}”"
        url = _url("ideas.terms_sheet", challenge_id=item.id)
        if t.reveal_at is not None:
            out.append(Duty(f"t{t.id}:reveal", "organisation", (org.id,),
                            "Keep sealed ideas confidential until the reveal date", t.reveal_at, src, url))
        if t.post_termination_rights and item.deadline is not None:
            out.append(Duty(f"t{t.id}:survive", "both", (org.id,),
                            f"Post-termination rights: {t.post_termination_rights}", item.deadline, src, url))
    return out


def duties(org: Organisation, now: datetime | None = None) -> list[Duty]:
    now = now or utcnow()
    agreements = db.session.execute(select(DataAgreement).where(
        or_(DataAgreement.owner_org_id == org.id, DataAgreement.partner_org_id == org.id))
        .order_by(DataAgreement.id)).scalars()
    out = [d for a in agreements for d in agreement_duties(a, now)] + challenge_duties(org, now)
    return sorted(out, key=lambda d: (d.due or datetime.max.replace(tzinfo=now.tzinfo), d.key))


def send_reminders(days: int = 7, now: datetime | None = None) -> int:
    """Remind both sides' owners and admins of each duty falling due within `days`; each
    (duty, due date, person) once. Returns the number of reminders sent."""
    now = now or utcnow()
    horizon = now + timedelta(days=days)
    sent = 0
    agreements = db.session.execute(select(DataAgreement).where(DataAgreement.accepted_at.is_not(None))
                                    .order_by(DataAgreement.id)).scalars().all()
    all_duties = [d for a in agreements for d in agreement_duties(a, now)]
    for org in db.session.execute(select(Organisation).where(Organisation.id.in_(
            select(Item.org_id).where(Item.kind == ItemKind.CHALLENGE.value)))).scalars():
        all_duties += challenge_duties(org, now)
    for d in all_duties:
        if d.due is None or not now < d.due <= horizon:
            continue
        for org_id in dict.fromkeys(d.org_ids):
            for u in org_admins(org_id):
                key = f"{d.key}:{d.due:%Y%m%d%H%M}:{u.id}"[:160]
                try:
                    with db.session.begin_nested():
                        db.session.add(DutyReminder(dedupe_key=key, sent_at=now))
                except IntegrityError:
                    continue
                notify(u, "agreement.duty", f"Due {d.due:%Y-%m-%d}: {d.what} ({d.source}).", d.url)
                sent += 1
    db.session.commit()
    return sent
