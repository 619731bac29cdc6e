"""What a relevance search costs on the PostgreSQL search backend, word by word (issue 13).

    python bench/pg_rank.py                 # the bench data set's PostgreSQL database
    python bench/pg_rank.py --runs 15 --words 6

On bench/dataset.py's PostgreSQL data set (34,000 documents), with the PostgreSQL search
backend's table filled by the real rebuild on first use (SEARCH_BACKEND=postgres; the site's
Whoosh index is not touched): for the most common words of the index and a few rarer ones,
for an anonymous visitor and for the bench contributor, the median wall time of
backend.search() as the search page calls it (relevance, first page of 20, facets: one
statement that reads the matches once), against the two statements it ran before (the
total with the facet counts, then the ranked page: every match read twice), and whether
the page is the same.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=SyntaxWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dataset  # noqa: E402
from loadkit import table  # noqa: E402


def median_ms(fn, runs: int) -> float:
    fn()  # warm
    xs = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        xs.append(time.perf_counter() - t)
    return 1000 * statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--words", type=int, default=5, help="how many of the commonest words (and as many rare)")
    ap.add_argument("--dir", type=Path, default=dataset.DEFAULT_DIR)
    args = ap.parse_args()
    env, manifest = dataset.prepare("postgres", args.dir)
    status_dir = tempfile.mkdtemp(prefix="pg-rank-")
    app = dataset.make_app(dict(env, SEARCH_BACKEND="postgres", SEARCH_WORKER="off", MAIL_WORKER="off",
                                SEARCH_INDEX_DIR=status_dir))
    from sqlalchemy import text

    from marketplace import policy
    from marketplace.extensions import db
    from marketplace.models import User
    from marketplace.search import get_backend
    from marketplace.search.backend import SearchQuery
    from marketplace.search.cli import rebuild_index
    from marketplace.search.pg_backend import TABLE, _order, _where
    from marketplace.search.querylang import parse

    with app.app_context():
        n = db.session.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar()
        if n == 0:
            print("pg_rank: filling search_documents (rebuild, SEARCH_BACKEND=postgres)...", file=sys.stderr,
                  flush=True)
            rebuild_index()
            n = db.session.execute(text(f"SELECT count(*) FROM {TABLE}")).scalar()
        stat = db.session.execute(text(
            f"SELECT word, ndoc FROM ts_stat('SELECT tsv FROM {TABLE}') WHERE length(word) > 3 "
            "ORDER BY ndoc DESC, word")).all()
        common = stat[:args.words]
        rare = [r for r in stat if 20 <= r[1] <= 200][:args.words]
        backend = get_backend()
        contributor = db.session.get(User, manifest["contributor"]["id"])
        from flask_login import AnonymousUserMixin

        viewers = {"anonymous": policy.principals(AnonymousUserMixin()),
                   "contributor": policy.principals(contributor)}
        db.session.commit()
        rows = []
        for word, ndoc in common + rare:
            for vname, principals in viewers.items():
                q = SearchQuery(parsed=parse(word), principals=principals, sort="relevance", limit=20, facets=True)
                w = _where(q)
                score, order = _order("relevance")
                before_page = text(f"SELECT d.key, {score} AS score FROM {TABLE} d WHERE {w.text()} "
                                   f"ORDER BY {order} LIMIT 20")
                before_facets = text(BEFORE_FACETS.format(table=TABLE, where=w.text()))
                hits = backend.search(q)
                same = hits.hits == [(k, float(x)) for k, x in db.session.execute(before_page, w.params)]
                now = median_ms(lambda: backend.search(q), args.runs)
                f_ms = median_ms(lambda: db.session.execute(before_facets, w.params).all(), args.runs)
                p_ms = median_ms(lambda: db.session.execute(before_page, w.params).all(), args.runs)
                rows.append([word, f"{ndoc:,}", vname, f"{hits.total:,}", f"{now:.1f}", f"{f_ms:.1f}",
                             f"{p_ms:.1f}", f"{f_ms + p_ms:.1f}", "yes" if same else "NO"])
                db.session.rollback()
        print(f"\n## PostgreSQL search, {n:,} documents: median of {args.runs} runs, ms "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)\n")
        print(table(rows, ["word", "documents with it", "viewer", "matches visible", "search() now: one statement",
                           "before: total and facets", "before: ranked page", "before: both",
                           "same page as before"]))


# The two statements search() ran before it read the matches once (_search_sql).
BEFORE_FACETS = (
    "WITH m AS MATERIALIZED (SELECT d.kind, d.status, d.org, d.tags FROM {table} d WHERE {where}) "
    "SELECT '' AS f, NULL AS v, count(*) AS n FROM m "
    "UNION ALL SELECT 'kind', kind, count(*) FROM m GROUP BY kind "
    "UNION ALL SELECT 'status', status, count(*) FROM m GROUP BY status "
    "UNION ALL SELECT 'org', org, count(*) FROM m WHERE org IS NOT NULL GROUP BY org "
    "UNION ALL SELECT 'tags', t, count(*) FROM m CROSS JOIN LATERAL unnest(m.tags) AS t GROUP BY t")


if __name__ == "__main__":
    main()
