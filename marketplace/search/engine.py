"""Query execution over Whoosh segments, with per-segment numpy caches.

Whoosh stores the index; answering a query with Whoosh's own collectors scores every
match in pure Python and evaluates the principals filter as an OR of terms on every
query, which is what made the naive version 4-10x too slow. Instead:

* posting lists are read straight from a segment's blocks into numpy arrays and kept
  in an LRU keyed by *segment*: segments are immutable, so a commit that adds a small
  segment leaves the caches of the big ones valid (deletions are a per-generation mask);
* a query becomes boolean masks: principals (cached per segment and principal set),
  filters, words, OR groups, negations; phrases are checked on position arrays of the
  remaining candidates only, vectorised;
* counts and facet counts are sums and bincounts over the final mask -- exact, and no
  document is scored just to be counted;
* only the surviving matches are scored (BM25) and only the requested page is sorted.

Nothing here knows about users or rules: the caller passes the viewer's principals,
computed by the policy module, and the keys to exclude.
"""
from __future__ import annotations

import math
import pickle
import threading
import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from heapq import nlargest
from operator import itemgetter

import numpy as np
from whoosh.reading import TermNotFound

from .querylang import AnyOf, ParsedQuery, Phrase, Word
from .schema import FACET_FIELDS, TIME_COLUMNS

K1, B = 1.2, 0.75
TEXT = "text"
POSITIONS_CACHE_MIN_DF = 256  # below this, a phrase reads only the blocks it needs
_EMPTY_IDS = np.zeros(0, dtype=np.int32)
_EMPTY_W = np.zeros(0, dtype=np.float32)
_BYTE_TO_LENGTH = None


def _byte_to_length_table() -> np.ndarray:
    global _BYTE_TO_LENGTH
    if _BYTE_TO_LENGTH is None:
        from whoosh.util.numeric import byte_to_length

        _BYTE_TO_LENGTH = np.array([byte_to_length(i) for i in range(256)], dtype=np.float32)
    return _BYTE_TO_LENGTH


# --------------------------------------------------------------------------- reading


def read_postings(segreader, fieldname: str, term: str, want_values: bool = False,
                  restrict: np.ndarray | None = None):
    """(ids int32 sorted, weights float32[, values list]) of one term in one segment,
    including documents deleted since the segment was written (masked by the caller).

    With `restrict` (a boolean mask), blocks holding none of its documents are skipped
    without being decompressed; the result then covers only the blocks read."""
    tbytes = term.encode("utf-8")
    terms = segreader._terms
    try:
        terminfo = terms.term_info(fieldname, tbytes)
    except (TermNotFound, KeyError):
        return (_EMPTY_IDS, _EMPTY_W, []) if want_values else (_EMPTY_IDS, _EMPTY_W)
    fmt = segreader.schema[fieldname].format
    m = terms.matcher(fieldname, tbytes, fmt)
    if terminfo.is_inlined():
        ids = np.asarray(m._ids, dtype=np.int32)
        w = np.asarray(m._weights if m._weights is not None else [1.0] * len(ids), dtype=np.float32)
        vals = list(m._values or [])
        return (ids, w, vals) if want_values else (ids, w)
    id_parts, w_parts, vals = [], [], []
    lo = 0
    while True:
        if restrict is not None:
            hi = m._maxid
            if not restrict[lo:hi + 1].any():
                lo = hi + 1
                if m._lastblock:
                    break
                m._goto(m._nextoffset)
                continue
            lo = hi + 1
        m._read_data()
        data_ids, data_w, data_v = m._data
        ids = np.cumsum(np.asarray(data_ids, dtype=np.int64)).astype(np.int32)
        id_parts.append(ids)
        if data_w is None:
            w_parts.append(np.ones(len(ids), dtype=np.float32))
        elif isinstance(data_w, float):
            w_parts.append(np.full(len(ids), data_w, dtype=np.float32))
        else:
            w_parts.append(np.asarray(data_w, dtype=np.float32))
        if want_values and data_v:
            vals.extend(data_v)
        if m._lastblock:
            break
        m._goto(m._nextoffset)
    if not id_parts:
        return (_EMPTY_IDS, _EMPTY_W, []) if want_values else (_EMPTY_IDS, _EMPTY_W)
    ids = id_parts[0] if len(id_parts) == 1 else np.concatenate(id_parts)
    w = w_parts[0] if len(w_parts) == 1 else np.concatenate(w_parts)
    return (ids, w, vals) if want_values else (ids, w)


def _read_column(segreader, name: str) -> np.ndarray:
    n = segreader.doc_count_all()
    perdoc = segreader._perdoc
    out = np.zeros(n, dtype=np.int64)
    if not perdoc.has_column(name):
        return out
    colfile, offset, length = perdoc._get_column_file(name)
    try:
        raw = colfile.get(offset, length)
    finally:
        colfile.close()
    vals = np.frombuffer(raw, dtype=">i8").astype(np.int64)
    out[: len(vals)] = vals[:n]
    return out


def _read_lengths(segreader) -> np.ndarray:
    n = segreader.doc_count_all()
    perdoc = segreader._perdoc
    name = f"_{TEXT}_len"
    out = np.zeros(n, dtype=np.float32)
    if not perdoc.has_column(name):
        return out
    colfile, offset, length = perdoc._get_column_file(name)
    try:
        raw = np.frombuffer(colfile.get(offset, length), dtype=np.uint8)
    finally:
        colfile.close()
    out[: len(raw)] = _byte_to_length_table()[raw[:n]]
    return out


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
        self.lengths = _read_lengths(segreader)
        self.columns = {name: _read_column(segreader, name) for name in TIME_COLUMNS}
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
    doc_count: int
    avgdl: float
    df_cache: dict = field(default_factory=dict)


@dataclass
class EngineResult:
    total: int
    hits: list[tuple[str, float]]             # (key, score) for the requested slice
    facets: dict[str, list[tuple[str, int]]]  # field -> [(value, count)] by count desc


class Engine:
    """Thread-safe query engine; one per process and index directory."""

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
            total_len = 0.0
            for segreader, offset in reader.leaf_readers():
                seg = segreader.segment()
                if seg is None:  # an empty index
                    continue
                sid = seg.segment_id()
                keep.add(sid)
                data = self.segdata.get(sid)
                if data is None:
                    data = self.segdata[sid] = SegmentData(segreader)
                live = None
                if seg.has_deletions():
                    live = np.ones(data.n, dtype=bool)
                    live[np.fromiter(seg.deleted_docs(), dtype=np.int64)] = False
                leaves.append(Leaf(segreader, offset, sid, data, live))
                total_len += float(data.lengths.sum() if live is None else data.lengths[live].sum())
            for sid in [s for s in self.segdata if s not in keep]:
                del self.segdata[sid]
            self.lru.drop_segments(keep)
            count = reader.doc_count()
            return View(reader, generation, leaves, count, (total_len / count) if count else 1.0)

    # ---------------------------------------------------------------- primitives

    def _postings(self, leaf: Leaf, fieldname: str, term: str):
        key = (leaf.seg_id, fieldname, term)
        got = self.lru.get(key)
        if got is None:
            got = read_postings(leaf.reader, fieldname, term)
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
        ids, _w, vals = read_postings(leaf.reader, TEXT, term, want_values=True,
                                      restrict=None if cache else cand)
        lens = np.fromiter(map(len, vals), dtype=np.int64, count=len(vals)) >> 2
        offsets = np.zeros(len(vals) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
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

    def _clause(self, leaf: Leaf, clause, cand: np.ndarray) -> np.ndarray:
        if isinstance(clause, Word):
            return self._mask(leaf, TEXT, clause.term)
        if isinstance(clause, Phrase):
            return self._phrase(leaf, clause.terms, cand)
        if isinstance(clause, AnyOf):
            m = np.zeros(leaf.data.n, dtype=bool)
            for opt in clause.options:
                m |= self._clause(leaf, opt, cand)
            return m
        raise TypeError(f"unknown clause {clause!r}")  # pragma: no cover

    def _df(self, view: View, term: str) -> int:
        df = view.df_cache.get(term)
        if df is None:
            df = sum(len(self._postings(leaf, TEXT, term)[0]) for leaf in view.leaves)
            view.df_cache[term] = df
        return df

    # ---------------------------------------------------------------- search

    def matches(self, view: View, leaf: Leaf, q: ParsedQuery, filters: dict, not_filters: dict,
                principals: tuple[str, ...], exclude_keys) -> np.ndarray:
        """The final boolean mask of one segment: visible, filtered, matching."""
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
        # Cheap clauses first; phrases last, on the fewest candidates.
        ordered = sorted(q.must, key=lambda c: isinstance(c, Phrase) or isinstance(c, AnyOf))
        for clause in ordered:
            if not mask.any():
                return mask
            mask &= self._clause(leaf, clause, mask)
        for clause in q.must_not:
            if not mask.any():
                return mask
            mask &= ~self._clause(leaf, clause, mask)
        for key in exclude_keys:
            mask[self._postings(leaf, "key", key)[0]] = False
        return mask

    def search(self, view: View, q: ParsedQuery, *, principals, filters=None, not_filters=None,
               exclude_keys=(), sort: str = "relevance", offset: int = 0, limit: int = 20,
               facets: bool = True, facet_limit: int = 12) -> EngineResult:
        filters = filters or {}
        not_filters = not_filters or {}
        principals = tuple(sorted(set(principals)))
        want = offset + limit
        terms = q.positive_terms()
        scored = sort == "relevance" and bool(terms)
        with self.lock:
            idf = {}
            if scored:
                n = max(view.doc_count, 1)
                for t in terms:
                    df = self._df(view, t)
                    idf[t] = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            total = 0
            candidates: list[tuple] = []  # (sortkey..., leafno, local docnum)
            facet_counts: dict[str, Counter] = {f: Counter() for f in FACET_FIELDS} if facets else {}
            for leafno, leaf in enumerate(view.leaves):
                mask = self.matches(view, leaf, q, filters, not_filters, principals, exclude_keys)
                idx = np.flatnonzero(mask)
                if not len(idx):
                    continue
                total += len(idx)
                if facets:
                    self._count_facets(leaf, mask, idx, facet_counts)
                if want <= 0:
                    continue
                keys = self._sort_keys(view, leaf, idx, terms, idf, sort if terms or sort != "relevance" else "newest")
                take = min(want, len(idx))
                if take < len(idx):
                    part = np.argpartition(keys, take - 1)[:take]
                else:
                    part = np.arange(len(idx))
                for j in part:
                    candidates.append((float(keys[j]), leafno, int(idx[j])))
            candidates.sort()
            page = candidates[offset:want]
            hits = []
            for key, leafno, local in page:
                leaf = view.leaves[leafno]
                hits.append((leaf.data.key(leaf.reader, local), -key if scored else 0.0))
            out_facets = {
                f: sorted(nlargest(facet_limit, counts.items(), key=itemgetter(1)),
                          key=lambda vc: (-vc[1], vc[0]))
                for f, counts in facet_counts.items()
            }
            return EngineResult(total, hits, out_facets)

    def _sort_keys(self, view: View, leaf: Leaf, idx: np.ndarray, terms, idf, sort: str) -> np.ndarray:
        """Ascending sort keys for the matches `idx` of one segment."""
        data = leaf.data
        if sort == "relevance":
            dl = data.lengths[idx]
            k = K1 * ((1.0 - B) + B * dl / view.avgdl)
            score = np.zeros(len(idx), dtype=np.float64)
            for t in terms:
                ids, w = self._postings(leaf, TEXT, t)
                if not len(ids):
                    continue
                pos = np.searchsorted(ids, idx)
                pos[pos >= len(ids)] = len(ids) - 1
                tf = np.where(ids[pos] == idx, w[pos], 0.0)
                score += idf[t] * tf * (K1 + 1.0) / (tf + k)
            # Ties (and equal scores across segments) fall back to newest first.
            return -(score + data.columns["created"][idx] * 1e-15)
        created = data.columns["created"][idx].astype(np.float64)
        if sort == "deadline":
            deadline = data.columns["deadline"][idx].astype(np.float64)
            # Soonest deadline first; documents without one after all that have one.
            return np.where(deadline > 0, deadline, 1e11) - created * 1e-12
        return -created

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

    # ---------------------------------------------------------------- suggestions

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

    def stats(self) -> dict:
        return {
            "cached_postings": self.lru.held,
            "cached_terms": len(self.lru.items),
            "cache_hits": self.lru.hits,
            "cache_misses": self.lru.misses,
            "segments_cached": len(self.segdata),
        }


def decode_block(raw: bytes, compressed: bool):  # pragma: no cover - debugging aid
    return pickle.loads(zlib.decompress(raw) if compressed else raw)
