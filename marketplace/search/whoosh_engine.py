"""The pure-Whoosh query engine (SEARCH_ENGINE=whoosh): Whoosh's public API only.

Every answer comes from ``Searcher.search`` running the query objects of whoosh_query.py:
the viewer's principals and the filters as its ``filter``, negated words, phrases and
filters and the excluded keys as its ``mask``, BM25F scoring with the parameters both engines share, a
``MultiFacet`` for the order and ``FieldFacet`` groups counted with ``sorting.Count`` for
the facets. No private attribute, codec or file layout is touched, so this engine works
on any Whoosh 2.7 and is the reference the fast engine (engine.py) is tested against.
It is several times slower (Whoosh scores and facets every match in Python).

Whoosh behaviours it steers around, each of which would show more than asked for:
``And.normalize`` drops a clause that matches nothing (so an impossible filter is handled
before Whoosh sees it, see whoosh_query.allow_query); ``AndNot`` can let an excluded
document through (so exclusions are the search's ``mask``, see whoosh_query); and a
filtered result's count can be recomputed *without* the filter when a collector skips
blocks (TopCollector) -- so every search here goes through a collector that sees every
match (sorting or unsorted).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from whoosh import query as wq
from whoosh import scoring, sorting
from whoosh.searching import Searcher

from .backend import SearchHits
from .querylang import ParsedQuery
from .schema import FACET_FIELDS
from .whoosh_query import (BM25_B, BM25_K1, KEY, TEXT, allow_query, deny_query, effective_sort,
                           sort_facet, text_query, top_facet_values)


@dataclass
class WhooshView:
    """One generation of the index: its reader and a searcher kept for its caches."""

    reader: object
    generation: int
    searcher: Searcher
    doc_count: int


class WhooshEngine:
    """Thread-safe (one search at a time) engine over Whoosh's Searcher."""

    name = "whoosh"

    def __init__(self):
        self.lock = threading.RLock()
        self.searches = 0

    def view(self, reader, generation: int) -> WhooshView:
        searcher = Searcher(reader, weighting=scoring.BM25F(B=BM25_B, K1=BM25_K1), closereader=False)
        return WhooshView(reader, generation, searcher, reader.doc_count())

    def search(self, view: WhooshView, q: ParsedQuery, *, principals, filters=None, not_filters=None,
               exclude_keys=(), sort: str = "relevance", offset: int = 0, limit: int = 20,
               facets: bool = True, facet_limit: int = 12) -> SearchHits:
        allow = allow_query(principals, filters or {})
        if allow is None:
            return SearchHits(0, [], {f: [] for f in FACET_FIELDS} if facets else {})
        sort = effective_sort(q, sort)
        groups = ({f: sorting.FieldFacet(f, allow_overlap=(f == "tags")) for f in FACET_FIELDS}
                  if facets else None)
        with self.lock:
            self.searches += 1
            results = view.searcher.search(
                text_query(q), limit=max(offset + limit, 1), sortedby=sort_facet(sort), groupedby=groups,
                maptype=sorting.Count, filter=allow, mask=deny_query(q, not_filters or {}, exclude_keys))
            hits = []
            for docnum, key in list(results.items())[offset:offset + limit]:
                # The sort key of a relevance search starts with 0 - score (ScoreFacet).
                score = -key[0] if sort == "relevance" else 0.0
                hits.append((view.searcher.stored_fields(docnum)[KEY], score))
            out_facets = {}
            if facets:
                for f in FACET_FIELDS:
                    counts = {v: n for v, n in results.groups(f).items() if v is not None}
                    out_facets[f] = top_facet_values(counts, facet_limit)
            return SearchHits(len(results), hits, out_facets)

    def _matching(self, view: WhooshView, q, principals) -> list[int]:
        """Document numbers matching `q` that the principals may see (unscored)."""
        allow = allow_query(principals, {})
        if allow is None:
            return []
        with self.lock:
            results = view.searcher.search(q, limit=None, scored=False, filter=allow)
            return [docnum for docnum, _score in results.items()]

    def visible_df(self, view: WhooshView, term: str, principals) -> int:
        """How many documents the principals may see contain `term`."""
        return len(self._matching(view, wq.Term(TEXT, term), principals))

    def shown(self, view: WhooshView, keys, principals) -> list[str]:
        """Which of `keys` the index would show to these principals."""
        keys = list(keys)
        if not keys:
            return []
        with self.lock:
            found = {view.searcher.stored_fields(d)[KEY]
                     for d in self._matching(view, wq.Or([wq.Term(KEY, k) for k in keys]), principals)}
        return [k for k in keys if k in found]

    def stale_keys(self, view: WhooshView, now_epoch: int) -> list[str]:
        """Keys of live documents whose ``stale_at`` has come."""
        keys: list[str] = []
        with self.lock:
            reader = view.reader
            if not reader.has_column("stale_at"):
                return keys
            column = reader.column_reader("stale_at")
            for docnum in reader.all_doc_ids():
                due = column[docnum]
                if 0 < due <= now_epoch:
                    keys.append(reader.stored_fields(docnum)[KEY])
        return keys

    def stats(self) -> dict:
        return {"name": self.name, "searches": self.searches}
