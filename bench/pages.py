"""Page benchmark (issue 16): every page against the stack's ceiling, in the same run.

    python bench/pages.py                          # SQLite, 5 s per page and viewer
    python bench/pages.py --db postgres            # the scripts/pg.sh server
    python bench/pages.py --db both --duration 3 --concurrency 8
    python bench/pages.py --profile                # then cProfile one request of each page
    PAGE_CACHE=off python bench/pages.py           # without the page cache (marketplace/pagecache.py)

The data set is bench/dataset.py's (generated on first use, then reused). The site runs as
`make serve` runs it (scripts/run.sh gunicorn: gunicorn.conf.py, here with 4 sync workers on
127.0.0.1, and one search index writer beside it); the ceiling is a Flask hello-world
(bench/hello_app.py) under the same gunicorn.conf.py and worker count, measured before and
after the pages in the same run (the table uses the mean of the two).

For each page and viewer (anonymous, and a contributor signed in through the real sign-in
form, holding its session cookie), `--concurrency` virtual users fetch the page for
`--duration` seconds. The table gives requests per second, p50/p95/p99 latency, the ratio
to the ceiling, errors (non-200 answers, timeouts, resets), and the SQL queries one request
issues: counted in a separate pass, after the load, through the test client of the real app
on the same database (SQLAlchemy's before_cursor_execute), after one warm-up request, as
tests/test_query_counts.py counts them, with the page cache off (a rendering; a hit sends
none). The load average is sampled during the run. The page cache is on unless PAGE_CACHE=off
is in the environment; the table says which, and what a probe of the home page answered.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import threading
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=SyntaxWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dataset  # noqa: E402
from loadkit import (Browser, cycle_user, hello_server, ms, run_load, site_server, table)  # noqa: E402


def page_list(manifest: dict) -> list[tuple[str, list[str]]]:
    p = manifest["pages"]
    words = manifest["search_words"]
    return [
        ("home", ["/"]),
        ("challenge list", ["/challenges/"]),
        (f"challenge, {manifest['qa_on'][str(p['mid_challenge'])]} Q&A posts", [f"/challenges/{p['mid_challenge']}"]),
        (f"challenge, {manifest['qa_on'][str(p['big_challenge'])]} Q&A posts", [f"/challenges/{p['big_challenge']}"]),
        (f"failure, {manifest['comments_on_big_failure']} comments", [f"/failures/{p['big_failure']}"]),
        ("search page", [f"/search?q={w}" for w in words[:12]]),
        ("API list", ["/api/v1/challenges"]),
        ("Atom feed", ["/feeds/challenges.atom"]),
    ]


VIEWERS = ("anonymous", "contributor")


class LoadSampler:
    """The 1-minute load average, sampled every 2 s while the run lasts."""

    def __init__(self):
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(os.getloadavg()[0])
            self._stop.wait(2)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    def describe(self) -> str:
        if not self.samples:
            return "-"
        return (f"mean {sum(self.samples) / len(self.samples):.2f}, max {max(self.samples):.2f} "
                f"(1-min load average, {len(self.samples)} samples; {os.cpu_count()} CPUs)")


# --------------------------------------------------------------------------- query counts


def _signed_in_client(app, manifest):
    from loadkit import CSRF_RE

    c = app.test_client()
    html = c.get("/auth/login").get_data(as_text=True)
    token = CSRF_RE.search(html).group(1)
    r = c.post("/auth/login", data={"csrf_token": token, "email": manifest["contributor"]["email"],
                                    "password": manifest["contributor"]["password"]})
    if r.status_code != 302:
        raise RuntimeError(f"test-client sign-in refused: {r.status_code}")
    return c


def in_process(env: dict, manifest: dict, pages, profile: bool = False, top: int = 12) -> dict:
    """One request of each page and viewer through the real app's test client on the bench
    database: the SQL statements it sends, its size, and (with profile) a cProfile."""
    from sqlalchemy import event

    # PAGE_CACHE=off: the statements of a page's rendering (a page cache hit sends none).
    env = dict(env, SEARCH_WORKER="off", RATELIMIT_ENABLED="0", PAGE_CACHE="off")
    app = dataset.make_app(env)
    from marketplace.extensions import db

    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_a):
        seen.append(statement)

    clients = {"anonymous": app.test_client(), "contributor": _signed_in_client(app, manifest)}
    out = {}
    for name, paths in pages:
        for viewer in VIEWERS:
            c = clients[viewer]
            path = paths[0]
            c.get(path)  # warm-up: first-request caches are not the point
            seen.clear()
            event.listen(engine, "before_cursor_execute", count)
            t = time.perf_counter()
            try:
                r = c.get(path)
            finally:
                event.remove(engine, "before_cursor_execute", count)
            secs = time.perf_counter() - t
            entry = {"queries": len(seen), "status": r.status_code, "kb": len(r.data) / 1024, "seconds": secs}
            if profile:
                pr = cProfile.Profile()
                pr.enable()
                c.get(path)
                pr.disable()
                buf = io.StringIO()
                pstats.Stats(pr, stream=buf).sort_stats("cumulative").print_stats(top * 3)
                tot = io.StringIO()
                pstats.Stats(pr, stream=tot).sort_stats("tottime").print_stats(top)
                entry["profile_cumulative"] = buf.getvalue()
                entry["profile_tottime"] = tot.getvalue()
            out[(name, viewer)] = entry
    return out


# --------------------------------------------------------------------------- the run


def run_db(db: str, args) -> str:
    env, manifest = dataset.prepare(db, args.dir, args.seed)
    d = args.dir / db
    pages = page_list(manifest)
    if args.pages:
        pages = [p for p in pages if any(f.lower() in p[0].lower() for f in args.pages)]
    hello = hello_server(d, args.workers)
    site = site_server(env, d, args.workers)
    results: dict = {}
    ceiling = []
    with LoadSampler() as load:
        try:
            hello.start()
            site.start("/healthz", timeout=300)  # a loaded machine may take minutes to boot 4 workers
            # Each gunicorn worker has a cache of its own: 20 requests reach them all.
            probe = Browser(site.port)
            seen = [probe.get("/")[2].get("X-Page-Cache") or "-" for _ in range(20)]
            cache_state = (f"page cache {env.get('PAGE_CACHE', 'on') or 'on'} (PAGE_CACHE); 20 anonymous GET / answered "
                           + ", ".join(f"{seen.count(v)} X-Page-Cache: {v}" for v in sorted(set(seen))))
            print(f"  {db}: {cache_state}", file=sys.stderr, flush=True)
            b = Browser(site.port)
            b.sign_in(manifest["contributor"]["email"], manifest["contributor"]["password"])
            cookies = dict(b.cookies)
            st, el = run_load(cycle_user(hello.port, ["/"], None, "ceiling"), args.concurrency, args.duration,
                              args.procs)
            ceiling.append((st["ceiling"], el))
            for name, paths in pages:
                for viewer in VIEWERS:
                    user = cycle_user(site.port, paths, cookies if viewer == "contributor" else None, name)
                    st, el = run_load(user, args.concurrency, args.duration, args.procs)
                    results[(name, viewer)] = (st.get(name), el)
                    s = st.get(name)
                    print(f"  {db}: {name} / {viewer}: {len(s.latencies) / el if s else 0:.1f} req/s",
                          file=sys.stderr, flush=True)
            st, el = run_load(cycle_user(hello.port, ["/"], None, "ceiling"), args.concurrency, args.duration,
                              args.procs)
            ceiling.append((st["ceiling"], el))
        finally:
            site.stop()
            hello.stop()
    counted = in_process(env, manifest, pages, profile=args.profile)
    ceil_rps = sum(len(s.latencies) / el for s, el in ceiling) / len(ceiling)
    rows = [["ceiling (Flask hello-world)", "-", f"{ceil_rps:.0f}",
             ms(ceiling[0][0].pct(50)), ms(ceiling[0][0].pct(95)), ms(ceiling[0][0].pct(99)), "-", "100%",
             str(sum(s.errors for s, _ in ceiling)), "-"]]
    for name, _paths in pages:
        for viewer in VIEWERS:
            s, el = results[(name, viewer)]
            q = counted[(name, viewer)]
            rps = len(s.latencies) / el if s else 0.0
            rows.append([name, viewer, f"{rps:.1f}", ms(s.pct(50)), ms(s.pct(95)), ms(s.pct(99)),
                         str(q["queries"]) if q["status"] == 200 else f"{q['queries']} (HTTP {q['status']})",
                         f"{100 * rps / ceil_rps:.2f}%", str(s.errors) + (f" {sorted(s.error_kinds)}" if s.errors else ""),
                         f"{q['kb']:.0f}"])
    head = ["page", "viewer", "req/s", "p50 ms", "p95 ms", "p99 ms", "SQL/req", "of ceiling", "errors", "KB"]
    text = (f"\n## {db}: {args.concurrency} virtual users, {args.duration:g} s per row, gunicorn {args.workers} sync "
            f"workers\n\n{cache_state}\n(SQL/req: one rendering of the page, page cache off)\n\n"
            + table(rows, head) + f"\n\nload average during the run: {load.describe()}\n")
    if args.profile:
        text += "\n### profiles (one request each, test client, cProfile)\n"
        for (name, viewer), q in counted.items():
            text += f"\n#### {name} / {viewer}: {q['seconds'] * 1000:.0f} ms, {q['queries']} queries\n"
            text += "\n".join(q["profile_tottime"].splitlines()[:40]) + "\n"
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="sqlite")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per page and viewer (default 5)")
    ap.add_argument("--concurrency", type=int, default=8, help="virtual users (default 8)")
    ap.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4, as the issue measures)")
    ap.add_argument("--procs", type=int, default=2, help="client processes (default 2)")
    ap.add_argument("--dir", type=Path, default=dataset.DEFAULT_DIR)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--pages", nargs="*", help="only pages whose name contains one of these words")
    ap.add_argument("--profile", action="store_true", help="also cProfile one request of each page")
    args = ap.parse_args()
    out = []
    for db in (["sqlite", "postgres"] if args.db == "both" else [args.db]):
        text = run_db(db, args)
        print(text, flush=True)
        out.append(text)


if __name__ == "__main__":
    main()
