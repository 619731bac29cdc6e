"""Text analysis shared by indexing, querying and highlighting.

One function decides what a word becomes in the index (`normalize`), and everything
else -- the fast indexing path, query terms, snippet highlighting and the Whoosh
analyzer object kept in the schema -- goes through it, so they cannot disagree.

The analyzer is chosen for speed and predictable quality:

* words are runs of letters and digits (``[^\\W_]+``), lowercased, accents folded;
* a short stop list (Whoosh's) and single characters are dropped, positions are
  renumbered so phrases skip stop words just as Whoosh's StopFilter does;
* a *minimal* English stemmer folds plurals only ("companies" -> "company",
  "processes" -> "process"). It over-stems far less than Porter, its output is
  still a real word (so "did you mean" suggestions read well), and being a few
  string tests behind a memo it costs nothing at indexing time.

`FastText` is a Whoosh TEXT field whose ``index()`` skips Whoosh's per-token
generator chain (Token objects, filters) and builds the posting values directly;
this is most of what makes a full rebuild several times faster than the stock
StemmingAnalyzer.
"""
from __future__ import annotations

import re
import sys
import unicodedata
from array import array
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from itertools import accumulate
from typing import Union

from markupsafe import Markup, escape
from whoosh import fields, formats
from whoosh.analysis import Token, Tokenizer
from whoosh.analysis.filters import STOP_WORDS

WORD_RE = re.compile(r"[^\W_]+")
MAX_TERM_LENGTH = 40
# Parts of one field (title, summary, body) are separated by a position gap, so a
# phrase never matches across the end of a title and the start of the body.
PART_GAP = 100
SNIPPET_SCAN_CHARS = 6000

_memo: dict[str, str | None] = {}
_MEMO_LIMIT = 500_000
_BIG_ENDIAN = sys.byteorder == "big"


def fold(word: str) -> str:
    """Lowercase and strip accents ("Café" -> "cafe")."""
    word = word.lower()
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def stem(word: str) -> str:
    """Minimal English plural stemmer (an extended S-stemmer)."""
    n = len(word)
    if n <= 3 or word[-1] != "s" or not word.isalpha():
        return word
    if word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and n > 4 and word[-4] not in "ae":
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes", "zzes")):
        return word[:-2]
    return word[:-1]


def normalize(raw: str) -> str | None:
    """The index term for one token, or None if it is not indexed (stop word, too short)."""
    term = _memo.get(raw)
    if term is None:
        word = fold(raw)
        # The memo keeps "" for dropped tokens, so filter(None, ...) removes them in C.
        term = "" if len(word) < 2 or word in STOP_WORDS else stem(word[:MAX_TERM_LENGTH])
        if len(_memo) >= _MEMO_LIMIT:
            _memo.clear()
        _memo[raw] = term
    return term or None


def terms(text: str) -> list[str]:
    """Index terms of `text`, in order, stop words removed."""
    out = []
    for raw in WORD_RE.findall(text or ""):
        t = normalize(raw)
        if t is not None:
            out.append(t)
    return out


def _index_terms(text: str) -> list[str]:
    """Index terms of `text` in order (a C-speed path: memo lookups via map/filter)."""
    raw = WORD_RE.findall(text or "")
    got = list(map(_memo.get, raw))
    if None in got:
        # New words (every text has a few): normalize just those, then map again.
        for r in set(raw).difference(_memo):
            normalize(r)
        got = list(map(_memo.get, raw))
        if None in got:  # the memo was cleared meanwhile
            got = [normalize(r) or "" for r in raw]
    return list(filter(None, got))


def analyze(parts: Iterable[tuple[str, float]]) -> tuple[list[str], list[float], list[bytes], int]:
    """Postings of one document's field: (terms sorted, weights, packed positions, length).

    Parts (title, summary, body) follow each other with a gap of PART_GAP positions; a
    term's weight is the sum of the boosts of its occurrences. Positions are packed as
    little-endian uint32 (see schema.PackedPositions). Written with C-level helpers
    (sorting, Counter, map) because this runs for every token of every document.
    """
    seq: list[str] = []
    abs_pos: list[int] = []
    boosted: list[tuple[float, Counter]] = []
    base = 0
    for text, boost in parts:
        ts = _index_terms(text)
        seq += ts
        abs_pos += range(base, base + len(ts))
        if boost != 1.0 and ts:
            boosted.append((boost, Counter(ts)))
        base += len(ts) + PART_GAP
    if not seq:
        return [], [], [], 0
    counts = Counter(seq)
    uniq = sorted(counts)
    cnts = list(map(counts.__getitem__, uniq))
    order = sorted(range(len(seq)), key=seq.__getitem__)
    packed = array("I", map(abs_pos.__getitem__, order))
    if _BIG_ENDIAN:  # pragma: no cover
        packed.byteswap()
    raw = packed.tobytes()
    ends = list(accumulate(c * 4 for c in cnts))
    values = [raw[e - 4 * c:e] for e, c in zip(ends, cnts)]
    weights = [float(c) for c in cnts]
    if boosted:
        where = dict(zip(uniq, range(len(uniq))))
        for boost, ctr in boosted:
            extra = boost - 1.0
            for t, k in ctr.items():  # a title's few terms, not the whole vocabulary
                weights[where[t]] += extra * k
    return uniq, weights, values, len(seq)


FieldValue = Union[str, list, tuple]


def _as_parts(value: FieldValue) -> list[tuple[str, float]]:
    if isinstance(value, str):
        return [(value, 1.0)]
    return [(p, 1.0) if isinstance(p, str) else (p[0], float(p[1])) for p in value]


class SearchTokenizer(Tokenizer):
    """The same analysis as `normalize`, as a Whoosh analyzer (kept in the schema so
    Whoosh utilities that tokenize, e.g. query helpers, agree with our index)."""

    def __eq__(self, other):
        return type(other) is type(self)

    def __call__(self, value, positions=False, chars=False, keeporiginal=False,
                 removestops=True, start_pos=0, start_char=0, mode="", **kwargs):
        t = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        pos = start_pos
        for match in WORD_RE.finditer(value):
            term = normalize(match.group(0))
            if term is None:
                continue
            t.text = term
            t.boost = 1.0
            t.stopped = False
            if keeporiginal:
                t.original = match.group(0)
            if positions:
                t.pos = pos
            if chars:
                t.startchar = start_char + match.start()
                t.endchar = start_char + match.end()
            pos += 1
            yield t


class PackedPositions(formats.Positions):
    """Positions as little-endian uint32 arrays instead of Whoosh's pickled lists:
    several times cheaper to write and decodable with numpy at query time."""

    def encode(self, poslist):
        a = array("I", poslist)
        if _BIG_ENDIAN:  # pragma: no cover - little-endian everywhere we run
            a.byteswap()
        return a.tobytes()

    def decode_positions(self, valuestring):
        a = array("I")
        a.frombytes(valuestring)
        if _BIG_ENDIAN:  # pragma: no cover
            a.byteswap()
        return list(a)

    def decode_frequency(self, valuestring):
        return len(valuestring) // 4

    def decode_weight(self, valuestring):
        return self.decode_frequency(valuestring) * self.field_boost

    def combine(self, vs):
        s: set[int] = set()
        for v in vs:
            s.update(self.decode_positions(v))
        return self.encode(sorted(s))


class FastText(fields.TEXT):
    """A positional TEXT field indexed without Whoosh's per-token pipeline.

    The value may be a string or a list of ``(text, boost)`` parts: a title can be
    folded into the same field with a higher weight, so one posting list per term
    serves both and queries never need a per-field OR.
    """

    def __init__(self):
        super().__init__(analyzer=SearchTokenizer(), phrase=True, stored=False)
        self.format = PackedPositions(field_boost=1.0)

    def index(self, value, **kwargs):
        uniq, weights, values, _length = analyze(_as_parts(value))
        fb = self.format.field_boost
        for term, w, v in zip(uniq, weights, values):
            yield term.encode("utf-8"), len(v) >> 2, w * fb, v


# --------------------------------------------------------------------------- snippets


@lru_cache(maxsize=256)
def _candidates(wanted: frozenset[str]) -> re.Pattern:
    """Words that may normalize to one of `wanted`: the stemmer only removes endings (and
    turns "ies" into "y"), so they start with the term (less a final "y"). Finding them
    with one regex and normalizing only those is much cheaper than normalizing every word."""
    prefixes = sorted({t[:-1] if t.endswith("y") and len(t) > 2 else t for t in wanted}, key=len, reverse=True)
    if any(not p.isascii() for p in prefixes):
        return WORD_RE
    return re.compile(r"(?<![^\W_])(?:" + "|".join(map(re.escape, prefixes)) + r")[^\W_]*", re.I)


def highlight(text: str, query_terms: Iterable[str], max_chars: int = 240) -> Markup:
    """An HTML-safe excerpt of `text` around the densest cluster of query terms, with
    the matching words in <mark>. Without a match, the start of the text."""
    # Snippets come from the start of long texts: scanning a whole 200 KB body for the
    # best window would cost more than the search itself.
    text = (text or "")[:SNIPPET_SCAN_CHARS]
    wanted = frozenset(query_terms)
    finder = _candidates(wanted) if wanted and text.isascii() else WORD_RE
    hits = [m.span() for m in finder.finditer(text) if normalize(m.group(0)) in wanted] if wanted else []
    if not hits:
        cut = text[:max_chars]
        if len(text) > max_chars:
            cut = cut.rsplit(" ", 1)[0] + " …"
        return Markup(escape(cut))
    # The window (of max_chars) that holds the most hits.
    best_start, best_count, j = hits[0][0], 0, 0
    for i, (s, _e) in enumerate(hits):
        while j < len(hits) and hits[j][1] - s <= max_chars:
            j += 1
        if j - i > best_count:
            best_count, best_start = j - i, s
    start = max(0, best_start - max_chars // 4)
    if start:
        space = text.find(" ", start)
        start = space + 1 if 0 <= space < best_start else start
    end = min(len(text), start + max_chars)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > best_start else end
    out = ["… " if start else ""]
    cur = start
    for s, e in hits:
        if s < start or e > end:
            continue
        out.append(str(escape(text[cur:s])))
        out.append(f"<mark>{escape(text[s:e])}</mark>")
        cur = e
    out.append(str(escape(text[cur:end])))
    if end < len(text):
        out.append(" …")
    return Markup("".join(out))

