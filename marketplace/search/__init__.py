"""Full-text search (Whoosh backend behind a small interface). See issue 5."""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Wire the outbox listener and the index writer. Filled in by the search work."""
    return None
