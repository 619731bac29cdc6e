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

TODO(lead): segments.py (the fast segment builder) still reaches into Whoosh's writer
internals itself; move those uses here after merging.
"""
from __future__ import annotations

import os
import warnings

import numpy as np
import whoosh
from whoosh.reading import TermNotFound

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
