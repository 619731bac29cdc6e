"""Helpers shared by the write services."""
from __future__ import annotations

import re
import unicodedata

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from ..extensions import db

TAG_RE = re.compile(r"[^a-z0-9\-]+")


class ServiceError(ValueError):
    """A refused write, with a message the user can act on (views show it as a form error
    or a 4xx); nothing has been written when it is raised."""

    def __init__(self, message: str, status: int = 400, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.field = field


class FieldErrors(ServiceError):
    """Several refusals at once, each naming its field: a form shows them all together
    rather than one per attempt. ``field`` and ``message`` are the first one's."""

    def __init__(self, errors: list[tuple[str | None, str]], status: int = 400):
        first_field, first_message = errors[0]
        super().__init__(first_message, status, (first_field or "").split("-", 1)[0] or None)
        self.errors = errors


def add_unique(row, message: str, field: str | None = None) -> None:
    """Add ``row`` and flush it. The callers check for the clash first; a unique constraint
    the row still breaks (a parallel request got there first) rolls back and refuses with
    409 ``message``, as the check would have."""
    db.session.add(row)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        raise ServiceError(message, 409, field=field)


def chosen(data: dict, name: str, choices, message: str, errors: list[tuple[str, str]] | None = None) -> str:
    """``data[name]``, stripped; when it is not one of the enum ``choices``' values,
    ``(name, message)`` joins ``errors`` (the validators that collect every problem at once)
    or, without ``errors``, is raised as a ServiceError on the field ``name``."""
    value = (data.get(name) or "").strip()
    if value not in choices.values():
        if errors is None:
            raise ServiceError(message, field=name)
        errors.append((name, message))
    return value


def slugify(value: str, max_len: int = 120) -> str:
    value = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^a-zA-Z0-9]+", "-", value).strip("-").lower()
    return value[:max_len] or "org"


def parse_tags(raw: str | list[str] | None, limit: int = 12) -> list[str]:
    if not raw:
        return []
    parts = raw if isinstance(raw, list) else re.split(r"[,\n]", raw)
    out: list[str] = []
    for p in parts:
        t = TAG_RE.sub("-", p.strip().lower()).strip("-")[:40]
        if t and t not in out:
            out.append(t)
    return out[:limit]


def lock_row(model, obj_id: int) -> None:
    """Serialise writers on one row until commit (check-then-insert rules such as limits).

    PostgreSQL: SELECT ... FOR UPDATE. SQLite: a no-op UPDATE takes the database write lock
    now (waiting on busy_timeout) so the checks that follow see every committed write.
    """
    bind = db.session.get_bind()
    table = model.__table__
    if bind.dialect.name == "postgresql":
        db.session.execute(table.select().where(table.c.id == obj_id).with_for_update())
    else:
        # Raw SQL on purpose: an ORM/Core update would fire `onupdate` columns (updated_at).
        db.session.execute(text(f'UPDATE "{table.name}" SET id = id WHERE id = :id'), {"id": obj_id})
