"""Profile single requests of bench/pages.py's pages on the bench data set.

    python bench/profile_pages.py --db sqlite failure "1000 Q&A"    # pages whose name has these
    python bench/profile_pages.py --db postgres --queries home      # SQL statements, grouped

Each page is requested once as a warm-up, then once under cProfile through the real app's test
client (anonymous, and the contributor signed in through the sign-in form). Printed: the
functions with the most own time, then our code (marketplace/, templates/) by cumulative time;
with --queries, the statements the request sent, grouped by their first 150 characters.
"""
from __future__ import annotations

import argparse
import collections
import cProfile
import io
import pstats
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=SyntaxWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dataset  # noqa: E402
import pages  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--dir", type=Path, default=dataset.DEFAULT_DIR)
    ap.add_argument("--queries", action="store_true", help="group the SQL statements instead of profiling")
    ap.add_argument("--top", type=int, default=14)
    ap.add_argument("names", nargs="*", help="only pages whose name contains one of these (default: all)")
    a = ap.parse_args()
    env, manifest = dataset.prepare(a.db, a.dir)
    chosen = [p for p in pages.page_list(manifest) if not a.names or any(n in p[0] for n in a.names)]
    app = dataset.make_app(dict(env, SEARCH_WORKER="off", RATELIMIT_ENABLED="0"))
    from sqlalchemy import event

    from marketplace.extensions import db

    with app.app_context():
        engine = db.engine
    clients = {"anonymous": app.test_client(), "contributor": pages._signed_in_client(app, manifest)}
    seen: list[str] = []

    def count(_c, _cur, statement, *_a):
        seen.append(" ".join(statement.split()))

    for name, paths in chosen:
        for viewer, c in clients.items():
            c.get(paths[0])
            if a.queries:
                seen.clear()
                event.listen(engine, "before_cursor_execute", count)
                try:
                    c.get(paths[0])
                finally:
                    event.remove(engine, "before_cursor_execute", count)
                print(f"\n#### {name} / {viewer}: {len(seen)} queries")
                for stmt, n in collections.Counter(s[:150] for s in seen).most_common(8):
                    print(f"  {n:5d}x {stmt}")
                continue
            pr = cProfile.Profile()
            t = time.perf_counter()
            pr.enable()
            r = c.get(paths[0])
            pr.disable()
            print(f"\n######## {name} / {viewer}: {(time.perf_counter() - t) * 1000:.0f} ms (under cProfile), "
                  f"HTTP {r.status_code}, {len(r.data) / 1024:.0f} KB")
            for sort, restrict in (("tottime", ()), ("cumulative", (r"marketplace/|templates/",))):
                buf = io.StringIO()
                pstats.Stats(pr, stream=buf).sort_stats(sort).print_stats(*restrict, a.top)
                print("\n".join(line for line in buf.getvalue().splitlines()[6:] if line.strip()))


if __name__ == "__main__":
    main()
