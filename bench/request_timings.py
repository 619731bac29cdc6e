"""Time the heaviest pages through the Flask test client, with their SQL statement counts.

    python bench/request_timings.py            # 20 requests per page and viewer
    python bench/request_timings.py --n 50 --seed 7

Builds a seeded data set in a temporary SQLite file (a few thousand rows: 20 organisations,
2,000 items of mixed visibility with grants, a challenge with 1,000 Q&A posts, a failure with
1,000 comments and 500 replies, 1,000 notifications, 300 open reports, the search index
built from it) and prints, per page and viewer: the median and 95th percentile wall time in
ms, CPU ms per request, SQL statements per request and the response size. One process, no
server: it measures what our code costs per request, not the stack's throughput (the load
benchmark of issue 16 does that). Wall times vary with the machine's load; CPU and query
counts much less.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event, insert, select  # noqa: E402

from marketplace import create_app  # noqa: E402
from marketplace.config import TestingConfig  # noqa: E402
from marketplace.extensions import db  # noqa: E402
from marketplace.models import AccessGrant, Item, ItemTag, Notification, utcnow  # noqa: E402
from marketplace.models.engagement import Answer, Comment, Question  # noqa: E402
from marketplace.models.moderation import Report  # noqa: E402
from marketplace.sanitize import render_markdown  # noqa: E402

WORDS = ("water energy widget sensor pump solar battery membrane filter valve coating drone "
         "recycling packaging catalyst enzyme textile concrete insulation lighting").split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def build(app, rng: random.Random) -> dict:
    """The data set; returns the ids the pages need."""
    from tests.factories import Factories

    with app.app_context():
        db.create_all()
        f = Factories()
        contributor = f.make_user(name="Carl Contributor")
        moderator = f.make_user(name="Mo Moderator", site_role="moderator")
        owners = [f.make_user(name=f"Owner {i}") for i in range(20)]
        orgs = [f.make_org(name=f"Org {i}", owner=o) for i, o in enumerate(owners)]
        # The contributor is a member of one organisation (its organisation-only items count).
        f.make_org(name="Contributor's org", owner=contributor)
        now = utcnow()
        rows = []
        for i in range(2000):
            kind = rng.choices(("challenge", "failure", "asset"), (5, 3, 2))[0]
            vis = rng.choices(("public", "registered", "invited", "organisation"), (60, 15, 15, 10))[0]
            body = _text(rng, 40)
            rows.append({"kind": kind, "org_id": rng.choice(orgs).id, "title": f"{_text(rng, 3)} {i}".capitalize(),
                         "summary": _text(rng, 12), "body": body, "body_html": render_markdown(body),
                         "visibility": vis, "status": "open", "created_at": now, "updated_at": now,
                         "published_at": now,
                         "deadline": now.replace(year=now.year + 1) if kind == "challenge" else None})
        db.session.execute(insert(Item), rows)
        items = db.session.execute(select(Item.id, Item.kind, Item.visibility)).all()
        db.session.execute(insert(ItemTag), [{"item_id": i, "tag": t} for i, _k, _v in items
                                             for t in rng.sample(WORDS, 2)])
        invited = [i for i, _k, v in items if v == "invited"]
        db.session.execute(insert(AccessGrant), [{"item_id": i, "user_id": contributor.id}
                                                 for i in invited[::2]])
        challenge = next(i for i, k, v in items if k == "challenge" and v == "public")
        failure = next(i for i, k, v in items if k == "failure" and v == "public")
        html = "<p>A post worth reading.</p>"
        db.session.execute(insert(Question), [{"item_id": challenge, "author_id": contributor.id,
                                               "body": f"Question {n}?", "body_html": html,
                                               "show_name": n % 2 == 0, "created_at": now} for n in range(1000)])
        qids = db.session.execute(select(Question.id).where(Question.item_id == challenge)).scalars().all()
        db.session.execute(insert(Answer), [{"question_id": q, "item_id": challenge, "author_id": owners[0].id,
                                             "body": "An answer.", "body_html": html, "created_at": now}
                                            for q in qids[::2]])
        db.session.execute(insert(Comment), [{"item_id": failure, "author_id": rng.choice(owners).id,
                                              "body": f"Comment {n}", "body_html": html, "created_at": now}
                                             for n in range(1000)])
        tops = db.session.execute(select(Comment.id).where(Comment.item_id == failure)).scalars().all()
        db.session.execute(insert(Comment), [{"item_id": failure, "author_id": contributor.id, "parent_id": t,
                                              "body": "A reply", "body_html": html, "created_at": now}
                                             for t in tops[::2]])
        db.session.execute(insert(Notification), [
            {"user_id": contributor.id, "kind": "engagement.comment", "message": f"Something happened {n}.",
             "url": "/", "created_at": now} for n in range(1000)])
        reported = rng.sample([(i, k) for i, k, _v in items], 300)
        db.session.execute(insert(Report), [
            {"target_type": k, "target_id": i, "org_id": None, "context_item_id": i, "context_kind": k,
             "is_discussion": False, "reporter_id": contributor.id, "category": "spam", "note": "Looks wrong.",
             "created_at": now, "status": "open"} for i, k in reported])
        db.session.commit()
        from marketplace.search.cli import rebuild_index

        rebuild_index(procs=1)
        return {"contributor": contributor.id, "moderator": moderator.id, "challenge": challenge,
                "failure": failure}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="requests per page and viewer")
    ap.add_argument("--seed", type=int, default=16)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="request-timings-"))

    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp / 'bench.db'}"
        SEARCH_INDEX_DIR = str(tmp / "search")
        UPLOAD_DIR = str(tmp / "uploads")

    app = create_app(Cfg)
    t0 = time.perf_counter()
    ids = build(app, random.Random(args.seed))
    print(f"data set built in {time.perf_counter() - t0:.1f} s ({tmp})")

    from tests.factories import sign_in_client

    statements = []
    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", lambda *a: statements.append(1))

    pages = [
        ("home", "/", ("anonymous", "contributor")),
        ("challenge list", "/challenges/", ("anonymous", "contributor")),
        ("challenge, 1,000 Q&A posts", f"/challenges/{ids['challenge']}", ("anonymous", "contributor")),
        ("failure, 1,000 comments", f"/failures/{ids['failure']}", ("anonymous", "contributor")),
        ("search, 20 per page", "/search?q=water", ("anonymous", "contributor")),
        ("search, 100 per page", "/search?q=water&per_page=100", ("anonymous", "contributor")),
        ("API item list", "/api/v1/items", ("anonymous", "contributor")),
        ("Atom feed", "/feeds/challenges.atom", ("anonymous", "contributor")),
        ("notifications", "/notifications/", ("contributor",)),
        ("moderation queue", "/moderation/", ("moderator",)),
    ]
    clients = {"anonymous": app.test_client()}
    for who in ("contributor", "moderator"):
        clients[who] = app.test_client()
        sign_in_client(clients[who], app, ids[who])

    print(f"{'page':30} {'viewer':12} {'p50 ms':>8} {'p95 ms':>8} {'CPU ms':>8} {'queries':>8} {'KB':>7}")
    for label, url, viewers in pages:
        for who in viewers:
            c = clients[who]
            r = c.get(url)  # warm-up (template compilation, first-request caches)
            if r.status_code != 200:
                print(f"{label:30} {who:12} HTTP {r.status_code}")
                continue
            walls, cpus, counts = [], [], []
            for _ in range(args.n):
                statements.clear()
                w0, c0 = time.perf_counter(), time.process_time()
                r = c.get(url)
                walls.append((time.perf_counter() - w0) * 1000)
                cpus.append((time.process_time() - c0) * 1000)
                counts.append(len(statements))
            walls.sort()
            p95 = walls[min(len(walls) - 1, int(round(0.95 * (len(walls) - 1))))]
            print(f"{label:30} {who:12} {statistics.median(walls):8.1f} {p95:8.1f} "
                  f"{statistics.median(cpus):8.1f} {max(counts):8d} {len(r.data) / 1024:7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
