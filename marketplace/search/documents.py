"""What a search document is, and the registry of document types.

A document type ("item", "org", "idea", ...) says how to turn a database row into a
`SearchDoc` (public text, facet values, and the principals from the policy module), how
to present a row in results, and which model the policy's ``visible()`` filters. Feature
packages register their own types with `register_doc_type`; search/sources.py registers
the built-in ones.

Nothing private goes into a SearchDoc: no e-mail addresses, no reviewer notes, no
moderation reasons -- only what anyone allowed to see the document sees on its page.
"""
from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Sequence

from .. import policy

# Boosts of the parts of the text field.
TITLE_BOOST = 3.0
SUMMARY_BOOST = 1.5


def epoch(dt: datetime | None) -> int:
    if dt is None:
        return 0
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp())


# Markdown syntax whose text is not shown as words on the page: link and image targets,
# autolinks, reference definitions, entities. Everything else is markup characters,
# which the tokenizer skips anyway -- so indexing needs no Markdown rendering (which
# costs ~2 ms a document and would cap a rebuild at a few hundred documents a second).
_MD_DROP = [  # (trigger substring, pattern, replacement): a pattern only runs if triggered
    ("![", re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r" \1 "),
    ("](", re.compile(r"\]\([^)\s]*(?:\s+\"[^\"]*\")?\)"), "] "),
    ("<", re.compile(r"<(?:https?|mailto|ftp):[^>\s]*>"), " "),
    ("]:", re.compile(r"^\s{0,3}\[[^\]]+\]:\s*\S+.*$", re.M), " "),
    ("&", re.compile(r"&#?\w+;"), " "),
]


def index_text(markdown: str | None) -> str:
    """The words of a Markdown text as the page shows them, for indexing."""
    text = markdown or ""
    for trigger, pattern, repl in _MD_DROP:
        if trigger in text:
            text = pattern.sub(repl, text)
    return text


_MD_MARKERS = re.compile(r"(^\s{0,3}(?:#{1,6}|>|[-*+]|\d+[.)])\s+)|(\*\*|__|\*|`+|~~|\[|\]|^\s*\|?[-:| ]{3,}\|?\s*$|\|)",
                         re.M)
_SPACES = re.compile(r"\s+")


def display_text(markdown: str | None, limit: int = 20_000) -> str:
    """Plain text of a Markdown source for snippets: the words and punctuation the page
    shows, without rendering (the snippet is HTML-escaped when shown). A fraction of the
    cost of sanitize.plain_text, which matters with twenty snippets on every page."""
    text = index_text(html.unescape((markdown or "")[:limit]))
    text = _MD_MARKERS.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


@dataclass(frozen=True)
class SearchDoc:
    doc_type: str
    doc_id: int
    kind: str
    status: str
    org_id: int | None
    parts: tuple[tuple[str, float], ...]   # (Markdown or plain text, boost); title first
    principals: tuple[str, ...]
    tags: tuple[str, ...] = ()
    created: datetime | None = None
    deadline: datetime | None = None
    stale_at: datetime | None = None       # when the principals change without a write

    @property
    def key(self) -> str:
        return f"{self.doc_type}:{self.doc_id}"

    def digest(self) -> str:
        """Hash of everything the index holds for this document (`search verify`)."""
        h = hashlib.sha1()
        for value in (self.key, self.kind, self.status, self.org_id, sorted(self.tags),
                      sorted(self.principals), epoch(self.created), epoch(self.deadline),
                      epoch(self.stale_at), [b for _t, b in self.parts]):
            h.update(repr(value).encode("utf-8"))
            h.update(b"\x1f")
        for text, _boost in self.parts:
            h.update(text.encode("utf-8", "surrogatepass"))
            h.update(b"\x1f")
        return h.hexdigest()

    def fields(self) -> dict[str, Any]:
        """The Whoosh document (schema.build_schema)."""
        return {
            "key": self.key,
            "digest": self.digest(),
            "kind": self.kind,
            "status": self.status or "none",
            "org": str(self.org_id) if self.org_id is not None else None,
            "tags": ",".join(self.tags) if self.tags else None,
            "principals": " ".join(sorted(set(self.principals))) or None,
            "text": [(index_text(t), b) for t, b in self.parts if t],
            "created": epoch(self.created),
            "deadline": epoch(self.deadline),
            "stale_at": epoch(self.stale_at),
        }


@dataclass
class Presented:
    """A result as the page and the API show it."""

    title: str
    url: str | None
    kind_label: str
    text: str                      # plain text the snippet is cut from
    meta: list[str] = field(default_factory=list)
    visibility: str | None = None  # an item's level, shown as its badge


@dataclass
class DocType:
    name: str
    model: type
    # Row -> SearchDoc, or None when the row is not indexed at all.
    document: Callable[[Any], SearchDoc | None]
    present: Callable[[Any], Presented]
    # Optional: many rows -> SearchDocs at once (e.g. with the principals of all read in
    # a few queries); used by load_docs when given.
    document_many: Callable[[Sequence[Any]], list[SearchDoc | None]] | None = None
    # Loader options (e.g. selectinload) for loading many rows to index, and to present.
    load_options: Sequence[Any] = ()
    present_options: Sequence[Any] = ()
    # Optional: (row, viewer) -> Presented, where a result names something beside the row
    # (an idea's challenge) that not everyone who may find the row may see.
    present_for: Callable[[Any, Any], Presented] | None = None
    # Optional: (rows, viewer) -> {row id: Presented}, the page's rows of this type at once,
    # so what presenting needs beside each row (e.g. whether a brief is under an NDA) is
    # read in one query per page, not one per result; used by the search page when given.
    present_many: Callable[[Sequence[Any], Any], dict[int, Presented]] | None = None


DOC_TYPES: dict[str, DocType] = {}
# Documents whose content or principals derive from another: ("item", id) -> ideas,
# questions and comments of that item. Used when a parent changes, and to widen the
# query-time re-check of lapsed grants to what inherits them.
DEPENDENTS: dict[str, list[Callable[[Sequence[int]], Iterable[tuple[str, int]]]]] = {}


def register_doc_type(dt: DocType) -> DocType:
    DOC_TYPES[dt.name] = dt
    return dt


def register_dependents(parent_type: str, fn: Callable[[Sequence[int]], Iterable[tuple[str, int]]]) -> None:
    DEPENDENTS.setdefault(parent_type, []).append(fn)


def dependents_of(doc_type: str, ids: Sequence[int]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    if not ids:
        return out
    for fn in DEPENDENTS.get(doc_type, ()):
        out += list(fn(ids))
    return out


def split_key(key: str) -> tuple[str, int] | None:
    doc_type, _, raw = key.partition(":")
    try:
        return doc_type, int(raw)
    except ValueError:
        return None


def load_docs(doc_type: str, ids: Sequence[int], session=None) -> dict[int, SearchDoc | None]:
    """Current documents for `ids` (None for rows that are gone or not indexed)."""
    from sqlalchemy import select

    from ..extensions import db

    session = session or db.session
    dt = DOC_TYPES.get(doc_type)
    out: dict[int, SearchDoc | None] = {i: None for i in ids}
    if dt is None or not ids:
        return out
    pk = dt.model.__mapper__.primary_key[0]
    for start in range(0, len(ids), 500):
        chunk = list(ids[start:start + 500])
        rows = list(session.execute(select(dt.model).where(pk.in_(chunk)).options(*dt.load_options)).scalars())
        docs = dt.document_many(rows) if dt.document_many else [dt.document(row) for row in rows]
        for row, doc in zip(rows, docs):
            out[row.id] = doc
    return out


def all_ids(doc_type: str, session=None) -> list[int]:
    from sqlalchemy import select

    from ..extensions import db

    session = session or db.session
    dt = DOC_TYPES[doc_type]
    pk = dt.model.__mapper__.primary_key[0]
    return list(session.execute(select(pk).order_by(pk)).scalars())


def doc_from_dict(doc_type: str, d: dict, principals: Iterable[str], stale_at: datetime | None = None,
                  deadline: datetime | None = None) -> SearchDoc:
    """A SearchDoc from the dict a feature's ``search_document()`` returns
    (id, type, title, text, org_id, tags, status, created_at)."""
    return SearchDoc(
        doc_type=doc_type, doc_id=int(d["id"]), kind=d.get("type") or doc_type,
        status=d.get("status") or "", org_id=d.get("org_id"),
        parts=((d.get("title") or "", TITLE_BOOST), (d.get("text") or "", 1.0)),
        principals=tuple(principals), tags=tuple(d.get("tags") or ()),
        created=d.get("created_at"), deadline=deadline, stale_at=stale_at,
    )


def principals_for(obj: Any, now: datetime | None = None) -> tuple[tuple[str, ...], datetime | None]:
    """(principals, valid_until) from the policy module."""
    return tuple(policy.doc_principals(obj, now)), policy.doc_principals_valid_until(obj, now)
