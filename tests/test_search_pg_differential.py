"""The PostgreSQL search backend proven against the Whoosh backend on random corpora.

Hypothesis builds random corpora (the generators of test_search_differential.py: a small
vocabulary so that queries hit, random kinds, statuses, organisations, tags, principals and
dates), indexes each in a Whoosh folder and in the ``search_documents`` table of a PostgreSQL
database (a rebuild, then the outbox writer's path: replacements and deletions), and runs
random queries -- the supported syntax (words, phrases, OR, -word, -"phrase", filters and
negated filters) and hostile text (quotes, backslashes, parentheses, NUL bytes, field-like
words) -- for fixed and random viewers. The two backends must agree on the set of matches,
the total and every facet count; the suggestion and re-check primitives (visible_count,
shown_keys, stale_keys) must agree too. Independently of Whoosh, every document the
PostgreSQL backend returns or counts must carry one of the viewer's principals (checked
against the generated corpus, the oracle here).

Ranking differs by design (``ts_rank_cd`` against Whoosh's BM25F), so the order is not
compared with Whoosh's; the PostgreSQL backend's one-statement search (total, facets and
page from one read of the matches) must give the page of its plain ORDER BY statement. PG_DIFF_EXAMPLES sets the number of corpora (default 60).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import replace
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from marketplace.extensions import db
from marketplace.search.backend import SearchQuery
from marketplace.search.pg_backend import PostgresBackend
from marketplace.search.querylang import parse
from marketplace.search.whoosh_backend import WhooshBackend

from .search_backends import dispose_search_app, make_search_app
from .test_search_differential import DOC_PRINCIPALS, NOW, VIEWERS, doc_fields, make_doc, queries, resolve

EXAMPLES = int(os.environ.get("PG_DIFF_EXAMPLES", "60"))
ALL_FACETS = 1000

hostile = st.lists(st.sampled_from(list('pump cell heat solar "\\()-:\x00\'*?[]{}~^') +
                                   ["OR", "type:", "tag:", "org:", "status:", "é", "🙂"]),
                   max_size=40).map("".join)
viewer = st.lists(st.sampled_from(DOC_PRINCIPALS + ["user:9", "org:3"]), max_size=4, unique=True)


@pytest.fixture(scope="module")
def pg_app(tmp_path_factory, unavailable):
    app = make_search_app("postgres", tmp_path_factory.mktemp("pg-diff"), unavailable, SEARCH_WORKER="off")
    yield app
    dispose_search_app(app)


def _query(parsed, principals, **kw) -> SearchQuery:
    return SearchQuery(parsed=parsed, principals=principals, filters=resolve(parsed.filters),
                       not_filters=resolve(parsed.not_filters), offset=0, limit=1000, **kw)


def _full_facets(backend, q: SearchQuery):
    """Whoosh's facets without the page's cut (the PostgreSQL backend cuts at 12, more values
    than the corpus has)."""
    view = backend.view()
    return backend.engine.search(view, q.parsed, principals=q.principals, filters=q.filters,
                                 not_filters=q.not_filters, exclude_keys=q.exclude_keys, sort=q.sort,
                                 offset=0, limit=1000, facet_limit=ALL_FACETS)


@pytest.mark.timeout(1800)
@settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_postgres_finds_counts_and_facets_what_whoosh_does(pg_app, data):
    base = Path(tempfile.mkdtemp(prefix="pg-diff-"))
    whoosh = WhooshBackend(base, engine="fast")
    try:
        fields = data.draw(st.lists(doc_fields, min_size=5, max_size=40), label="documents")
        docs = [make_doc(i, f) for i, f in enumerate(fields, start=1)]
        by_id = {d.doc_id: d for d in docs}
        load = lambda _t, ids: [by_id[i] for i in ids]  # noqa: E731
        whoosh.rebuild([("item", sorted(by_id))], load, procs=1)
        # Later changes through the outbox writer's path: replacements and deletions.
        deleted = data.draw(st.lists(st.sampled_from(sorted(by_id)), max_size=5, unique=True), label="deleted")
        replaced = data.draw(st.lists(st.sampled_from(sorted(by_id)), max_size=5, unique=True), label="replaced")
        upserts = [make_doc(i, data.draw(doc_fields, label="new fields")) for i in replaced if i not in deleted]
        deletes = [f"item:{i}" for i in deleted]
        with whoosh.lock():
            whoosh.write(upserts, deletes)
        live = {d.key: d for d in docs if d.key not in deletes}
        live.update((d.key, d) for d in upserts)

        with pg_app.app_context():
            pg = PostgresBackend(pg_app.config["SEARCH_INDEX_DIR"])
            pg.rebuild([("item", sorted(by_id))], load)
            pg.apply(upserts, deletes)
            assert pg.digests() == whoosh.digests()
            viewers = dict(VIEWERS, random=data.draw(viewer, label="random viewer"))
            for _ in range(data.draw(st.integers(1, 5), label="queries")):
                q = data.draw(st.one_of(queries, hostile), label="query")
                parsed = parse(q)
                exclude = data.draw(st.lists(st.sampled_from(sorted(live) + ["item:999"]), max_size=2,
                                             unique=True), label="excluded")
                for name, principals in viewers.items():
                    what = f"{q!r} viewer={name} {principals} excluded={exclude}"
                    sq = _query(parsed, principals, exclude_keys=exclude)
                    got, want = pg.search(sq), _full_facets(whoosh, sq)
                    keys = {k for k, _s in got.hits}
                    assert keys == {k for k, _s in want.hits}, what
                    assert got.total == want.total == len(keys), what
                    assert got.facets == want.facets, what
                    # The oracle: nothing outside the viewer's principals, whatever Whoosh says.
                    assert all(set(live[k].principals) & set(principals) for k in keys), what
                    page = pg.search(_query(parsed, principals, exclude_keys=exclude, facets=False))
                    assert page.total == got.total and {k for k, _s in page.hits} == keys, what
                    # One statement (with facets) or two (without): the same hits, in the same
                    # order with the same scores, for every sort and a window inside the list.
                    assert page.hits == got.hits, what
                    for sort in ("relevance", "newest", "deadline"):
                        window = replace(sq, sort=sort, offset=1, limit=3)
                        one, two = pg.search(window), pg.search(replace(window, facets=False))
                        assert one.hits == two.hits and one.total == two.total == got.total, (what, sort)
            for name, principals in viewers.items():
                for term in ("pump", "cell", "heat", "steel", "zzz"):
                    assert pg.visible_count(term, principals) == whoosh.visible_count(term, principals), (name, term)
                keys = data.draw(st.lists(st.sampled_from(sorted(live) + ["item:999"]), max_size=6, unique=True),
                                 label="keys to re-check")
                assert pg.shown_keys(keys, principals) == whoosh.shown_keys(keys, principals), name
            assert sorted(pg.stale_keys(NOW)) == sorted(whoosh.stale_keys(NOW))
            db.session.rollback()
    finally:
        whoosh.close()
        shutil.rmtree(base, ignore_errors=True)


# --------------------------------------------------------------------------- fixed cases


def test_tsquery_translation_quotes_every_lexeme():
    from marketplace.search.pg_backend import negated_tsquery, text_tsquery

    p = parse('heat "heat pump" -solar -"grid cell" valve OR "data cell" pumps type:asset')
    assert text_tsquery(p) == "'heat' & ('heat' <-> 'pump') & ('valve' | ('data' <-> 'cell')) & 'pump'"
    assert negated_tsquery(p) == "'solar' | ('grid' <-> 'cell')"
    assert text_tsquery(parse("type:asset")) is None and negated_tsquery(parse("pump")) is None


def test_the_tsvector_keeps_our_terms_positions_and_weights():
    from marketplace.search.documents import SearchDoc
    from marketplace.search.pg_backend import tsvector_text

    doc = SearchDoc("item", 1, "challenge", "open", None,
                    (("Cost of failures", 3.0), ("the summary", 1.5), ("", 1.0), ("Pumps' cost", 1.0)), ("public",))
    # Stop words dropped and positions renumbered; each part PART_GAP (100) after the last.
    assert tsvector_text(doc) == "'cost':1A,205 'failure':2A 'summary':103B 'pump':204"


def test_nothing_allowed_finds_nothing(pg_app):
    from marketplace.search.documents import SearchDoc

    with pg_app.app_context():
        pg = PostgresBackend(pg_app.config["SEARCH_INDEX_DIR"])
        pg.rebuild([("item", [1, 2])], lambda _t, ids: [
            SearchDoc("item", i, "asset" if i == 2 else "challenge", "open", None, (("pump valve", 3.0),),
                      ("public",)) for i in ids])
        for principals, filters in (([], {}), (["public"], {"kind": []}), (["public"], {"org": []}),
                                    (["nobody"], {}), (["public"], {"kind": ["idea"]}),
                                    (["public\x00"], {}), (["public"], {"status": ["open\x00"]}),
                                    (["public"], {"nonsense": ["x"]})):
            got = pg.search(SearchQuery(parsed=parse("pump"), principals=principals, filters=filters))
            assert (got.total, got.hits) == (0, []), (principals, filters)
        got = pg.search(SearchQuery(parsed=parse("pump"), principals=["public"], not_filters={"status": ["x\x00"]}))
        assert got.total == 2  # a negated value that cannot exist removes nothing
        assert pg.visible_count("pump", []) == 0 and pg.shown_keys(["item:1"], []) == []
        assert pg.similar_terms("pumq", 1) == ["pump"] and pg.similar_terms("\x00", 1) == []
        db.session.execute(text("DELETE FROM search_documents"))
        db.session.commit()


def test_snippets_escape_everything_but_our_marks(pg_app):
    with pg_app.app_context():
        pg = PostgresBackend(pg_app.config["SEARCH_INDEX_DIR"])
        texts = ["Cavitation <img src=x onerror=alert(1)> damages \ue000pumps\ue001 & <b>seals</b>",
                 "nothing to see here \x00 <script>alert(1)</script>", ""]
        out = pg.snippets(texts, ["cavitation", "pump"])
        # The text's own marker characters are dropped (they cannot forge a <mark>); what
        # ts_headline's parser reads as a tag (<b>) it leaves out; the rest is escaped.
        assert str(out[0]).startswith("<mark>Cavitation</mark> &lt;img src=x onerror=alert(1)&gt; damages "
                                      "<mark>pumps</mark> &amp;")
        assert str(out[0]).count("<") == 4 and "<b>" not in str(out[0])
        assert "<" not in str(out[1]) and "alert(1)" in str(out[1])
        assert str(out[2]) == ""
        db.session.rollback()
