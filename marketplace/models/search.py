"""The PostgreSQL search backend's tables (SEARCH_BACKEND=postgres, marketplace/search/pg_backend.py).

``search_documents`` holds what the Whoosh index holds, one row per document: its key,
digest, facet values, the principals allowed to find it (a ``text[]`` with a GIN index,
matched with ``&&`` against the viewer's principals inside the search's own SQL), the time
columns, and a ``tsvector`` of its public text built by our analyzer (search/analysis.py),
so both backends match the same words. ``search_terms`` is the vocabulary "did you mean"
picks candidates from; a candidate is only offered after a count over documents the viewer
may see (as with Whoosh), so a stale word there shows nothing.

On SQLite (where the Whoosh backend is the only choice) the tables exist with plain text
columns and stay empty, so the models and the migrations are the same on both databases.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Index, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from ..extensions import db

TextArray = ARRAY(Text).with_variant(Text(), "sqlite")
TsVector = TSVECTOR().with_variant(Text(), "sqlite")


class SearchDocument(db.Model):
    __tablename__ = "search_documents"
    __table_args__ = (
        Index("ix_search_documents_tsv", "tsv", postgresql_using="gin"),
        Index("ix_search_documents_principals", "principals", postgresql_using="gin"),
        Index("ix_search_documents_tags", "tags", postgresql_using="gin"),
        Index("ix_search_documents_created", "created"),
        Index("ix_search_documents_stale_at", "stale_at"),
    )

    key: Mapped[str] = mapped_column(String(64), primary_key=True)   # "item:12"
    digest: Mapped[str] = mapped_column(String(40))                  # SearchDoc.digest()
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    org: Mapped[str | None] = mapped_column(String(20), nullable=True)
    tags = mapped_column(TextArray, nullable=False)
    principals = mapped_column(TextArray, nullable=False)
    tsv = mapped_column(TsVector, nullable=False)
    created: Mapped[int] = mapped_column(BigInteger, default=0)     # epoch seconds (0: none)
    deadline: Mapped[int] = mapped_column(BigInteger, default=0)
    stale_at: Mapped[int] = mapped_column(BigInteger, default=0)


class SearchTerm(db.Model):
    __tablename__ = "search_terms"

    term: Mapped[str] = mapped_column(String(64), primary_key=True)
