"""Search for a user: what the page and the JSON endpoint call.

1. parse the query (our own parser, allow-listed filters);
2. ask the policy module for the viewer's principals, and for the documents a stale
   index could still show them (pending narrowing jobs, lapsed grants) -- those the
   policy's visible() no longer allows are excluded inside the query, so counts, facets
   and pages agree;
3. let the backend find, count and facet the matches visible to those principals;
4. load the page's rows through visible() once more (defence in depth: a row that is
   not visible is dropped, never shown), in index order, and cut highlighted snippets;
5. suggest a correction built only from words in documents the viewer may see.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from markupsafe import Markup
from sqlalchemy import select

from .. import policy
from ..extensions import db
from ..models import Organisation, SearchOutbox
from . import get_runtime
from .analysis import highlight
from .backend import SearchQuery
from .documents import DOC_TYPES, dependents_of, split_key
from .querylang import FILTER_FIELDS, ParsedQuery, parse, replace_word

SORTS = ("relevance", "newest", "deadline")
INDEX_REBUILDING = "Search is being rebuilt for this site's database; please try again in a few minutes."
PER_PAGE = 20
MAX_PAGE = 50
KIND_LABELS = {
    "challenge": "Challenges", "failure": "Failures", "asset": "Assets", "idea": "Ideas",
    "organisation": "Organisations", "question": "Q&A", "comment": "Discussions",
}
DOC_KINDS = {"org": "organisation"}  # the `kind` of documents that are not items
FACET_LABELS = {"kind": "Type", "status": "Status", "org": "Organisation", "tags": "Tag"}
# Index field -> the query prefix a facet link adds.
FIELD_PREFIX = {v: k for k, v in FILTER_FIELDS.items()}


@dataclass
class Hit:
    key: str
    doc_type: str
    id: int
    kind: str
    kind_label: str
    title: str
    title_html: Markup
    url: str | None
    snippet: Markup
    meta: list[str]
    score: float
    visibility: str | None = None


@dataclass
class FacetValue:
    value: str
    label: str
    count: int
    selected: bool
    query: str


@dataclass
class Facet:
    field: str
    label: str
    values: list[FacetValue]


@dataclass
class SearchPage:
    q: str
    sort: str
    page: int
    per_page: int
    total: int
    hits: list[Hit]
    facets: list[Facet] = field(default_factory=list)
    suggestion: str | None = None
    parsed: ParsedQuery | None = None
    notice: str | None = None  # why there are no results although there may be matches

    @property
    def pages(self) -> int:
        return min(MAX_PAGE, max(1, -(-self.total // self.per_page)))


def excluded_keys(user: Any, principals: Sequence[str] | None = None, backend=None) -> list[str]:
    """Documents the index may still show this viewer although the database no longer
    lets them see them: pending narrowing jobs, and items (with what inherits their
    principals) where one of the viewer's grants lapsed. Only those the index would
    actually show them are checked, against the policy's visible()."""
    backend = backend or get_runtime().backend
    principals = policy.principals(user) if principals is None else principals
    candidates: set[tuple[str, int]] = set(
        (t, i) for t, i in db.session.execute(
            select(SearchOutbox.doc_type, SearchOutbox.doc_id).where(SearchOutbox.narrowing.is_(True)).distinct()
        ).all()
    )
    lapsed = policy.lapsed_access_item_ids(user)
    if lapsed:
        candidates.update(("item", i) for i in lapsed)
        candidates.update(dependents_of("item", lapsed))
    if not candidates:
        return []
    shown = backend.shown_keys(sorted(f"{t}:{i}" for t, i in candidates), principals)
    by_type: dict[str, list[int]] = {}
    for key in shown:
        t, i = split_key(key)
        by_type.setdefault(t, []).append(i)
    out = []
    for doc_type, ids in by_type.items():
        dt = DOC_TYPES.get(doc_type)
        seen: set[int] = set()
        if dt is not None:
            pk = dt.model.__mapper__.primary_key[0]
            seen = set(db.session.execute(
                select(pk).where(policy.visible_clause(user, dt.model), pk.in_(ids))).scalars())
        out += [f"{doc_type}:{i}" for i in ids if i not in seen]
    return sorted(out)


def _resolve_filters(parsed: ParsedQuery) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Filter values as index terms; organisation slugs become ids (unknown: no match)."""
    def resolve(filters: dict[str, list[str]]) -> dict[str, list[str]]:
        out = {}
        for fname, values in filters.items():
            if fname == "org" and values:
                # A slug with a NUL byte names no organisation (and PostgreSQL refuses it).
                slugs = [v for v in values if "\x00" not in v]
                ids = db.session.execute(
                    select(Organisation.id).where(Organisation.slug.in_(slugs))).scalars().all() if slugs else []
                out[fname] = [str(i) for i in ids]
            else:
                out[fname] = list(values)
        return out

    return resolve(parsed.filters), resolve(parsed.not_filters)


def search(user: Any, q: str | None, *, sort: str | None = None, page: int = 1, per_page: int = PER_PAGE,
           facets: bool = True, suggest: bool = True) -> SearchPage:
    q = (q or "").strip()
    parsed = parse(q)
    runtime = get_runtime()
    if runtime.mode == "sync":
        runtime.apply_now()  # tests: a search sees every commit, even one made while busy
    sort = sort if sort in SORTS else ("relevance" if parsed.has_text else "newest")
    page = max(1, min(int(page or 1), MAX_PAGE))
    per_page = max(1, min(int(per_page or PER_PAGE), 100))
    if q and parsed.is_empty():
        # Only punctuation, stop words or operators: nothing to look for (not "everything").
        return SearchPage(q=q, sort=sort, page=page, per_page=per_page, total=0, hits=[], parsed=parsed)
    if runtime.index_state() == "other-database":
        # Never answer from an index of another database (identity.py); the writer rebuilds it.
        return SearchPage(q=q, sort=sort, page=page, per_page=per_page, total=0, hits=[], parsed=parsed,
                          notice=INDEX_REBUILDING)
    principals = policy.principals(user)
    filters, not_filters = _resolve_filters(parsed)
    backend = runtime.backend
    result = backend.search(SearchQuery(
        parsed=parsed, principals=principals, filters=filters, not_filters=not_filters,
        exclude_keys=excluded_keys(user, principals, backend), sort=sort, offset=(page - 1) * per_page, limit=per_page,
        facets=facets))
    terms = parsed.positive_terms()
    hits = _load_hits(user, result.hits, terms, backend)
    out = SearchPage(q=q, sort=sort, page=page, per_page=per_page, total=result.total, hits=hits,
                     parsed=parsed)
    if facets:
        out.facets = _facets(q, parsed, result.facets)
    if suggest and parsed.words() and result.total < 3:
        out.suggestion = _suggest(q, parsed, principals, backend)
    return out


def _load_hits(user: Any, hits: Sequence[tuple[str, float]], terms: list[str], backend) -> list[Hit]:
    wanted: dict[str, list[int]] = {}
    for key, _score in hits:
        parsed = split_key(key)
        if parsed:
            wanted.setdefault(parsed[0], []).append(parsed[1])
    rows: dict[tuple[str, int], Any] = {}
    presented: dict[tuple[str, int], Any] = {}
    for doc_type, ids in wanted.items():
        dt = DOC_TYPES.get(doc_type)
        if dt is None:
            continue
        pk = dt.model.__mapper__.primary_key[0]
        stmt = policy.visible(user, dt.model).where(pk.in_(ids)).options(*dt.present_options)
        loaded = list(db.session.execute(stmt).scalars())
        for row in loaded:
            rows[(doc_type, row.id)] = row
        if dt.present_many and loaded:
            # The page's rows of one type at once: a bounded number of queries per page.
            presented.update(((doc_type, i), p) for i, p in dt.present_many(loaded, user).items())
    out: list[Hit] = []
    texts: list[str] = []
    for key, score in hits:
        parsed = split_key(key)
        row = rows.get(parsed) if parsed else None
        if row is None:
            continue  # not visible (any more): never shown
        doc_type, doc_id = parsed
        dt = DOC_TYPES[doc_type]
        p = presented.get(parsed)
        if p is None:
            p = dt.present_for(row, user) if dt.present_for else dt.present(row)
        kind = row.kind if doc_type == "item" else DOC_KINDS.get(doc_type, doc_type)
        out.append(Hit(key=key, doc_type=doc_type, id=doc_id, kind=kind, kind_label=p.kind_label, title=p.title,
                       title_html=highlight(p.title, terms, max_chars=300), url=p.url,
                       snippet=Markup(""), meta=p.meta, score=score, visibility=p.visibility))
        texts.append(p.text)
    # The snippets of the page at once, from the rows just loaded through the policy (the
    # PostgreSQL backend cuts them with ts_headline in one query).
    for hit, snippet in zip(out, backend.snippets(texts, terms)):
        hit.snippet = snippet
    return out


def _facet_query(q: str, prefix: str, value: str) -> str:
    token = f'{prefix}:"{value}"' if " " in value else f"{prefix}:{value}"
    return f"{q} {token}".strip()


def _facets(q: str, parsed: ParsedQuery, raw: dict[str, list[tuple[str, int]]]) -> list[Facet]:
    org_ids = [int(v) for v, _c in raw.get("org", []) if v.isdigit()]
    orgs = {}
    if org_ids:
        orgs = {o.id: o for o in db.session.execute(
            select(Organisation).where(Organisation.id.in_(org_ids))).scalars()}
    out = []
    for fname in ("kind", "status", "org", "tags"):
        values = []
        selected_values = set(parsed.filters.get(fname, []))
        for value, count in raw.get(fname, []):
            if fname == "org":
                org = orgs.get(int(value)) if value.isdigit() else None
                if org is None:
                    continue
                label, term = org.name, org.slug
            elif fname == "kind":
                label, term = KIND_LABELS.get(value, value.capitalize()), value
            elif fname == "tags":
                label, term = f"#{value}", value
            else:
                label, term = value.replace("-", " ").capitalize(), value
            selected = term in selected_values
            values.append(FacetValue(term, label, count, selected,
                                     q if selected else _facet_query(q, FIELD_PREFIX[fname], term)))
        if values:
            out.append(Facet(fname, FACET_LABELS[fname], values))
    return out


def _suggest(q: str, parsed: ParsedQuery, principals: list[str], backend) -> str | None:
    """A corrected query, from terms that occur in documents the viewer may see."""
    new_q = q
    changed = False
    for word in parsed.words()[:5]:
        if backend.visible_count(word.term, principals) > 0:
            continue
        maxdist = 1 if len(word.term) <= 4 else 2
        best, best_n = None, 0
        for cand in backend.similar_terms(word.term, maxdist)[:200]:
            n = backend.visible_count(cand, principals)
            if n > best_n:
                best, best_n = cand, n
        if best is not None:
            replaced = replace_word(new_q, word.raw, best)
            if replaced != new_q:
                new_q, changed = replaced, True
    return new_q if changed else None


def hit_json(h: Hit) -> dict:
    return {"key": h.key, "type": h.doc_type, "id": h.id, "kind": h.kind, "title": h.title, "url": h.url,
            "snippet": h.snippet.striptags(), "snippet_html": str(h.snippet), "score": round(h.score, 4),
            "visibility": h.visibility}
