"""Write a whole Whoosh segment from a batch of documents, fast (used by rebuild).

Whoosh's ``SegmentWriter.add_document`` pushes every posting through a sorting pool
on disk, re-reads each document's field length while writing postings, and encodes
blocks a posting at a time; at 100,000 documents of a few hundred words that is most
of a rebuild. A rebuild worker has all of its documents at hand, so this builder
appends postings to flat arrays, groups them by term with one numpy sort, and writes
each posting list in whole blocks.

The output is an ordinary Whoosh 2.7 segment: the per-document files come from Whoosh's
own per-document writer, and every posting list is written exactly as
``W3PostingsWriter`` writes it (same block tuples, same term-info statistics, from the
same quantised field lengths); only the route to it is shorter. With Whoosh's block
size and compression level the term index and postings files are byte for byte what
Whoosh's writer produces (tests/test_search_segments.py checks it); by default blocks
are larger and compressed faster, which Whoosh reads from each block's header.

Posting lists are never *inlined* into the term index. Whoosh can read inlined postings,
but its own writer never produces them (``W3PostingsWriter`` calls a misspelt
``set_inline``, so its inlining is unreachable), and the paths that would meet them are
not sound: a ``ListMatcher`` over inlined postings of an ID field reports the value
``''`` (a str), which Whoosh's merge rejects (``AssertionError: vbytes=''``, issue 14),
and copies of it lose the term statistics that block-quality scoring asks for.

It relies on private attributes of Whoosh's W3 codec, which is why pyproject pins
Whoosh to 2.7.x. `WhooshSegmentBuilder` is the same interface over Whoosh's own
writer: the reference the tests compare with, and a rebuild option
(SEARCH_REBUILD_BUILDER = "whoosh").
"""
from __future__ import annotations

import zlib
from array import array
from collections import Counter
from operator import sub
from pickle import dumps

import numpy as np
from whoosh import fields
from whoosh.codec.whoosh3 import WHOOSH3_HEADER_MAGIC, W3Codec
from whoosh.system import pack_uint
from whoosh.util.numeric import byte_to_length, length_to_byte
from whoosh.writing import SegmentWriter

from .analysis import FastText, _as_parts, analyze

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
