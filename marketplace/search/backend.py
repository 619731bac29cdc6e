"""The small interface search code talks to, so a site that outgrows one machine can swap
Whoosh for a shared engine without touching views, the outbox or the CLI.

A backend stores `SearchDoc`s by key and answers `SearchQuery`s restricted to the
principals given -- it never decides who may see what; the policy module does.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from markupsafe import Markup

from .analysis import highlight
from .documents import SearchDoc
from .querylang import ParsedQuery


class IndexBusy(RuntimeError):
    """Another process holds the writer lock."""


def take_writer_lock(try_once: Callable[[], bool], wait: bool, timeout: float) -> None:
    """Call ``try_once`` (True: it took the writer lock) until it succeeds, every 50 ms.
    Raises IndexBusy at once when not ``wait``, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not try_once():
        if not wait or time.monotonic() > deadline:
            raise IndexBusy("the search index is being written by another process")
        time.sleep(0.05)


class DocumentRejected(Exception):
    """The index refused one document of a batch (nothing of the batch was written): the
    caller can fail that document's job alone and write the others."""

    def __init__(self, key: str):
        super().__init__(f"the index refused document {key}")
        self.key = key


@dataclass
class SearchQuery:
    parsed: ParsedQuery
    principals: Sequence[str]                         # policy.principals(user)
    filters: dict[str, list[str]] = field(default_factory=dict)      # index field -> any of
    not_filters: dict[str, list[str]] = field(default_factory=dict)  # index field -> none of
    exclude_keys: Sequence[str] = ()                  # not (or no longer) visible to this viewer
    sort: str = "relevance"                           # relevance | newest | deadline
    offset: int = 0
    limit: int = 20
    facets: bool = True


@dataclass
class SearchHits:
    total: int
    hits: list[tuple[str, float]]                     # (key, score), in order
    facets: dict[str, list[tuple[str, int]]]          # field -> [(value, count)]


# A rebuild asks the caller for the documents in chunks, possibly from several processes:
# `chunks` lists (doc_type, ids) work units; `load(doc_type, ids)` returns their docs.
LoadChunk = Callable[[str, Sequence[int]], Iterable[SearchDoc]]


class SearchBackend(ABC):
    @abstractmethod
    def lock(self, wait: bool = True, timeout: float = 600.0):
        """Context manager: the one-writer-at-a-time lock (across processes)."""

    @abstractmethod
    def ensure_index(self, stamp: dict | None = None) -> None:
        """Create an empty index if there is none (under lock()), recording `stamp`, the
        database it belongs to (see identity.py)."""

    def index_stamp(self) -> dict | None:
        """The database the live index was built from, if recorded (see identity.py)."""
        return None

    def current_folder(self) -> str | None:
        """A name for the live index (changes when a rebuild swaps a new one in)."""
        return None

    @abstractmethod
    def write(self, upserts: Iterable[SearchDoc], deletes: Iterable[str]) -> None:
        """One batch of replacements and deletions; the caller holds lock()."""

    def apply(self, upserts: Iterable[SearchDoc], deletes: Iterable[str], *, wait: bool = True) -> bool:
        """Replace/insert and delete documents in one batch, under lock(). Returns False
        (changing nothing) when another writer holds the index and `wait` is False."""
        try:
            with self.lock(wait=wait, timeout=60.0):
                self.write(upserts, deletes)
                return True
        except IndexBusy:
            if wait:
                raise
            return False

    def index(self, docs: Iterable[SearchDoc]) -> bool:
        return self.apply(docs, ())

    def delete(self, keys: Iterable[str]) -> bool:
        return self.apply((), keys)

    @abstractmethod
    def search(self, q: SearchQuery) -> SearchHits:
        """Matches visible to `q.principals` only: results, counts and facets alike."""

    @abstractmethod
    def visible_count(self, term: str, principals: Sequence[str]) -> int:
        """How many documents the principals may see contain the index term."""

    @abstractmethod
    def shown_keys(self, keys: Sequence[str], principals: Sequence[str]) -> list[str]:
        """The subset of `keys` a search with these principals could return."""

    @abstractmethod
    def similar_terms(self, term: str, maxdist: int) -> list[str]:
        """Index terms within `maxdist` edits (candidates for "did you mean")."""

    @abstractmethod
    def rebuild(self, chunks: Sequence[tuple[str, Sequence[int]]], load: LoadChunk, *,
                procs: int = 2, progress: Callable[[int], None] | None = None) -> dict:
        """Build a fresh index from `chunks` beside the live one and swap it in atomically;
        searches keep using the old index until the swap."""

    @abstractmethod
    def digests(self) -> dict[str, str]:
        """key -> digest of every live document (for `search verify`)."""

    @abstractmethod
    def stats(self) -> dict:
        ...

    @abstractmethod
    def stale_keys(self, now_epoch: int) -> list[str]:
        """Documents whose principals expired by the clock (SearchDoc.stale_at <= now)."""

    def snippets(self, texts: Sequence[str], terms: Sequence[str]) -> list[Markup]:
        """An HTML-safe excerpt of each text around the query `terms`, the matching words
        in <mark> and nothing else unescaped. The texts are those of rows the viewer may
        see (the service loads them through the policy first)."""
        return [highlight(t, terms) for t in texts]
