"""Keeping the index true: the outbox survives a writer killed mid-batch, `search rebuild`
swaps a new index in while searches go on, and `search verify` names drift. (The fast
segment builder is compared with Whoosh's own writer in test_search_segments.py.)
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from marketplace.extensions import db
from marketplace.models import SearchOutbox
from marketplace.search import get_backend, get_runtime, service
from marketplace.search.analysis import analyze, normalize, stem, terms
from marketplace.search.cli import rebuild_index, verify_index
from marketplace.search.documents import SearchDoc
from marketplace.search.querylang import AnyOf, Phrase, Word, parse

from .search_backends import BACKENDS, SEARCH_VARIANTS, dispose_search_app, make_search_app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=BACKENDS)
def app(request, tmp_path, unavailable):
    """conftest's `app`, once per search backend (Whoosh, PostgreSQL)."""
    app = make_search_app("fast" if request.param == "whoosh" else request.param, tmp_path, unavailable)
    yield app
    dispose_search_app(app)


def outbox_count() -> int:
    return db.session.execute(select(func.count(SearchOutbox.id))).scalar()


def found(user, q):
    return {h.id for h in service.search(user, q, per_page=100).hits}


def wait_until(condition, what: str, timeout: float = 60.0) -> None:
    """Poll until `condition()` holds, for work done by a real concurrent writer (a child
    process or the writer thread). The deadline only stops a hang; it claims no speed."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


# --------------------------------------------------------------------------- a killed writer

CHILD = textwrap.dedent("""
    import os, sys, warnings
    # Whoosh 2.7's warnings only (by module name, or by path for those raised while compiling).
    warnings.filterwarnings("ignore", module=r"whoosh\\b|.*[\\\\/]whoosh[\\\\/]")
    sys.path.insert(0, {root!r})
    from marketplace import create_app
    from marketplace.config import TestingConfig
    from marketplace.search import get_backend
    from marketplace.search.worker import apply_outbox

    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = {db_uri!r}
        SEARCH_INDEX_DIR = {index_dir!r}
        SEARCH_WORKER = "off"
        SEARCH_BACKEND = {search_backend!r}

    app = create_app(Cfg)
    marker = {marker!r}

    def stop_here():
        open(marker, "w").write(str(os.getpid()))
        sys.stdin.read()  # blocks until the parent kills us (or dies: then EOF, and we go too)
        os._exit(1)

    with app.app_context():
        backend = get_backend()
        if {stage!r} == "index" and {search_backend!r} == "postgres":
            # Die inside the index write: rows deleted and inserted, transaction not committed.
            from marketplace.extensions import db
            def write(upserts, deletes):
                conn = db.engine.connect()
                conn.begin()
                rows, terms = backend._rows(list(upserts)[:3])
                conn.exec_driver_sql("DELETE FROM search_documents")
                backend._insert(conn, rows, terms)
                stop_here()
            backend.write = write
            apply_outbox(backend, wait=True, batch=5)
        elif {stage!r} == "index":
            # Die inside the index write: documents added, Whoosh commit not reached.
            real_write = backend.write
            def write(upserts, deletes):
                ix = backend._writable_index()
                w = ix.writer()
                for doc in list(upserts)[:3]:
                    w.add_document(**doc.fields())
                stop_here()
            backend.write = write
            apply_outbox(backend, wait=True, batch=5)
        else:
            # Die after the index commit, before the outbox rows are deleted.
            apply_outbox(backend, wait=True, batch=5, on_batch=lambda n: stop_here())
""")


@pytest.mark.parametrize("stage", ["index", "outbox"])
def test_a_writer_killed_mid_batch_loses_nothing(app, f, tmp_path, stage):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    f.make_item(org, title="Baseline document")
    assert found(None, "baseline")  # the index exists and is current
    runtime = get_runtime(app)
    runtime.mode = "off"
    items = [f.make_item(org, title=f"Flotation cell {n}") for n in range(12)]
    assert outbox_count() == 12

    marker = tmp_path / "marker"
    script = CHILD.format(root=str(ROOT), db_uri=app.config["SQLALCHEMY_DATABASE_URI"],
                          index_dir=app.config["SEARCH_INDEX_DIR"], marker=str(marker), stage=stage,
                          search_backend=app.config["SEARCH_BACKEND"])
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)

    def reached_the_batch() -> bool:
        assert child.poll() is None, "the writer exited before reaching the batch"
        return marker.exists()

    try:
        wait_until(reached_the_batch, "the writer never reached the batch")
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
        child.stdin.close()
    assert child.returncode == -signal.SIGKILL

    db.session.rollback()
    assert outbox_count() == 12  # no job was lost
    report = verify_index()
    assert report["pending_outbox"] == 12
    if stage == "index":
        # The half-written batch never became visible: those documents are missing.
        assert report["missing"] == sorted(f"item:{i.id}" for i in items)
    else:
        # The first batch reached the index; its jobs are still queued and run again.
        assert len(report["missing"]) == 12 - 5
    # The lock died with the process: the writer runs again and catches up.
    assert runtime.apply_now(wait=False) >= 12
    report = verify_index()
    assert (report["missing"], report["extra"], report["stale"], report["pending_outbox"]) == ([], [], [], 0)
    assert found(None, "flotation") == {i.id for i in items}


@pytest.mark.parametrize("variant", ["fast", "postgres"])
def test_a_commit_wakes_the_thread_writer(tmp_path, unavailable, variant):
    """SEARCH_WORKER = "thread": the first request starts the writer, and a commit wakes it,
    so the change becomes searchable with no further call. The writer used for the commit
    polls only once an hour: nothing but the commit's wake-up can have indexed it."""
    from marketplace.search.worker import OutboxThread

    from .factories import Factories

    app = make_search_app(variant, tmp_path, unavailable, SEARCH_WORKER="thread")
    runtime = get_runtime(app)
    try:
        app.test_client().get("/")  # the first request starts the writer thread
        started = runtime._thread
        assert started is not None and started.is_alive()
        started.stop()
        started.join(timeout=30)
        runtime._thread = OutboxThread(app, runtime.backend, interval=3600.0, sweep_interval=3600.0)
        runtime._thread.start()
        app.test_client().get("/")  # a live writer of this process is kept, not replaced
        assert runtime._thread.loop.interval == 3600.0
        with app.app_context():
            f = Factories()
            org = f.make_org(owner=f.make_user())
            item_id = f.make_item(org, title="Peristaltic dosing pump").id

            def searchable() -> bool:
                db.session.rollback()  # see the writer's commits, not this session's snapshot
                return found(None, "peristaltic") == {item_id}

            wait_until(searchable, "the commit never woke the writer")
            assert outbox_count() == 0
    finally:
        if runtime._thread is not None:
            runtime._thread.stop()
            runtime._thread.join(timeout=30)
        dispose_search_app(app)


# --------------------------------------------------------------------------- rebuild


def test_rebuild_while_searching(app, f):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    items = [f.make_item(org, title=f"Biochar kiln {n}", body="carbon " * 40) for n in range(60)]
    want = {i.id for i in items}
    assert found(None, "biochar") == want
    backend = get_backend(app)
    old_folder = backend.stats()["folder"]

    errors, counts, done = [], [], threading.Event()

    def rebuild():
        try:
            with app.app_context():
                rebuild_index(procs=1)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            done.set()

    # Interleave for certain: the rebuild loads each chunk only after a search has completed
    # since the previous one, so searches run before, between and after every chunk.
    from marketplace.search import cli as search_cli

    real_load = search_cli._load_chunk
    searched = threading.Semaphore(0)

    def load_after_a_search(doc_type, ids):
        assert searched.acquire(timeout=60), "no search ran while the rebuild waited for one"
        return real_load(doc_type, ids)

    search_cli._load_chunk = load_after_a_search
    search_cli.CHUNK, old_chunk = 10, search_cli.CHUNK
    try:
        t = threading.Thread(target=rebuild)
        t.start()
        while not done.is_set():
            counts.append(len(found(None, "biochar")))
            searched.release()
        t.join()
    finally:
        search_cli._load_chunk = real_load
        search_cli.CHUNK = old_chunk
    assert errors == []
    assert len(counts) > 3 and set(counts) == {len(want)}  # every search during the rebuild was whole
    if app.config["SEARCH_BACKEND"] != "postgres":  # PostgreSQL swaps rows in one transaction, not folders
        assert backend.stats()["folder"] != old_folder
    assert found(None, "biochar") == want
    report = verify_index()
    assert (report["missing"], report["extra"], report["stale"]) == ([], [], [])


def test_changes_made_during_a_rebuild_are_applied_after_the_swap(app, f):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    first = f.make_item(org, title="Tidal turbine")
    assert found(None, "tidal") == {first.id}
    from marketplace.search import cli as search_cli

    real_load = search_cli._load_chunk
    made = {}

    def load_then_write(doc_type, ids):
        docs = real_load(doc_type, ids)
        if doc_type == "item" and "second" not in made:
            # A commit lands while the rebuild holds the writer lock: it waits in the outbox.
            made["second"] = f.make_item(org, title="Tidal lagoon").id
            first_row = db.session.get(type(first), first.id)
            first_row.visibility = "organisation"
            db.session.commit()
        return docs

    search_cli._load_chunk = load_then_write
    try:
        rebuild_index(procs=1)
    finally:
        search_cli._load_chunk = real_load
    assert outbox_count() == 0
    assert found(None, "tidal") == {made["second"]}
    assert found(owner, "tidal") == {first.id, made["second"]}


def test_cli_rebuild_verify_stats_apply(app, f, runner):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    for n in range(5):
        f.make_item(org, title=f"Aquaponics {n}")
    result = runner.invoke(args=["search", "rebuild", "--procs", "2"])
    assert result.exit_code == 0, result.output
    assert "Indexed" in result.output
    result = runner.invoke(args=["search", "verify"])
    assert result.exit_code == 0, result.output
    assert "matches" in result.output
    result = runner.invoke(args=["search", "stats"])
    assert result.exit_code == 0 and "documents   6 live" in result.output, result.output
    result = runner.invoke(args=["search", "stats", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["index"]["documents"] == 6
    result = runner.invoke(args=["search", "apply"])
    assert result.exit_code == 0 and "Applied" in result.output
    assert len(found(None, "aquaponics")) == 5


@pytest.mark.parametrize("engine", SEARCH_VARIANTS)
def test_each_engine_rebuilds_and_verifies(tmp_path, unavailable, engine):
    # SEARCH_ENGINE=whoosh rebuilds with Whoosh's own writer (no internals at all).
    from .factories import Factories

    app = make_search_app(engine, tmp_path, unavailable)
    try:
        with app.app_context():
            f = Factories()
            org = f.make_org(owner=f.make_user())
            items = [f.make_item(org, title=f"Aquaponics {n}", visibility=("public", "organisation")[n % 2])
                     for n in range(6)]
            result = app.test_cli_runner().invoke(args=["search", "rebuild", "--procs", "2"])
            assert result.exit_code == 0, result.output
            stats = get_backend(app).stats()
            assert stats["engine"]["name"] == engine and stats["documents"] == verify_index()["documents"]
            report = verify_index()
            assert (report["missing"], report["extra"], report["stale"]) == ([], [], [])
            assert found(None, "aquaponics") == {i.id for i in items[::2]}
    finally:
        dispose_search_app(app)


# --------------------------------------------------------------------------- verify


def test_verify_names_each_kind_of_drift(app, f, runner):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    a = f.make_item(org, title="Missing one")
    b = f.make_item(org, title="Stale one")
    assert found(None, "one") == {a.id, b.id}
    backend = get_backend(app)
    assert runner.invoke(args=["search", "verify"]).exit_code == 0

    backend.delete([f"item:{a.id}"])                                     # missing
    backend.index([SearchDoc("item", 999_999, "challenge", "open", org.id, (("Ghost", 3.0),),
                             ("public",))])                              # extra
    db.session.execute(text("UPDATE items SET title = 'Stale two' WHERE id = :i"), {"i": b.id})  # stale
    db.session.commit()
    result = runner.invoke(args=["search", "verify"])
    assert result.exit_code == 1
    assert f"Missing: 1: item:{a.id}" in result.output
    assert "Extra: 1: item:999999" in result.output
    assert f"Stale: 1: item:{b.id}" in result.output

    result = runner.invoke(args=["search", "rebuild"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(args=["search", "verify"]).exit_code == 0


def test_verify_sees_principal_drift(app, f):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    item = f.make_item(org, title="Principal drift")
    service.search(None, "drift")
    db.session.execute(text("UPDATE items SET visibility = 'organisation' WHERE id = :i"), {"i": item.id})
    db.session.commit()
    assert verify_index()["stale"] == [f"item:{item.id}"]


# --------------------------------------------------------------------------- analysis and the query language


def test_minimal_stemmer():
    assert [stem(w) for w in ("companies", "processes", "challenges", "boxes", "status", "analysis",
                              "glass", "cases", "data", "series", "news")] == \
        ["company", "process", "challenge", "box", "status", "analysis", "glass", "case", "data", "sery", "new"]
    assert normalize("Café") == "cafe"
    assert normalize("the") is None and normalize("x") is None
    assert terms("The Pumps' seals, and 3D-printing!") == ["pump", "seal", "3d", "printing"]


def test_analyze_positions_skip_stop_words_and_separate_parts():
    uniq, weights, values, length = analyze([("Cost of failure", 3.0), ("cost", 1.0)])
    assert uniq == ["cost", "failure"] and length == 3
    assert weights == [4.0, 3.0]
    import numpy as np

    pos = {t: list(np.frombuffer(v, dtype="<u4")) for t, v in zip(uniq, values)}
    assert pos["cost"][0] == 0 and pos["failure"] == [1] and pos["cost"][1] > 100


def test_query_language():
    p = parse('solar "heat pump" -noise wind OR tidal type:challenge tag:"Energy Storage" -status:draft '
              'content:* org:acme foo:bar')
    assert Word("solar", "solar") in p.must
    assert Phrase(("heat", "pump"), "heat pump") in p.must
    assert AnyOf((Word("wind", "wind"), Word("tidal", "tidal"))) in p.must
    assert Word("noise", "noise") in p.must_not
    assert p.filters == {"kind": ["challenge"], "tags": ["energy-storage"], "org": ["acme"]}
    assert p.not_filters == {"status": ["draft"]}
    assert Word("content", "content:*") in p.must and Phrase(("foo", "bar"), "foo:bar") in p.must
    assert parse("type:nonsense").filters == {"kind": []}  # matches nothing, never everything
    assert parse("((( ))) OR -").is_empty()
    assert len(parse("word " * 5000).must) <= 16
