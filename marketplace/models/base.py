"""Shared column helpers and the enums every aggregate uses."""
from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import DateTime, ForeignKey, String, Text, TypeDecorator
from sqlalchemy.orm import Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops tzinfo)."""

    impl = DateTime
    cache_ok = True

    def __init__(self, timezone: bool = True):
        super().__init__(timezone=timezone)

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class PublishedVersion:
    """The last columns of one immutable version of a published sheet (challenge terms, an
    asset's licence terms, a data-sharing sheet): its canonical JSON and that JSON's SHA-256
    (what acceptances and requests point at), and when and by whom it was published.
    Declarative: the ORM puts a mixin's columns after the model's own, as they stood."""

    canonical: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


class StrEnum(str, enum.Enum):
    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.value

    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]

    @classmethod
    def choices(cls) -> list[tuple[str, str]]:
        return [(m.value, m.label) for m in cls]

    @property
    def label(self) -> str:
        return self.value.replace("-", " ").capitalize()


class Visibility(StrEnum):
    PUBLIC = "public"
    REGISTERED = "registered"
    INVITED = "invited"
    ORGANISATION = "organisation"


class Status(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"
    ARCHIVED = "archived"


class ItemKind(StrEnum):
    CHALLENGE = "challenge"
    FAILURE = "failure"
    ASSET = "asset"


class OrgKind(StrEnum):
    COMPANY = "company"
    CLUSTER = "cluster"
    UNIVERSITY = "university"
    PUBLIC_BODY = "public-body"


class OrgRole(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class SiteRole(StrEnum):
    USER = "user"
    MODERATOR = "moderator"
    ADMIN = "admin"


class AssetKind(StrEnum):
    TECHNOLOGY = "technology"
    DATA_SET = "data-set"
    PATENT = "patent"
    EQUIPMENT = "equipment"
    EXPERTISE = "expertise"
