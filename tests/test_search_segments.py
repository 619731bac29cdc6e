"""The fast segment builder writes ordinary Whoosh segments (issue 14).

1. With Whoosh's block size and compression level, the files it writes are byte for byte
   those of Whoosh's own writer.
2. A property-based twin test: random sequences of rebuilds (fast builder, one or two
   processes, one or several segments), incremental writes, deletions, merges and
   `optimize`, applied to an index rebuilt by the fast builder and to a twin written only
   by Whoosh's own writer. After every step both read the same live documents, stored
   fields, field lengths, columns and postings through Whoosh's reader, give the same
   answers to Whoosh's own searcher and to our query engine, and every posting value is
   one Whoosh's merge accepts (the ``vbytes=''`` of issue 14).
"""
from __future__ import annotations

import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from whoosh import index as whoosh_index
from whoosh import query as wq
from whoosh.index import TOC

from marketplace.search import whoosh_backend
from marketplace.search.backend import SearchQuery
from marketplace.search.documents import SearchDoc
from marketplace.search.querylang import parse
from marketplace.search.schema import build_schema
from marketplace.search.whoosh_internals import SegmentBuilder
from marketplace.search.whoosh_backend import WhooshBackend

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def _docs(n: int) -> list[SearchDoc]:
    return [SearchDoc("item", i, ["challenge", "failure", "asset"][i % 3], "open", i % 4,
                      ((f"Title {i} pump valve", 3.0), ("Summary of pumps " * (i % 3), 1.5),
                       (f"Body **text** number {i} about pumps and valves and the pump's [seal](http://x.y) "
                        * (1 + i % 5), 1.0)),
                      ("public", f"org:{i % 4}"), tags=("a-tag", f"t{i % 7}"), created=T0 + timedelta(days=i),
                      deadline=T0 + timedelta(days=30) if i % 3 == 0 else None)
            for i in range(1, n)]


def _segment_files(folder: Path) -> dict[str, bytes]:
    ix = whoosh_index.open_dir(str(folder))
    (seg,) = ix._segments()
    store = seg.open_compound_file(ix.storage)
    return {name[len(seg.segment_id()):]: store.open_file(name).read() for name in store.list()}


def test_the_builder_writes_byte_for_byte_what_whoosh_writes(tmp_path):
    docs = _docs(700)  # several blocks per frequent term, single postings for the keys
    a_dir, b_dir = tmp_path / "whoosh", tmp_path / "fast"
    a_dir.mkdir()
    b_dir.mkdir()
    ix_a = whoosh_index.create_in(str(a_dir), build_schema())
    w = ix_a.writer()
    for d in docs:
        w.add_document(**d.fields())
    w.commit()
    ix_b = whoosh_index.create_in(str(b_dir), build_schema())
    builder = SegmentBuilder(ix_b, compression=3, blocklimit=128)  # Whoosh's own settings
    for d in docs:
        builder.add(d.fields())
    TOC(ix_b.schema, [builder.finish()], 1).write(ix_b.storage, ix_b.indexname)

    a, b = _segment_files(a_dir), _segment_files(b_dir)
    assert sorted(a) == sorted(b)
    assert {".trm", ".pst", "._stored.col", "._text_len.col"} <= set(a)
    for ext in a:
        assert a[ext] == b[ext], f"{ext} differs from Whoosh's"


def test_a_rebuilt_index_survives_whoosh_merges_and_optimize(tmp_path):
    """Issue 14 as it happened: rebuild, then ordinary writes until Whoosh merges."""
    backend = WhooshBackend(tmp_path / "search")
    docs = {d.key: d for d in _docs(60)}
    backend.rebuild([("item", [d.doc_id for d in docs.values()])],
                    lambda _t, ids: [docs[f"item:{i}"] for i in ids], procs=1)
    for n in range(12):  # MERGE_SMALL merges the rebuilt segment after a few commits
        doc = SearchDoc("item", 1000 + n, "asset", "open", 1, ((f"Extra pump {n}", 3.0),), ("public",))
        backend.apply([doc], [f"item:{n + 1}"])
    ix = whoosh_index.open_dir(str(backend.base / backend.current_folder()))
    ix.optimize()
    with ix.reader() as r:
        assert r.doc_count() == len(docs)
        assert len(list(r.leaf_readers())) == 1


# --------------------------------------------------------------------------- the twin test

WORDS = ("pump valve seal energy water battery solar grid sensor robot carbon filter membrane "
         "hydrogen turbine coating polymer steel catalyst data the and of café naïve x ab").split()
PRINCIPALS = ("public", "registered", "org:1", "org:2", "user:7", "list:3")
texts = st.lists(st.sampled_from(WORDS), max_size=25).map(" ".join)
times = st.one_of(st.none(), st.integers(0, 3000).map(lambda d: T0 + timedelta(hours=d)))


@st.composite
def search_docs(draw):
    return SearchDoc(
        "item", draw(st.integers(1, 30)), draw(st.sampled_from(["challenge", "failure", "asset"])),
        draw(st.sampled_from(["open", "closed", ""])), draw(st.one_of(st.none(), st.integers(1, 4))),
        ((draw(texts), 3.0), (draw(texts), 1.5), (draw(texts), 1.0)),
        tuple(draw(st.sets(st.sampled_from(PRINCIPALS), max_size=3))),
        tags=tuple(draw(st.sets(st.sampled_from(["energy", "water", "robotics", "a-b"]), max_size=2))),
        created=draw(times), deadline=draw(times), stale_at=draw(times))


QUERIES = ["pump", "valve seal", '"pump valve"', "energy OR water", "pump -seal", "cafe", "naive",
           "type:asset", "tag:energy", "status:open pump", ""]


def _whoosh_view(backend: WhooshBackend) -> dict:
    """Everything queries rely on, read through Whoosh's reader: per live document its
    stored fields, field length and columns; per term its live postings (key, weight,
    value) exactly as Whoosh's matchers return them."""
    ix = whoosh_index.open_dir(str(backend.base / backend.current_folder()))
    with ix.reader() as r:
        docs, key_of = {}, {}
        if r.doc_count_all() == 0:  # an empty index has no columns to read
            return {"docs": {}, "postings": {}}
        cols = {name: r.column_reader(name) for name in ("created", "deadline", "stale_at")}
        for docnum in r.all_doc_ids():  # live documents only
            stored = r.stored_fields(docnum)
            key_of[docnum] = stored["key"]
            docs[stored["key"]] = (stored, r.doc_field_length(docnum, "text"),
                                   tuple(cols[c][docnum] for c in cols))
        postings = {}
        for fieldname, tbytes in r.all_terms():
            m = r.postings(fieldname, tbytes)
            rows = []
            while m.is_active():
                value = m.value()
                # What Whoosh's merge accepts (writing.PostingPool.add): bytes or None.
                assert value is None or isinstance(value, bytes), (fieldname, tbytes, value)
                rows.append((key_of[m.id()], m.weight(), value))
                m.next()
            if rows:
                postings[(fieldname, tbytes)] = sorted(rows)
        for leaf, _offset in r.leaf_readers():  # the merge path itself, segment by segment
            for _f, _t, _d, _w, value in leaf.iter_postings():
                assert value is None or isinstance(value, bytes)
    return {"docs": docs, "postings": postings}


def _whoosh_answers(backend: WhooshBackend) -> list:
    """Whoosh's own searcher (BM25, block-quality skipping) on a few queries."""
    ix = whoosh_index.open_dir(str(backend.base / backend.current_folder()))
    queries = [wq.Term("text", "pump"), wq.And([wq.Term("text", "valve"), wq.Term("text", "seal")]),
               wq.Or([wq.Term("text", "energy"), wq.Term("text", "water")]),
               wq.Phrase("text", ["pump", "valve"]), wq.Term("principals", "public"),
               wq.Term("kind", "asset"), wq.Term("tags", "energy"), wq.Every()]
    with ix.searcher() as s:
        return [sorted(hit["key"] for hit in s.search(q, limit=None)) for q in queries]


def _engine_answers(backend: WhooshBackend) -> list:
    out = []
    for q in QUERIES:
        for principals in (("public",), ("public", "registered", "org:1", "user:7")):
            hits = backend.search(SearchQuery(parse(q), principals, limit=1000))
            out.append((q, principals, hits.total, sorted(k for k, _s in hits.hits),
                        {f: sorted(v) for f, v in hits.facets.items()}))
    return out


class FastVersusWhoosh(RuleBasedStateMachine):
    """`fast` is rebuilt by whoosh_internals.SegmentBuilder; `twin` only ever by Whoosh's writer.
    Both get the same incremental writes, deletions, merges and optimize runs."""

    @initialize()
    def start(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="twin-"))
        self.fast = WhooshBackend(self.tmp / "fast")
        self.twin = WhooshBackend(self.tmp / "twin")
        for b in (self.fast, self.twin):
            with b.lock():
                b.ensure_index()
        self.docs: dict[str, SearchDoc] = {}

    def teardown(self):
        if getattr(self, "tmp", None):
            for b in (self.fast, self.twin):
                if b._reader is not None:
                    b._reader.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _ix(self, backend):
        return whoosh_index.open_dir(str(backend.base / backend.current_folder()))

    @rule(upserts=st.lists(search_docs(), max_size=6), deletes=st.lists(st.integers(1, 30), max_size=3))
    def write(self, upserts, deletes):
        upserts = list({d.key: d for d in upserts}.values())
        delete_keys = [f"item:{i}" for i in deletes if f"item:{i}" not in {d.key for d in upserts}]
        for key in delete_keys:
            self.docs.pop(key, None)
        for d in upserts:
            self.docs[d.key] = d
        for b in (self.fast, self.twin):
            b.apply(upserts, delete_keys)  # Whoosh's writer, committed with its merge policy

    @rule(procs=st.sampled_from([1, 1, 2]), segment_docs=st.sampled_from([2, 5, 25_000]),
          chunk=st.sampled_from([1, 4, 50]))
    def rebuild(self, procs, segment_docs, chunk):
        ids = sorted(d.doc_id for d in self.docs.values())
        chunks = [("item", ids[i:i + chunk]) for i in range(0, len(ids), chunk)]
        docs = dict(self.docs)
        old = whoosh_backend.SEGMENT_DOCS
        whoosh_backend.SEGMENT_DOCS = segment_docs
        try:
            self.fast.rebuild(chunks, lambda _t, got: [docs[f"item:{i}"] for i in got], procs=procs,
                              builder="fast")
        finally:
            whoosh_backend.SEGMENT_DOCS = old
        # The twin: a new folder written by Whoosh's writer alone (add_document, commit).
        with self.twin.lock():
            folder = self.twin._new_folder()
            ix = whoosh_index.open_dir(str(folder))
            w = ix.writer()
            for d in docs.values():
                w.add_document(**d.fields())
            w.commit()
            self.twin._set_current(folder.name)

    @rule()
    def merge(self):
        for b in (self.fast, self.twin):
            with b.lock():
                self._ix(b).writer().commit(merge=True)  # Whoosh's MERGE_SMALL policy

    @rule()
    def optimize(self):
        for b in (self.fast, self.twin):
            with b.lock():
                self._ix(b).optimize()

    @invariant()
    def both_read_the_same(self):
        if not hasattr(self, "fast"):
            return
        fast, twin = _whoosh_view(self.fast), _whoosh_view(self.twin)
        assert set(fast["docs"]) == set(self.docs)
        assert fast["docs"] == twin["docs"]
        assert fast["postings"] == twin["postings"]
        assert _whoosh_answers(self.fast) == _whoosh_answers(self.twin)
        assert _engine_answers(self.fast) == _engine_answers(self.twin)


FastVersusWhoosh.TestCase.settings = settings(
    max_examples=35, stateful_step_count=12, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_fast_builder_against_whoosh_writer = pytest.mark.timeout(900)(FastVersusWhoosh.TestCase)
