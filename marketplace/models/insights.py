"""The learning loop: a challenge's after-action review, and what each awarded idea became.

A review is asked of the challenge's owners and admins when the challenge closes (the row is
created then, with ``requested_at``); they fill it in (``submitted_at``) and may publish it
as a failure/lesson item (``lesson_item_id``) at a visibility they choose. A later challenge
started from this one shows the review to its admins.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import StrEnum, UTCDateTime, utcnow


class IdeaFate(StrEnum):
    """What an awarded idea became after the challenge."""

    PILOTED = "piloted"
    LICENSED = "licensed"
    DROPPED = "dropped"
    UNDECIDED = "undecided"


class ChallengeReview(db.Model):
    __tablename__ = "challenge_reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), unique=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    achieved: Mapped[str] = mapped_column(Text, default="")
    differently: Mapped[str] = mapped_column(Text, default="")
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    # The failure/lesson item it was published as (kept if that item is deleted as a draft).
    lesson_item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id", ondelete="SET NULL"), nullable=True,
                                                       index=True)

    challenge = relationship("Item", foreign_keys=[challenge_id])
    lesson = relationship("Item", foreign_keys=[lesson_item_id])
    outcomes = relationship("ReviewOutcome", back_populates="review", cascade="all, delete-orphan",
                            order_by="ReviewOutcome.idea_id")

    @property
    def is_submitted(self) -> bool:
        return self.submitted_at is not None


class ReviewOutcome(db.Model):
    """What one awarded idea became (piloted, licensed, dropped...) and why."""

    __tablename__ = "review_outcomes"
    __table_args__ = (UniqueConstraint("review_id", "idea_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    review_id: Mapped[int] = mapped_column(ForeignKey("challenge_reviews.id", ondelete="CASCADE"), index=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"))
    fate: Mapped[str] = mapped_column(String(16), default=IdeaFate.UNDECIDED.value)
    note: Mapped[str] = mapped_column(Text, default="")

    review = relationship("ChallengeReview", back_populates="outcomes")
    idea = relationship("Idea")
