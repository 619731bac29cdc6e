"""Challenges, failures and assets: one table (single-table inheritance), one policy.

They share visibility, status, ownership, grants, tags, search and moderation, so one
table keeps every rule in one query; kind-specific columns are nullable.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .base import ItemKind, Status, UTCDateTime, Visibility, utcnow


class Item(db.Model):
    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_listing", "kind", "status", "visibility"),
        Index("ix_items_org_kind", "org_id", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    created_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(String(500), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    visibility: Mapped[str] = mapped_column(String(16), default=Visibility.ORGANISATION.value)
    status: Mapped[str] = mapped_column(String(16), default=Status.DRAFT.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Moderation: a hidden item is seen only by its organisation and moderators.
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    hidden_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    # challenge
    context: Mapped[str | None] = mapped_column(Text, nullable=True)
    context_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    expected_outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    expected_outcome_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deadline: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    incentive_summary: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # failure
    went_wrong: Mapped[str | None] = mapped_column(Text, nullable=True)
    went_wrong_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    lessons: Mapped[str | None] = mapped_column(Text, nullable=True)
    lessons_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    # asset
    asset_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    availability: Mapped[str | None] = mapped_column(Text, nullable=True)
    availability_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    licensing_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    licensing_note_html: Mapped[str | None] = mapped_column(Text, nullable=True)

    # Every list, card, feed and search result shows the organisation: load it with the row.
    organisation = relationship("Organisation", lazy="joined", innerjoin=True)
    created_by = relationship("User")
    tag_rows = relationship(
        "ItemTag", cascade="all, delete-orphan", order_by="ItemTag.tag", lazy="selectin"
    )
    grants = relationship("AccessGrant", cascade="all, delete-orphan", back_populates="item")

    __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "item"}

    # Markdown source field -> sanitised HTML field, per kind.
    MARKDOWN_FIELDS: tuple[str, ...] = ("body",)

    @property
    def tags(self) -> list[str]:
        return [t.tag for t in self.tag_rows]

    @property
    def is_draft(self) -> bool:
        return self.status == Status.DRAFT.value

    @property
    def is_hidden(self) -> bool:
        return self.hidden_at is not None

    @property
    def kind_label(self) -> str:
        return ItemKind(self.kind).label

    def __repr__(self) -> str:  # pragma: no cover
        return f"<{type(self).__name__} {self.id} {self.title!r}>"


class Challenge(Item):
    __mapper_args__ = {"polymorphic_identity": ItemKind.CHALLENGE.value}
    MARKDOWN_FIELDS = ("body", "context", "expected_outcome")


class Failure(Item):
    __mapper_args__ = {"polymorphic_identity": ItemKind.FAILURE.value}
    MARKDOWN_FIELDS = ("body", "went_wrong", "lessons")


class Asset(Item):
    __mapper_args__ = {"polymorphic_identity": ItemKind.ASSET.value}
    MARKDOWN_FIELDS = ("body", "availability", "licensing_note")


MODEL_BY_KIND: dict[str, type[Item]] = {
    ItemKind.CHALLENGE.value: Challenge,
    ItemKind.FAILURE.value: Failure,
    ItemKind.ASSET.value: Asset,
}


class ItemTag(db.Model):
    __tablename__ = "item_tags"
    __table_args__ = (UniqueConstraint("item_id", "tag"), Index("ix_item_tags_tag", "tag"))

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    tag: Mapped[str] = mapped_column(String(40))


class AccessGrant(db.Model):
    """Access to one `invited` item for a user or a whole organisation.

    Active while not revoked and not expired; the policy checks both on every request.
    """

    __tablename__ = "access_grants"
    __table_args__ = (Index("ix_grants_user", "user_id", "item_id"), Index("ix_grants_org", "org_id", "item_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=True)
    org_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), nullable=True
    )
    granted_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    reason: Mapped[str] = mapped_column(String(40), default="manual")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    item = relationship("Item", back_populates="grants")
    user = relationship("User", foreign_keys=[user_id])
    organisation = relationship("Organisation", foreign_keys=[org_id])

    def is_active(self, now: datetime | None = None) -> bool:
        now = now or utcnow()
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > now
