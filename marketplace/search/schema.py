"""The Whoosh schema: ids, public text, facet values and principals -- nothing private.

Every document, whatever its type, has the same fields:

* ``key``        "item:12", "org:3", "idea:7" (stored; the only way back to the database)
* ``digest``     hash of the source values and principals (stored; `search verify` uses it)
* ``kind``       challenge / failure / asset / idea / organisation (filter ``type:``)
* ``status``     open / closed / ... (filter ``status:``)
* ``org``        owning organisation id (filter ``org:``, by slug)
* ``tags``       tags (filter ``tag:``)
* ``principals`` who may find the document (see policy.doc_principals)
* ``text``       title (weighted) + summary + body, positional, see analysis.FastText
* ``created`` / ``deadline`` / ``stale_at``  epoch seconds in columns (sorting; expiry
  of the principals, e.g. when an access grant lapses)

The schema is pickled into the index by Whoosh, so classes referenced here must keep
their import path; a change of schema bumps SCHEMA_VERSION and needs `search rebuild`.
"""
from __future__ import annotations

from whoosh import columns, fields

from .analysis import FastText

SCHEMA_VERSION = 1
FACET_FIELDS = ("kind", "status", "org", "tags")
TIME_COLUMNS = ("created", "deadline", "stale_at")


def build_schema() -> fields.Schema:
    time_col = lambda: fields.COLUMN(columns.NumericColumn("q", default=0))  # noqa: E731
    return fields.Schema(
        key=fields.ID(stored=True, unique=True),
        digest=fields.STORED(),
        kind=fields.ID(),
        status=fields.ID(),
        org=fields.ID(),
        tags=fields.KEYWORD(commas=True),
        principals=fields.KEYWORD(),
        text=FastText(),
        created=time_col(),
        deadline=time_col(),
        stale_at=time_col(),
    )
