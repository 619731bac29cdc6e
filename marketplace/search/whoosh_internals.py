"""The one place that reads Whoosh's internals (the fast engine's adapter).

The fast engine (engine.py) answers queries from numpy arrays read straight out of a
segment's files: posting blocks, per-document columns, quantised field lengths, deletion
sets, segment identities. None of that is Whoosh's public API -- it relies on private
attributes of the W3 codec (``_terms``, ``_perdoc``, block matchers' ``_data`` ...) and on
its byte layouts -- so it lives here, and only here (tests/test_search_internals.py checks
that with an AST walk over the package), so a new Whoosh release has exactly one module to
review.

Importing this module checks the installed Whoosh version against the versions the fast
engine was *proven* against: the differential test (tests/test_search_differential.py)
runs random corpora and queries through the fast engine and through Whoosh's own
``Searcher`` and requires the same answers. On any other version the import raises
`WhooshVersionError`, saying what to do; ``SEARCH_ENGINE=whoosh`` never imports this
module, so it keeps working on any Whoosh 2.7.

The second half of this module is the fast segment builder that rebuilds use
(`SegmentBuilder`): it writes W3 segments through the codec's private writer state, so it
lives here too, behind the same version check.
"""
from __future__ import annotations

import os
import warnings

import zlib
from array import array
from collections import Counter
from operator import sub
from pickle import dumps

import numpy as np
import whoosh
from whoosh import fields
from whoosh.codec.whoosh3 import WHOOSH3_HEADER_MAGIC, W3Codec
from whoosh.reading import TermNotFound
from whoosh.system import pack_uint
from whoosh.util.numeric import byte_to_length, length_to_byte
from whoosh.writing import SegmentWriter

from .analysis import FastText, _as_parts, analyze

# Whoosh versions the differential test passed against. Add one only after running it.
PROVEN_VERSIONS = ("2.7.4",)
# Set to 1 to run an unproven Whoosh anyway (to run the tests that prove it, say).
TRY_UNPROVEN_ENV = "SEARCH_TRY_UNPROVEN_WHOOSH"


class WhooshVersionError(RuntimeError):
    """The installed Whoosh is not one the fast engine was proven against."""


def check_version(installed: str | None = None, environ=None) -> str:
    """The installed Whoosh version, if the fast engine was proven against it; otherwise
    raise `WhooshVersionError` (or only warn, when TRY_UNPROVEN_ENV=1) saying what to do."""
    installed = installed or whoosh.versionstring()
    environ = os.environ if environ is None else environ
    if installed in PROVEN_VERSIONS:
        return installed
    message = (
        f"Whoosh {installed} is installed, but the fast search engine (SEARCH_ENGINE=fast) reads "
        f"Whoosh's internals and was proven against Whoosh {', '.join(PROVEN_VERSIONS)} only. Either "
        f"set SEARCH_ENGINE=whoosh (Whoosh's own query path: no internals, slower), or prove this "
        f"version: run `{TRY_UNPROVEN_ENV}=1 python -m pytest tests/test_search_differential.py "
        f"tests/test_search_index.py tests/test_search.py` and, when they pass, add {installed!r} to "
        f"PROVEN_VERSIONS in marketplace/search/whoosh_internals.py."
    )
    if environ.get(TRY_UNPROVEN_ENV) == "1":
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return installed
    raise WhooshVersionError(message)


VERSION = check_version()

EMPTY_IDS = np.zeros(0, dtype=np.int32)
EMPTY_WEIGHTS = np.zeros(0, dtype=np.float32)
_BYTE_TO_LENGTH: np.ndarray | None = None


def _byte_to_length_table() -> np.ndarray:
    """Whoosh stores a document's field length as one byte (a logarithmic quantisation);
    this is its decoding table, so lengths decode exactly as Whoosh's scorer sees them."""
    global _BYTE_TO_LENGTH
    if _BYTE_TO_LENGTH is None:
        from whoosh.util.numeric import byte_to_length

        _BYTE_TO_LENGTH = np.array([byte_to_length(i) for i in range(256)], dtype=np.float32)
    return _BYTE_TO_LENGTH


# --------------------------------------------------------------------------- segments


def segment_key(segreader) -> str | None:
    """A stable identity of the segment behind a leaf reader (segments are immutable, so
    caches keyed by it stay valid across commits); None for an empty index."""
    seg = segreader.segment()
    return None if seg is None else seg.segment_id()


def deleted_docnums(segreader) -> np.ndarray | None:
    """Deleted document numbers of a segment, or None when it has none."""
    seg = segreader.segment()
    if seg is None or not seg.has_deletions():
        return None
    return np.fromiter(seg.deleted_docs(), dtype=np.int64)


# --------------------------------------------------------------------------- postings


def read_postings(segreader, fieldname: str, term: str, want_values: bool = False,
                  restrict: np.ndarray | None = None):
    """(ids int32 sorted, weights float32[, values list]) of one term in one segment,
    including documents deleted since the segment was written (masked by the caller).

    Reads W3 posting blocks whole (one unpickle per block instead of a matcher call per
    posting). With `restrict` (a boolean mask), blocks holding none of its documents are
    skipped without being decompressed; the result then covers only the blocks read."""
    tbytes = term.encode("utf-8")
    terms = segreader._terms
    try:
        terminfo = terms.term_info(fieldname, tbytes)
    except (TermNotFound, KeyError):
        return (EMPTY_IDS, EMPTY_WEIGHTS, []) if want_values else (EMPTY_IDS, EMPTY_WEIGHTS)
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
        return (EMPTY_IDS, EMPTY_WEIGHTS, []) if want_values else (EMPTY_IDS, EMPTY_WEIGHTS)
    ids = id_parts[0] if len(id_parts) == 1 else np.concatenate(id_parts)
    w = w_parts[0] if len(w_parts) == 1 else np.concatenate(w_parts)
    return (ids, w, vals) if want_values else (ids, w)


# --------------------------------------------------------------------------- per-document columns


def _column_bytes(segreader, name: str) -> bytes | None:
    perdoc = segreader._perdoc
    if not perdoc.has_column(name):
        return None
    colfile, offset, length = perdoc._get_column_file(name)
    try:
        return colfile.get(offset, length)
    finally:
        colfile.close()


def read_numeric_column(segreader, name: str) -> np.ndarray:
    """A ``NumericColumn("q")`` of one segment as int64 (0 where absent), read as one
    buffer instead of a Python call per document."""
    n = segreader.doc_count_all()
    out = np.zeros(n, dtype=np.int64)
    raw = _column_bytes(segreader, name)
    if raw is None:
        return out
    vals = np.frombuffer(raw, dtype=">i8").astype(np.int64)
    out[: len(vals)] = vals[:n]
    return out


def read_field_lengths(segreader, fieldname: str) -> np.ndarray:
    """Each document's length of `fieldname` in one segment, quantised exactly as
    ``doc_field_length`` returns it (what BM25F scores with)."""
    n = segreader.doc_count_all()
    out = np.zeros(n, dtype=np.float32)
    raw = _column_bytes(segreader, f"_{fieldname}_len")
    if raw is None:
        return out
    codes = np.frombuffer(raw, dtype=np.uint8)
    out[: len(codes)] = _byte_to_length_table()[codes[:n]]
    return out


# --------------------------------------------------------------------------- rebuild


def commit_segments(ix, segments: list) -> None:
    """Make `segments` (written beside the index by the fast builder) the index's next
    generation, replacing whatever it held: writes Whoosh's table of contents."""
    from whoosh.index import TOC

    TOC(ix.schema, segments, ix.latest_generation() + 1).write(ix.storage, ix.indexname)


# --------------------------------------------------------------------------- the fast segment builder
# Write a whole Whoosh segment from a batch of documents, fast (used by rebuild).
#
# Whoosh's ``SegmentWriter.add_document`` pushes every posting through a sorting pool
# on disk, re-reads each document's field length while writing postings, and encodes
# blocks a posting at a time; at 100,000 documents of a few hundred words that is most
# of a rebuild. A rebuild worker has all of its documents at hand, so this builder
# appends postings to flat arrays, groups them by term with one numpy sort, and writes
# each posting list in whole blocks.
#
# The output is an ordinary Whoosh 2.7 segment: the per-document files come from Whoosh's
# own per-document writer, and every posting list is written exactly as
# ``W3PostingsWriter`` writes it (same block tuples, same term-info statistics, from the
# same quantised field lengths); only the route to it is shorter. With Whoosh's block
# size and compression level the term index and postings files are byte for byte what
# Whoosh's writer produces (tests/test_search_segments.py checks it); by default blocks
# are larger and compressed faster, which Whoosh reads from each block's header.
#
# Posting lists are never *inlined* into the term index. Whoosh can read inlined postings,
# but its own writer never produces them (``W3PostingsWriter`` calls a misspelt
# ``set_inline``, so its inlining is unreachable), and the paths that would meet them are
# not sound: a ``ListMatcher`` over inlined postings of an ID field reports the value
# ``''`` (a str), which Whoosh's merge rejects (``AssertionError: vbytes=''``, issue 14),
# and copies of it lose the term statistics that block-quality scoring asks for.
#
# It relies on private attributes of Whoosh's W3 codec, which is why pyproject pins
# Whoosh to 2.7.x. `WhooshSegmentBuilder` is the same interface over Whoosh's own
# writer: the reference the tests compare with, and a rebuild option
# (SEARCH_REBUILD_BUILDER = "whoosh").

BLOCK_LIMIT = 512  # postings per block; larger than Whoosh's 128: fewer, bigger reads
COMPRESSION = 1    # zlib level of posting blocks (Whoosh uses 3; 1 costs far less)


class SegmentBuilder:
    """Collects documents for one new segment of `ix`. The caller holds the index lock
    and commits the segments that `finish()` returns."""

    def __init__(self, ix, compression: int = COMPRESSION, blocklimit: int = BLOCK_LIMIT):
        self.codec = W3Codec(blocklimit=blocklimit, compression=compression)
        self.compression = compression
        self.writer = SegmentWriter(ix, _lk=False, codec=self.codec)
        self.schema = self.writer.schema
        # Flat postings: term id, document, weight, value (all appended per document).
        self.term_ids: dict[str, dict[str | bytes, int]] = {}
        self.n_terms = 0
        self.p_term = array("I")
        self.p_doc = array("I")
        # Doubles, as Whoosh's pool keeps them: a block's maximum weight is stored unrounded,
        # while the block's weights themselves are stored as float32 (see finish()).
        self.p_weight = array("d")
        self.p_value: list[bytes] = []
        self.lengths: dict[str, array] = {}
        self.count = 0

    def _tids(self, fieldname: str, terms: list) -> list[int]:
        ids = self.term_ids.setdefault(fieldname, {})
        out = list(map(ids.get, terms))
        if None in out:
            for t in set(terms).difference(ids):
                ids[t] = self.n_terms
                self.n_terms += 1
            out = list(map(ids.__getitem__, terms))
        return out

    def add(self, doc: dict) -> None:
        pdw = self.writer.perdocwriter
        schema = self.schema
        docnum = self.count
        pdw.start_doc(docnum)
        for fieldname in sorted(doc):
            value = doc[fieldname]
            if value is None:
                continue
            field = schema[fieldname]
            length = 0
            if field.indexed:
                if isinstance(field, FastText):
                    terms, weights, values, length = analyze(_as_parts(value))
                    fb = field.format.field_boost
                    if fb != 1.0:
                        weights = [w * fb for w in weights]
                elif type(field) in _SIMPLE and isinstance(value, str):
                    terms, weights, values = _simple_postings(field, value)
                else:
                    items = list(field.index(value))
                    terms = [t for t, _f, _w, _v in items]
                    weights = [w for _t, _f, w, _v in items]
                    values = [v for _t, _f, _w, v in items]
                    if field.scorable:
                        length = sum(f for _t, f, _w, _v in items)
                n = len(terms)
                self.p_term.extend(self._tids(fieldname, terms))
                self.p_doc.extend([docnum] * n)
                self.p_weight.extend(weights)
                self.p_value.extend(values)
                if length:
                    lengths = self.lengths.setdefault(fieldname, array("I"))
                    lengths.extend([0] * (docnum + 1 - len(lengths)))
                    lengths[docnum] = length
            pdw.add_field(fieldname, field, value if field.stored else None, length)
            if field.column_type is not None:
                pdw.add_column_value(fieldname, field.column_type, field.to_column_value(value))
        pdw.finish_doc()
        self.count += 1

    def finish(self):
        """Write the postings and close the segment; returns the Whoosh Segment."""
        w = self.writer
        w.docnum = self.count
        w.perdocwriter.close()
        fw = w.fieldwriter
        p_term = np.frombuffer(self.p_term, dtype=np.uint32)
        order = np.argsort(p_term, kind="stable")  # stable: documents stay ascending
        starts = np.searchsorted(p_term[order], np.arange(self.n_terms + 1)).tolist()
        docs = np.frombuffer(self.p_doc, dtype=np.uint32)[order].tolist()
        raw = np.frombuffer(self.p_weight, dtype=np.float64)[order]
        weights = raw.astype(np.float32).tolist()  # what a block stores (Whoosh: array("f"))
        maxweights = raw.tolist()                  # what a block's header stores
        del raw
        values = list(map(self.p_value.__getitem__, order.tolist()))
        self.p_value = []
        for fieldname in sorted(self.term_ids):
            field = self.schema[fieldname]
            doc_len = None
            if fieldname in self.lengths:
                # Whoosh's writer reads lengths back from the per-document file, where they
                # are stored as one byte: use the same quantised values.
                got = self.lengths[fieldname]
                doc_len = [byte_to_length(length_to_byte(x)) if x else 0 for x in got]
                doc_len += [0] * (self.count - len(got))
            fixed = field.format.fixed_value_size()
            fw.start_field(fieldname, field)
            pw = fw._postwriter
            # str and UTF-8 bytes sort alike (code point order), as the term index needs.
            for term, tid in sorted(self.term_ids[fieldname].items()):
                a, b = starts[tid], starts[tid + 1]
                fw.start_term(term.encode("utf-8") if isinstance(term, str) else term)
                _write_term(pw, docs[a:b], weights[a:b], maxweights[a:b], values[a:b], doc_len, fixed,
                            self.compression)
                fw.finish_term()  # blocks were written: Whoosh records the extent, never inlines
            fw.finish_field()
        fw.close()
        w.pool.cleanup()
        w._assemble_segment()
        segment = w.get_segment()
        # Not w._tempstorage.destroy(): the temporary folder is shared with the other
        # workers building this index; the rebuild removes it when all are done.
        w.is_closed = True
        return segment

    def discard(self) -> None:
        """Drop an empty builder (without removing the shared temporary folder)."""
        self.writer._close_segment()
        self.writer.is_closed = True


class WhooshSegmentBuilder:
    """The same interface over Whoosh's own writer (``add_document`` and the segment
    finishing that Whoosh's multi-process writer uses for ``multisegment=True``)."""

    def __init__(self, ix, **_ignored):
        self.writer = SegmentWriter(ix, _lk=False)
        self.count = 0

    def add(self, doc: dict) -> None:
        self.writer.add_document(**doc)
        self.count += 1

    def finish(self):
        segment = self.writer._finalize_segment()
        self.writer.is_closed = True  # the shared temporary folder stays, as above
        return segment

    def discard(self) -> None:
        self.writer._close_segment()
        self.writer.is_closed = True


BUILDERS = {"fast": SegmentBuilder, "whoosh": WhooshSegmentBuilder}


_SIMPLE = (fields.ID, fields.KEYWORD)


def _simple_postings(field, value: str):
    """ID and KEYWORD postings without Whoosh's analyzer chain (what IDAnalyzer and
    KeywordAnalyzer, unconfigured, produce: Existence / Frequency values)."""
    fb = field.format.field_boost
    if isinstance(field, fields.ID):
        if field.analyzer != _PLAIN_ID:
            return _generic(field, value)
        return [value.encode("utf-8")], [fb], [b""]
    if field.analyzer == _COMMA_KEYWORD:
        toks = [t.strip() for t in value.split(",")]
    elif field.analyzer == _SPACE_KEYWORD:
        toks = value.split()
    else:
        return _generic(field, value)
    counts = Counter(t for t in toks if t)
    uniq = list(counts)
    return ([t.encode("utf-8") for t in uniq], [counts[t] * fb for t in uniq],
            [pack_uint(counts[t]) for t in uniq])


def _generic(field, value):
    items = list(field.index(value))
    return [t for t, _f, _w, _v in items], [w for _t, _f, w, _v in items], [v for _t, _f, _w, v in items]


_PLAIN_ID = fields.ID().analyzer
_COMMA_KEYWORD = fields.KEYWORD(commas=True).analyzer
_SPACE_KEYWORD = fields.KEYWORD().analyzer


def _write_term(pw, ids: list[int], weights: list[float], maxweights: list[float], values: list[bytes],
                doc_len: list[int] | None, fixed, compression: int) -> None:
    """Write one posting list as W3 blocks: what W3PostingsWriter.add_posting and
    _write_block do, a block at a time, with the per-posting work done by C-level
    map/zip instead of Python loops. `weights` are float32 values (as a block stores
    them), `maxweights` the same weights unrounded (as a block header stores them)."""
    n = len(ids)
    postfile = pw._postfile
    ti = pw._terminfo
    limit = pw._blocklimit
    for start in range(0, n, limit):
        end = min(n, start + limit)
        if start == 0 and end == n:
            bids, bw, bmw, bv = ids, weights, maxweights, values
        else:
            bids, bw = ids[start:end], weights[start:end]
            bmw, bv = maxweights[start:end], values[start:end]
        if doc_len is not None:
            bl = [x for x in map(doc_len.__getitem__, bids) if x]  # add_posting: `if length:`
            minlen = min(bl) if bl else None
            maxlen = max(bl) if bl else 0
        else:
            minlen, maxlen = None, 0
        maxweight = max(bmw)
        # W3TermInfo.add_block, inlined.
        ti._weight += sum(bw)
        ti._df += end - start
        if ti._minlength is None:
            ti._minlength = minlen
        elif minlen is not None:
            ti._minlength = min(ti._minlength, minlen)
        ti._maxlength = max(ti._maxlength, maxlen)
        ti._maxweight = max(ti._maxweight, maxweight)
        if ti._minid is None:
            ti._minid = bids[0]
        ti._maxid = bids[-1]

        deltas = tuple(map(sub, bids, [0] + bids[:-1])) if len(bids) > 1 else (bids[0],)
        wset = set(bw)
        if wset == {1.0}:
            mini_w = None
        elif len(wset) == 1:
            mini_w = bw[0]
        else:
            mini_w = tuple(bw)
        if fixed == 0:
            mini_v = None
        else:
            # add_posting keeps only non-empty values (`if vbytes:`).
            kept = bv if all(bv) else [v for v in bv if v]
            mini_v = tuple(kept) if fixed is None or fixed < 0 else b"".join(kept)
        data = dumps((deltas, mini_w, mini_v), 2)
        if compression:
            data = zlib.compress(data, compression)
        info = dumps((end - start, bids[-1], maxweight, compression,
                      length_to_byte(minlen), length_to_byte(maxlen)), 2)
        if not pw._blockcount:
            postfile.write(WHOOSH3_HEADER_MAGIC)
        blocklength = len(info) + len(data)
        postfile.write_int(-blocklength if end == n else blocklength)
        postfile.write(info)
        postfile.write(data)
        pw._blockcount += 1
