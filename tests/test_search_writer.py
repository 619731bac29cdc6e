"""Operating the index writer (issue 14): failing jobs are isolated, retried with back-off
and parked without blocking the others; a failed commit releases Whoosh's lock; a writer
killed mid-batch leaves the site serving and catches up when restarted; /healthz, `flask
search stats` and /admin/search show the writer's state; the index is tied to its database.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text, update
from whoosh import index as whoosh_index
from whoosh.codec.whoosh3 import W3Codec
from whoosh.system import pack_ushort
from whoosh.writing import SegmentWriter

from marketplace.extensions import db
from marketplace.models import Organisation, SearchOutbox, utcnow
from marketplace.search import get_backend, get_runtime, identity, service
from marketplace.search.cli import verify_index
from marketplace.search.documents import DOC_TYPES, DocType, Presented, SearchDoc
from marketplace.search.health import STATUS_FILE, WriterStatus, writer_state
from marketplace.search.backend import IndexBusy
from marketplace.search.worker import apply_outbox, backoff_seconds

from .search_backends import BACKENDS, dispose_search_app, make_search_app

ROOT = Path(__file__).resolve().parent.parent
SECRET = "writer-tests-secret-0123456789abcdef"
# Tests of Whoosh's own files (its segments, the index folder's database record) run on it alone.
whoosh_only = pytest.mark.parametrize("app", ["whoosh"], indirect=True)


@pytest.fixture(params=BACKENDS)
def app(request, tmp_path, unavailable):
    """conftest's `app`, once per search backend (Whoosh, PostgreSQL)."""
    app = make_search_app("fast" if request.param == "whoosh" else request.param, tmp_path, unavailable)
    yield app
    dispose_search_app(app)


def found(user, q):
    return {h.id for h in service.search(user, q, per_page=100).hits}


def rows():
    db.session.rollback()
    return db.session.execute(select(SearchOutbox).order_by(SearchOutbox.id)).scalars().all()


@pytest.fixture
def writer_cfg(app):
    app.config.update(SEARCH_MAX_ATTEMPTS=3, SEARCH_RETRY_BASE_SECONDS=0.0)
    return app


def _break_item(item_id: int) -> None:
    """Data the rules refuse (fail closed: PolicyError), as a raw SQL fix-up could leave it."""
    db.session.execute(text("UPDATE items SET visibility = 'bogus' WHERE id = :i"), {"i": item_id})
    db.session.commit()


def _queue(doc_type: str, doc_id: int) -> None:
    """Queue a job as the outbox listeners do, then run the writer once (sync mode)."""
    db.session.add(SearchOutbox(doc_type=doc_type, doc_id=doc_id))
    db.session.commit()
    get_runtime().apply_now()


# --------------------------------------------------------------------------- retry, park, unblock


def test_a_failing_job_is_retried_then_parked_and_never_blocks_the_others(writer_cfg, f, runner, caplog):
    app = writer_cfg
    app.config["SEARCH_RETRY_BASE_SECONDS"] = 3600.0
    org = f.make_org(owner=f.make_user())
    good1, bad, good2 = (f.make_item(org, title=f"Sorting line {n}") for n in range(3))
    assert found(None, "sorting") == {good1.id, bad.id, good2.id}
    _break_item(bad.id)
    for item in (good1, bad, good2):
        db.session.add(SearchOutbox(doc_type="item", doc_id=item.id))
    good1.title = "Gravity separator one"
    db.session.commit()  # sync mode applies at once: the bad job fails, the others go through

    assert found(None, "gravity") == {good1.id}
    (row,) = rows()
    assert (row.doc_type, row.doc_id, row.attempts) == ("item", bad.id, 1)
    assert "PolicyError: unknown visibility 'bogus'" in row.last_error and "Traceback" in row.last_error
    assert row.retry_at is not None and row.parked_at is None
    logged = [r for r in caplog.records if r.name == "marketplace.search.worker" and r.exc_info]
    assert logged, "the failure is logged with its traceback"

    app.config["SEARCH_RETRY_BASE_SECONDS"] = 0.0
    db.session.execute(update(SearchOutbox).values(retry_at=utcnow()))  # an hour later...
    db.session.commit()
    for _ in range(2):  # back-off is 0 s now: each pass retries it, the third failure parks it
        get_runtime(app).apply_now()
    (row,) = rows()
    assert row.attempts == 3 and row.parked_at is not None and row.retry_at is None

    # Parked: later jobs are applied as if it were not there, and the writer skips it.
    good2.title = "Eddy current separator"
    db.session.commit()
    assert found(None, "eddy") == {good2.id}
    assert [r.id for r in rows()] == [row.id]
    assert get_runtime(app).apply_now() == 0

    out = runner.invoke(args=["search", "stats"]).output
    assert f"#{row.id} item:{bad.id}: parked after 3 attempts" in out
    assert "PolicyError: unknown visibility 'bogus'" in out and "parked      1" in out
    st = json.loads(runner.invoke(args=["search", "stats", "--json"]).output)
    assert st["outbox"]["parked"] == 1 and st["failing_jobs"][0]["state"] == "parked"

    # Fixed data, then `search retry`: the job runs again and succeeds.
    db.session.execute(text("UPDATE items SET visibility = 'public', title = 'Fixed separator' WHERE id = :i"),
                       {"i": bad.id})
    db.session.commit()
    res = runner.invoke(args=["search", "retry", "--all"])
    assert res.exit_code == 0 and "Queued 1 parked job again." in res.output
    assert found(None, "fixed") == {bad.id}
    assert rows() == []


def test_backoff_doubles_up_to_its_cap_and_waits(app, f):
    app.config.update(SEARCH_RETRY_BASE_SECONDS=5.0, SEARCH_RETRY_MAX_SECONDS=12.0)
    assert [backoff_seconds(n) for n in (1, 2, 3, 4)] == [5.0, 10.0, 12.0, 12.0]
    org = f.make_org(owner=f.make_user())
    item = f.make_item(org, title="Hydrocyclone")
    assert found(None, "hydrocyclone") == {item.id}
    _break_item(item.id)
    _queue("item", item.id)
    (row,) = rows()
    assert row.attempts == 1
    wait = (row.retry_at - utcnow()).total_seconds()
    assert 3 < wait <= 5
    assert get_runtime(app).apply_now() == 0  # not due yet: not tried again
    assert rows()[0].attempts == 1


def test_a_later_success_for_the_same_document_clears_its_failed_jobs(writer_cfg, f):
    writer_cfg.config["SEARCH_RETRY_BASE_SECONDS"] = 3600.0  # the failed row is not due again
    org = f.make_org(owner=f.make_user())
    item = f.make_item(org, title="Jig concentrator")
    assert found(None, "jig")
    _break_item(item.id)
    _queue("item", item.id)
    assert rows()[0].attempts == 1
    db.session.execute(text("UPDATE items SET visibility = 'public' WHERE id = :i"), {"i": item.id})
    db.session.commit()
    _queue("item", item.id)  # a new change of the document: applied, and covers the failed row
    assert rows() == []


@pytest.fixture
def probe_type(ctx):
    """A document type (registered the way feature packages register theirs) whose documents
    the index refuses for organisations named "Broken ...": tags that UTF-8 cannot encode."""

    def document(org):
        tags = ("\ud800",) if org.name.startswith("Broken") else ("fine",)
        return SearchDoc("probe", org.id, "organisation", "", org.id, ((org.name, 3.0),), ("public",), tags=tags)

    DOC_TYPES["probe"] = DocType("probe", Organisation, document,
                                 lambda org: Presented(org.name, None, "Probe", org.name))
    try:
        yield
    finally:
        DOC_TYPES.pop("probe", None)


def test_a_document_the_index_refuses_fails_alone(writer_cfg, f, probe_type):
    owner = f.make_user()
    orgs = [f.make_org(name=f"{'Broken' if n == 3 else 'Sound'} probe {n}", owner=owner) for n in range(7)]
    service.search(None, "anything")  # creates the index; probe jobs are queued below
    for org in orgs:  # one batch of seven jobs
        db.session.add(SearchOutbox(doc_type="probe", doc_id=org.id))
    db.session.commit()
    get_runtime().apply_now()
    digests = get_backend().digests()
    assert sorted(k for k in digests if k.startswith("probe:")) == sorted(
        f"probe:{o.id}" for o in orgs if not o.name.startswith("Broken"))
    (row,) = rows()
    assert row.doc_id == orgs[3].id and "UnicodeEncodeError" in row.last_error


# --------------------------------------------------------------------------- a failing commit


def _legacy_segment(folder: Path, docs: list[SearchDoc]) -> None:
    """Add a segment as the fast builder before issue 14 wrote it: short posting lists
    inlined into the term index, the ID fields' empty values dropped. Whoosh reads it, but
    its merge fails on it (AssertionError: vbytes='')."""
    from whoosh.codec.whoosh3 import W3TermInfo
    from whoosh.index import TOC

    ix = whoosh_index.open_dir(str(folder))
    w = SegmentWriter(ix, _lk=False, codec=W3Codec())
    postings: dict = {}
    for n, d in enumerate(docs):
        fields = d.fields()
        w.perdocwriter.start_doc(n)
        for name in sorted(fields):
            value = fields[name]
            if value is None:
                continue
            field = ix.schema[name]
            length = 0
            if field.indexed:
                for tbytes, freq, weight, vbytes in field.index(value):
                    postings.setdefault((name, tbytes), []).append((n, weight, vbytes))
                    length += freq if field.scorable else 0
            w.perdocwriter.add_field(name, field, value if field.stored else None, length)
            if field.column_type is not None:
                w.perdocwriter.add_column_value(name, field.column_type, field.to_column_value(value))
        w.perdocwriter.finish_doc()
    w.docnum = len(docs)
    w.perdocwriter.close()
    fw = w.fieldwriter
    for name in sorted({k[0] for k in postings}):
        fw.start_field(name, ix.schema[name])
        for (fname, tbytes), plist in sorted(postings.items()):
            if fname != name:
                continue
            fw.start_term(tbytes)
            ti = W3TermInfo()
            ti._weight, ti._df = sum(p[1] for p in plist), len(plist)
            ti._maxweight, ti._minid, ti._maxid = max(p[1] for p in plist), plist[0][0], plist[-1][0]
            ti.set_inlined([p[0] for p in plist], [p[1] for p in plist], [p[2] for p in plist if p[2]])
            fw._postwriter._terminfo = None
            fw._tindex.add(pack_ushort(fw._fieldid) + tbytes, ti.to_bytes())
        fw.finish_field()
    fw.close()
    w.pool.cleanup()
    w._assemble_segment()
    seg = w.get_segment()
    w._tempstorage.destroy()
    TOC(ix.schema, ix._segments() + [seg], ix.latest_generation() + 1).write(ix.storage, ix.indexname)


@whoosh_only
def test_a_failed_commit_cancels_its_writer_and_is_retried(writer_cfg, f, caplog):
    app = writer_cfg
    app.config["SEARCH_RETRY_BASE_SECONDS"] = 3600.0
    org = f.make_org(owner=f.make_user())
    first = f.make_item(org, title="Flotation column")
    assert found(None, "flotation") == {first.id}
    backend = get_backend(app)
    folder = backend.base / backend.current_folder()
    _legacy_segment(folder, [SearchDoc("item", 900_000 + n, "asset", "open", None, (("Legacy", 1.0),), ("public",))
                             for n in range(3)])
    ix = whoosh_index.open_dir(str(folder))
    for n in range(3):  # enough small segments that Whoosh's next commit merges them all
        w = ix.writer()
        w.add_document(**SearchDoc("item", 800_000 + n, "asset", "open", None, (("Filler", 1.0),),
                                   ("public",)).fields())
        w.commit(merge=False)

    items = [f.make_item(org, title=f"Spiral classifier {n}") for n in range(4)]  # each commit fails
    assert found(None, "spiral") == set()
    assert [r.attempts for r in rows()] == [1] * 4  # each item's job failed once, alone
    assert "vbytes=''" in rows()[0].last_error
    assert any("writing" in r.getMessage() and r.exc_info for r in caplog.records)
    # The failed commits released Whoosh's lock and left no writer behind.
    w = whoosh_index.open_dir(str(folder)).writer()
    w.cancel()
    with backend.lock(wait=False):
        pass

    # A rebuild replaces the bad segment and covers the failing jobs.
    from marketplace.search.cli import rebuild_index

    rebuild_index(procs=1)
    assert rows() == []
    assert found(None, "spiral") == {i.id for i in items}


# --------------------------------------------------------------------------- health


def test_healthz_reports_the_writer_backlog_and_lag(app, f, client):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["search"]["writer"] == "sync"
    assert (body["search"]["backlog"], body["search"]["parked"]) == (0, 0)

    get_runtime(app).mode = "off"  # nobody applies the jobs now
    org = f.make_org(owner=f.make_user())
    f.make_item(org, title="Magnetic drum")
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["search"]["backlog"] == 2  # the org and the item
    assert body["search"]["writer"] == "not seen"
    assert body["search"]["oldest_job_age_seconds"] is not None

    db.session.execute(update(SearchOutbox).values(created_at=utcnow() - timedelta(minutes=10)))
    db.session.commit()
    resp = client.get("/healthz")
    assert resp.status_code == 200  # degraded is not down: the site serves, search lags
    body = resp.get_json()
    assert body["status"] == "degraded" and "lags" in body["problems"][0]
    app.config["SEARCH_LAG_DEGRADED_SECONDS"] = 3600
    assert client.get("/healthz").get_json()["status"] == "ok"


def test_healthz_degraded_by_parked_jobs_without_leaking_errors(writer_cfg, f, client):
    org = f.make_org(owner=f.make_user())
    item = f.make_item(org, title="Secret-ish title")
    assert found(None, "title")
    _break_item(item.id)
    _queue("item", item.id)
    get_runtime(writer_cfg).apply_now()
    get_runtime(writer_cfg).apply_now()
    body = client.get("/healthz").get_json()
    assert body["status"] == "degraded" and body["search"]["parked"] == 1
    assert "bogus" not in json.dumps(body) and "Traceback" not in json.dumps(body)


def test_writer_states_from_its_reports(app, tmp_path):
    runtime = get_runtime(app)
    runtime.mode = "off"
    status = WriterStatus(runtime.backend.base, "watch")
    status.report("idle", applied=3)
    assert writer_state(runtime)["state"] == "running"
    status.report("failing", error="Traceback ...\nOSError: disk full")
    st = writer_state(runtime)
    assert st["state"] == "failing" and st["consecutive_failures"] == 1
    data = json.loads((runtime.backend.base / STATUS_FILE).read_text())
    data["heartbeat_at"] -= 3600
    (runtime.backend.base / STATUS_FILE).write_text(json.dumps(data))
    assert writer_state(runtime)["state"] == "stopped"  # no report for an hour
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    data.update(heartbeat_at=time.time(), pid=dead.pid, state="idle")
    (runtime.backend.base / STATUS_FILE).write_text(json.dumps(data))
    assert writer_state(runtime)["state"] == "stopped"  # its process is gone
    status.report("stopped", force=True)
    assert writer_state(runtime)["state"] == "stopped"


def test_healthz_is_503_when_the_database_is_gone(tmp_path):
    import shutil

    from .factories_foundation import dispose, make_app

    (tmp_path / "db").mkdir()
    app = make_app(tmp_path / "db")
    try:
        with app.app_context():
            db.engine.dispose()
        shutil.rmtree(tmp_path / "db")  # SQLite cannot open (or create) the file any more
        resp = app.test_client().get("/healthz")
        assert resp.status_code == 503 and resp.get_json() == {"status": "down", "database": "unreachable"}
    finally:
        dispose(app)


# --------------------------------------------------------------------------- the admin page


def test_admin_page_is_for_site_admins_only(writer_cfg, f, client, auth):
    admin = f.make_user(site_role="admin")
    user = f.make_user()
    org = f.make_org(owner=user)
    item = f.make_item(org, title="Vibrating screen")
    assert found(None, "vibrating")
    _break_item(item.id)
    _queue("item", item.id)
    for _ in range(2):
        get_runtime(writer_cfg).apply_now()
    (row,) = rows()
    assert row.parked_at is not None

    assert client.get("/admin/search").status_code in (302, 401)  # not signed in
    assert client.post("/admin/search/retry", data={"all": "1"}).status_code in (302, 401)
    auth.login(user.email)
    assert client.get("/admin/search").status_code == 403
    assert client.post("/admin/search/retry", data={"all": "1"}).status_code == 403
    auth.logout()

    auth.login(admin.email)
    page = client.get("/admin/search")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"#{row.id}" in html and f"item:{item.id}" in html and "unknown visibility" in html
    assert client.post("/admin/search/retry", data={"job": "x"}).status_code == 400
    db.session.execute(text("UPDATE items SET visibility = 'public' WHERE id = :i"), {"i": item.id})
    db.session.commit()
    resp = client.post("/admin/search/retry", data={"job": str(row.id)})
    assert resp.status_code == 302
    assert rows() == []  # requeued, and applied at once (sync mode)


# --------------------------------------------------------------------------- the database fingerprint


@whoosh_only
def test_an_index_of_another_database_is_never_served_and_is_rebuilt(app, f, tmp_path, caplog):
    from .factories import Factories
    from .factories_foundation import dispose, make_app

    org = f.make_org(owner=f.make_user())
    alpha = f.make_item(org, title="Alpha leaching tank")
    assert found(None, "leaching") == {alpha.id}
    stamp = get_backend(app).index_stamp()
    assert stamp["url"] == identity.safe_url() and stamp["database_id"] == identity.database_id()

    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other = make_app(other_dir, SEARCH_INDEX_DIR=app.config["SEARCH_INDEX_DIR"], SEARCH_WORKER="off")
    try:
        with other.app_context():
            g = Factories()
            bravo = g.make_item(g.make_org(owner=g.make_user()), title="Bravo leaching pond")
            caplog.clear()
            client = other.test_client()
            assert client.get("/").status_code == 200
            assert any("not from this app's database" in r.getMessage() for r in caplog.records)
            page = service.search(None, "leaching")
            assert page.total == 0 and page.hits == [] and page.notice == service.INDEX_REBUILDING
            assert "being rebuilt" in client.get("/search?q=leaching").get_data(as_text=True)
            body = client.get("/healthz").get_json()
            assert body["status"] == "degraded" and body["search"]["index"] == "other-database"

            caplog.clear()
            apply_outbox(get_backend(other), wait=True)  # the writer's next pass
            assert any("rebuilding it" in r.getMessage() for r in caplog.records)
            assert found(None, "leaching") == {bravo.id}
            assert client.get("/healthz").get_json()["search"]["index"] == "ok"
            report = verify_index()
            assert (report["missing"], report["extra"], report["stale"]) == ([], [], [])
    finally:
        dispose(other)


@whoosh_only
def test_an_index_without_a_database_record_is_rebuilt(app, f):
    org = f.make_org(owner=f.make_user())
    item = f.make_item(org, title="Thickener")
    assert found(None, "thickener") == {item.id}
    backend = get_backend(app)
    (backend.base / backend.current_folder() / identity.STAMP_FILE).unlink()  # as before issue 14
    folder = backend.current_folder()
    get_runtime(app)._index_state = None
    get_runtime(app).mode = "off"
    assert service.search(None, "thickener").notice == service.INDEX_REBUILDING
    apply_outbox(backend, wait=True)
    assert backend.current_folder() != folder
    assert found(None, "thickener") == {item.id}


def test_the_recorded_url_has_no_password():
    engine = create_engine("postgresql+psycopg://market:s3cret-pw@db.example:5432/market")
    assert identity.safe_url(engine) == "postgresql+psycopg://market@db.example:5432/market"


# --------------------------------------------------------------------------- a writer killed mid-batch


def _writer_process(app, tmp_path: Path, log_name: str) -> subprocess.Popen:
    env = dict(os.environ, DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"],
               SEARCH_INDEX_DIR=app.config["SEARCH_INDEX_DIR"], SECRET_KEY=SECRET, SEARCH_WORKER="off",
               SEARCH_BATCH="15", MARKETPLACE_INSTANCE=str(tmp_path), FLASK_DEBUG="0",
               SEARCH_BACKEND=app.config["SEARCH_BACKEND"])
    out = open(tmp_path / log_name, "w")
    return subprocess.Popen([str(Path(sys.executable).parent / "flask"), "--app", "app", "search", "apply",
                             "--watch", "--interval", "0.2"], cwd=ROOT, env=env, stdout=out, stderr=out)


def test_a_writer_process_killed_while_writing_leaves_the_site_serving_and_catches_up(app, f, client,
                                                                                       tmp_path):
    owner = f.make_user()
    org = f.make_org(owner=owner)
    base_item = f.make_item(org, title="Baseline crusher")
    assert found(None, "crusher") == {base_item.id}
    runtime = get_runtime(app)
    runtime.mode = "off"  # as under `make serve`: the web side never writes the index
    items = [f.make_item(org, title=f"Ball mill {n}", body="grinding media " * 50) for n in range(240)]
    backend = get_backend(app)

    writer = _writer_process(app, tmp_path, "writer1.log")
    try:
        deadline = time.monotonic() + 90
        while True:  # kill it at a moment it holds the writer lock (writing a batch)
            assert writer.poll() is None, (tmp_path / "writer1.log").read_text()
            assert time.monotonic() < deadline, "the writer never took the lock"
            try:
                with backend.lock(wait=False):
                    pass
            except IndexBusy:
                os.kill(writer.pid, signal.SIGKILL)
                break
            time.sleep(0.001)
    finally:
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    db.session.rollback()
    left = db.session.execute(select(func.count(SearchOutbox.id))).scalar()
    assert left > 0  # killed before it finished

    # The site serves on: pages, search (what was indexed so far), and /healthz says why.
    assert client.get("/").status_code == 200
    assert client.get("/search?q=mill").status_code == 200
    health = client.get("/healthz").get_json()
    assert health["search"]["writer"] == "stopped" and health["search"]["backlog"] == left
    with backend.lock(wait=False):  # the lock died with the process
        pass

    writer = _writer_process(app, tmp_path, "writer2.log")
    try:
        deadline = time.monotonic() + 120
        while db.session.execute(select(func.count(SearchOutbox.id))).scalar():
            assert writer.poll() is None, (tmp_path / "writer2.log").read_text()
            assert time.monotonic() < deadline, "the restarted writer did not catch up"
            time.sleep(0.2)
            db.session.rollback()
        assert client.get("/healthz").get_json()["search"]["writer"] == "running"
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.wait(timeout=30)
    assert writer.returncode == 0, (tmp_path / "writer2.log").read_text()
    assert client.get("/healthz").get_json()["search"]["writer"] == "stopped"  # it said so on the way out
    report = verify_index()
    assert (report["missing"], report["extra"], report["stale"], report["pending_outbox"]) == ([], [], [], 0)
    assert service.search(None, "mill").total == len(items)
