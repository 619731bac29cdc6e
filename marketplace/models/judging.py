"""Judging rounds (issue 11): a challenge's rounds, each with its own criteria and weights,
its panel (a subset of the challenge's reviewers), its dates and how many ideas go through;
which ideas entered which round, who judges which idea, judges' conflicts of interest, the
scores per round, judge and criterion, and the private panel discussion per idea.

A challenge without rounds keeps the flat review of models/ideas.py (ReviewCriterion,
IdeaScore). With rounds, an idea with no `RoundEntry` is in the first round; an idea
advanced by decision gets an entry for the next round (and the decision is in the audit
chain, which is the challenge's decision log).

Conflict declarations are append-only: they say what a judge declared, when, and why.
"""
from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import UTCDateTime, utcnow


class JudgingRound(db.Model):
    __tablename__ = "judging_rounds"
    __table_args__ = (UniqueConstraint("challenge_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 1, 2, ... in date order
    name: Mapped[str] = mapped_column(String(80))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # How many ideas go through to the next round (to the shortlist from the last round).
    advance_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)

    challenge = relationship("Item")
    criteria = relationship("RoundCriterion", order_by="RoundCriterion.id", cascade="all, delete-orphan",
                            back_populates="round")
    panel = relationship("RoundPanelist", order_by="RoundPanelist.user_id", cascade="all, delete-orphan",
                         back_populates="round")

    @property
    def panel_ids(self) -> list[int]:
        return [p.user_id for p in self.panel]


class RoundCriterion(db.Model):
    __tablename__ = "round_criteria"
    __table_args__ = (UniqueConstraint("round_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("judging_rounds.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    weight: Mapped[int] = mapped_column(Integer)

    round = relationship("JudgingRound", back_populates="criteria")


class RoundPanelist(db.Model):
    __tablename__ = "round_panelists"
    __table_args__ = (UniqueConstraint("round_id", "user_id"), Index("ix_round_panelists_user", "user_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("judging_rounds.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))

    round = relationship("JudgingRound", back_populates="panel")
    user = relationship("User")


class RoundEntry(db.Model):
    """An idea went through to this round (by a decision recorded in the audit chain)."""

    __tablename__ = "round_entries"
    __table_args__ = (UniqueConstraint("round_id", "idea_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("judging_rounds.id", ondelete="CASCADE"), index=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"), index=True)
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RoundAssignment(db.Model):
    """A judge assigned to an idea in a round; unassigning keeps the row (removed_at, why)."""

    __tablename__ = "round_assignments"
    __table_args__ = (UniqueConstraint("round_id", "idea_id", "judge_id"),
                      Index("ix_round_assignments_judge", "judge_id", "round_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("judging_rounds.id", ondelete="CASCADE"), index=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"), index=True)
    judge_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # None: assigned by the automatic balancing.
    assigned_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    removed_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)

    round = relationship("JudgingRound")
    idea = relationship("Idea")
    judge = relationship("User", foreign_keys=[judge_id])


class ConflictDeclaration(db.Model):
    """A judge declared a conflict of interest on an idea, and with whom: the idea only, its
    authors (every idea of theirs in the challenge), or the authors' organisations (every
    idea by a member of one). The author and organisation ids are kept as they were when
    declared."""

    __tablename__ = "conflict_declarations"
    __table_args__ = (UniqueConstraint("idea_id", "judge_id"), Index("ix_conflicts_judge", "judge_id", "challenge_id"))
    __append_only__ = True

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"))
    judge_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(String(16))  # idea | authors | organisations
    author_ids_json: Mapped[str] = mapped_column(Text, default="[]")
    org_ids_json: Mapped[str] = mapped_column(Text, default="[]")
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    judge = relationship("User")

    @property
    def author_ids(self) -> list[int]:
        return json.loads(self.author_ids_json or "[]")

    @property
    def org_ids(self) -> list[int]:
        return json.loads(self.org_ids_json or "[]")


class RoundScore(db.Model):
    __tablename__ = "round_scores"
    __table_args__ = (UniqueConstraint("round_id", "idea_id", "judge_id", "criterion_id"),
                      Index("ix_round_scores_round_judge", "round_id", "judge_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("judging_rounds.id", ondelete="CASCADE"))
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"), index=True)
    judge_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    criterion_id: Mapped[int] = mapped_column(ForeignKey("round_criteria.id", ondelete="CASCADE"))
    score: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PanelComment(db.Model):
    """The private panel discussion of an idea in a round: that round's panel and the
    challenge's admins, never the idea's authors, never indexed."""

    __tablename__ = "panel_comments"
    __table_args__ = (Index("ix_panel_comments_round_idea", "round_id", "idea_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("judging_rounds.id", ondelete="CASCADE"))
    idea_id: Mapped[int] = mapped_column(ForeignKey("ideas.id", ondelete="CASCADE"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    round = relationship("JudgingRound")
    idea = relationship("Idea")
    author = relationship("User")
