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
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Union

from markupsafe import Markup, escape
from whoosh import fields
from whoosh.analysis import Token, Tokenizer
from whoosh.analysis.filters import STOP_WORDS

WORD_RE = re.compile(r"[^\W_]+")
MAX_TERM_LENGTH = 40
# Parts of one field (title, summary, body) are separated by a position gap, so a
# phrase never matches across the end of a title and the start of the body.
PART_GAP = 100

_memo: dict[str, str | None] = {}
_MEMO_LIMIT = 500_000


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
    term = _memo.get(raw, False)
    if term is not False:
        return term  # type: ignore[return-value]
    word = fold(raw)
    if len(word) < 2 or word in STOP_WORDS:
        term = None
    else:
        term = stem(word[:MAX_TERM_LENGTH])
    if len(_memo) >= _MEMO_LIMIT:
        _memo.clear()
    _memo[raw] = term
    return term


def terms(text: str) -> list[str]:
    """Index terms of `text`, in order, stop words removed."""
    out = []
    for raw in WORD_RE.findall(text or ""):
        t = normalize(raw)
        if t is not None:
            out.append(t)
    return out


def term_positions(parts: Iterable[tuple[str, float]]) -> tuple[dict[str, list[int]], dict[str, float]]:
    """Positions and summed weights per term over boosted parts of a field."""
    poses: dict[str, list[int]] = {}
    weights: dict[str, float] = {}
    pos = 0
    memo_get = _memo.get
    findall = WORD_RE.findall
    for text, boost in parts:
        for raw in findall(text or ""):
            t = memo_get(raw, False)
            if t is False:
                t = normalize(raw)
            if t is None:
                continue
            lst = poses.get(t)
            if lst is None:
                poses[t] = [pos]
                weights[t] = boost
            else:
                lst.append(pos)
                weights[t] += boost
            pos += 1
        pos += PART_GAP
    return poses, weights


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


class FastText(fields.TEXT):
    """A positional TEXT field indexed without Whoosh's per-token pipeline.

    The value may be a string or a list of ``(text, boost)`` parts: a title can be
    folded into the same field with a higher weight, so one posting list per term
    serves both and queries never need a per-field OR.
    """

    def __init__(self):
        super().__init__(analyzer=SearchTokenizer(), phrase=True, stored=False)

    def index(self, value, **kwargs):
        poses, weights = term_positions(_as_parts(value))
        encode = self.format.encode
        fb = self.format.field_boost
        for term, plist in poses.items():
            yield term.encode("utf-8"), len(plist), weights[term] * fb, encode(plist)


# --------------------------------------------------------------------------- snippets


def highlight(text: str, query_terms: Iterable[str], max_chars: int = 240) -> Markup:
    """An HTML-safe excerpt of `text` around the densest cluster of query terms, with
    the matching words in <mark>. Without a match, the start of the text."""
    text = text or ""
    wanted = set(query_terms)
    hits = [m.span() for m in WORD_RE.finditer(text) if wanted and normalize(m.group(0)) in wanted] \
        if wanted else []
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


def iter_terms_with_spans(text: str) -> Iterator[tuple[str, int, int]]:
    for m in WORD_RE.finditer(text or ""):
        t = normalize(m.group(0))
        if t is not None:
            yield t, m.start(), m.end()
