"""Shared column helpers and the enums every aggregate uses."""
from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import DateTime, TypeDecorator


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
