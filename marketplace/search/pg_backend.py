"""The PostgreSQL search backend (SEARCH_BACKEND=postgres): the index is a table of the site's
own database, so every web host and worker shares it and nothing lives on one host's disk.

* ``search_documents`` (models/search.py): one row per document with a ``tsvector`` (GIN
  index), the principals allowed to find it as a GIN-indexed ``text[]``, the facet values
  and the time columns. The ``tsvector`` is built here from our analyzer's terms
  (analysis.py: folding, stop words, the plural stemmer, title/summary/body positions with
  the same gap between parts), never by a PostgreSQL dictionary, so a word matches exactly
  the documents it matches in Whoosh; the title is weight A, the summary B, the body D.
* A search is one SQL statement (`_search_sql`): the matching set is read once, and the
  total, the facet counts (aggregates over it) and the page (``ts_rank_cd`` order) come
  from it; without facets, a count and the page. Every statement carries the viewer's
  principals (``principals && :viewer``) in its WHERE clause: nothing outside them is
  ever ranked, counted or faceted.
* The query is our own parse (querylang.py) translated into a ``tsquery`` of quoted
  lexemes: words (``&``), ``a OR b`` (``|``), phrases (``<->``), and ``-word`` /
  ``-"phrase"`` as a second ``tsquery`` the rows must not match. User text never reaches
  ``to_tsquery``/``websearch_to_tsquery`` or the SQL text: lexemes are our analyzer's
  output (letters and digits only), quoted, and bound as parameters; filter values are
  bound parameters too, and a value PostgreSQL cannot hold (a NUL byte) matches nothing.
* Snippets come from ``ts_headline`` over the page's rows (loaded through the policy by
  the service), with private-use characters as the highlight markers: the excerpt is
  HTML-escaped and only then are the markers turned into ``<mark>``, so no other markup
  survives.
* Writes are a transaction of their own (delete the batch's keys, insert the new rows);
  the writer lock is a PostgreSQL advisory lock, so one writer at a time across hosts;
  a rebuild deletes and refills the table in one transaction, so searches see the old
  index until its commit (MVCC), never a half-built one.

Limits of ``tsvector`` (PostgreSQL's, documented): positions above 16,383 are clamped and a
word keeps at most 256 positions, so a phrase deep inside a very long body may be missed;
single words always match.
"""
from __future__ import annotations

import time
import zlib
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Callable, Iterable, Sequence

from markupsafe import Markup, escape
from sqlalchemy import text

from ..extensions import db
from .analysis import PART_GAP, SNIPPET_SCAN_CHARS, _index_terms
from .backend import DocumentRejected, LoadChunk, SearchBackend, SearchHits, SearchQuery, take_writer_lock
from .documents import SUMMARY_BOOST, TITLE_BOOST, SearchDoc, epoch, index_text
from .querylang import AnyOf, ParsedQuery, Phrase, Word
from .schema import FACET_FIELDS
from .whoosh_query import NO_DEADLINE, effective_sort, top_facet_values

TABLE = "search_documents"
# One advisory lock key per database: the writer lock (across processes and hosts).
LOCK_KEY = zlib.crc32(b"marketplace.search.writer")
MAX_POSITION = 16383      # tsvector's largest position
MAX_POSITIONS = 256       # tsvector keeps this many positions of one lexeme
FACET_LIMIT = 12
# Highlight markers for ts_headline: private-use characters, removed from the text first.
MARK_START, MARK_END = "\ue000", "\ue001"
HEADLINE_OPTIONS = (f"StartSel={MARK_START}, StopSel={MARK_END}, MaxWords=35, MinWords=15, ShortWord=2, "
                    "HighlightAll=false")
# Index field -> column; filters on any other field match nothing (fail closed).
FILTER_COLUMNS = {"kind": "kind", "status": "status", "org": "org", "tags": "tags"}


# --------------------------------------------------------------------------- documents


def _lexeme(term: str) -> str:
    """A quoted lexeme for tsvector/tsquery input (our terms are letters and digits, but a
    quote or backslash would still be taken literally)."""
    return "'" + term.replace("\\", "\\\\").replace("'", "''") + "'"


def tsvector_text(doc: SearchDoc) -> str:
    """The tsvector of a document's parts, in PostgreSQL's input syntax, from our analyzer:
    positions start at 1 and each part starts PART_GAP positions after the previous one
    ends (so a phrase never spans a title and a body), as analysis.analyze numbers them."""
    positions: dict[str, list[str]] = {}
    base = 0
    for raw, boost in doc.parts:
        if not raw:
            continue  # SearchDoc.fields() leaves empty parts out too
        ts = _index_terms(index_text(raw))
        label = "A" if boost >= TITLE_BOOST else "B" if boost >= SUMMARY_BOOST else ""
        for i, term in enumerate(ts):
            got = positions.setdefault(term, [])
            if len(got) < MAX_POSITIONS:
                got.append(f"{min(base + i + 1, MAX_POSITION)}{label}")
        base += len(ts) + PART_GAP
    return " ".join(f"{_lexeme(t)}:{','.join(ps)}" for t, ps in positions.items())


def _clean(value: str) -> str:
    return value.replace("\x00", "")


def document_row(doc: SearchDoc) -> dict:
    """The search_documents row of a document (what SearchDoc.fields() is for Whoosh)."""
    return {
        "key": doc.key,
        "digest": doc.digest(),
        "kind": _clean(doc.kind),
        "status": _clean(doc.status or "none"),
        "org": str(doc.org_id) if doc.org_id is not None else None,
        "tags": sorted({_clean(t) for t in doc.tags if t}),
        "principals": sorted({_clean(p) for p in doc.principals if p}),
        "tsv": tsvector_text(doc),
        "created": epoch(doc.created),
        "deadline": epoch(doc.deadline),
        "stale_at": epoch(doc.stale_at),
    }


_INSERT = text(
    f"INSERT INTO {TABLE} (key, digest, kind, status, org, tags, principals, tsv, created, deadline, stale_at) "
    "VALUES (:key, :digest, :kind, :status, :org, CAST(:tags AS text[]), CAST(:principals AS text[]), "
    "CAST(:tsv AS tsvector), :created, :deadline, :stale_at)")
_INSERT_TERMS = text("INSERT INTO search_terms (term) SELECT DISTINCT unnest(CAST(:terms AS text[])) "
                     "ON CONFLICT (term) DO NOTHING")


# --------------------------------------------------------------------------- queries


def _leaf(clause: Word | Phrase) -> str:
    if isinstance(clause, Word):
        return _lexeme(clause.term)
    if isinstance(clause, Phrase):
        if len(clause.terms) == 1:
            return _lexeme(clause.terms[0])
        return "(" + " <-> ".join(_lexeme(t) for t in clause.terms) + ")"
    raise TypeError(f"unknown clause {clause!r}")


def text_tsquery(parsed: ParsedQuery) -> str | None:
    """The tsquery every result must match (None: no words, every document)."""
    if not parsed.must:
        return None
    parts = []
    for clause in parsed.must:
        if isinstance(clause, AnyOf):
            parts.append("(" + " | ".join(_leaf(o) for o in clause.options) + ")")
        else:
            parts.append(_leaf(clause))
    return " & ".join(parts)


def negated_tsquery(parsed: ParsedQuery) -> str | None:
    """The tsquery no result may match (``-word``, ``-"phrase"``), or None."""
    if not parsed.must_not:
        return None
    return " | ".join(_leaf(c) for c in parsed.must_not)


def _storable(values: Iterable[str]) -> list[str]:
    """Values that can be in the table: one with a NUL byte (PostgreSQL text cannot hold
    it, and none is ever written) can match nothing, so it is dropped, not sent."""
    return sorted({v for v in values if isinstance(v, str) and "\x00" not in v})


class _Where:
    """The WHERE clause of a search, with its bound parameters."""

    def __init__(self):
        self.sql: list[str] = []
        self.params: dict = {}

    def add(self, sql: str, **params) -> None:
        self.sql.append(sql)
        self.params.update(params)

    def text(self) -> str:
        return " AND ".join(self.sql)


def _where(q: SearchQuery) -> _Where | None:
    """Visible to the principals, passing every filter, matching the text and not the
    negations or excluded keys; None when nothing can match."""
    w = _Where()
    principals = _storable(q.principals)
    if not principals:
        return None
    w.add("d.principals && CAST(:principals AS text[])", principals=principals)
    for n, (fname, values) in enumerate(sorted(q.filters.items())):
        column = FILTER_COLUMNS.get(fname)
        values = _storable(values)
        if column is None or not values:
            return None  # an unknown field or an impossible value: nothing, never everything
        if column == "tags":
            w.add(f"d.tags && CAST(:f{n} AS text[])", **{f"f{n}": values})
        else:
            w.add(f"d.{column} = ANY(CAST(:f{n} AS text[]))", **{f"f{n}": values})
    for n, (fname, values) in enumerate(sorted(q.not_filters.items())):
        column = FILTER_COLUMNS.get(fname)
        values = _storable(values)
        if not values:
            continue
        if column is None:
            return None
        if column == "tags":
            w.add(f"NOT (d.tags && CAST(:nf{n} AS text[]))", **{f"nf{n}": values})
        elif column == "org":
            w.add(f"(d.org IS NULL OR d.org <> ALL(CAST(:nf{n} AS text[])))", **{f"nf{n}": values})
        else:
            w.add(f"d.{column} <> ALL(CAST(:nf{n} AS text[]))", **{f"nf{n}": values})
    tq = text_tsquery(q.parsed)
    if tq is not None:
        w.add("d.tsv @@ CAST(:tq AS tsquery)", tq=tq)
    nq = negated_tsquery(q.parsed)
    if nq is not None:
        w.add("NOT (d.tsv @@ CAST(:nq AS tsquery))", nq=nq)
    exclude = _storable(q.exclude_keys)
    if exclude:
        w.add("d.key <> ALL(CAST(:exclude AS text[]))", exclude=exclude)
    return w


def _order(sort: str, alias: str = "d.") -> tuple[str, str]:
    """(score expression, ORDER BY) of a sort; the key breaks the last tie. `alias`: how
    the ORDER BY names the columns ("d." on the table, "" on _search_sql's matching set)."""
    a = alias
    if sort == "relevance":
        return "ts_rank_cd(d.tsv, CAST(:tq AS tsquery))", f"score DESC, {a}created DESC, {a}key"
    if sort == "newest":
        return "0.0", f"{a}created DESC, {a}key"
    if sort == "deadline":
        return "0.0", f"CASE WHEN {a}deadline > 0 THEN {a}deadline ELSE {NO_DEADLINE} END, {a}created DESC, {a}key"
    raise ValueError(f"unknown sort {sort!r}")


def _search_sql(where: str, sort: str) -> str:
    """The total, the facet counts and the page of the matching set, in one statement that
    reads the matching rows once: each match is visited (and ranked) once, then counted and
    faceted from the materialised set, and the page is its first rows in the sort's order.
    (Two statements, the counts and then the ranked page, read every match twice; on a
    common word that second pass over tens of thousands of rows was most of the cost of
    ranking.) The page comes back as two arrays in order (array_agg's own ORDER BY, since
    UNION ALL promises no row order)."""
    score, order = _order(sort, alias="")
    return (
        f"WITH m AS MATERIALIZED (SELECT d.key, d.kind, d.status, d.org, d.tags, d.created, d.deadline, "
        f"{score} AS score FROM {TABLE} d WHERE {where}), "
        f"p AS (SELECT key, score, created, deadline FROM m ORDER BY {order} LIMIT :limit OFFSET :offset) "
        "SELECT '' AS f, NULL AS v, count(*) AS n, NULL::text[] AS keys, NULL::real[] AS scores FROM m "
        "UNION ALL SELECT 'kind', kind, count(*), NULL, NULL FROM m GROUP BY kind "
        "UNION ALL SELECT 'status', status, count(*), NULL, NULL FROM m GROUP BY status "
        "UNION ALL SELECT 'org', org, count(*), NULL, NULL FROM m WHERE org IS NOT NULL GROUP BY org "
        "UNION ALL SELECT 'tags', t, count(*), NULL, NULL FROM m CROSS JOIN LATERAL unnest(m.tags) AS t GROUP BY t "
        f"UNION ALL SELECT 'page', NULL, count(*), array_agg(key ORDER BY {order}), "
        f"array_agg(CAST(score AS real) ORDER BY {order}) FROM p")


def _headline_query(terms: Sequence[str]) -> str | None:
    """Lexemes ts_headline marks: each query term and the plural forms our stemmer folds
    into it (ts_headline reads the text with the 'simple' configuration, which does not stem)."""
    forms: list[str] = []
    for t in terms:
        if "\x00" in t:
            continue
        variants = [t, t + "s", t + "es"]
        if t.endswith("y") and len(t) > 2:
            variants.append(t[:-1] + "ies")
        forms += [v for v in variants if v not in forms]
    return " | ".join(_lexeme(v) for v in forms) if forms else None


def levenshtein_within(a: str, b: str, maxdist: int) -> bool:
    """Whether `a` and `b` are at most `maxdist` edits apart (banded, stops early)."""
    if abs(len(a) - len(b)) > maxdist:
        return False
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        if min(cur) > maxdist:
            return False
        prev = cur
    return prev[-1] <= maxdist


# --------------------------------------------------------------------------- the backend


class PostgresBackend(SearchBackend):
    """Search in the site's PostgreSQL database. `status_dir` holds the writer's state
    report (health.py's writer.json) of the processes on this host."""

    engine_name = "postgres"
    # The index lives in the database every host reaches, and `lock` below already makes
    # one writer at a time across hosts: `flask worker` needs no host guard (jobs.py).
    shared_across_hosts = True

    def __init__(self, status_dir: str | Path):
        self.base = Path(status_dir)
        self._has_table = False
        self.searches = 0

    # ---------------------------------------------------------------- locking

    @contextmanager
    def lock(self, wait: bool = True, timeout: float = 600.0):
        """The writer lock: a session-level advisory lock on a connection of its own, so
        one writer at a time across processes and hosts. Raises IndexBusy if not `wait` and
        someone else holds it, or after `timeout` seconds."""
        conn = db.engine.connect()

        def try_once() -> bool:
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": LOCK_KEY}).scalar()
            conn.commit()
            return bool(got)

        try:
            take_writer_lock(try_once, wait, timeout)
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                conn.commit()
        finally:
            conn.close()

    # ---------------------------------------------------------------- the table

    def has_index(self) -> bool:
        if not self._has_table:
            with db.engine.connect() as conn:
                self._has_table = conn.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": TABLE}).scalar()
        return bool(self._has_table)

    def ensure_index(self, stamp: dict | None = None) -> None:
        if not self.has_index():
            raise RuntimeError(f"SEARCH_BACKEND=postgres: the table {TABLE} is missing; run `flask db upgrade`")

    def index_stamp(self) -> dict | None:
        """The index is a table of this very database: it always belongs to it."""
        from . import identity

        return identity.fingerprint() if self.has_index() else None

    def current_folder(self) -> str | None:
        return TABLE if self.has_index() else None

    def close(self) -> None:
        pass

    # ---------------------------------------------------------------- writing

    @staticmethod
    def _rows(upserts: Iterable[SearchDoc]) -> tuple[list[dict], set[str]]:
        rows, terms = [], set()
        for doc in upserts:
            try:
                row = document_row(doc)
                # Text the database cannot take (a lone surrogate) fails this document alone.
                for value in (row["key"], row["kind"], row["status"], row["tsv"], *row["tags"], *row["principals"]):
                    value.encode("utf-8")
            except Exception as e:
                raise DocumentRejected(doc.key) from e
            rows.append(row)
            terms.update(_index_terms(" ".join(index_text(t) for t, _b in doc.parts if t)))
        return rows, terms

    @staticmethod
    def _insert(conn, rows: list[dict], terms: set[str]) -> None:
        if rows:
            conn.execute(_INSERT, rows)
        if terms:
            conn.execute(_INSERT_TERMS, {"terms": sorted(terms)})

    def write(self, upserts: Iterable[SearchDoc], deletes: Iterable[str]) -> None:
        """One transaction: the batch's keys deleted, their current rows inserted; the
        caller holds lock()."""
        rows, terms = self._rows(upserts)
        keys = sorted(set(deletes) | {r["key"] for r in rows})
        if not keys:
            return
        with db.engine.begin() as conn:
            conn.execute(text(f"DELETE FROM {TABLE} WHERE key = ANY(CAST(:keys AS text[]))"), {"keys": keys})
            self._insert(conn, rows, terms)

    def rebuild(self, chunks: Sequence[tuple[str, Sequence[int]]], load: LoadChunk, *, procs: int = 2,
                progress: Callable[[int], None] | None = None, child_init: Callable[[], None] | None = None,
                after_build: Callable[[], None] | None = None, builder: str = "fast",
                stamp: dict | None = None, locked: bool = False) -> dict:
        """Empty and refill the table in one transaction (searches read the old rows until
        it commits), then run `after_build` still under the writer lock. `procs`, `builder`
        and `child_init` concern Whoosh's segment builders and are ignored."""
        started = time.monotonic()
        count = 0
        with (nullcontext() if locked else self.lock(wait=True, timeout=3600.0)):
            self.ensure_index()
            with db.engine.begin() as conn:
                # DELETE, not TRUNCATE: TRUNCATE would block every search until the commit.
                conn.execute(text(f"DELETE FROM {TABLE}"))
                conn.execute(text("DELETE FROM search_terms"))
                for doc_type, ids in chunks:
                    rows, terms = self._rows(load(doc_type, ids))
                    self._insert(conn, rows, terms)
                    count += len(rows)
                    if progress:
                        progress(len(ids))
            if after_build is not None:
                after_build()
        return {"documents": count, "seconds": time.monotonic() - started, "folder": TABLE,
                "size_bytes": self._size()}

    # ---------------------------------------------------------------- reading

    def search(self, q: SearchQuery) -> SearchHits:
        self.searches += 1
        empty_facets = {f: [] for f in FACET_FIELDS} if q.facets else {}
        w = _where(q)
        if w is None:
            return SearchHits(0, [], empty_facets)
        sort = effective_sort(q.parsed, q.sort)
        session = db.session
        where = w.text()
        total = 0
        hits: list[tuple[str, float]] = []
        if q.facets:
            facets: dict[str, dict[str, int]] = {f: {} for f in FACET_FIELDS}
            params = dict(w.params, limit=max(0, q.limit), offset=max(0, q.offset))
            for f, v, n, keys, scores in session.execute(text(_search_sql(where, sort)), params):
                if f == "":
                    total = int(n)
                elif f == "page":
                    hits = [(key, float(s)) for key, s in zip(keys or [], scores or [])]
                else:
                    facets[f][v] = int(n)
            out_facets = {f: top_facet_values(c, FACET_LIMIT) for f, c in facets.items()}
            return SearchHits(total, hits, out_facets)
        total = int(session.execute(text(f"SELECT count(*) FROM {TABLE} d WHERE {where}"), w.params).scalar())
        if total and q.limit > 0 and q.offset < total:
            score, order = _order(sort)
            rows = session.execute(text(
                f"SELECT d.key, {score} AS score FROM {TABLE} d WHERE {where} ORDER BY {order} "
                "LIMIT :limit OFFSET :offset"), dict(w.params, limit=q.limit, offset=max(0, q.offset)))
            hits = [(key, float(s)) for key, s in rows]
        return SearchHits(total, hits, {})

    def visible_count(self, term: str, principals: Sequence[str]) -> int:
        principals = _storable(principals)
        if not principals or not term or "\x00" in term:
            return 0
        return int(db.session.execute(text(
            f"SELECT count(*) FROM {TABLE} d WHERE d.principals && CAST(:p AS text[]) "
            "AND d.tsv @@ CAST(:tq AS tsquery)"), {"p": principals, "tq": _lexeme(term)}).scalar())

    def shown_keys(self, keys: Sequence[str], principals: Sequence[str]) -> list[str]:
        keys = list(keys)
        principals = _storable(principals)
        wanted = _storable(keys)
        if not wanted or not principals:
            return []
        found = set(db.session.execute(text(
            f"SELECT d.key FROM {TABLE} d WHERE d.key = ANY(CAST(:keys AS text[])) "
            "AND d.principals && CAST(:p AS text[])"), {"keys": wanted, "p": principals}).scalars())
        return [k for k in keys if k in found]

    def similar_terms(self, term: str, maxdist: int) -> list[str]:
        """Vocabulary words within `maxdist` edits sharing the first letter (two from six
        letters on), as Whoosh's terms_within is asked for them."""
        if not term or "\x00" in term:
            return []
        prefix = term[:2 if len(term) >= 6 else 1]
        like = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        cands = db.session.execute(text(
            "SELECT term FROM search_terms WHERE term LIKE :like AND length(term) BETWEEN :lo AND :hi"),
            {"like": like, "lo": len(term) - maxdist, "hi": len(term) + maxdist}).scalars()
        return sorted(c for c in cands if c != term and levenshtein_within(term, c, maxdist))

    def snippets(self, texts: Sequence[str], terms: Sequence[str]) -> list[Markup]:
        """ts_headline excerpts: the markers are private-use characters removed from the
        text beforehand, the excerpt is HTML-escaped, then the markers become <mark>."""
        hq = _headline_query(terms)
        if not texts:
            return []
        cleaned = [(t or "")[:SNIPPET_SCAN_CHARS].replace("\x00", "").replace(MARK_START, "").replace(MARK_END, "")
                   for t in texts]
        if hq is None:
            return super().snippets(cleaned, ())
        rows = db.session.execute(text(
            "SELECT ts_headline('simple', u.t, CAST(:hq AS tsquery), :opts) "
            "FROM unnest(CAST(:texts AS text[])) WITH ORDINALITY AS u(t, n) ORDER BY u.n"),
            {"hq": hq, "opts": HEADLINE_OPTIONS, "texts": cleaned}).scalars().all()
        out = []
        for source, got in zip(cleaned, rows):
            got = got or ""
            plain = got.replace(MARK_START, "").replace(MARK_END, "")
            html = str(escape(got)).replace(MARK_START, "<mark>").replace(MARK_END, "</mark>")
            at = source.find(plain) if plain else -1
            if at > 0:
                html = "… " + html
            if at >= 0 and at + len(plain) < len(source.rstrip()):
                html += " …"
            out.append(Markup(html))
        return out

    def stored_documents(self) -> list[dict]:
        """Every row as stored (what a test checks holds nothing private)."""
        with db.engine.connect() as conn:
            rows = conn.execute(text(
                f"SELECT key, digest, kind, status, org, tags, principals, tsv::text AS text, created, deadline, "
                f"stale_at FROM {TABLE} ORDER BY key")).mappings().all()
        return [dict(r) for r in rows]

    def digests(self) -> dict[str, str]:
        with db.engine.connect() as conn:
            return dict(conn.execute(text(f"SELECT key, digest FROM {TABLE}")).all())

    def stale_keys(self, now_epoch: int) -> list[str]:
        with db.engine.connect() as conn:
            return list(conn.execute(text(
                f"SELECT key FROM {TABLE} WHERE stale_at > 0 AND stale_at <= :now ORDER BY key"),
                {"now": int(now_epoch)}).scalars())

    def _size(self) -> int:
        with db.engine.connect() as conn:
            return int(conn.execute(text("SELECT pg_total_relation_size(:t) + pg_total_relation_size('search_terms')"),
                                    {"t": TABLE}).scalar() or 0)

    def stats(self) -> dict:
        if not self.has_index():
            return {"folder": None, "documents": 0, "segments": [], "size_bytes": 0,
                    "engine": {"name": self.engine_name, "searches": self.searches}}
        with db.engine.connect() as conn:
            n = int(conn.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar())
            terms = int(conn.execute(text("SELECT count(*) FROM search_terms")).scalar())
        return {"folder": TABLE, "generation": None, "schema_version": None, "documents": n, "deleted": 0,
                "segments": [], "size_bytes": self._size(), "vocabulary": terms,
                "engine": {"name": self.engine_name, "searches": self.searches}}
