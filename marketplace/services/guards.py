"""Flush guard: append-only models (``__append_only__ = True``) are never updated or deleted
by the application; any attempt fails the whole transaction."""
from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session

from ..workers import listen_on_sessions


class AppendOnlyViolation(RuntimeError):
    pass


def _guard(session: Session, flush_context, instances) -> None:
    for obj in list(session.deleted):
        if getattr(type(obj), "__append_only__", False):
            raise AppendOnlyViolation(f"{type(obj).__name__} rows are append-only: delete refused")
    for obj in list(session.dirty):
        if getattr(type(obj), "__append_only__", False) and session.is_modified(obj, include_collections=False):
            raise AppendOnlyViolation(f"{type(obj).__name__} rows are append-only: update refused")


def init_app(app: Flask) -> None:
    listen_on_sessions("append-only guard", ("before_flush", _guard))
