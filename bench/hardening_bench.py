"""Cost of the hardening of issue 15: server-side sessions and shared rate-limit counters.

    python bench/hardening_bench.py              # 2,000 requests of each kind
    python bench/hardening_bench.py --n 500

Prints, on a SQLite file in WAL mode (as `make run` uses):
* a rate-limit hit in the database storage (one upsert in its own transaction), and in the
  per-process memory storage for comparison;
* a whole GET /about through the test client: anonymous, signed in (the session lookup: one
  indexed query joining user_sessions and users), and signed in with "last seen" written on
  every request (what a write per request would cost; the site writes it at most once a
  minute per session);
* SQL statements per signed-in request.
Wall-clock medians and 95th percentiles, with process CPU time (the machine may be shared).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event  # noqa: E402

from marketplace import create_app  # noqa: E402
from marketplace.config import TestingConfig  # noqa: E402
from marketplace.extensions import db  # noqa: E402
from marketplace.ratelimit import DatabaseStorage  # noqa: E402
from marketplace.services import sessions  # noqa: E402


def timed(fn, n: int) -> tuple[float, float, float]:
    """(median ms, p95 ms, CPU ms per call)."""
    walls = []
    cpu0 = time.process_time()
    for _ in range(n):
        t = time.perf_counter()
        fn()
        walls.append((time.perf_counter() - t) * 1000)
    cpu = (time.process_time() - cpu0) * 1000 / n
    walls.sort()
    return statistics.median(walls), walls[int(len(walls) * 0.95) - 1], cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    n = ap.parse_args().n
    tmp = Path(tempfile.mkdtemp(prefix="hardening-bench-"))

    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp / 'bench.db'}"
        SEARCH_INDEX_DIR = str(tmp / "search")
        UPLOAD_DIR = str(tmp / "uploads")

    app = create_app(Cfg)
    with app.app_context():
        db.create_all()
        from tests.factories import Factories

        Factories().make_user(email="bench@example.test")
    rows = []

    storage = DatabaseStorage("database://")
    with app.app_context():
        i = iter(range(10**9))
        rows.append(("rate-limit hit, database storage", *timed(lambda: storage.incr(f"k{next(i) % 50}", 60), n)))
    from limits.storage import MemoryStorage

    memory = MemoryStorage()
    rows.append(("rate-limit hit, memory storage", *timed(lambda: memory.incr("k", 60), n)))

    anon = app.test_client()
    rows.append(("GET /about, anonymous", *timed(lambda: anon.get("/about"), n)))
    signed = app.test_client()
    signed.post("/auth/login", data={"email": "bench@example.test", "password": "correct-horse-battery"})
    assert signed.get("/auth/account").status_code == 200
    rows.append(("GET /about, signed in", *timed(lambda: signed.get("/about"), n)))
    original = sessions.TOUCH_SECONDS
    sessions.TOUCH_SECONDS = -1  # write last_seen_at on every request
    try:
        rows.append(("GET /about, signed in, last-seen written every time", *timed(lambda: signed.get("/about"), n)))
    finally:
        sessions.TOUCH_SECONDS = original

    statements: list[str] = []
    with app.app_context():
        engine = db.engine
    listener = lambda *a: statements.append(a[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    signed.get("/about")
    event.remove(engine, "before_cursor_execute", listener)

    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  median ms   p95 ms   CPU ms/call   (n={n}, SQLite WAL)")
    for name, med, p95, cpu in rows:
        print(f"{name:{width}}  {med:9.3f}  {p95:7.3f}  {cpu:12.3f}")
    print(f"SQL statements for a signed-in GET /about: {len(statements)} "
          f"({sum('user_sessions' in s for s in statements)} on user_sessions)")


if __name__ == "__main__":
    main()
