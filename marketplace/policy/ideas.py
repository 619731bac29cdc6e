"""Ideas, terms, acceptances, attachments and review.

Who may see an idea (one rule, three forms in `IdeaRule`):

* its authors (lead, co-authors, and invited co-authors who have not answered) always;
* nobody else while it waits for co-authors (it is not submitted yet);
* site moderators everything else (hidden and withdrawn ideas included: they moderate them),
  and whoever moderates a case on it (declared exception `SeenInCases`);
* everyone else only submitted ideas that are neither hidden nor withdrawn, and only if they
  may see the challenge; then an open (or revealed) idea is seen by all of them, a sealed one
  only by its *sealed readers*: the review panel (the posting organisation's owners/admins
  and the challenge's active reviewers), declared as `IdeaRule.sealed_readers`.

"Sealed" is the strictest confidentiality any author of the idea accepted, stored on the idea
itself, so a later, more open terms version never opens an earlier sealed idea.

Attachments follow their idea; terms follow their challenge; a receipt (terms acceptance),
a private review note and a reviewer appointment are their holder's (appointments also the
challenge organisation's admins').
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, exists, false, func, or_, select

from ..extensions import db
from ..models import (
    AcceptancePurpose,
    AuthorStatus,
    ChallengeRules,
    ChallengeTerms,
    Confidentiality,
    Idea,
    IdeaAttachment,
    IdeaAuthor,
    IdeaStatus,
    InvitationState,
    Item,
    ItemKind,
    ReviewerAppointment,
    ReviewerInvitation,
    ReviewerKind,
    ReviewNote,
    Status,
    TermsAcceptance,
    User,
    WhoMaySubmit,
    utcnow,
)
from ..timezones import format_dt
from .core import Parent, PolicyError, Rule, Viewer, rule, viewer_email, viewer_for, visible_clause
from .items import ITEMS, can_edit_item, can_view_item, check_known, in_audience, item_visibility_clause
from .places import SeenInCases, moderates_place
from .reach import email_verified, verification_refusal

KNOWN_IDEA_STATUS = frozenset(IdeaStatus.values())
KNOWN_CONFIDENTIALITY = frozenset(Confidentiality.values())
# Submitted in the broad sense: others may see these (subject to the rules above).
IDEA_SHOWN_STATES = frozenset({
    IdeaStatus.SUBMITTED.value, IdeaStatus.UNDER_REVIEW.value, IdeaStatus.SHORTLISTED.value,
    IdeaStatus.AWARDED.value, IdeaStatus.DECLINED.value, IdeaStatus.DISQUALIFIED.value,
})
IDEA_REVISABLE_STATES = frozenset({
    IdeaStatus.AWAITING_COAUTHORS.value, IdeaStatus.SUBMITTED.value, IdeaStatus.UNDER_REVIEW.value,
})
IDEA_WITHDRAWABLE_STATES = frozenset({
    IdeaStatus.AWAITING_COAUTHORS.value, IdeaStatus.SUBMITTED.value, IdeaStatus.UNDER_REVIEW.value,
    IdeaStatus.SHORTLISTED.value,
})
IDEA_REVIEWABLE_STATES = frozenset({
    IdeaStatus.SUBMITTED.value, IdeaStatus.UNDER_REVIEW.value, IdeaStatus.SHORTLISTED.value,
})
IDEA_VISIBLE_AUTHOR_STATES = (AuthorStatus.LEAD.value, AuthorStatus.ACCEPTED.value, AuthorStatus.PENDING.value)
IDEA_COUNTING_AUTHOR_STATES = (AuthorStatus.LEAD.value, AuthorStatus.ACCEPTED.value)


def check_idea(idea: Idea) -> None:
    if idea.status not in KNOWN_IDEA_STATUS:
        raise PolicyError(f"unknown idea status {idea.status!r}")
    if idea.confidentiality not in KNOWN_CONFIDENTIALITY:
        raise PolicyError(f"unknown confidentiality {idea.confidentiality!r}")


def current_terms(challenge_id: int) -> ChallengeTerms | None:
    """The challenge's current (highest) terms version, or None."""
    return db.session.execute(
        select(ChallengeTerms).where(ChallengeTerms.challenge_id == challenge_id)
        .order_by(ChallengeTerms.version.desc()).limit(1)
    ).scalar()


def challenge_rules(challenge_id: int) -> ChallengeRules | None:
    return db.session.execute(
        select(ChallengeRules).where(ChallengeRules.challenge_id == challenge_id)
    ).scalar()


def idea_is_sealed(idea: Idea, now: datetime | None = None) -> bool:
    """Sealed and not yet revealed (fails closed on an unknown confidentiality)."""
    check_idea(idea)
    if idea.confidentiality == Confidentiality.OPEN.value:
        return False
    now = now or utcnow()
    return idea.reveal_at is None or idea.reveal_at > now


def idea_author_status(v: Viewer, idea: Idea) -> str | None:
    """The viewer's author row status on this idea (lead/accepted/pending/declined) or None."""
    if not v.is_authenticated:
        return None
    for a in idea.authors:
        if a.user_id == v.user_id:
            return a.status
    return None


def is_idea_author(v: Viewer, idea: Idea, *, include_pending: bool = True) -> bool:
    states = IDEA_VISIBLE_AUTHOR_STATES if include_pending else IDEA_COUNTING_AUTHOR_STATES
    return idea_author_status(v, idea) in states


# --------------------------------------------------------------------------- the review panel


def reviewer_appointment(v: Viewer, challenge_id: int) -> ReviewerAppointment | None:
    if not v.is_authenticated:
        return None
    return db.session.execute(
        select(ReviewerAppointment).where(ReviewerAppointment.challenge_id == challenge_id,
                                          ReviewerAppointment.user_id == v.user_id)
    ).scalar()


def appointment_is_active(appt: ReviewerAppointment | None, v: Viewer, org_id: int) -> bool:
    """Not revoked, and either NDA accepted or (for member reviewers) still a member."""
    if appt is None or appt.revoked_at is not None:
        return False
    if appt.kind not in (ReviewerKind.MEMBER.value, ReviewerKind.JUDGE.value):
        raise PolicyError(f"unknown reviewer kind {appt.kind!r}")
    if appt.nda_accepted_at is not None:
        return True
    return appt.kind == ReviewerKind.MEMBER.value and v.is_member(org_id)


def reviewer_active_clause(v: Viewer, challenge_id_col):
    """SQL twin of appointment_is_active for the challenge in ``challenge_id_col``."""
    members = list(v.member_org_ids)
    member_ok = and_(
        ReviewerAppointment.kind == ReviewerKind.MEMBER.value,
        exists().where(Item.id == ReviewerAppointment.challenge_id, Item.org_id.in_(members)),
    ) if members else false()
    return exists().where(
        ReviewerAppointment.challenge_id == challenge_id_col,
        ReviewerAppointment.user_id == v.user_id,
        ReviewerAppointment.revoked_at.is_(None),
        or_(ReviewerAppointment.nda_accepted_at.is_not(None), member_ok),
    )


def is_active_reviewer(v: Viewer, challenge: Item) -> bool:
    """An appointed reviewer of the challenge who may act now."""
    return appointment_is_active(reviewer_appointment(v, challenge.id), v, challenge.org_id)


@dataclass(frozen=True)
class ReviewPanel:
    """The people who read sealed ideas and decide on a challenge's ideas: the posting
    organisation's owners/admins and the challenge's active reviewers."""

    def grants(self, v: Viewer, challenge: Item) -> bool:
        return v.is_org_admin(challenge.org_id) or is_active_reviewer(v, challenge)

    def clause(self, v: Viewer, challenge_id_col):
        if not v.is_authenticated:
            return false()
        admins = list(v.admin_org_ids)
        org_admin = challenge_id_col.in_(select(Item.id).where(Item.org_id.in_(admins))) if admins else false()
        return or_(org_admin, reviewer_active_clause(v, challenge_id_col))

    def principals(self, challenge: Item) -> set[str]:
        # Reviewer principals are only issued to reviewers who may see the challenge
        # (reviewer_principals), and org admins always see their own challenges.
        out = {f"orgadmin:{challenge.org_id}"}
        if challenge.status != Status.DRAFT.value:
            out.add(f"reviewers:{challenge.id}")
        return out

    def viewer_principals(self, v: Viewer) -> list[str]:
        """`reviewers:CHALLENGE_ID` for each challenge the viewer actively reviews and may see."""
        if not v.is_authenticated:
            return []
        out = []
        for appt in db.session.execute(
                select(ReviewerAppointment).where(ReviewerAppointment.user_id == v.user_id,
                                                  ReviewerAppointment.revoked_at.is_(None))).scalars():
            ch = appt.challenge
            if appointment_is_active(appt, v, ch.org_id) and can_view_item(v, ch):
                out.append(f"reviewers:{ch.id}")
        return out


REVIEW_PANEL = ReviewPanel()


def is_review_panel(v: Viewer, challenge: Item) -> bool:
    return REVIEW_PANEL.grants(v, challenge)


# --------------------------------------------------------------------------- ideas


class IdeaRule(Rule):
    model = Idea
    parent = Parent("challenge", "challenge_id", Item)
    exceptions = (SeenInCases("idea"),)
    sealed_readers = REVIEW_PANEL

    def check(self, v: Viewer, idea: Idea) -> bool:
        check_idea(idea)
        if is_idea_author(v, idea):
            return True
        if idea.status == IdeaStatus.AWAITING_COAUTHORS.value:
            return False
        if v.is_moderator:
            return True
        if idea.status not in IDEA_SHOWN_STATES or idea.hidden_at is not None:
            return False
        if not self.parent_ok(v, idea):
            return False
        if not idea_is_sealed(idea):
            return True
        return self.sealed_readers.grants(v, idea.challenge)

    def clause(self, v: Viewer, now: datetime | None = None):
        now = now or utcnow()
        if not v.is_authenticated:
            author = false()
        else:
            author = exists().where(
                IdeaAuthor.idea_id == Idea.id, IdeaAuthor.user_id == v.user_id,
                IdeaAuthor.status.in_(IDEA_VISIBLE_AUTHOR_STATES),
            )
        challenge_seen = Idea.challenge_id.in_(select(Item.id).where(item_visibility_clause(v, now)))
        revealed = or_(
            Idea.confidentiality == Confidentiality.OPEN.value,
            and_(Idea.confidentiality == Confidentiality.SEALED.value,
                 Idea.reveal_at.is_not(None), Idea.reveal_at <= now),
        )
        seen = and_(
            Idea.status.in_(IDEA_SHOWN_STATES), Idea.hidden_at.is_(None), challenge_seen,
            Idea.confidentiality.in_(KNOWN_CONFIDENTIALITY),
            or_(revealed, self.sealed_readers.clause(v, Idea.challenge_id)),
        )
        if v.is_moderator:
            seen = Idea.status.in_(KNOWN_IDEA_STATUS - {IdeaStatus.AWAITING_COAUTHORS.value})
        # A row with an unknown status or confidentiality is listed for nobody, as check_idea
        # refuses it for everybody: the two forms fail closed alike.
        return and_(Idea.status.in_(KNOWN_IDEA_STATUS), Idea.confidentiality.in_(KNOWN_CONFIDENTIALITY),
                    or_(author, seen))

    def doc_principals(self, idea: Idea, now: datetime) -> list[str]:
        """Time-dependent for sealed ideas with a reveal date: valid_until says when."""
        check_idea(idea)
        authors = [f"user:{a.user_id}" for a in idea.authors if a.status in IDEA_VISIBLE_AUTHOR_STATES]
        if idea.status == IdeaStatus.AWAITING_COAUTHORS.value:
            return sorted(set(authors))
        out = set(authors) | {"staff"}
        if idea.status not in IDEA_SHOWN_STATES or idea.hidden_at is not None:
            return sorted(out)
        challenge = idea.challenge
        if not idea_is_sealed(idea, now):
            return sorted(out | set(ITEMS.doc_principals(challenge, now)))
        return sorted(out | self.sealed_readers.principals(challenge))

    def valid_until(self, idea: Idea, now: datetime) -> datetime | None:
        reveal = idea.reveal_at if idea.reveal_at is not None and idea.reveal_at > now \
            and idea_is_sealed(idea, now) else None
        found = [t for t in (reveal, ITEMS.valid_until(idea.challenge, now)) if t is not None]
        return min(found) if found else None

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions.update({
            "revise": can_revise_idea,
            "withdraw": can_withdraw_idea,
            "answer_coauthorship": can_answer_coauthorship,
            "view_view_log": lambda v, idea: is_idea_author(v, idea),
            "view_team": can_view_team,
            "view_review": can_view_review,
            "score": can_score_idea,
            "shortlist": lambda v, idea: _can_decide(v, idea, {IdeaStatus.SUBMITTED.value,
                                                              IdeaStatus.UNDER_REVIEW.value}),
            "decline": lambda v, idea: _can_decide(v, idea, set(IDEA_REVIEWABLE_STATES)),
            "award": lambda v, idea: _can_decide(v, idea, {IdeaStatus.SHORTLISTED.value}),
            "confirm_payment": can_confirm_payment,
            "disqualify": can_disqualify_idea,
        })


def _before_deadline(challenge: Item, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return (challenge.status == Status.OPEN.value and challenge.deadline is not None
            and now < challenge.deadline and (challenge.opens_at is None or challenge.opens_at <= now))


def can_revise_idea(v: Viewer, idea: Idea) -> bool:
    """Authors (lead and accepted co-authors) revise before the deadline, until a decision."""
    check_idea(idea)
    return (is_idea_author(v, idea, include_pending=False) and idea.status in IDEA_REVISABLE_STATES
            and _before_deadline(idea.challenge))


def can_withdraw_idea(v: Viewer, idea: Idea) -> bool:
    """The lead author withdraws, before the deadline."""
    check_idea(idea)
    return (idea_author_status(v, idea) == AuthorStatus.LEAD.value
            and idea.status in IDEA_WITHDRAWABLE_STATES and _before_deadline(idea.challenge))


def can_answer_coauthorship(v: Viewer, idea: Idea) -> bool:
    check_idea(idea)
    return (idea_author_status(v, idea) == AuthorStatus.PENDING.value
            and idea.status not in (IdeaStatus.WITHDRAWN.value, IdeaStatus.DISQUALIFIED.value))


def can_view_team(v: Viewer, idea: Idea) -> bool:
    """The team page (members, their states, each one's acceptance of the terms: version,
    digest, date): whoever may see the idea, since the idea names its authors to all of
    them (Rule.can checks viewing first). Which rows each viewer sees: team_member_shown."""
    check_idea(idea)
    return True


def team_member_shown(v: Viewer, idea: Idea, author: IdeaAuthor) -> bool:
    """On the team page: the lead, co-authors and pending invitations to anyone who may see
    the team; a declined co-authorship only to the idea's authors and to the one who
    declined (it names someone who chose not to be on the idea)."""
    if author.idea_id != idea.id:
        return False
    if author.status in IDEA_VISIBLE_AUTHOR_STATES:
        return True
    if author.status == AuthorStatus.DECLINED.value:
        return is_idea_author(v, idea) or v.is_user(author.user_id)
    raise PolicyError(f"unknown author status {author.status!r}")


def can_view_review(v: Viewer, idea: Idea) -> bool:
    """Scores and the review panel: reviewers and org admins, never an author of the idea."""
    check_idea(idea)
    return not is_idea_author(v, idea) and is_review_panel(v, idea.challenge)


def can_score_idea(v: Viewer, idea: Idea) -> bool:
    """Scores and private notes: active reviewers who are not authors of the idea."""
    check_idea(idea)
    return (idea.status in IDEA_REVIEWABLE_STATES and idea.hidden_at is None
            and not is_idea_author(v, idea) and is_active_reviewer(v, idea.challenge))


def _can_decide(v: Viewer, idea: Idea, states: set[str]) -> bool:
    check_idea(idea)
    return (idea.status in states and idea.hidden_at is None and not is_idea_author(v, idea)
            and is_review_panel(v, idea.challenge))


def can_confirm_payment(v: Viewer, idea: Idea) -> bool:
    """Confirm an award was paid (for assignment-on-award, the IP passes then): org admins."""
    check_idea(idea)
    return idea.status == IdeaStatus.AWARDED.value and v.is_org_admin(idea.challenge.org_id)


def can_disqualify_idea(v: Viewer, idea: Idea) -> bool:
    """A moderation decision: moderators of the idea's place (site moderators, and moderators
    scoped to the challenge's organisation), on a submitted idea not yet disqualified."""
    check_idea(idea)
    ch = idea.challenge
    return (ch is not None and moderates_place(v, "idea", ch.org_id, ItemKind.CHALLENGE.value, False)
            and idea.status in (IDEA_SHOWN_STATES - {IdeaStatus.DISQUALIFIED.value}))


IDEAS = rule(IdeaRule())
can_view_idea = IDEAS.check
idea_visibility_clause = IDEAS.clause


class IdeaAttachmentRule(Rule):
    model = IdeaAttachment
    parent = Parent("idea", "idea_id", Idea)

    def check(self, v: Viewer, att: IdeaAttachment) -> bool:
        return self.parent_ok(v, att)

    def clause(self, v: Viewer):
        return self.parent_clause(v)


class ChallengeTermsRule(Rule):
    model = ChallengeTerms
    parent = Parent("challenge", "challenge_id", Item)

    def check(self, v: Viewer, terms: ChallengeTerms) -> bool:
        return self.parent_ok(v, terms)


class TermsAcceptanceRule(Rule):
    """A receipt is its accepter's (anyone may verify one they are given, by its signature)."""

    model = TermsAcceptance

    def check(self, v: Viewer, acc: TermsAcceptance) -> bool:
        return v.is_user(acc.user_id)


class ReviewNoteRule(Rule):
    model = ReviewNote

    def check(self, v: Viewer, note: ReviewNote) -> bool:
        return v.is_user(note.author_id)


class ReviewerAppointmentRule(Rule):
    model = ReviewerAppointment

    def check(self, v: Viewer, appt: ReviewerAppointment) -> bool:
        return v.is_authenticated and (appt.user_id == v.user_id or v.is_org_admin(appt.challenge.org_id))

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions["accept_reviewer_nda"] = lambda v, appt: (
            v.is_user(appt.user_id) and appt.revoked_at is None
            and appt.nda_accepted_at is None and bool(appt.nda_text))


def is_reviewer_invitee(v: Viewer, inv: ReviewerInvitation) -> bool:
    """The signed-in account holds the address the appointment was mailed to."""
    email = viewer_email(v)
    return email is not None and email == (inv.email or "").strip().lower()


def _reviewer_invitation_state(inv: ReviewerInvitation) -> str:
    from .invitations import invitation_state

    return invitation_state(inv)


class ReviewerInvitationRule(Rule):
    """An outside judge appointed by e-mail: the challenge's owners and admins (who manage
    reviewers) and the invited address. Managers revoke it while pending or accepted; the
    invitee takes it up or declines while pending (with the mailed token); whoever holds the
    link may decline without an account."""

    model = ReviewerInvitation

    def check(self, v: Viewer, inv: ReviewerInvitation) -> bool:
        _reviewer_invitation_state(inv)  # fail closed on a corrupt row
        return can_manage_terms(v, inv.challenge) or is_reviewer_invitee(v, inv)

    def clause(self, v: Viewer):
        if not v.is_authenticated:
            return false()
        cond = ReviewerInvitation.email == (viewer_email(v) or "")
        admins = list(v.admin_org_ids)
        if admins:  # can_manage_terms: a challenge of theirs that is not archived
            cond = or_(cond, ReviewerInvitation.challenge_id.in_(select(Item.id).where(
                Item.org_id.in_(admins), Item.kind == ItemKind.CHALLENGE.value,
                Item.status != Status.ARCHIVED.value)))
        return cond

    def __init__(self) -> None:  # pragma: no mutate block (runs at import: declarations)
        super().__init__()
        self.actions.update({"revoke": can_revoke_reviewer_invitation,
                             "accept": can_answer_reviewer_invitation,
                             "accept_on_site": can_accept_reviewer_invitation_on_site,
                             "decline": can_answer_reviewer_invitation})


def can_revoke_reviewer_invitation(v: Viewer, inv: ReviewerInvitation) -> bool:
    return can_manage_terms(v, inv.challenge) and _reviewer_invitation_state(inv) in (
        InvitationState.PENDING.value, InvitationState.ACCEPTED.value)


def can_answer_reviewer_invitation(v: Viewer, inv: ReviewerInvitation) -> bool:
    return is_reviewer_invitee(v, inv) and _reviewer_invitation_state(inv) == InvitationState.PENDING.value


def can_accept_reviewer_invitation_on_site(v: Viewer, inv: ReviewerInvitation) -> bool:
    """Without the mailed link (from "Challenges you review"): the invitee signed in with the
    invited address, once that address is confirmed (the link is the proof for everyone else)."""
    return can_answer_reviewer_invitation(v, inv) and email_verified(v)


def can_decline_reviewer_invitation_with_token(v: Viewer, inv: ReviewerInvitation) -> bool:
    if v.is_authenticated:
        return can_answer_reviewer_invitation(v, inv)
    return _reviewer_invitation_state(inv) == InvitationState.PENDING.value


def sees_invited_coauthor_address(v: Viewer, idea: Idea) -> bool:
    """On the team page, a co-author invited by e-mail who has not accepted yet shows as the
    address to the idea's authors (lead and co-authors, pending ones included: they were
    told the team), and as "invited co-author (pending)" to everyone else who may see the
    team. Whether the address has an account shows nowhere: both kinds read the same."""
    return is_idea_author(v, idea)


for _r in (ReviewerInvitationRule(), IdeaAttachmentRule(), ChallengeTermsRule(), TermsAcceptanceRule(), ReviewNoteRule(),
           ReviewerAppointmentRule()):
    rule(_r)


# --------------------------------------------------------------------------- taking part


def _challenge_open_for_submissions(challenge: Item, now: datetime) -> str | None:
    if challenge.kind != ItemKind.CHALLENGE.value:
        return "Ideas can only be submitted to challenges."
    check_known(challenge)
    if challenge.hidden_at is not None:
        return "This challenge is hidden by moderators and takes no ideas."
    if challenge.status != Status.OPEN.value:
        return f"This challenge is not open for ideas (it is {challenge.status})."
    if challenge.opens_at is not None and now < challenge.opens_at:
        return f"Submissions open at {format_dt(challenge.opens_at)}."
    if challenge.deadline is None:
        return "This challenge has no deadline, so it takes no ideas."
    if now >= challenge.deadline:
        return f"The deadline passed at {format_dt(challenge.deadline)}."
    return None


def _domain_matches(domain: str, patterns: list[str]) -> bool:
    return any(domain == p or domain.endswith("." + p) for p in patterns)


def address_domain_refusal(rules: ChallengeRules, domain: str) -> str | None:
    """The challenge's e-mail domain rules for an address at `domain` (None: allowed). Needs
    only the address, so naming a co-author by e-mail is checked without asking whether the
    address has an account."""
    if _domain_matches(domain, rules.blocked_list):
        return f"E-mail addresses at {domain} may not take part (rule: blocked e-mail domains)."
    if rules.allowed_list and not _domain_matches(domain, rules.allowed_list):
        return ("Only e-mail addresses at " + ", ".join(rules.allowed_list)
                + " may take part (rule: allowed e-mail domains).")
    return None


def has_accepted_nda(v: Viewer, terms: ChallengeTerms) -> bool:
    if not v.is_authenticated:
        return False
    return db.session.execute(
        select(TermsAcceptance.id).where(
            TermsAcceptance.user_id == v.user_id, TermsAcceptance.terms_id == terms.id,
            TermsAcceptance.purpose == AcceptancePurpose.NDA.value,
        ).limit(1)
    ).first() is not None


def counted_ideas(user_id: int, challenge_id: int) -> int:
    """Ideas that count against a contributor's limit: theirs (lead or accepted co-author),
    not withdrawn."""
    return db.session.execute(
        select(func.count(Idea.id.distinct())).join(IdeaAuthor, IdeaAuthor.idea_id == Idea.id).where(
            Idea.challenge_id == challenge_id, IdeaAuthor.user_id == user_id,
            IdeaAuthor.status.in_(IDEA_COUNTING_AUTHOR_STATES),
            Idea.status != IdeaStatus.WITHDRAWN.value,
        )
    ).scalar_one()


def participation_refusal(user: Any, challenge: Item, now: datetime | None = None, *,
                          count_limit: bool = True, check_nda: bool = True) -> str | None:
    """Why `user` may not take part in `challenge` now, naming the rule; None when they may.

    Services call it again after locking the challenge row, so the limit holds under races.
    """
    now = now or utcnow()
    v = viewer_for(user)
    if not v.is_authenticated:
        return "Sign in to submit an idea."
    if not can_view_item(v, challenge):
        return "You may not see this challenge."
    unverified = verification_refusal(v)
    if unverified:
        return unverified
    msg = _challenge_open_for_submissions(challenge, now)
    if msg:
        return msg
    terms = current_terms(challenge.id)
    if terms is None:
        return "This challenge has no terms sheet yet, so it takes no ideas."
    rules = challenge_rules(challenge.id)
    if rules is None:
        return "This challenge has no participation rules yet, so it takes no ideas."
    appt = reviewer_appointment(v, challenge.id)
    if appt is not None and appt.revoked_at is None:
        return "Reviewers of this challenge may not take part in it."
    org_name = challenge.organisation.name if challenge.organisation else "the posting organisation"
    member = v.is_member(challenge.org_id)
    who = rules.who_may_submit
    if not in_audience(v, challenge, who, now):
        if who == WhoMaySubmit.ORGANISATION.value:
            return f"Only members of {org_name} may take part (rule: who may submit = organisation)."
        return "Only people invited to this challenge may take part (rule: who may submit = invited)."
    if member and who != WhoMaySubmit.ORGANISATION.value and not rules.org_members_may_participate:
        return f"Members of {org_name} may not take part in its own challenge (participation rules)."
    u = user if isinstance(user, User) else db.session.get(User, v.user_id)
    domain = u.email_domain if u is not None else ""
    msg = address_domain_refusal(rules, domain)
    if msg:
        return msg
    if check_nda and terms.nda_text and not member and not has_accepted_nda(v, terms):
        return f"Accept the challenge's NDA (terms version {terms.version}) before taking part."
    if count_limit:
        n = counted_ideas(v.user_id, challenge.id)
        if n >= rules.max_ideas_per_contributor:
            return (f"You have reached the limit of {rules.max_ideas_per_contributor} "
                    f"idea{'s' if rules.max_ideas_per_contributor != 1 else ''} per contributor "
                    "for this challenge (rule: maximum ideas per contributor).")
    return None


@ITEMS.action("submit_idea")
def can_submit_idea(v: Viewer, item: Item) -> bool:
    return item.kind == ItemKind.CHALLENGE.value and participation_refusal(v, item) is None


@ITEMS.action("manage_terms")
def can_manage_terms(v: Viewer, item: Item) -> bool:
    """Terms sheet, participation rules, reviewers and criteria: the owning org's owners/admins."""
    return item.kind == ItemKind.CHALLENGE.value and can_edit_item(v, item)


@ITEMS.action("review_ideas")
def can_open_review(v: Viewer, item: Item) -> bool:
    """The review dashboard of a challenge."""
    return item.kind == ItemKind.CHALLENGE.value and is_review_panel(v, item)


def brief_under_nda(item: Item) -> bool:
    """The brief (body and the kind's other Markdown fields) of a challenge whose current
    terms carry an NDA is not for everyone who sees the challenge (``view_brief``): search
    indexes and shows only its title and summary."""
    if item.kind != ItemKind.CHALLENGE.value or item.id is None:
        return False
    terms = current_terms(item.id)
    return terms is not None and bool(terms.nda_text)


def briefs_under_nda(items) -> set[int]:
    """brief_under_nda for many items at once (search rebuilds): the ids of those under one."""
    ids = [i.id for i in items if i.kind == ItemKind.CHALLENGE.value and i.id is not None]
    if not ids:
        return set()
    latest = select(ChallengeTerms.challenge_id, func.max(ChallengeTerms.version).label("v")).where(
        ChallengeTerms.challenge_id.in_(ids)).group_by(ChallengeTerms.challenge_id).subquery()
    return set(db.session.execute(
        select(ChallengeTerms.challenge_id).join(latest, and_(ChallengeTerms.challenge_id == latest.c.challenge_id,
                                                              ChallengeTerms.version == latest.c.v))
        .where(ChallengeTerms.nda_text != "")).scalars())


@ITEMS.action("view_brief")
def can_view_brief(v: Viewer, item: Item) -> bool:
    """The full brief of a challenge whose terms carry an NDA: after accepting it (members,
    reviewers and moderators need not)."""
    if not can_view_item(v, item):
        return False
    if not brief_under_nda(item):
        return True
    if v.is_member(item.org_id) or v.is_moderator or is_active_reviewer(v, item):
        return True
    return has_accepted_nda(v, current_terms(item.id))


def viewable_briefs(user: Any, items) -> set[int]:
    """can_view_brief for a page of items at once (feeds): the ids whose full brief the user
    may see. The view rule is asked in its SQL form for all of them in one query and the
    terms in one more (per item, both are an N+1 on a feed); only briefs under an NDA, which
    depend on the viewer's acceptance, get the per-item check."""
    v = viewer_for(user)
    items = [i for i in items if i.id is not None]
    if not items:
        return set()
    seen = set(db.session.execute(
        select(Item.id).where(Item.id.in_([i.id for i in items]), visible_clause(v, Item))).scalars())
    under = briefs_under_nda(items)
    return {i.id for i in items if i.id in seen and (i.id not in under or can_view_brief(v, i))}


@ITEMS.action("accept_nda")
def can_accept_nda(v: Viewer, item: Item) -> bool:
    if not v.is_authenticated or item.kind != ItemKind.CHALLENGE.value:
        return False
    terms = current_terms(item.id)
    return terms is not None and bool(terms.nda_text) and not has_accepted_nda(v, terms)
