"""`flask search ...`: rebuild, verify, stats, apply, retry."""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import delete, insert, select

from ..extensions import db
from ..models import SearchOutbox, utcnow
from . import get_backend, get_runtime, identity
from .documents import DOC_TYPES, all_ids, load_docs
from .worker import drain, pending_count

log = logging.getLogger(__name__)

search_cli = AppGroup("search", help="Search index: rebuild, verify, stats, apply the outbox, retry parked jobs.")

CHUNK = 1000


def _child_init() -> None:
    # A forked rebuild worker must not share the parent's database connections.
    db.engine.dispose(close=False)
    db.session.remove()


def _load_chunk(doc_type: str, ids):
    """The documents of one rebuild chunk. A row whose document cannot be built (a bug, or
    data the rules refuse) does not fail the rebuild: it is left out of the new index
    (fail closed), logged with its traceback, and queued as an outbox job, which the
    writer retries and, if it keeps failing, parks where operators see it."""
    try:
        docs = load_docs(doc_type, list(ids))
    except Exception:
        db.session.rollback()
        docs, bad = {}, []
        for doc_id in ids:
            try:
                docs.update(load_docs(doc_type, [doc_id]))
            except Exception:
                db.session.rollback()
                log.exception("search rebuild: %s:%s cannot be indexed; left out and queued for retry",
                              doc_type, doc_id)
                bad.append(doc_id)
        if bad:
            db.session.execute(insert(SearchOutbox), [
                {"doc_type": doc_type, "doc_id": i, "narrowing": False, "created_at": utcnow()} for i in bad])
            db.session.commit()
    db.session.rollback()  # end the read transaction; keep the worker's session small
    return [d for d in docs.values() if d is not None]


def rebuild_index(procs: int | None = None, progress=None, *, builder: str | None = None,
                  locked: bool = False) -> dict:
    """Build a fresh index from the database into a new folder and swap it in; then
    apply what the outbox collected meanwhile. Jobs that were retrying or parked when
    the rebuild started are covered by it (their documents are read afterwards) and
    removed. `locked`: the caller holds the writer lock."""
    backend = get_backend()
    stamp = identity.fingerprint()
    chunks = []
    for doc_type in DOC_TYPES:
        ids = all_ids(doc_type)
        chunks += [(doc_type, ids[i:i + CHUNK]) for i in range(0, len(ids), CHUNK)]
    covered = list(db.session.execute(select(SearchOutbox.id).where(
        (SearchOutbox.attempts > 0) | SearchOutbox.parked_at.is_not(None))).scalars())
    db.session.rollback()
    procs = procs or min(2, os.cpu_count() or 1)
    builder = builder or current_app.config.get("SEARCH_REBUILD_BUILDER", "fast")

    def after_build():
        # Still under the rebuild's writer lock: apply what the outbox collected meanwhile.
        if covered:
            for start in range(0, len(covered), 500):
                db.session.execute(delete(SearchOutbox).where(SearchOutbox.id.in_(covered[start:start + 500])))
            db.session.commit()
        drain(backend)

    return backend.rebuild(chunks, _load_chunk, procs=procs, progress=progress, child_init=_child_init,
                           after_build=after_build, builder=builder, stamp=stamp, locked=locked)


def verify_index() -> dict:
    """Compare the index with the database: missing, extra and stale documents."""
    backend = get_backend()
    indexed = backend.digests()
    expected: dict[str, str] = {}
    for doc_type in DOC_TYPES:
        ids = all_ids(doc_type)
        for i in range(0, len(ids), CHUNK):
            for doc in load_docs(doc_type, ids[i:i + CHUNK]).values():
                if doc is not None:
                    expected[doc.key] = doc.digest()
            db.session.rollback()
    missing = sorted(k for k in expected if k not in indexed)
    extra = sorted(k for k in indexed if k not in expected)
    stale = sorted(k for k in expected if k in indexed and indexed[k] != expected[k])
    return {"documents": len(expected), "indexed": len(indexed), "missing": missing, "extra": extra,
            "stale": stale, "pending_outbox": pending_count()}


@search_cli.command("rebuild")
@click.option("--procs", type=int, default=None, help="Worker processes (default: up to 2 cores).")
def rebuild_cmd(procs: int | None) -> None:
    """Build a fresh index from the database in a new folder, then swap it in atomically.

    Searches keep using the old index until the swap; changes made meanwhile are applied
    from the outbox right after it."""
    total = sum(len(all_ids(t)) for t in DOC_TYPES)
    db.session.rollback()
    started = time.monotonic()
    with click.progressbar(length=total, label="Indexing", show_pos=True, show_percent=True,
                           file=sys.stderr) as bar:
        info = rebuild_index(procs=procs, progress=bar.update)
    secs = time.monotonic() - started
    rate = info["documents"] / secs if secs else 0
    click.echo(f"Indexed {info['documents']} documents in {secs:.1f} s ({rate:.0f}/s) into "
               f"{info['folder']} ({info['size_bytes'] / 1e6:.1f} MB).")


@search_cli.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_cmd(as_json: bool) -> None:
    """Compare the index with the database; exit 1 on any drift, naming it."""
    report = verify_index()
    drift = report["missing"] or report["extra"] or report["stale"]
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(f"{report['documents']} documents in the database, {report['indexed']} in the index, "
                   f"{report['pending_outbox']} jobs waiting in the outbox.")
        for name in ("missing", "extra", "stale"):
            keys = report[name]
            if keys:
                shown = ", ".join(keys[:20]) + (f" and {len(keys) - 20} more" if len(keys) > 20 else "")
                click.echo(f"{name.capitalize()}: {len(keys)}: {shown}", err=True)
    if drift:
        if not as_json:
            hint = " (jobs are still waiting: run `flask search apply`)" if report["pending_outbox"] else ""
            click.echo(f"Drift found{hint}.", err=True)
        sys.exit(1)
    if not as_json:
        click.echo("The index matches the database.")


def collect_stats(limit_jobs: int = 20) -> dict:
    """What `flask search stats` shows: the index, the database it belongs to, the writer,
    the outbox (with the jobs that are failing) and the engine's caches."""
    from .health import outbox_summary, read_writer_status, writer_state
    from .worker import failing_jobs

    runtime = get_runtime()
    backend = runtime.backend
    index = backend.stats()
    stamp = backend.index_stamp()
    fp = identity.fingerprint()
    report = read_writer_status(backend.base) or {}
    writer = writer_state(runtime)
    writer["mode"] = runtime.mode
    writer["last_error"] = report.get("last_error")
    jobs = [{"id": j.id, "document": f"{j.doc_type}:{j.doc_id}", "attempts": j.attempts,
             "state": "parked" if j.parked_at else "retrying",
             "parked_at": j.parked_at.isoformat(timespec="seconds") if j.parked_at else None,
             "retry_at": j.retry_at.isoformat(timespec="seconds") if j.retry_at else None,
             "created_at": j.created_at.isoformat(timespec="seconds") if j.created_at else None,
             "error": (j.last_error or "").strip()} for j in failing_jobs(limit_jobs)]
    return {
        "index": index,
        "database": {"this": fp, "index_built_from": stamp,
                     "matches": identity.same_database(stamp, fp) if stamp else None},
        "writer": writer,
        "outbox": outbox_summary(),
        "failing_jobs": jobs,
        "lag_threshold_seconds": float(current_app.config.get("SEARCH_LAG_DEGRADED_SECONDS", 120)),
    }


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def _size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)  # pragma: no cover


def format_stats(st: dict) -> str:
    """The readable form of collect_stats()."""
    lines = []
    ix = st["index"]
    lines.append("Search index")
    if not ix.get("folder"):
        lines.append("  folder      none yet (created by the first write or `flask search rebuild`)")
    elif (ix.get("engine") or {}).get("name") == "postgres":
        lines.append(f"  table       {ix['folder']} in this PostgreSQL database (SEARCH_BACKEND=postgres)")
        lines.append(f"  documents   {ix['documents']:,} live; vocabulary {ix.get('vocabulary', 0):,} words")
        lines.append(f"  size        {_size(ix.get('size_bytes', 0))} (table and indexes)")
    else:
        segs = ix.get("segments", [])
        lines.append(f"  folder      {ix['folder']} (generation {ix.get('generation')}, schema "
                     f"v{ix.get('schema_version')})")
        lines.append(f"  documents   {ix['documents']:,} live, {ix.get('deleted', 0):,} deleted, in "
                     f"{len(segs)} segment{'s' if len(segs) != 1 else ''}"
                     + (f" ({', '.join(f'{n:,}' for n in segs[:8])}{', …' if len(segs) > 8 else ''})" if segs else ""))
        lines.append(f"  size        {_size(ix.get('size_bytes', 0))}")
    db_ = st["database"]
    if not ix.get("folder"):
        pass
    elif db_["matches"] is True:
        lines.append(f"  database    built from this database ({db_['this']['url']})")
    elif db_["index_built_from"] is None:
        lines.append("  database    NOT RECORDED: built before indexes recorded their database; "
                     "the writer rebuilds it")
    else:
        built = db_["index_built_from"]
        lines.append(f"  database    ANOTHER DATABASE ({built.get('url')}); not served; the writer rebuilds it")
    w = st["writer"]
    lines.append("Index writer")
    mode_help = {"thread": "a thread in each web process", "sync": "applied at each commit (tests)",
                 "off": "a separate process (`flask worker` or `flask search apply --watch`)",
                 "watch": "a separate process (`flask search apply --watch`)",
                 "worker": "a separate process (`flask worker`, as `make serve` runs it)"}
    lines.append(f"  mode        {w['mode']}: {mode_help.get(w['mode'], '')}")
    state = w["state"]
    detail = ""
    if w.get("pid"):
        detail = f" (pid {w['pid']}, last report {_ago(w.get('report_age_seconds'))})"
    lines.append(f"  state       {state}{detail}")
    if w.get("last_success_at"):
        lines.append(f"  last write  {_ago(time.time() - float(w['last_success_at']))}")
    if w.get("consecutive_failures"):
        lines.append(f"  failing     {w['consecutive_failures']} pass(es) in a row")
    if w.get("last_error") and w.get("last_error_at"):
        last = [x for x in w["last_error"].strip().splitlines() if x.strip()]
        lines.append(f"  last error  {_ago(time.time() - float(w['last_error_at']))}: {last[-1].strip() if last else ''}")
    ob = st["outbox"]
    lines.append("Outbox")
    age = ob["oldest_pending_age_seconds"]
    lag = ""
    if age is not None:
        lag = f", oldest queued {_ago(age)}"
        if age > st["lag_threshold_seconds"]:
            lag += f" (LAGGING: more than {st['lag_threshold_seconds']:.0f} s)"
    lines.append(f"  waiting     {ob['pending']:,} job{'s' if ob['pending'] != 1 else ''}{lag}")
    lines.append(f"  retrying    {ob['retrying']:,}")
    lines.append(f"  parked      {ob['parked']:,}" + ("  (see below; `flask --app app search retry` queues "
                                                       "them again)" if ob["parked"] else ""))
    for j in st["failing_jobs"]:
        err = [x for x in j["error"].splitlines() if x.strip()]
        when = f"parked {j['parked_at']}" if j["state"] == "parked" else f"next try {j['retry_at']}"
        lines.append(f"    #{j['id']} {j['document']}: {j['state']} after {j['attempts']} attempt"
                     f"{'s' if j['attempts'] != 1 else ''}, {when}")
        if err:
            lines.append(f"        {err[-1].strip()}")
    eng = ix.get("engine")
    if eng:
        lines.append("Query engine cache")
        lines.append(f"  postings    {eng.get('cached_postings', 0):,} in {eng.get('cached_terms', 0):,} terms; "
                     f"{eng.get('cache_hits', 0):,} hits, {eng.get('cache_misses', 0):,} misses")
    return "\n".join(lines)


@search_cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def stats_cmd(as_json: bool) -> None:
    """The index (documents, segments, size, database), the writer's state, the outbox
    (waiting, retrying and parked jobs, with their errors) and cache figures."""
    st = collect_stats()
    if as_json:
        click.echo(json.dumps(st, indent=2, default=str))
    else:
        click.echo(format_stats(st))


@search_cli.command("retry")
@click.argument("job_ids", nargs=-1, type=int)
@click.option("--all", "all_", is_flag=True, help="Queue every parked job again.")
def retry_cmd(job_ids: tuple[int, ...], all_: bool) -> None:
    """Queue parked index jobs again (by id, as `search stats` lists them, or --all)."""
    from .worker import retry_parked

    if not job_ids and not all_:
        raise click.UsageError("name the parked jobs to retry (ids from `flask search stats`), or use --all.")
    n = retry_parked(None if all_ else list(job_ids))
    click.echo(f"Queued {n} parked job{'s' if n != 1 else ''} again." if n else "No such parked job.")


@search_cli.command("apply")
@click.option("--watch", is_flag=True, help="Keep running, applying new jobs as they come (the index writer).")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between polls.")
def apply_cmd(watch: bool, interval: float) -> None:
    """Drain the outbox into the index (waits for the writer lock).

    With --watch this is an index writer on its own (`make serve` runs `flask worker`,
    whose search kind does the same): a failing job is retried with
    back-off and then parked, a failing pass is logged and retried, and it reports its
    state for /healthz; an index built from another database is rebuilt first."""
    from .worker import WriterLoop, apply_outbox

    backend = get_backend()
    if not watch:
        n = apply_outbox(backend, wait=True, rebuild_procs=min(2, os.cpu_count() or 1))
        click.echo(f"Applied {n} index jobs.")
        st = _failing_summary()
        if st:
            click.echo(st, err=True)
        return
    loop = WriterLoop(current_app._get_current_object(), backend, mode="watch", interval=interval, wait=True,
                      rebuild_procs=min(2, os.cpu_count() or 1))
    log.info("search index writer started (pid %d)", os.getpid())

    def _terminate(_signum, _frame):
        raise SystemExit(0)  # a supervisor's TERM: report "stopped" on the way out

    signal.signal(signal.SIGTERM, _terminate)
    try:
        while True:
            n = loop.run_once()
            if n:
                click.echo(f"Applied {n} index jobs.")
            time.sleep(loop.delay())
    finally:
        loop.stopped()


def _failing_summary() -> str:
    from .health import outbox_summary

    ob = outbox_summary()
    if not (ob["retrying"] or ob["parked"]):
        return ""
    return (f"{ob['retrying']} job(s) failed and will be retried, {ob['parked']} parked: "
            f"see `flask --app app search stats`.")
