"""The fast query engine (SEARCH_ENGINE=fast): Whoosh's answers, from numpy caches.

What a search means -- which documents match, their BM25F scores, the order, the facet
counts -- is defined once, as Whoosh query objects (whoosh_query.py), and Whoosh's own
``Searcher`` runs them in whoosh_engine.py. Whoosh's collectors score every match in pure
Python and evaluate the principals filter as an OR of terms on every query, which is
4-10x too slow here. This engine evaluates the same query trees another way:

* posting lists are read straight from a segment's blocks into numpy arrays (through
  whoosh_internals, the one module that touches Whoosh's internals) and kept in an LRU
  keyed by *segment*: segments are immutable, so a commit that adds a small segment
  leaves the caches of the big ones valid (deletions are a per-generation mask);
* a query becomes boolean masks: principals (cached per segment and principal set),
  filters, terms, ORs, negations; phrases are checked on position arrays of the
  remaining candidates only, vectorised;
* counts and facet counts are sums and bincounts over the final mask -- exact, and no
  document is scored just to be counted;
* only the surviving matches are scored, with Whoosh's BM25F (its idf, average length
  and quantised document lengths, summed over the leaves of the query tree), and only
  the requested page is sorted.

tests/test_search_differential.py runs random corpora and queries through both engines
and requires the same matches, counts, facets and order.

Nothing here knows about users or rules: the caller passes the viewer's principals,
computed by the policy module, and the keys to exclude.
"""
from __future__ import annotations

import math
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np
from whoosh import query as wq

from . import whoosh_internals as wi
from .backend import SearchHits
from .querylang import ParsedQuery
from .schema import FACET_FIELDS, TIME_COLUMNS
from .whoosh_query import (BM25_B, BM25_K1, NO_DEADLINE, TEXT, effective_sort, negated_text_query,
                           text_query, top_facet_values)

POSITIONS_CACHE_MIN_DF = 256  # below this, a phrase reads only the blocks it needs
_EMPTY_IDS = wi.EMPTY_IDS


# --------------------------------------------------------------------------- caches


class PostingLRU:
    """Posting arrays keyed by (segment, field, term), bounded by total postings held."""

    def __init__(self, budget: int):
        self.budget = budget
        self.held = 0
        self.items: OrderedDict = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key):
        v = self.items.get(key)
        if v is not None:
            self.items.move_to_end(key)
            self.hits += 1
        else:
            self.misses += 1
        return v

    def put(self, key, value, size: int) -> None:
        old = self.items.pop(key, None)
        if old is not None:
            self.held -= len(old[0])
        self.items[key] = value
        self.held += size
        while self.held > self.budget and len(self.items) > 1:
            _k, v = self.items.popitem(last=False)
            self.held -= len(v[0])

    def drop_segments(self, keep: set[str]) -> None:
        for key in [k for k in self.items if k[0] not in keep]:
            self.held -= len(self.items.pop(key)[0])


class SegmentData:
    """Per-document arrays of one segment: lengths, time columns, facet codes."""

    def __init__(self, segreader):
        self.n = segreader.doc_count_all()
        self.lengths = wi.read_field_lengths(segreader, TEXT)
        self.columns = {name: wi.read_numeric_column(segreader, name) for name in TIME_COLUMNS}
        self.facets: dict[str, tuple] = {}
        self.principal_masks: OrderedDict = OrderedDict()
        self.keys: dict[int, str] = {}

    def key(self, segreader, docnum: int) -> str:
        k = self.keys.get(docnum)
        if k is None:
            k = self.keys[docnum] = segreader.stored_fields(docnum)["key"]
        return k

    def facet(self, segreader, fieldname: str, read):
        """(values, codes) for single-valued fields, (values, docs, codes) for tags."""
        got = self.facets.get(fieldname)
        if got is not None:
            return got
        values = [t.decode("utf-8") if isinstance(t, bytes) else t
                  for t in segreader.lexicon(fieldname)]
        if fieldname == "tags":
            docs, codes = [], []
            for j, v in enumerate(values):
                ids = read(fieldname, v)[0]
                docs.append(ids)
                codes.append(np.full(len(ids), j, dtype=np.int32))
            got = (np.array(values, dtype=object),
                   np.concatenate(docs) if docs else _EMPTY_IDS,
                   np.concatenate(codes) if codes else _EMPTY_IDS)
        else:
            codes = np.full(self.n, -1, dtype=np.int32)
            for j, v in enumerate(values):
                codes[read(fieldname, v)[0]] = j
            got = (np.array(values, dtype=object), codes)
        self.facets[fieldname] = got
        return got


@dataclass
class Leaf:
    reader: object
    offset: int
    seg_id: str
    data: SegmentData
    live: np.ndarray | None  # None: no deletions


@dataclass
class View:
    """One generation of the index as the engine sees it."""

    reader: object
    generation: int
    leaves: list[Leaf]
    doc_count: int        # live documents
    doc_count_all: int    # with the deleted ones still in their segments (Whoosh's idf uses it)
    avgfl: float          # Whoosh's average text length: total length / doc_count_all
    df_cache: dict = field(default_factory=dict)


# Evaluation order inside an And: cheap masks first, phrases on the fewest candidates.
_COST = {wq.Term: 0, wq.Or: 1, wq.Every: 1, wq.And: 2, wq.Phrase: 3}


def _top(primary: np.ndarray, secondary: np.ndarray, take: int) -> np.ndarray:
    """Positions of the `take` smallest (primary, secondary, position) keys: a partition
    finds the cut, then only the rows at or before it (ties included) are sorted."""
    n = len(primary)
    if take < n:
        kth = np.partition(primary, take - 1)[take - 1]
        sel = np.flatnonzero(primary <= kth)
    else:
        sel = np.arange(n)
    order = np.lexsort((sel, secondary[sel], primary[sel]))[:take]
    return sel[order]


class Engine:
    """Thread-safe query engine; one per process and index directory."""

    name = "fast"

    def __init__(self, postings_budget: int = 16_000_000, principal_masks_per_segment: int = 64):
        self.lock = threading.RLock()
        self.lru = PostingLRU(postings_budget)
        self.segdata: dict[str, SegmentData] = {}
        self.mask_cap = principal_masks_per_segment

    # ---------------------------------------------------------------- views

    def view(self, reader, generation: int) -> View:
        with self.lock:
            leaves = []
            keep = set()
            for segreader, offset in reader.leaf_readers():
                sid = wi.segment_key(segreader)
                if sid is None:  # an empty index
                    continue
                keep.add(sid)
                data = self.segdata.get(sid)
                if data is None:
                    data = self.segdata[sid] = SegmentData(segreader)
                live = None
                deleted = wi.deleted_docnums(segreader)
                if deleted is not None:
                    live = np.ones(data.n, dtype=bool)
                    live[deleted] = False
                leaves.append(Leaf(segreader, offset, sid, data, live))
            for sid in [s for s in self.segdata if s not in keep]:
                del self.segdata[sid]
            self.lru.drop_segments(keep)
            count_all = reader.doc_count_all()
            avgfl = (reader.field_length(TEXT) / (count_all or 1)) or 1.0
            return View(reader, generation, leaves, reader.doc_count(), count_all, avgfl)

    # ---------------------------------------------------------------- primitives

    def _postings(self, leaf: Leaf, fieldname: str, term: str):
        key = (leaf.seg_id, fieldname, term)
        got = self.lru.get(key)
        if got is None:
            got = wi.read_postings(leaf.reader, fieldname, term)
            self.lru.put(key, got, len(got[0]))
        return got

    def _mask(self, leaf: Leaf, fieldname: str, term: str) -> np.ndarray:
        m = np.zeros(leaf.data.n, dtype=bool)
        m[self._postings(leaf, fieldname, term)[0]] = True
        return m

    def _any_mask(self, leaf: Leaf, fieldname: str, terms) -> np.ndarray:
        m = np.zeros(leaf.data.n, dtype=bool)
        for t in terms:
            m[self._postings(leaf, fieldname, t)[0]] = True
        return m

    def _principal_mask(self, leaf: Leaf, principals: tuple[str, ...]) -> np.ndarray:
        cache = leaf.data.principal_masks
        m = cache.get(principals)
        if m is None:
            m = self._any_mask(leaf, "principals", principals)
            cache[principals] = m
            if len(cache) > self.mask_cap:
                cache.popitem(last=False)
        else:
            cache.move_to_end(principals)
        return m

    def _positions(self, leaf: Leaf, term: str, cand: np.ndarray):
        """(ids, offsets, positions) of a term: positions[offsets[i]:offsets[i+1]] belong to
        ids[i]. Cached like posting lists when the term is common enough to be worth it;
        otherwise only the blocks holding candidates are read."""
        key = (leaf.seg_id, "@pos", term)
        got = self.lru.get(key)
        if got is not None:
            return got
        ids, _w = self._postings(leaf, TEXT, term)
        cache = len(ids) >= POSITIONS_CACHE_MIN_DF
        ids, _w, vals = wi.read_postings(leaf.reader, TEXT, term, want_values=True,
                                         restrict=None if cache else cand)
        lens = np.fromiter(map(len, vals), dtype=np.int64, count=len(vals)) >> 2
        offsets = np.zeros(len(vals) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        # Positions are our own format (analysis.PackedPositions): little-endian uint32.
        positions = np.frombuffer(b"".join(vals), dtype="<u4")
        got = (ids, offsets, positions)
        if cache:
            self.lru.put(key, got, len(ids) + len(positions))
        return got

    def _phrase(self, leaf: Leaf, terms: tuple[str, ...], cand: np.ndarray) -> np.ndarray:
        """Documents among `cand` where `terms` occur at consecutive positions: each term's
        positions in the candidates become (doc << 24 | position) codes, and a start
        survives term k if start + k is among term k's codes -- all in numpy."""
        out = cand.copy()
        for t in terms:
            out &= self._mask(leaf, TEXT, t)
        if len(terms) == 1 or not out.any():
            return out
        starts = None
        for k, t in enumerate(terms):
            ids, offsets, positions = self._positions(leaf, t, out)
            sel = np.flatnonzero(out[ids])
            if not len(sel):
                starts = None
                break
            lo, hi = offsets[sel], offsets[sel + 1]
            lens = hi - lo
            # Gather the variable-length position runs of the selected documents.
            run_start = np.repeat(lo - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
            flat = positions[run_start + np.arange(int(lens.sum()))].astype(np.int64)
            code = (np.repeat(ids[sel].astype(np.int64), lens) << 24) | flat
            starts = code if starts is None else starts[np.isin(starts + k, code)]
            if not len(starts):
                break
        result = np.zeros(leaf.data.n, dtype=bool)
        if starts is not None and len(starts):
            result[np.unique(starts >> 24)] = True
        return result

    def _match(self, leaf: Leaf, q, cand: np.ndarray) -> np.ndarray:
        """The documents among `cand` that match the query tree `q` (a new array)."""
        kind = type(q)
        if kind is wq.Term:
            return cand & self._mask(leaf, q.fieldname, q.text)
        if kind is wq.Phrase:
            return self._phrase(leaf, tuple(q.words), cand)
        if kind is wq.And:
            out = cand.copy()
            for sub in sorted(q.subqueries, key=lambda s: _COST[type(s)]):
                if not out.any():
                    break
                out = self._match(leaf, sub, out)
            return out
        if kind is wq.Or:
            out = np.zeros_like(cand)
            for sub in q.subqueries:
                out |= self._match(leaf, sub, cand)
            return out
        if kind is wq.Every:
            return cand.copy()
        raise TypeError(f"the fast engine cannot evaluate {q!r}")

    def _idf(self, view: View, term: str) -> float:
        """Whoosh's BM25F idf (scoring.WeightingModel.idf): log(N / (df + 1)) + 1 over all
        documents, deleted ones included, as Whoosh counts them."""
        idf = view.df_cache.get(term)
        if idf is None:
            df = view.reader.doc_frequency(TEXT, term)
            idf = view.df_cache[term] = math.log(view.doc_count_all / (df + 1)) + 1
        return idf

    def _scores(self, view: View, leaf: Leaf, q, idx: np.ndarray, final: np.ndarray, bm) -> np.ndarray:
        """Whoosh's score of the matches `idx` for the query tree `q`: the sum of its
        leaves' BM25F scores (a phrase scores its words); an Or adds only the options
        that match the document."""
        kind = type(q)
        if kind is wq.Term:
            return bm(q.text)
        if kind is wq.Phrase:
            return sum(bm(w) for w in q.words)
        if kind is wq.And:
            return sum(self._scores(view, leaf, s, idx, final, bm) for s in q.subqueries)
        if kind is wq.Or:
            total = np.zeros(len(idx), dtype=np.float64)
            for sub in q.subqueries:
                hit = self._match(leaf, sub, final)[idx]
                total += np.where(hit, self._scores(view, leaf, sub, idx, final, bm), 0.0)
            return total
        if kind is wq.Every:
            return np.zeros(len(idx), dtype=np.float64)
        raise TypeError(f"the fast engine cannot score {q!r}")  # pragma: no cover - _match raised

    # ---------------------------------------------------------------- search

    def matches(self, leaf: Leaf, tq, nq, filters: dict, not_filters: dict, principals: tuple[str, ...],
                exclude_keys) -> np.ndarray:
        """The final boolean mask of one segment: visible, filtered, matching the text
        query `tq` and not the negated text query `nq` (None: no negation)."""
        mask = self._principal_mask(leaf, principals).copy()
        if leaf.live is not None:
            mask &= leaf.live
        for fname, values in filters.items():
            if not mask.any():
                return mask
            mask &= self._any_mask(leaf, fname, values)
        for fname, values in not_filters.items():
            if values:
                mask &= ~self._any_mask(leaf, fname, values)
        if not mask.any():
            return mask
        mask = self._match(leaf, tq, mask)
        if nq is not None and mask.any():
            mask &= ~self._match(leaf, nq, mask)
        for key in exclude_keys:
            mask[self._postings(leaf, "key", key)[0]] = False
        return mask

    def search(self, view: View, q: ParsedQuery, *, principals, filters=None, not_filters=None,
               exclude_keys=(), sort: str = "relevance", offset: int = 0, limit: int = 20,
               facets: bool = True, facet_limit: int = 12) -> SearchHits:
        filters = filters or {}
        not_filters = not_filters or {}
        principals = tuple(sorted(set(principals)))
        want = offset + limit
        tq, nq = text_query(q), negated_text_query(q)
        sort = effective_sort(q, sort)
        scored = sort == "relevance"
        with self.lock:
            total = 0
            candidates: list[tuple] = []  # (primary, secondary, leafno, local docnum)
            facet_counts: dict[str, Counter] = {f: Counter() for f in FACET_FIELDS} if facets else {}
            for leafno, leaf in enumerate(view.leaves):
                mask = self.matches(leaf, tq, nq, filters, not_filters, principals, exclude_keys)
                idx = np.flatnonzero(mask)
                if not len(idx):
                    continue
                total += len(idx)
                if facets:
                    self._count_facets(leaf, mask, idx, facet_counts)
                if want <= 0:
                    continue
                primary, secondary = self._sort_keys(view, leaf, tq, mask, idx, sort)
                for j in _top(primary, secondary, min(want, len(idx))):
                    candidates.append((primary[j].item(), secondary[j].item(), leafno, int(idx[j])))
            candidates.sort()
            hits = []
            for primary, _secondary, leafno, local in candidates[offset:want]:
                leaf = view.leaves[leafno]
                hits.append((leaf.data.key(leaf.reader, local), -primary if scored else 0.0))
            out_facets = {f: top_facet_values(counts, facet_limit) for f, counts in facet_counts.items()}
            return SearchHits(total, hits, out_facets)

    def _sort_keys(self, view: View, leaf: Leaf, tq, mask: np.ndarray, idx: np.ndarray, sort: str):
        """(primary, secondary) ascending sort keys of the matches `idx` of one segment, as
        whoosh_query.sort_facet orders them."""
        data = leaf.data
        newest = -data.columns["created"][idx]
        if sort == "relevance":
            fl = data.lengths[idx].astype(np.float64)
            norm = BM25_K1 * ((1 - BM25_B) + BM25_B * fl / view.avgfl)
            cache: dict[str, np.ndarray] = {}

            def bm(term: str) -> np.ndarray:
                got = cache.get(term)
                if got is None:
                    ids, w = self._postings(leaf, TEXT, term)
                    tf = np.zeros(len(idx), dtype=np.float64)
                    if len(ids):
                        pos = np.minimum(np.searchsorted(ids, idx), len(ids) - 1)
                        tf = np.where(ids[pos] == idx, w[pos], 0.0).astype(np.float64)
                    # bm25() in whoosh.scoring, term by term.
                    got = cache[term] = self._idf(view, term) * ((tf * (BM25_K1 + 1)) / (tf + norm))
                return got

            return -self._scores(view, leaf, tq, idx, mask, bm), newest
        if sort == "newest":
            return newest, np.zeros(len(idx), dtype=np.int64)
        if sort == "deadline":
            deadline = data.columns["deadline"][idx]
            return np.where(deadline > 0, deadline, NO_DEADLINE), newest
        raise ValueError(f"unknown sort {sort!r}")  # pragma: no cover - effective_sort checked it

    def _count_facets(self, leaf: Leaf, mask: np.ndarray, idx: np.ndarray, out: dict) -> None:
        read = lambda f, t: self._postings(leaf, f, t)  # noqa: E731
        for fname in FACET_FIELDS:
            got = leaf.data.facet(leaf.reader, fname, read)
            if fname == "tags":
                values, docs, codes = got
                if not len(docs):
                    continue
                binc = np.bincount(codes[mask[docs]], minlength=len(values))
            else:
                values, codes = got
                c = codes[idx]
                binc = np.bincount(c[c >= 0], minlength=len(values))
            nz = np.flatnonzero(binc)
            out[fname].update(dict(zip(values[nz].tolist(), binc[nz].tolist())))

    # ---------------------------------------------------------------- suggestions, re-checks, upkeep

    def visible_df(self, view: View, term: str, principals: tuple[str, ...]) -> int:
        """How many documents the principals may see contain `term`."""
        principals = tuple(sorted(set(principals)))
        with self.lock:
            n = 0
            for leaf in view.leaves:
                ids = self._postings(leaf, TEXT, term)[0]
                if not len(ids):
                    continue
                ok = self._principal_mask(leaf, principals)[ids]
                if leaf.live is not None:
                    ok &= leaf.live[ids]
                n += int(ok.sum())
            return n

    def shown(self, view: View, keys, principals: tuple[str, ...]) -> list[str]:
        """Which of `keys` the index would show to these principals."""
        principals = tuple(sorted(set(principals)))
        out = []
        with self.lock:
            for key in keys:
                for leaf in view.leaves:
                    ids = self._postings(leaf, "key", key)[0]
                    if not len(ids):
                        continue
                    ok = self._principal_mask(leaf, principals)[ids]
                    if leaf.live is not None:
                        ok &= leaf.live[ids]
                    if ok.any():
                        out.append(key)
                        break
        return out

    def stale_keys(self, view: View, now_epoch: int) -> list[str]:
        """Keys of live documents whose ``stale_at`` has come (from the cached column)."""
        keys: list[str] = []
        with self.lock:
            for leaf in view.leaves:
                col = leaf.data.columns["stale_at"]
                due = (col > 0) & (col <= now_epoch)
                if leaf.live is not None:
                    due &= leaf.live
                for docnum in due.nonzero()[0]:
                    keys.append(leaf.reader.stored_fields(int(docnum))["key"])
        return keys

    def stats(self) -> dict:
        return {
            "name": self.name,
            "cached_postings": self.lru.held,
            "cached_terms": len(self.lru.items),
            "cache_hits": self.lru.hits,
            "cache_misses": self.lru.misses,
            "segments_cached": len(self.segdata),
        }
