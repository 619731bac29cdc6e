"""The search box's little language, parsed by us -- never by Whoosh's QueryParser.

Supported: plain words (all must match), ``"quoted phrases"``, ``-word`` / ``-"phrase"``,
``a OR b``, and the filters ``type:`` ``tag:`` ``org:`` ``status:`` (also negated,
``-type:asset``; repeating a filter means either value). Anything else is text:
``content:*`` searches for the word "content", ``title:[a TO z]`` for "title" and "z"
("a" and "to" are stop words), ``(((`` for nothing. The parser never raises; every
input gives a `ParsedQuery`, at worst an empty one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .analysis import normalize, terms

MAX_QUERY_CHARS = 1000
MAX_CLAUSES = 16
MAX_OPTIONS = 8
MAX_PHRASE_TERMS = 12

# Query field -> index field. Only these become filters.
FILTER_FIELDS = {"type": "kind", "tag": "tags", "org": "org", "status": "status"}

TYPE_ALIASES = {
    "challenge": "challenge", "challenges": "challenge",
    "failure": "failure", "failures": "failure",
    "asset": "asset", "assets": "asset",
    "idea": "idea", "ideas": "idea",
    "organisation": "organisation", "organisations": "organisation",
    "organization": "organisation", "organizations": "organisation", "org": "organisation",
    "orgs": "organisation",
}

_FIELD_RE = re.compile(r"([A-Za-z]+):(?=\S)")
_TAG_RE = re.compile(r"[^a-z0-9\-]+")


@dataclass(frozen=True)
class Word:
    term: str
    raw: str


@dataclass(frozen=True)
class Phrase:
    terms: tuple[str, ...]
    raw: str


@dataclass(frozen=True)
class AnyOf:
    options: tuple[Word | Phrase, ...]


Clause = Word | Phrase | AnyOf


@dataclass
class ParsedQuery:
    must: list[Clause] = field(default_factory=list)
    must_not: list[Word | Phrase] = field(default_factory=list)
    filters: dict[str, list[str]] = field(default_factory=dict)       # index field -> any of
    not_filters: dict[str, list[str]] = field(default_factory=dict)   # index field -> none of

    @property
    def has_text(self) -> bool:
        return bool(self.must)

    def positive_terms(self) -> list[str]:
        """Terms that make a document match (for ranking and highlighting)."""
        out: list[str] = []
        for clause in self.must:
            opts = clause.options if isinstance(clause, AnyOf) else (clause,)
            for o in opts:
                for t in (o.terms if isinstance(o, Phrase) else (o.term,)):
                    if t not in out:
                        out.append(t)
        return out

    def words(self) -> list[Word]:
        """Single-word clauses (candidates for "did you mean")."""
        out: list[Word] = []
        for clause in self.must:
            opts = clause.options if isinstance(clause, AnyOf) else (clause,)
            out += [o for o in opts if isinstance(o, Word)]
        return out

    def is_empty(self) -> bool:
        return not (self.must or self.must_not or self.filters or self.not_filters)


def normalize_filter(name: str, value: str) -> str | None:
    """The index term for a filter value, or None when the value can never match."""
    value = value.strip().strip('"').strip()
    if not value:
        return None
    if name == "kind":
        return TYPE_ALIASES.get(value.lower())
    if name == "tags":
        tag = _TAG_RE.sub("-", value.lower()).strip("-")[:40]
        return tag or None
    if name == "status":
        return value.lower()[:32]
    if name == "org":
        return value.lower()[:140]  # a slug; the service turns it into an id
    return None  # pragma: no cover - FILTER_FIELDS is closed


def _text_clause(raw: str, quoted: bool) -> Word | Phrase | None:
    ts = terms(raw)[:MAX_PHRASE_TERMS]
    if not ts:
        return None
    if len(ts) == 1:
        return Word(ts[0], raw) if not quoted else Phrase((ts[0],), raw)
    return Phrase(tuple(ts), raw)


def parse(q: str | None) -> ParsedQuery:
    """Parse a query string; never raises."""
    out = ParsedQuery()
    text = (q or "")[:MAX_QUERY_CHARS]
    i, n = 0, len(text)
    # A flat list of (negated, clause-or-"OR") in order, folded into AnyOf below.
    items: list[tuple[bool, object]] = []
    while i < n and len(items) < MAX_CLAUSES * 2:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        negated = False
        if c == "-" and i + 1 < n and not text[i + 1].isspace():
            negated = True
            i += 1
        m = _FIELD_RE.match(text, i)
        if m and m.group(1).lower() in FILTER_FIELDS:
            fname = FILTER_FIELDS[m.group(1).lower()]
            i = m.end()
            if text[i] == '"':
                end = text.find('"', i + 1)
                end = n if end < 0 else end
                value, i = text[i + 1:end], end + 1
            else:
                end = i
                while end < n and not text[end].isspace():
                    end += 1
                value, i = text[i:end], end
            term = normalize_filter(fname, value)
            target = out.not_filters if negated else out.filters
            # An impossible value (unknown type) must still narrow the results to none.
            target.setdefault(fname, [])
            if term is not None and term not in target[fname]:
                target[fname].append(term)
            continue
        if text[i] == '"':
            end = text.find('"', i + 1)
            end = n if end < 0 else end
            raw, i = text[i + 1:end], end + 1
            clause = _text_clause(raw, quoted=True)
        else:
            end = i
            while end < n and not text[end].isspace():
                end += 1
            raw, i = text[i:end], end
            if raw == "OR" and not negated:
                items.append((False, "OR"))
                continue
            clause = _text_clause(raw, quoted=False)
        if clause is not None:
            items.append((negated, clause))

    # Fold "a OR b OR c" into one AnyOf; negated clauses never join an OR.
    pending: list[Word | Phrase] = []
    joining = False

    def flush():
        if pending:
            out.must.append(pending[0] if len(pending) == 1 else AnyOf(tuple(pending[:MAX_OPTIONS])))
        pending.clear()

    for negated, clause in items:
        if clause == "OR":
            joining = bool(pending)
            continue
        if negated:
            flush()
            joining = False
            if len(out.must_not) < MAX_CLAUSES:
                out.must_not.append(clause)  # type: ignore[arg-type]
            continue
        if not joining:
            flush()
        if len(out.must) < MAX_CLAUSES:
            pending.append(clause)  # type: ignore[arg-type]
        joining = False
    flush()
    return out


def replace_word(q: str, raw: str, new: str) -> str:
    """`q` with the first whole occurrence of `raw` replaced (for "did you mean")."""
    pattern = re.compile(r"(?<![\w:])" + re.escape(raw) + r"(?!\w)")
    return pattern.sub(new, q, count=1)


__all__ = ["AnyOf", "FILTER_FIELDS", "ParsedQuery", "Phrase", "Word", "normalize", "parse",
           "replace_word"]
