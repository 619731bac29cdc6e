"""Search benchmark: rebuild speed, query latency for three kinds of user, SQLite FTS5 as
the reference engine, and a leak check against the policy module. Prints one table.

    python bench/search_bench.py                 # 100,000 documents (a few minutes)
    python bench/search_bench.py --docs 20000    # smaller corpus
    python bench/search_bench.py --docs 20000 --engine both --queries 100 --no-fts
                                                 # the fast engine and Whoosh's own Searcher
                                                 # (SEARCH_ENGINE=whoosh) on the same index
    python bench/search_bench.py --rebuild-only --builder whoosh   # rebuild figure only, with
                                                 # Whoosh's own writer instead of segments.py
    python bench/search_bench.py --rebuild-only --dir /tmp/sb       # keeps the corpus: a second
                                                 # run with the same --dir rebuilds it only
    python bench/search_bench.py --docs 20000 --postgres "$(scripts/pg.sh start)"
                                                 # the PostgreSQL backend side by side: the same
                                                 # corpus and queries in a new database there

The corpus is generated with a fixed seed: documents of 50-600 words drawn from a Zipf
distribution over a 30,000-word vocabulary (with real words among the most frequent),
some Markdown, three item kinds, four visibility levels, drafts, hidden items, 1,000
organisations, tags, access grants (the contributor holds 200, plus a few lapsed ones)
and invitation lists. Queries mix single words of every frequency, AND of two or three
words, phrases taken from the documents, OR, exclusions and the filters type:, tag:,
status: and org:; every query also computes the facets, as the search page does.

With --engine both, the index is built once (by the fast rebuild) and the same queries run
through each query engine in turn, each after its own warm-up.

Latency is measured two ways: "engine" is backend.search() alone; "page" is the whole
service.search() a request runs (principals and re-checks from the database, the search,
loading the page's rows through policy.visible(), snippets), without HTML rendering. A
warm-up with other queries of the same mix comes first, as a running server has warm
caches. Wall-clock figures are shown with CPU time where the machine may be shared.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

warnings.filterwarnings("ignore", category=SyntaxWarning)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

REAL_WORDS = (
    "data process energy water cost failure challenge asset design test model production supply chain "
    "customer market material sensor software hardware battery plastic recycling waste carbon emission "
    "efficiency quality safety maintenance factory logistics transport hydrogen solar wind grid storage "
    "digital platform analytics machine learning predictive prototype pilot partner university research "
    "funding patent licence equipment laboratory expertise robot gripper vision inspection welding coating "
    "polymer steel concrete heat pump cooling drone farm crop soil irrigation packaging label traceability "
    "blockchain sorting warehouse fleet charging vehicle engine turbine bearing vibration noise acoustic "
    "optical laser fibre membrane filter catalyst enzyme fermentation protein textile fashion retail "
    "health hospital patient device imaging diagnostic wearable elderly care mobility city building "
    "insulation window facade timber wood paper pulp glass ceramic metal casting forging additive printing"
).split()
STOP = "the of and to in is for that with on as by this be are from at or it an we can will our".split()
SYLLABLES = ("ka ro mi sen tor al ve qui dra pel nor cy lum ba te gri fo zan ex pro mar lin cos ret sil vo "
             "un dis ter ma").split()
KINDS = ["challenge", "failure", "asset"]
VIS = [("public", .45), ("registered", .25), ("invited", .15), ("organisation", .15)]
STATUS = [("open", .55), ("closed", .15), ("archived", .10), ("draft", .20)]


# --------------------------------------------------------------------------- corpus


class Corpus:
    def __init__(self, seed: int, vocab_size: int = 30_000):
        self.rng = np.random.default_rng(seed)
        self.py = random.Random(seed)
        words = list(dict.fromkeys(REAL_WORDS))
        seen = set(words) | set(STOP)
        while len(words) < vocab_size:
            w = "".join(self.py.choice(SYLLABLES) for _ in range(self.py.randint(2, 4)))
            if w not in seen:
                seen.add(w)
                words.append(w)
        # Real words take the frequent ranks (after the stop words, which lead every text).
        self.vocab = np.array(STOP + words, dtype=object)
        ranks = np.arange(1, len(self.vocab) + 1, dtype=np.float64)
        p = 1.0 / ranks ** 1.07
        self.cdf = np.cumsum(p / p.sum())

    def words(self, n: int) -> list[str]:
        idx = np.searchsorted(self.cdf, self.rng.random(n))
        return list(self.vocab[np.minimum(idx, len(self.vocab) - 1)])

    def text(self, n: int) -> str:
        ws = self.words(n)
        # A little Markdown, as people write it.
        out, i = [], 0
        while i < len(ws):
            k = int(self.rng.integers(20, 60))
            para = ws[i:i + k]
            r = self.rng.random()
            if r < .15 and len(para) > 3:
                para[1] = f"**{para[1]}**"
            elif r < .25 and len(para) > 3:
                para[2] = f"[{para[2]}](https://example.org/{para[2]})"
            elif r < .3:
                para = ["-"] + para
            out.append(" ".join(para))
            i += k
        return "\n\n".join(out)


def _pick(rng: np.random.Generator, table) -> str:
    r, acc = rng.random(), 0.0
    for value, p in table:
        acc += p
        if r < acc:
            return value
    return table[-1][0]


def _tag_pool(c: Corpus) -> list[str]:
    # The first 300 distinct non-stop words of the vocabulary: the same for a given seed.
    return [w for w in c.vocab[len(STOP):len(STOP) + 300]]


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the rebuild workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def build_corpus(app, n_docs: int, seed: int) -> dict:
    """Insert organisations, users, items, tags, grants and lists; return the users."""
    from sqlalchemy import insert, select

    from marketplace.extensions import db
    from marketplace.models import (AccessGrant, InvitationList, Item, ItemList, ItemTag, ListMember,
                                    Membership, Organisation, User)

    c = Corpus(seed)
    rng = c.rng
    n_orgs = 1000
    n_items = max(0, n_docs - n_orgs)
    now = datetime.now(timezone.utc)
    s = db.session
    s.execute(insert(Organisation), [
        {"id": i, "name": f"Organisation {i} {' '.join(c.words(2))}", "slug": f"org-{i}",
         "kind": ["company", "cluster", "university", "public-body"][i % 4],
         "description": c.text(int(rng.integers(20, 80))), "description_html": "", "website": "",
         "created_at": now - timedelta(days=int(rng.integers(1, 2000)))}
        for i in range(1, n_orgs + 1)])
    n_users = 5000
    s.execute(insert(User), [
        {"id": i, "email": f"user{i}@example.test", "display_name": f"User {i}", "password_hash": "x",
         "site_role": "user", "created_at": now, "session_version": 1, "banned": False}
        for i in range(1, n_users + 1)])
    # Organisation sizes follow a power law: a few large posters, many small ones.
    org_of = np.minimum((rng.pareto(1.2, n_items) * 40).astype(int) % n_orgs + 1, n_orgs)
    tag_pool = _tag_pool(c)
    items, tags = [], []
    for i in range(1, n_items + 1):
        kind = KINDS[int(rng.integers(0, 3))]
        vis = _pick(rng, VIS)
        status = _pick(rng, STATUS)
        created = now - timedelta(minutes=int(rng.integers(1, 3_000_000)))
        items.append({
            "id": i, "kind": kind, "org_id": int(org_of[i - 1]), "title": " ".join(c.words(int(rng.integers(4, 11)))).capitalize(),
            "summary": " ".join(c.words(int(rng.integers(8, 25)))), "body": c.text(int(rng.integers(50, 601))),
            "body_html": "", "visibility": vis, "status": status, "created_at": created, "updated_at": created,
            "published_at": None if status == "draft" else created,
            "hidden_at": now if rng.random() < .01 else None,
            "deadline": (now + timedelta(days=int(rng.integers(-30, 365)))) if kind == "challenge" else None,
        })
        for t in set(c.py.sample(tag_pool, int(rng.integers(0, 5)))):
            tags.append({"item_id": i, "tag": t})
        if len(items) >= 5000:
            s.execute(insert(Item), items)
            items = []
    if items:
        s.execute(insert(Item), items)
    for k in range(0, len(tags), 20000):
        s.execute(insert(ItemTag), tags[k:k + 20000])

    invited = [r for r in s.execute(select(Item.id).where(Item.visibility == "invited", Item.status != "draft")).scalars()]
    # Users: the org admin (1), the contributor with 200 grants (2), then everyone else.
    admin_org = int(np.bincount(org_of).argmax())
    memberships = [{"org_id": admin_org, "user_id": 1, "role": "admin", "created_at": now},
                   {"org_id": (admin_org % n_orgs) + 1, "user_id": 1, "role": "member", "created_at": now},
                   {"org_id": 7, "user_id": 2, "role": "member", "created_at": now}]
    for u in range(3, n_users + 1):
        memberships.append({"org_id": int(rng.integers(1, n_orgs + 1)), "user_id": u, "role": "member",
                            "created_at": now})
    s.execute(insert(Membership), [dict(m) for m in {(m["org_id"], m["user_id"]): m for m in memberships}.values()])
    grants = []
    picks = c.py.sample(invited, min(len(invited), 210))
    for j, item_id in enumerate(picks):
        lapsed = j >= 200  # ten lapsed grants exercise the query-time re-check
        grants.append({"item_id": item_id, "user_id": 2, "reason": "manual", "created_at": now,
                       "expires_at": now - timedelta(days=1) if lapsed and j % 2 else None,
                       "revoked_at": now if lapsed and not j % 2 else None})
    for u in range(3, n_users + 1):  # everyone else: 0-200 grants, mostly few
        for item_id in c.py.sample(invited, min(len(invited), int(min(200, rng.pareto(1.5) * 3)))):
            grants.append({"item_id": item_id, "user_id": u, "reason": "manual", "created_at": now})
    for k in range(0, len(grants), 20000):
        s.execute(insert(AccessGrant), grants[k:k + 20000])
    # Invitation lists curated by clusters, attached to invited items; the contributor is on two.
    lists = [{"id": i, "org_id": 2 + 4 * (i % 200), "name": f"List {i}", "description": "", "created_at": now}
             for i in range(1, 51)]
    s.execute(insert(InvitationList), lists)
    s.execute(insert(ListMember), [{"list_id": lid, "user_id": 2, "created_at": now} for lid in (1, 2)]
              + [{"list_id": int(rng.integers(1, 51)), "user_id": u, "created_at": now} for u in range(3, 500)])
    attach = {(int(item_id), int(rng.integers(1, 51))) for item_id in c.py.sample(invited, min(len(invited), 2000))}
    s.execute(insert(ItemList), [{"item_id": i, "list_id": l, "created_at": now} for i, l in attach])
    s.commit()
    return {"corpus": c, "tag_pool": tag_pool, "admin_org": admin_org}


# --------------------------------------------------------------------------- queries


def make_queries(app, corpus: Corpus, tag_pool, n: int, seed: int) -> list[str]:
    from sqlalchemy import select

    from marketplace.extensions import db
    from marketplace.models import Item

    py = random.Random(seed + 1)
    sample_bodies = db.session.execute(select(Item.body).where(Item.id.in_(
        [py.randint(1, 90000) for _ in range(400)]))).scalars().all() or ["data process"]
    vocab = [w for w in corpus.vocab[len(STOP):]]

    def word(band: str) -> str:
        if band == "common":
            return py.choice(vocab[:60])
        if band == "mid":
            return py.choice(vocab[60:2000])
        return py.choice(vocab[2000:20000])

    def phrase() -> str:
        ws = [w for w in py.choice(sample_bodies).replace("*", "").split() if w.isalpha() and w not in STOP]
        if len(ws) < 3:
            return '"data process"'
        i = py.randrange(0, len(ws) - 2)
        return '"' + " ".join(ws[i:i + py.choice((2, 2, 3))]) + '"'

    makers = [
        lambda: word("common"),
        lambda: word("mid"),
        lambda: word("rare"),
        lambda: f"{word('common')} {word('mid')}",
        lambda: f"{word('mid')} {word('mid')}",
        lambda: f"{word('common')} {word('common')} {word('mid')}",
        phrase,
        phrase,
        lambda: f"{word('mid')} OR {word('mid')}",
        lambda: f"{word('common')} -{word('mid')}",
        lambda: f"{word('common')} type:{py.choice(KINDS)}",
        lambda: f"{word('mid')} tag:{py.choice(tag_pool[:60])}",
        lambda: f"{word('common')} status:open",
        lambda: f"{word('mid')} org:org-{py.randint(1, 60)}",
        lambda: f"{phrase()} type:challenge",
    ]
    return [makers[i % len(makers)]() for i in range(n)]


# --------------------------------------------------------------------------- FTS5 reference


FTS_SQL = """
CREATE VIRTUAL TABLE docs USING fts5(title, body, tokenize = 'porter unicode61');
CREATE TABLE meta(id INTEGER PRIMARY KEY, kind TEXT, status TEXT, org TEXT, created INTEGER);
CREATE TABLE tags(doc INTEGER, tag TEXT);
CREATE TABLE prin(term TEXT, doc INTEGER);
"""


def fts_build(path: str, docs) -> float:
    con = sqlite3.connect(path)
    con.executescript(FTS_SQL)
    t = time.perf_counter()
    for batch in docs:
        con.executemany("INSERT INTO docs(rowid, title, body) VALUES (?, ?, ?)",
                        [(i, d.parts[0][0], " ".join(p for p, _b in d.parts[1:])) for i, d in batch])
        con.executemany("INSERT INTO meta VALUES (?, ?, ?, ?, ?)",
                        [(i, d.kind, d.status, str(d.org_id), int(d.created.timestamp()) if d.created else 0)
                         for i, d in batch])
        con.executemany("INSERT INTO tags VALUES (?, ?)", [(i, tg) for i, d in batch for tg in d.tags])
        con.executemany("INSERT INTO prin VALUES (?, ?)", [(p, i) for i, d in batch for p in set(d.principals)])
    con.execute("CREATE INDEX ix_prin ON prin(term, doc)")
    con.execute("CREATE INDEX ix_tags ON tags(doc)")
    con.execute("CREATE INDEX ix_tags_tag ON tags(tag, doc)")
    con.commit()
    secs = time.perf_counter() - t
    con.close()
    return secs


def fts_match(parsed) -> str | None:
    from marketplace.search.querylang import AnyOf, Phrase

    def one(c) -> str:
        if isinstance(c, Phrase):
            return '"' + " ".join(c.terms) + '"'
        return '"' + c.term + '"'

    parts = []
    for c in parsed.must:
        parts.append("(" + " OR ".join(one(o) for o in c.options) + ")" if isinstance(c, AnyOf) else one(c))
    if not parts:
        return None
    expr = " AND ".join(parts)
    for c in parsed.must_not:
        expr += " NOT " + one(c)
    return expr


def fts_query(con, parsed, org_ids, principals) -> int:
    match = fts_match(parsed)
    if match is None:
        return 0
    where, args = [], [match]
    where.append(f"m.id IN (SELECT doc FROM prin WHERE term IN ({','.join('?' * len(principals))}))")
    args += list(principals)
    for fname, values in parsed.filters.items():
        if fname == "tags":
            where.append(f"m.id IN (SELECT doc FROM tags WHERE tag IN ({','.join('?' * len(values))}))")
            args += values
        elif fname == "org":
            vals = org_ids or ["-"]
            where.append(f"m.org IN ({','.join('?' * len(vals))})")
            args += vals
        else:
            where.append(f"m.{fname} IN ({','.join('?' * len(values))})")
            args += values
    con.execute("DROP TABLE IF EXISTS temp.v")
    con.execute("CREATE TEMP TABLE v AS SELECT docs.rowid AS id, bm25(docs, 3.0, 1.0) AS s FROM docs "
                "JOIN meta m ON m.id = docs.rowid WHERE docs MATCH ? AND " + " AND ".join(where), args)
    total = con.execute("SELECT count(*) FROM v").fetchone()[0]
    con.execute("SELECT id FROM v ORDER BY s LIMIT 20").fetchall()
    for col in ("kind", "status", "org"):
        con.execute(f"SELECT m.{col}, count(*) c FROM v JOIN meta m ON m.id = v.id GROUP BY m.{col} "
                    "ORDER BY c DESC LIMIT 12").fetchall()
    con.execute("SELECT t.tag, count(*) c FROM v JOIN tags t ON t.doc = v.id GROUP BY t.tag "
                "ORDER BY c DESC LIMIT 12").fetchall()
    return total


# --------------------------------------------------------------------------- run


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return 0.0
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def measure(label: str, backend, users: dict, queries: list[str], warmup: list[str], rows: list,
            fts_con=None, org_by_slug=None) -> tuple[int, int]:
    """Run the queries for each user through the app's search (page and engine alone), and
    FTS5 beside them when `fts_con` is given; add the rows; return (violations, ids checked)."""
    from marketplace import policy
    from marketplace.extensions import db
    from marketplace.search import service
    from marketplace.search.backend import SearchQuery
    from marketplace.search.documents import DOC_TYPES, split_key
    from marketplace.search.querylang import parse

    violations = checked = 0
    # A server answers from warm caches: warm them with other queries of the same mix.
    for user in users.values():
        for q in warmup:
            service.search(user, q)
        db.session.rollback()
    all_eng: list[float] = []
    for who, user in users.items():
        principals = policy.principals(user)
        eng, page, ref, page_cpu, ref_cpu = [], [], [], [], []
        for q in queries:
            parsed = parse(q)
            # the whole search a request runs (first, so it meets the caches as they are)
            t, c0 = time.perf_counter(), time.process_time()
            service.search(user, q)
            page.append(time.perf_counter() - t)
            page_cpu.append(time.process_time() - c0)
            db.session.rollback()
            # the engine alone
            filters, not_filters = service._resolve_filters(parsed)
            excluded = service.excluded_keys(user, principals, backend)
            t = time.perf_counter()
            hits = backend.search(SearchQuery(parsed=parsed, principals=principals, filters=filters,
                                              not_filters=not_filters, exclude_keys=excluded))
            eng.append(time.perf_counter() - t)
            # leak check on what the engine returned, before any later filtering
            for key, _s in hits.hits:
                doc_type, doc_id = split_key(key)
                obj = db.session.get(DOC_TYPES[doc_type].model, doc_id)
                checked += 1
                if obj is None or not policy.can(user, "view", obj):
                    violations += 1
            db.session.rollback()
            if fts_con is not None:
                org_ids = [org_by_slug[s] for s in parsed.filters.get("org", []) if s in org_by_slug]
                t, c0 = time.perf_counter(), time.process_time()
                fts_query(fts_con, parsed, org_ids, principals)
                ref.append(time.perf_counter() - t)
                ref_cpu.append(time.process_time() - c0)
        all_eng += eng
        ms = lambda xs, p: pct(xs, p) * 1000  # noqa: E731
        line = (f"page p50 {ms(page, 50):6.1f}  p95 {ms(page, 95):6.1f}  p99 {ms(page, 99):6.1f} "
                f"(cpu p95 {ms(page_cpu, 95):6.1f}) | "
                f"engine p50 {ms(eng, 50):6.1f}  p95 {ms(eng, 95):6.1f}  p99 {ms(eng, 99):6.1f} "
                f"mean {statistics.mean(eng) * 1000:6.1f}")
        if ref:
            line += (f" | FTS5 p50 {ms(ref, 50):5.1f}  p95 {ms(ref, 95):5.1f} (cpu p95 {ms(ref_cpu, 95):5.1f})"
                     f" | page/FTS5 p95 {pct(page, 95) / max(pct(ref, 95), 1e-9):.2f}")
        line += " ms"
        rows.append((f"queries ({label}): {who}", line))
        print(f"{label}, {who}: done", file=sys.stderr)
    rows.append((f"engine throughput ({label})",
                 f"{len(all_eng) / sum(all_eng):,.1f} queries/s, mean {statistics.mean(all_eng) * 1000:.1f} ms "
                 f"per query (backend.search over all {len(all_eng)} queries, one thread)"))
    return violations, checked


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=100_000, help="documents in the corpus (default 100000)")
    ap.add_argument("--queries", type=int, default=300, help="queries per user (at least 300 by default)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--procs", type=int, default=2, help="rebuild worker processes")
    ap.add_argument("--dir", help="work folder (default: a temporary one, removed afterwards)")
    ap.add_argument("--no-fts", action="store_true", help="skip the FTS5 reference")
    ap.add_argument("--engine", choices=("fast", "whoosh", "both"), default="fast",
                    help="query engine(s) to measure (SEARCH_ENGINE); the rebuild uses the first")
    ap.add_argument("--builder", choices=("fast", "whoosh"), default="fast",
                    help="rebuild with the fast segment builder (default) or Whoosh's own writer")
    ap.add_argument("--rebuild-only", action="store_true",
                    help="measure the rebuild only (no queries, no FTS5); with --dir, an existing corpus "
                         "there is reused")
    ap.add_argument("--postgres", metavar="URL", default=os.environ.get("BENCH_DATABASE_URL"),
                    help="also measure SEARCH_BACKEND=postgres: the same corpus in a new database on this "
                         "PostgreSQL server (e.g. the URL `scripts/pg.sh start` prints; BENCH_DATABASE_URL)")
    ap.add_argument("--reuse", action="store_true",
                    help="with --dir: reuse the corpus, index and FTS5 table made by an earlier run "
                         "(rebuild figures are then not measured)")
    args = ap.parse_args()

    from sqlalchemy import select

    from marketplace import create_app, policy
    from marketplace.config import TestingConfig
    from marketplace.extensions import db
    from marketplace.models import Organisation, User
    from marketplace.search import get_backend, get_runtime, service
    from marketplace.search.backend import SearchQuery
    from marketplace.search.cli import rebuild_index
    from marketplace.search.documents import DOC_TYPES, all_ids, load_docs, split_key
    from marketplace.search.querylang import parse
    from marketplace.search.whoosh_backend import WhooshBackend

    engines = ["fast", "whoosh"] if args.engine == "both" else [args.engine]

    work = Path(args.dir or tempfile.mkdtemp(prefix="search-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db_path = work / "bench.db"
    reuse = args.reuse and db_path.exists() and (work / "search" / "CURRENT").exists()
    reuse_corpus = args.rebuild_only and db_path.exists()
    if not reuse and not reuse_corpus:
        for p in (db_path, work / "fts.db"):
            if p.exists():
                p.unlink()
        shutil.rmtree(work / "search", ignore_errors=True)

    class BenchConfig(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{db_path}"
        SEARCH_INDEX_DIR = str(work / "search")
        SEARCH_WORKER = "off"
        SEARCH_ENGINE = engines[0]
        UPLOAD_DIR = str(work / "uploads")
        PROPAGATE_UNHANDLED = True

    app = create_app(BenchConfig)
    rows: list[tuple[str, str]] = []
    with app.app_context():
        if reuse:
            c = Corpus(args.seed)
            info = {"corpus": c, "tag_pool": _tag_pool(c)}
        else:
            if reuse_corpus:
                print("corpus: reused from " + str(db_path), file=sys.stderr)
            else:
                db.create_all()
                t = time.perf_counter()
                info = build_corpus(app, args.docs, args.seed)
                print(f"corpus: {args.docs} documents generated in {time.perf_counter() - t:.0f} s",
                      file=sys.stderr)

            t, cpu = time.perf_counter(), _cpu()
            res = rebuild_index(procs=args.procs, builder=args.builder)
            rb_secs, rb_cpu = time.perf_counter() - t, _cpu() - cpu
            rate = res["documents"] / rb_secs
            rows.append((f"rebuild ({engines[0]} engine, {args.builder} builder, "
                         f"{args.procs if engines[0] == 'fast' else 1} procs)",
                         f"{rate:,.0f} docs/s  ({res['documents']:,} docs, {rb_secs:.0f} s wall, "
                         f"{res['documents'] / rb_cpu:,.0f} docs per CPU-second; index "
                         f"{res['size_bytes'] / 1e6:,.0f} MB)"))
            print(f"rebuild: {rate:.0f} docs/s", file=sys.stderr)
            if args.rebuild_only:
                from whoosh import index as whoosh_index

                ix = whoosh_index.open_dir(str(work / "search" / res["folder"]))
                with ix.reader() as r:  # the rebuilt index must also merge as Whoosh merges
                    n = r.doc_count()
                t = time.perf_counter()
                try:
                    ix.optimize()
                    merged = f"{time.perf_counter() - t:.1f} s for {n:,} docs"
                except Exception as e:  # what issue 14's builder did: report it, do not hide it
                    merged = f"FAILED: {type(e).__name__}: {e}"
                rows.append(("optimize after rebuild (Whoosh merge)", merged))
                _print(rows, args)
                if not args.dir:
                    shutil.rmtree(work, ignore_errors=True)
                return 0

        queries = make_queries(app, info["corpus"], info["tag_pool"], args.queries, args.seed)
        users = {
            "anonymous": None,
            "contributor (200 grants)": db.session.get(User, 2),
            "org admin": db.session.get(User, 1),
        }
        backend = get_backend()
        org_by_slug = {o.slug: str(o.id) for o in db.session.execute(select(Organisation)).scalars()}

        fts_con = None
        if reuse and not args.no_fts and (work / "fts.db").exists():
            fts_con = sqlite3.connect(str(work / "fts.db"))
            fts_con.execute("PRAGMA temp_store = MEMORY")
        elif not args.no_fts:
            def batches():
                rowid = 0
                for doc_type in DOC_TYPES:
                    ids = all_ids(doc_type)
                    for i in range(0, len(ids), 2000):
                        batch = []
                        for d in load_docs(doc_type, ids[i:i + 2000]).values():
                            if d is not None:
                                rowid += 1
                                batch.append((rowid, d))
                        yield batch
                        db.session.rollback()
            t = time.perf_counter()
            all_batches = list(batches())
            load_secs = time.perf_counter() - t
            fts_secs = fts_build(str(work / "fts.db"), all_batches)
            n_fts = sum(len(b) for b in all_batches)
            rows.append(("rebuild (FTS5, 1 proc)", f"{n_fts / fts_secs:,.0f} docs/s  (insert only; loading "
                                                     f"documents took another {load_secs:.0f} s)"))
            fts_con = sqlite3.connect(str(work / "fts.db"))
            fts_con.execute("PRAGMA temp_store = MEMORY")
            del all_batches

        violations = 0
        checked = 0
        warmup = make_queries(app, info["corpus"], info["tag_pool"], max(100, args.queries // 3), args.seed + 7)
        runtime = get_runtime()
        for engine_no, engine in enumerate(engines):
            if engine != backend.engine_name:
                backend.close()
                backend = runtime.backend = WhooshBackend(BenchConfig.SEARCH_INDEX_DIR, engine=engine)
            v, n = measure(engine, backend, users, queries, warmup, rows,
                           fts_con if engine_no == 0 else None, org_by_slug)
            violations, checked = violations + v, checked + n
        rows.append(("leak check", f"{violations} violations in {checked:,} returned ids (re-checked with policy.can)"))
        rows.append(("queries per user", f"{len(queries)} (mean {statistics.mean(len(q) for q in queries):.0f} chars)"))
        stats = backend.stats()
        line = f"{stats['documents']:,} docs in {len(stats['segments'])} segments"
        if "cached_postings" in stats["engine"]:
            line += f"; cache {stats['engine']['cached_postings']:,} postings"
        rows.append(("index", line))

    if args.postgres:
        v, n = run_postgres(args, work, queries, warmup, rows)
        violations, checked = violations + v, checked + n
        rows.append(("leak check (postgres)", f"{v} violations in {n:,} returned ids (re-checked with policy.can)"))

    _print(rows, args)
    if not args.dir:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if violations else 0


def run_postgres(args, work: Path, queries: list[str], warmup: list[str], rows: list) -> tuple[int, int]:
    """The same corpus (same seed) in a new database on the --postgres server, indexed by
    `search rebuild` with SEARCH_BACKEND=postgres, and the same queries for the same users.
    The database is dropped afterwards."""
    import secrets as _secrets

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from marketplace import create_app
    from marketplace.config import TestingConfig
    from marketplace.extensions import db
    from marketplace.models import User
    from marketplace.search import get_backend
    from marketplace.search.cli import rebuild_index

    url = make_url(args.postgres)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    name = f"search_bench_{os.getpid()}_{_secrets.token_hex(3)}"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))

    class PgConfig(TestingConfig):
        SQLALCHEMY_DATABASE_URI = url.set(database=name).render_as_string(hide_password=False)
        SEARCH_BACKEND = "postgres"
        SEARCH_INDEX_DIR = str(work / "search-pg")
        SEARCH_WORKER = "off"
        UPLOAD_DIR = str(work / "uploads")
        PROPAGATE_UNHANDLED = True

    app = create_app(PgConfig)
    try:
        with app.app_context():
            db.create_all()
            t = time.perf_counter()
            build_corpus(app, args.docs, args.seed)
            print(f"postgres corpus: {args.docs} documents generated in {time.perf_counter() - t:.0f} s",
                  file=sys.stderr)
            db.session.execute(text("ANALYZE"))
            db.session.commit()
            t, cpu = time.perf_counter(), _cpu()
            res = rebuild_index(procs=1)
            secs, used = time.perf_counter() - t, _cpu() - cpu
            db.session.execute(text("ANALYZE search_documents"))
            db.session.commit()
            rows.append(("rebuild (postgres backend, 1 proc)",
                         f"{res['documents'] / secs:,.0f} docs/s  ({res['documents']:,} docs, {secs:.0f} s wall, "
                         f"{res['documents'] / max(used, 1e-9):,.0f} docs per CPU-second of this process; table "
                         f"and indexes {res['size_bytes'] / 1e6:,.0f} MB)"))
            users = {"anonymous": None, "contributor (200 grants)": db.session.get(User, 2),
                     "org admin": db.session.get(User, 1)}
            out = measure("postgres", get_backend(), users, queries, warmup, rows)
            stats = get_backend().stats()
            rows.append(("index (postgres)", f"{stats['documents']:,} rows, vocabulary {stats['vocabulary']:,} "
                                              f"words, {stats['size_bytes'] / 1e6:,.0f} MB"))
            db.session.remove()
            db.engine.dispose()
            return out
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _print(rows, args) -> None:
    width = max(len(k) for k, _ in rows)
    print()
    print(f"Search benchmark: {args.docs:,} documents, seed {args.seed}, {os.cpu_count()} cores")
    print("-" * (width + 3 + max(len(v) for _, v in rows)))
    for k, v in rows:
        print(f"{k:<{width}} | {v}")


if __name__ == "__main__":
    sys.exit(main())
