"""`flask search ...`: rebuild, verify, stats, apply."""
from __future__ import annotations

import json
import os
import sys
import time

import click
from flask import current_app
from flask.cli import AppGroup

from ..extensions import db
from . import get_backend
from .documents import DOC_TYPES, all_ids, load_docs
from .worker import drain, pending_count

search_cli = AppGroup("search", help="Search index: rebuild, verify, stats, apply the outbox.")

CHUNK = 1000


def _child_init() -> None:
    # A forked rebuild worker must not share the parent's database connections.
    db.engine.dispose(close=False)
    db.session.remove()


def _load_chunk(doc_type: str, ids):
    docs = load_docs(doc_type, list(ids))
    db.session.rollback()  # end the read transaction; keep the worker's session small
    return [d for d in docs.values() if d is not None]


def rebuild_index(procs: int | None = None, progress=None) -> dict:
    """Build a fresh index from the database into a new folder and swap it in; then
    apply what the outbox collected meanwhile."""
    backend = get_backend()
    chunks = []
    for doc_type in DOC_TYPES:
        ids = all_ids(doc_type)
        chunks += [(doc_type, ids[i:i + CHUNK]) for i in range(0, len(ids), CHUNK)]
    db.session.rollback()
    procs = procs or min(2, os.cpu_count() or 1)

    def after_build():
        # Still under the rebuild's writer lock: apply what the outbox collected meanwhile.
        drain(backend)

    return backend.rebuild(chunks, _load_chunk, procs=procs, progress=progress, child_init=_child_init,
                           after_build=after_build)


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


@search_cli.command("stats")
def stats_cmd() -> None:
    """Documents, segments, size, outbox backlog and cache figures."""
    stats = get_backend().stats()
    stats["pending_outbox"] = pending_count()
    stats["worker"] = current_app.config.get("SEARCH_WORKER")
    click.echo(json.dumps(stats, indent=2, default=str))


@search_cli.command("apply")
@click.option("--watch", is_flag=True, help="Keep running, applying new jobs as they come.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between polls.")
def apply_cmd(watch: bool, interval: float) -> None:
    """Drain the outbox into the index (waits for the writer lock)."""
    from .worker import apply_outbox

    backend = get_backend()
    while True:
        n = apply_outbox(backend, wait=True)
        if not watch:
            click.echo(f"Applied {n} index jobs.")
            return
        if n:
            click.echo(f"Applied {n} index jobs.")
        time.sleep(interval)

