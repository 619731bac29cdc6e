"""What a parsed search means, as Whoosh query objects -- the one definition both engines run.

`querylang` turns the search box into a `ParsedQuery`; this module says what that matches
and how it is ranked, in Whoosh's own terms:

* the scored text: every clause must match (``And``), ``a OR b`` is an ``Or``, a quoted
  phrase a ``Phrase`` (consecutive positions); no clause at all matches every document
  (``Every``). It is normalised as Whoosh's own parser normalises what it builds
  (duplicate clauses merged, one-word phrases become terms), which also fixes the score:
  BM25F summed over the leaves of the normalised tree, an ``Or`` adding only the options
  that match;
* what does not score: the viewer's principals and the ``type:``/``tag:``/``org:``/
  ``status:`` filters (documents must hold one of the values of each), and what is
  removed -- ``-word`` and ``-"phrase"``, negated filters, and the keys the policy says
  a stale index must not show.

Removals are a separate query (the search's ``mask``), not an ``AndNot`` in the text
query: Whoosh 2.7.4's ``AndNotMatcher`` lets the first positive document through when
the negative side starts at an earlier document (``cell ANDNOT solar`` over "solar
water", "cell solar grid", "cell pump" returns "cell solar grid"), and the
``And([..., Not(...)])`` its parser builds adds 1.0 to every score per negation.
* the order: relevance (then newest), newest, or soonest deadline (then newest), with
  Whoosh's last tie-breaker, the document number.

The pure-Whoosh engine (whoosh_engine.py) hands these objects to ``Searcher.search``;
the fast engine (engine.py) evaluates the same trees with numpy, and the differential test
holds the two to the same answers.
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

from whoosh import query as wq
from whoosh import sorting

from .querylang import AnyOf, ParsedQuery, Phrase, Word

TEXT = "text"
PRINCIPALS = "principals"
KEY = "key"
SORTS = ("relevance", "newest", "deadline")
# Whoosh's BM25F parameters (its defaults), used by both engines.
BM25_B = 0.75
BM25_K1 = 1.2
# Sort key of a document without a deadline: after every real one.
NO_DEADLINE = 2 ** 62


def _leaf(clause: Word | Phrase) -> wq.Query:
    if isinstance(clause, Word):
        return wq.Term(TEXT, clause.term)
    if isinstance(clause, Phrase):
        return wq.Phrase(TEXT, list(clause.terms))
    raise TypeError(f"unknown clause {clause!r}")


def _clause(clause) -> wq.Query:
    if isinstance(clause, AnyOf):
        return wq.Or([_leaf(o) for o in clause.options])
    return _leaf(clause)


def text_query(parsed: ParsedQuery) -> wq.Query:
    """The scored part of a search: Term, Phrase, And, Or and Every only."""
    q: wq.Query = wq.And([_clause(c) for c in parsed.must]) if parsed.must else wq.Every()
    return q.normalize()


def negated_text_query(parsed: ParsedQuery) -> wq.Query | None:
    """Documents ``-word`` / ``-"phrase"`` remove (Term, Phrase and Or only), or None."""
    return wq.Or([_leaf(c) for c in parsed.must_not]).normalize() if parsed.must_not else None


def effective_sort(parsed: ParsedQuery, sort: str) -> str:
    """Relevance needs words to rank by; without any, results come newest first."""
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}")
    return "newest" if sort == "relevance" and not parsed.must else sort


def allow_query(principals: Iterable[str], filters: Mapping[str, Sequence[str]]) -> wq.Query | None:
    """Documents the viewer may see that pass every filter, or None when nothing can.

    None is returned rather than a query because Whoosh's ``And.normalize`` *drops* a
    clause that matches nothing instead of making the whole ``And`` match nothing: an
    empty principals list or an impossible filter value would otherwise widen the search."""
    parts = []
    for field, values in [(PRINCIPALS, sorted(set(principals)))] + sorted(
            (f, sorted(set(v))) for f, v in filters.items()):
        if not values:
            return None
        parts.append(wq.Or([wq.Term(field, v) for v in values]))
    return wq.And(parts).normalize()


def deny_query(parsed: ParsedQuery, not_filters: Mapping[str, Sequence[str]],
               exclude_keys: Iterable[str]) -> wq.Query | None:
    """Documents removed from the results (negated words and phrases, negated filters,
    keys to exclude), or None."""
    parts = [_leaf(c) for c in parsed.must_not]
    parts += [wq.Term(f, v) for f, values in sorted(not_filters.items()) for v in sorted(set(values))]
    parts += [wq.Term(KEY, k) for k in sorted(set(exclude_keys))]
    return wq.Or(parts).normalize() if parts else None


def sort_facet(sort: str) -> sorting.MultiFacet:
    """The order of results as a Whoosh sort key (the document number breaks the last tie)."""
    newest = sorting.FieldFacet("created", reverse=True)
    if sort == "relevance":
        return sorting.MultiFacet([sorting.ScoreFacet(), newest])
    if sort == "newest":
        return sorting.MultiFacet([newest])
    if sort == "deadline":
        soonest = sorting.TranslateFacet(lambda d: d if d > 0 else NO_DEADLINE, sorting.FieldFacet("deadline"))
        return sorting.MultiFacet([soonest, newest])
    raise ValueError(f"unknown sort {sort!r}")


def top_facet_values(counts: Mapping[str, int], limit: int) -> list[tuple[str, int]]:
    """The `limit` most frequent values, by count descending then value: the same cut
    whatever order the counts were gathered in."""
    return sorted(counts.items(), key=lambda vc: (-vc[1], vc[0]))[:limit]
