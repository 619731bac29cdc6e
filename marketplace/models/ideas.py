"""Ideas submitted to challenges under versioned terms, and everything around them:
terms sheets, participation rules, acceptances (receipts), attachments, revisions,
reviewers, criteria, scores, private notes, the sealed-view log and awards.

Append-only rows (``__append_only__``): terms versions, acceptances, revisions and the
sealed-view log. They record what someone agreed to or did; no code path changes them.
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import PublishedVersion, StrEnum, UTCDateTime, utcnow
from .invitations import MailedLinkState


class IPModel(StrEnum):
    CONTRIBUTOR_RETAINS = "contributor-retains"
    NON_EXCLUSIVE_LICENCE = "non-exclusive-licence"
    EXCLUSIVE_LICENCE = "exclusive-licence"
    ASSIGNMENT_ON_AWARD = "assignment-on-award"
    OPEN_LICENCE = "open-licence"


class Confidentiality(StrEnum):
    SEALED = "sealed"
    OPEN = "open"


class IncentiveKind(StrEnum):
    CASH_PRIZE = "cash-prize"
    MILESTONE_PAYMENT = "milestone-payment"
    ROYALTY_SHARE = "royalty-share"
    RECOGNITION = "recognition"
    COLLABORATION_CONTRACT = "collaboration-contract"
    ACCESS = "access"

    @property
    def label(self) -> str:
        return {
            "cash-prize": "Cash prize",
            "milestone-payment": "Milestone payment",
            "royalty-share": "Royalty share",
            "recognition": "Recognition",
            "collaboration-contract": "Collaboration contract",
            "access": "Access to contacts or facilities",
        }[self.value]


class WhoMaySubmit(StrEnum):
    REGISTERED = "registered"
    INVITED = "invited"
    ORGANISATION = "organisation"


class IdeaStatus(StrEnum):
    # Waiting for every co-author to accept the terms; does not count as submitted yet.
    AWAITING_COAUTHORS = "awaiting-coauthors"
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under-review"
    SHORTLISTED = "shortlisted"
    AWARDED = "awarded"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    DISQUALIFIED = "disqualified"


class AuthorStatus(StrEnum):
    LEAD = "lead"
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"


class AcceptancePurpose(StrEnum):
    SUBMISSION = "submission"
    REVISION = "revision"
    COAUTHOR = "co-author"
    NDA = "nda"


class ReviewerKind(StrEnum):
    MEMBER = "member"  # a member of the posting organisation
    JUDGE = "judge"  # an outside judge: must accept the reviewer NDA first


class ChallengeTerms(PublishedVersion, db.Model):
    """One version of a challenge's terms sheet. Never changed: editing adds a version."""

    __tablename__ = "challenge_terms"
    __table_args__ = (UniqueConstraint("challenge_id", "version"),)
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    ip_model: Mapped[str] = mapped_column(String(32))
    open_licence: Mapped[str] = mapped_column(String(80), default="")
    field_of_use: Mapped[str] = mapped_column(Text, default="")
    territory: Mapped[str] = mapped_column(Text, default="")
    licence_duration: Mapped[str] = mapped_column(String(200), default="")
    post_termination_rights: Mapped[str] = mapped_column(Text, default="")
    background_ip: Mapped[str] = mapped_column(Text, default="")
    foreground_ip: Mapped[str] = mapped_column(Text, default="")
    confidentiality: Mapped[str] = mapped_column(String(16))
    reveal_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    nda_text: Mapped[str] = mapped_column(Text, default="")
    incentives_json: Mapped[str] = mapped_column(Text, default="[]")
    dispute_resolution: Mapped[str] = mapped_column(Text, default="")
    governing_law: Mapped[str] = mapped_column(String(200), default="")

    challenge = relationship("Item")

    @property
    def incentives(self) -> list[dict]:
        return json.loads(self.incentives_json or "[]")

    @property
    def is_sealed(self) -> bool:
        return self.confidentiality == Confidentiality.SEALED.value


class ChallengeRules(db.Model):
    """Participation rules of one challenge (changes are audited)."""

    __tablename__ = "challenge_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), unique=True)
    who_may_submit: Mapped[str] = mapped_column(String(16), default=WhoMaySubmit.REGISTERED.value)
    max_ideas_per_contributor: Mapped[int] = mapped_column(Integer, default=1)
    team_allowed: Mapped[bool] = mapped_column(Boolean, default=False)
    max_team_size: Mapped[int] = mapped_column(Integer, default=1)
    allowed_domains: Mapped[str] = mapped_column(Text, default="")  # one per line, lower case
    blocked_domains: Mapped[str] = mapped_column(Text, default="")
    org_members_may_participate: Mapped[bool] = mapped_column(Boolean, default=False)
    eligibility_statement: Mapped[str] = mapped_column(Text, default="")
    coi_declaration: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)

    @property
    def allowed_list(self) -> list[str]:
        return [d for d in (self.allowed_domains or "").split() if d]

    @property
    def blocked_list(self) -> list[str]:
        return [d for d in (self.blocked_domains or "").split() if d]


class Idea(db.Model):
    __tablename__ = "ideas"
    __table_args__ = (
        Index("ix_ideas_challenge_status", "challenge_id", "status"),
        # A double-posted form (same key) makes one idea, never two.
        UniqueConstraint("author_id", "submission_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(24), default=IdeaStatus.SUBMITTED.value)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    terms_id: Mapped[int] = mapped_column(ForeignKey("challenge_terms.id"))
    content_hash: Mapped[str] = mapped_column(String(64))
    # The strictest confidentiality any of its authors accepted (sealed stays sealed).
    confidentiality: Mapped[str] = mapped_column(String(16))
    reveal_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    submission_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decision_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Moderation (issue 4) sets these; a hidden idea is seen only by its authors and moderators.
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    hidden_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    challenge = relationship("Item")
    author = relationship("User", foreign_keys=[author_id])
    terms = relationship("ChallengeTerms")
    authors = relationship("IdeaAuthor", back_populates="idea", order_by="IdeaAuthor.id",
                           cascade="all, delete-orphan")
    attachments = relationship("IdeaAttachment", back_populates="idea", order_by="IdeaAttachment.id")

    @property
    def is_hidden(self) -> bool:
        return self.hidden_at is not None

    @property
    def current_attachments(self) -> list["IdeaAttachment"]:
        return [a for a in self.attachments if a.removed_at is None]

    @property
    def status_label(self) -> str:
        return IdeaStatus(self.status).label

    def __repr__(self) -> str:  # pragma: no cover
        return f"<Idea {self.id} {self.title!r} {self.status}>"


class IdeaAuthor(db.Model):
    __tablename__ = "idea_authors"
    __table_args__ = (UniqueConstraint("idea_id", "user_id"), Index("ix_idea_authors_user", "user_id", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    idea = relationship("Idea", back_populates="authors")
    user = relationship("User")


class CoauthorInvitation(db.Model):
    """A co-author named by e-mail address. The mailed link (its token kept only as a SHA-256)
    lets the address's owner sign in or register and answer; an address that already has an
    account also gets a pending `IdeaAuthor` row at once. The lead author sees the address as
    typed either way, so the form never tells whether an address has an account."""

    __tablename__ = "coauthor_invitations"
    __table_args__ = (UniqueConstraint("idea_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The account that answers for this address (set at once for an existing account).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    idea = relationship("Idea")

    @property
    def masked_email(self) -> str:
        local, _, domain = self.email.partition("@")
        return f"{local[:1]}•••@{domain}"


class IdeaRevision(db.Model):
    """The idea as it stood after each submission or revision (history, never changed)."""

    __tablename__ = "idea_revisions"
    __table_args__ = (UniqueConstraint("idea_id", "number"),)
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    attachments_json: Mapped[str] = mapped_column(Text, default="[]")
    content_hash: Mapped[str] = mapped_column(String(64))
    terms_id: Mapped[int] = mapped_column(ForeignKey("challenge_terms.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)

    terms = relationship("ChallengeTerms")
    created_by = relationship("User")

    @property
    def attachment_list(self) -> list[dict]:
        return json.loads(self.attachments_json or "[]")


class IdeaAttachment(db.Model):
    __tablename__ = "idea_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"), index=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    filename: Mapped[str] = mapped_column(String(200))  # as shown / downloaded
    stored_name: Mapped[str] = mapped_column(String(64), unique=True)  # generated, under UPLOAD_DIR/ideas
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    added_in_revision: Mapped[int] = mapped_column(Integer, default=1)
    # Removed in a later revision: kept (and downloadable) as part of the history.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    removed_in_revision: Mapped[int | None] = mapped_column(Integer, nullable=True)

    idea = relationship("Idea", back_populates="attachments")

    def summary(self) -> dict:
        return {"id": self.id, "name": self.filename, "sha256": self.sha256, "size": self.size,
                "type": self.content_type}


class TermsAcceptance(db.Model):
    """Who accepted which terms version (and digest), when, for which idea content.

    ``dedupe_key`` is unique, so the same acceptance posted twice at once leaves one row.
    """

    __tablename__ = "terms_acceptances"
    __table_args__ = (Index("ix_terms_acceptances_user", "user_id", "challenge_id"),)
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    challenge_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    terms_id: Mapped[int] = mapped_column(ForeignKey("challenge_terms.id"))
    terms_version: Mapped[int] = mapped_column(Integer)
    terms_digest: Mapped[str] = mapped_column(String(64))
    idea_id: Mapped[int | None] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"), nullable=True,
                                                index=True)
    idea_revision: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    eligibility_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    coi_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    coi_note: Mapped[str] = mapped_column(Text, default="")
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A re-acceptance: the version (and digest) this person accepted before for this challenge.
    previous_terms_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    previous_terms_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)

    user = relationship("User")
    challenge = relationship("Item")
    terms = relationship("ChallengeTerms")
    idea = relationship("Idea")


class ReviewerAppointment(db.Model):
    __tablename__ = "reviewer_appointments"
    __table_args__ = (UniqueConstraint("challenge_id", "user_id"), Index("ix_reviewers_user", "user_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    appointed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    nda_text: Mapped[str] = mapped_column(Text, default="")
    nda_digest: Mapped[str] = mapped_column(String(64), default="")
    nda_accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The access grant made so an outside judge can see an `invited` challenge.
    grant_id: Mapped[int | None] = mapped_column(ForeignKey("access_grants.id", ondelete="SET NULL"),
                                                 nullable=True)

    challenge = relationship("Item")
    user = relationship("User", foreign_keys=[user_id])


class ReviewerInvitation(MailedLinkState, db.Model):
    """An outside judge appointed by e-mail address. The mailed link (token kept only as a
    SHA-256, single use) lets the address's owner sign in or register and take up the
    appointment, then the reviewer NDA. An address that already has an account is appointed
    at once (`appointment_id` set now) so the organisation's answer, and what its reviewers
    page shows until the judge accepts, is the same whether or not the address has an account."""

    __tablename__ = "reviewer_invitations"
    __table_args__ = (Index("ix_reviewer_invitations_challenge_email", "challenge_id", "email"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    nda_text: Mapped[str] = mapped_column(Text, default="")
    appointment_id: Mapped[int | None] = mapped_column(
        ForeignKey("reviewer_appointments.id", ondelete="SET NULL"), nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)

    challenge = relationship("Item")
    appointment = relationship("ReviewerAppointment")


class ReviewCriterion(db.Model):
    __tablename__ = "review_criteria"
    __table_args__ = (UniqueConstraint("challenge_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(String(500), default="")
    weight: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdeaScore(db.Model):
    __tablename__ = "idea_scores"
    __table_args__ = (UniqueConstraint("idea_id", "reviewer_id", "criterion_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    criterion_id: Mapped[int] = mapped_column(ForeignKey("review_criteria.id", ondelete="CASCADE"))
    score: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    reviewer = relationship("User")
    criterion = relationship("ReviewCriterion")


class ReviewNote(db.Model):
    """A reviewer's private note: shown to its writer only, never to authors, never indexed."""

    __tablename__ = "review_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SealedViewLog(db.Model):
    """Someone other than an author opened a sealed idea (or one of its files): one row per
    viewer, idea, thing opened and (UTC) day, however often they reload it."""

    __tablename__ = "sealed_view_log"
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    # idea:viewer:day:sha256(what), unique: two page loads at once still leave one row.
    # Empty on rows written before the log was kept per day.
    dedupe_key: Mapped[str | None] = mapped_column(String(120), unique=True, nullable=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"), index=True)
    viewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    what: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    viewer = relationship("User")


class IdeaAward(db.Model):
    __tablename__ = "idea_awards"

    id: Mapped[int] = mapped_column(primary_key=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"), unique=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    terms_id: Mapped[int] = mapped_column(ForeignKey("challenge_terms.id"))
    incentive_index: Mapped[int] = mapped_column(Integer)
    incentive_json: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text, default="")
    awarded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # For assignment-on-award the IP passes when the award is paid: set once, audited.
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    paid_confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                             nullable=True)

    @property
    def incentive(self) -> dict:
        return json.loads(self.incentive_json)
