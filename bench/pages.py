"""Page benchmark (issue 16): every page against the stack's ceiling, in the same run.

    python bench/pages.py                          # SQLite, 5 s per page and viewer
    python bench/pages.py --db postgres            # the scripts/pg.sh server
    python bench/pages.py --db both --duration 3 --concurrency 8
    python bench/pages.py --profile                # then cProfile one request of each page
    PAGE_CACHE=off python bench/pages.py           # without the page cache (marketplace/pagecache.py)

The data set is bench/dataset.py's (generated on first use, then reused). The site runs as
`make serve` runs it (scripts/run.sh gunicorn: gunicorn.conf.py, here with 4 sync workers on
127.0.0.1, and one `flask worker` beside it); the ceiling is a Flask hello-world
(bench/hello_app.py) under the same gunicorn.conf.py and worker count, measured before and
after the pages in the same run (the table uses the mean of the two).

For each page and viewer (anonymous, and a contributor signed in through the real sign-in
form, holding its session cookie), `--concurrency` virtual users fetch the page for
`--duration` seconds. Every anonymous virtual user comes from an address of its own
(X-Forwarded-For; the site runs with TRUSTED_PROXIES=1, as behind the reverse proxy), so the
per-address limits count per visitor, not for the whole run. The API is called as its README
section says programs call it: the contributor's calls carry a personal API token per virtual
user (`Authorization: Bearer`, created for the run and revoked after it), so API_RATE_LIMIT
counts per caller and the figure measures the API, not the limiter refusing one shared
address or account (the rows once showed HTTP 429 for that reason). One virtual user alone
can still go faster than a person or program may (API_RATE_LIMIT, 120 a minute): the site
runs with API_RATE_LIMIT raised to BENCH_API_RATE_LIMIT, so every call is still counted (the
limiter's work is in the figure) but none is refused. The table gives requests per second, p50/p95/p99 latency, the ratio
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
import random
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
# Counted as in production (per token, per address), never reached by one virtual user.
BENCH_API_RATE_LIMIT = "1000000/minute"


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


def is_api(path: str) -> bool:
    return path.startswith("/api/")


class ApiTokens:
    """Personal API tokens of the contributor, one per virtual user, for one run: created
    through the tokens service (scope read, a day's expiry) and revoked when the run ends."""

    def __init__(self, env: dict, manifest: dict, n: int):
        self.env, self.manifest, self.n = env, manifest, n
        self.texts: list[str] = []
        self._ids: list[int] = []

    def _app(self):
        return dataset.make_app(dict(self.env, SEARCH_WORKER="off", MAIL_WORKER="off"))

    def __enter__(self) -> "ApiTokens":
        from datetime import timedelta

        app = self._app()
        from marketplace.extensions import db
        from marketplace.models import User, utcnow
        from marketplace.services import tokens as token_svc

        with app.app_context():
            user = db.session.get(User, self.manifest["contributor"]["id"])
            for i in range(self.n):
                t, text = token_svc.create_personal_token(user, f"bench/pages.py virtual user {i}", ["read"],
                                                          utcnow() + timedelta(days=1))
                self.texts.append(text)
                self._ids.append(t.id)
        return self

    def headers(self, index: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.texts[index % len(self.texts)]}"}

    def __exit__(self, *exc) -> None:
        app = self._app()
        from marketplace.extensions import db
        from marketplace.models import ApiToken, User
        from marketplace.services import tokens as token_svc

        with app.app_context():
            user = db.session.get(User, self.manifest["contributor"]["id"])
            for tid in self._ids:
                t = db.session.get(ApiToken, tid)
                if t is not None and t.revoked_at is None:
                    token_svc.revoke_token(user, t)


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


def in_process(env: dict, manifest: dict, pages, profile: bool = False, top: int = 12,
               api_headers: dict | None = None) -> dict:
    """One request of each page and viewer through the real app's test client on the bench
    database: the SQL statements it sends, its size, and (with profile) a cProfile. The
    contributor calls the API with `api_headers` (its token), as in the load."""
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
            h = api_headers if viewer == "contributor" and is_api(path) and api_headers else None
            c.get(path, headers=h)  # warm-up: first-request caches are not the point
            seen.clear()
            event.listen(engine, "before_cursor_execute", count)
            t = time.perf_counter()
            try:
                r = c.get(path, headers=h)
            finally:
                event.remove(engine, "before_cursor_execute", count)
            secs = time.perf_counter() - t
            entry = {"queries": len(seen), "status": r.status_code, "kb": len(r.data) / 1024, "seconds": secs}
            if profile:
                pr = cProfile.Profile()
                pr.enable()
                c.get(path, headers=h)
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
    site = site_server(env, d, args.workers,
                       extra={"TRUSTED_PROXIES": "1", "API_RATE_LIMIT": BENCH_API_RATE_LIMIT})
    results: dict = {}
    ceiling = []
    # Addresses of this run's anonymous visitors: another run (within the limits' windows)
    # counts against other addresses.
    net = random.randrange(1, 250)

    def own_address(index: int) -> dict:
        return {"X-Forwarded-For": f"10.{net}.{index // 250}.{index % 250 + 1}"}

    tokens = ApiTokens(env, manifest, args.concurrency)
    with LoadSampler() as load, tokens:
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
                    if viewer == "anonymous":
                        user = cycle_user(site.port, paths, None, name, headers=own_address)
                    elif all(is_api(x) for x in paths):
                        user = cycle_user(site.port, paths, None, name, headers=tokens.headers)
                    else:
                        user = cycle_user(site.port, paths, cookies, name)
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
        counted = in_process(env, manifest, pages, profile=args.profile, api_headers=tokens.headers(0))
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
            + table(rows, head) + f"\n\nload average during the run: {load.describe()}\n"
            "anonymous rows: each virtual user from an address of its own (X-Forwarded-For); the contributor's "
            f"API row: a personal API token per virtual user (Authorization: Bearer); API_RATE_LIMIT="
            f"{BENCH_API_RATE_LIMIT} (counted, never refusing)\n")
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
