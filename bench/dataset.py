"""The seeded data set of the page and load benchmarks (issues 16 and 13).

    python bench/dataset.py --db sqlite              # generate (or reuse) and print the manifest
    python bench/dataset.py --db postgres --force    # regenerate (PostgreSQL server in --dir)

What it holds (seed 16 by default): 100 organisations, 2,000 users, 5,000 items (challenges,
failures and assets at every visibility level and status), 11,000 ideas, 9,000 Q&A posts
(questions, most of them answered), 7,000 comments (a fifth of them replies), plus one public
challenge with 1,000 answered questions, one with 100, and one public failure with 1,000
comments. A contributor account (``bench-contributor@example.test``) holds grants on invited
items and has ideas, questions and comments of its own.

Rows go in with bulk INSERTs through the models' tables, but each block writes what the
service named beside it writes, with the services' own helpers for the computed fields
(``validate_terms``/``canonical_terms``/``sha256_hex`` for terms versions and their digest,
``default_rules_for`` for participation rules, ``content_hash`` and ``acceptance_key`` for
ideas and their acceptances, ``render_markdown`` for every ``*_html`` column), and the audit
events each service records, chained with ``audit.compute_hash`` so ``flask audit verify``
passes. Visibility principals are not written here: the search index is built afterwards by
the real ``rebuild_index`` (the ``flask search rebuild`` code), so pages and search see the
rows exactly as in production.

Left out on purpose: the notifications and mails the services queue as side effects (they
would only be work for the mail worker) and the webhook deliveries of the audit events.

The database is created with the project's migrations (``flask db upgrade``), in
``--dir``/sqlite, or in a database ``marketplace_bench`` of a PostgreSQL server whose cluster
lives beside the data set, in ``--dir``/postgres/cluster (``scripts/pg.sh`` with that PG_DIR),
so every checkout that runs the benchmarks finds the same database. (scripts/pg.sh's default
cluster is one per checkout: a data set generated from one checkout was once "reused" by
another against its own, empty ``marketplace_bench``, and its sign-in failed.) A manifest
(``manifest.json`` in ``--dir``) records the seed, the ids the benchmarks need and the
database's identity (``database_identity``); a second run with the same seed reuses the data
unless ``--force``, and only when the database is the one the data set was generated in
(otherwise it is generated again, saying why).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

warnings.filterwarnings("ignore", category=SyntaxWarning)
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VERSION = 5  # bump when the generator changes: a manifest of another version is regenerated
PASSWORD = "bench-password-16"
CONTRIBUTOR = "bench-contributor@example.test"
DEFAULT_DIR = Path(os.environ.get("BENCH_DIR", "/tmp/marketplace-bench"))
PG_DATABASE = "marketplace_bench"

N_ORGS, N_USERS, N_ITEMS = 100, 2000, 5000
N_IDEAS, N_QUESTIONS, N_COMMENTS = 11_000, 9_000, 7_000
N_WRITERS = 200
BIG_QA, MID_QA, BIG_THREAD = 1000, 100, 1000

WORDS = (
    "data process energy water cost failure challenge asset design test model production supply chain "
    "customer market material sensor software hardware battery plastic recycling waste carbon emission "
    "efficiency quality safety maintenance factory logistics transport hydrogen solar wind grid storage "
    "digital platform analytics machine learning predictive prototype pilot partner university research "
    "funding patent licence equipment laboratory expertise robot gripper vision inspection welding coating "
    "polymer steel concrete heat pump cooling drone farm crop soil irrigation packaging label traceability "
    "sorting warehouse fleet charging vehicle engine turbine bearing vibration noise acoustic optical laser "
    "fibre membrane filter catalyst enzyme fermentation protein textile retail health hospital patient "
    "device imaging diagnostic wearable elderly care mobility city building insulation window facade timber"
).split()
FILL = "the of and to in is for that with on as by this be are from at or it an we can will our".split()


class Text:
    """Seeded prose: real domain words (Zipf-like frequencies) and some Markdown."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        extra = [a + b for a in ("ka", "ro", "mi", "sen", "tor", "al", "ve", "dra", "pel", "nor", "lum", "zan")
                 for b in ("tex", "mar", "lin", "cos", "ret", "sil", "vo", "dis", "ter", "ma", "gri", "fo")]
        self.vocab = WORDS + extra
        self.weights = [1.0 / (i + 1) ** 0.9 for i in range(len(self.vocab))]

    def words(self, n: int) -> list[str]:
        picked = self.rng.choices(self.vocab, self.weights, k=n)
        out = []
        for w in picked:
            out.append(w)
            if self.rng.random() < .35:
                out.append(self.rng.choice(FILL))
        return out[:n]

    def title(self, lo=4, hi=9) -> str:
        return " ".join(self.words(self.rng.randint(lo, hi))).capitalize()

    def sentence(self, lo=8, hi=20) -> str:
        return " ".join(self.words(self.rng.randint(lo, hi))).capitalize() + "."

    def body(self, lo: int, hi: int) -> str:
        n, paras = self.rng.randint(lo, hi), []
        while n > 0:
            k = min(n, self.rng.randint(20, 60))
            ws = self.words(k)
            r = self.rng.random()
            if r < .15 and len(ws) > 3:
                ws[1] = f"**{ws[1]}**"
            elif r < .22 and len(ws) > 3:
                ws[2] = f"[{ws[2]}](https://example.org/{ws[2]})"
            elif r < .3:
                ws = ["-"] + ws
            paras.append(" ".join(ws).capitalize() + ".")
            n -= k
        return "\n\n".join(paras)


def _pick(rng: random.Random, table) -> str:
    return rng.choices([v for v, _p in table], [p for _v, p in table])[0]


# --------------------------------------------------------------------------- databases


def sqlite_url(d: Path) -> str:
    return f"sqlite:///{d / 'marketplace.db'}"


def postgres_url(recreate: bool, cluster: Path) -> str:
    """A database of its own in the PostgreSQL server whose cluster is in `cluster`
    (scripts/pg.sh with PG_DIR; started, and created on first use, if needed)."""
    base = subprocess.run([str(ROOT / "scripts/pg.sh"), "start"], check=True, capture_output=True, text=True,
                          env=dict(os.environ, PG_DIR=str(cluster))).stdout.strip().splitlines()[-1]
    head, _, tail = base.partition("/marketplace")
    url = f"{head}/{PG_DATABASE}{tail}"
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(base)
    conninfo = {"dbname": "postgres", "user": u.username, **{k: v for k, v in u.query.items()}}
    if u.host:
        conninfo["host"], conninfo["port"] = u.host, u.port
    with psycopg.connect(**conninfo, autocommit=True) as con:
        exists = con.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)).fetchone()
        if exists and recreate:
            con.execute(f"DROP DATABASE {PG_DATABASE} WITH (FORCE)")
            exists = None
        if not exists:
            con.execute(f"CREATE DATABASE {PG_DATABASE}")
    return url


def database_identity(url: str) -> str | None:
    """The database's random identity (table database_identity), or None without one."""
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    try:
        with eng.connect() as c:
            return c.execute(text("SELECT token FROM database_identity WHERE id = 1")).scalar()
    except Exception:  # noqa: BLE001 - no database, no table: not the data set's database
        return None
    finally:
        eng.dispose()


def not_the_dataset(url: str, manifest: dict) -> str | None:
    """Why the database at `url` is not the one `manifest` describes (None when it is)."""
    from sqlalchemy import create_engine, text

    token = database_identity(url)
    if manifest.get("database_id"):
        if token != manifest["database_id"]:
            return (f"the database at {url} (identity {token or 'none'}) is not the one the data set was "
                    f"generated in (identity {manifest['database_id']})")
        return None
    # A manifest from before identities were recorded: the data itself must be there.
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            users = c.execute(text("SELECT COUNT(*) FROM users")).scalar()
            email = c.execute(text("SELECT email FROM users WHERE id = :i"),
                              {"i": manifest["contributor"]["id"]}).scalar()
    except Exception as e:  # noqa: BLE001
        return f"the database at {url} holds no data set ({type(e).__name__})"
    finally:
        eng.dispose()
    if users < manifest["counts"]["users"] or email != manifest["contributor"]["email"]:
        return (f"the database at {url} does not hold the data set ({users} users; the contributor "
                f"{manifest['contributor']['email']} is {'missing' if email is None else 'another account'})")
    return None


def bench_env(db: str, d: Path, url: str) -> dict[str, str]:
    """The environment every process of a benchmark run shares (app, CLI, gunicorn)."""
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": url,
        "SEARCH_INDEX_DIR": str(d / "search"),
        "UPLOAD_DIR": str(d / "uploads"),
        "MARKETPLACE_INSTANCE": str(d / "instance"),
        "RECEIPT_KEYS_DIR": str(d / "instance" / "receipt_keys"),
        "SECRET_KEY": "bench-secret-key-not-for-production-0123456789abcdef",
        "FLASK_APP": "app",
        "LOG_LEVEL": "WARNING",
    })
    (d / "instance").mkdir(parents=True, exist_ok=True)
    return env


def make_app(env: dict[str, str]):
    """The real app, configured from `env` (as gunicorn's workers will be)."""
    os.environ.update(env)
    import importlib

    import marketplace.config as config

    importlib.reload(config)  # Config reads the environment at import
    from marketplace import create_app

    return create_app(config.Config)


# --------------------------------------------------------------------------- generator


class Audit:
    """Audit events as audit.record writes them, chained once all are known."""

    def __init__(self):
        self.rows: list[dict] = []

    def add(self, when, action, subject_type, subject_id, actor_id, item_id, data):
        from marketplace.audit import canonical_json

        self.rows.append({"created_at": when, "actor_id": actor_id, "action": action,
                          "subject_type": subject_type, "subject_id": subject_id, "item_id": item_id,
                          "data": canonical_json(data or {})})

    def chained(self, first_id: int, prev: str) -> list[dict]:
        from marketplace.audit import compute_hash

        self.rows.sort(key=lambda r: r["created_at"])
        for i, r in enumerate(self.rows):
            r["id"] = first_id + i
            r["prev_hash"] = prev
            r["hash"] = prev = compute_hash(SimpleNamespace(**r), prev)
        return self.rows


def generate(app, seed: int = 16) -> dict:
    """Fill the (migrated, empty) database of `app`; return the manifest."""
    from sqlalchemy import func, insert, select, text

    from marketplace.audit import GENESIS, canonical_json, sha256_hex
    from marketplace.extensions import db
    from marketplace.models import (AccessGrant, AcceptancePurpose, Answer, AuditEvent, AuthorStatus,
                                    ChallengeRules, ChallengeTerms, Comment, Idea, IdeaAuthor, IdeaRevision,
                                    Item, ItemTag, Membership, Organisation, Question, TermsAcceptance, User)
    from marketplace.sanitize import render_markdown
    from marketplace.security import hash_password
    from marketplace.services.ideas import content_hash
    from marketplace.services.terms import acceptance_key, canonical_terms, default_rules_for, validate_terms

    rng = random.Random(seed)
    tx = Text(rng)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    audit = Audit()
    s = db.session
    started = time.perf_counter()

    def ago(days_max: float, days_min: float = 0.0) -> datetime:
        return now - timedelta(seconds=rng.uniform(days_min * 86400, days_max * 86400))

    def bulk(model, rows, chunk=5000):
        for k in range(0, len(rows), chunk):
            s.execute(insert(model), rows[k:k + chunk])

    # -- users (accounts.create_user; verified addresses, as after the mailed link) --------
    pw = hash_password(PASSWORD)  # one hash for all: argon2 per row would take minutes
    users = []
    for u in range(1, N_USERS + 1):
        created = ago(900, 400)
        users.append({"id": u, "email": f"user{u}@example.test", "display_name": f"{tx.title(1, 2)} {u}",
                      "password_hash": pw, "site_role": "user", "created_at": created, "session_version": 1,
                      "banned": False, "email_verified_at": created, "timezone": "UTC"})
    contributor_id = N_USERS  # the signed-in viewer of the benchmarks
    users[-1].update(email=CONTRIBUTOR, display_name="Bench Contributor")
    users[-2].update(site_role="moderator", display_name="Bench Moderator", email="bench-moderator@example.test")
    bulk(User, users)

    # -- organisations (orgs.create_org: the owner's membership, "org.created") -------------
    orgs, members = [], []
    kinds = ["company", "cluster", "university", "public-body"]
    for o in range(1, N_ORGS + 1):
        created = ago(400, 300)
        name = f"{tx.title(1, 3)} {kinds[o % 4].replace('-', ' ').title()} {o}"
        desc = tx.body(20, 60)
        orgs.append({"id": o, "name": name, "slug": f"org-{o}", "kind": kinds[o % 4], "description": desc,
                     "description_html": render_markdown(desc), "website": f"https://org{o}.example.org",
                     "timezone": "UTC", "created_at": created})
        owner = o  # users 1..100 own one organisation each; 101..600 are admins and members
        members.append({"org_id": o, "user_id": owner, "role": "owner", "created_at": created})
        audit.add(created, "org.created", "organisation", o, owner, None, {"name": name, "kind": kinds[o % 4]})
        for j in range(5):
            members.append({"org_id": o, "user_id": N_ORGS + (o - 1) * 5 + j + 1,
                            "role": "admin" if j == 0 else "member", "created_at": created})
    bulk(Organisation, orgs)
    bulk(Membership, [dict(m, id=i) for i, m in enumerate(members, 1)])
    admins_of = {o: [o, N_ORGS + (o - 1) * 5 + 1] for o in range(1, N_ORGS + 1)}
    # Users 601.. post the content; the last 200 before the moderator and the contributor have
    # none: they are bench/load.py's writers (each may submit to any open challenge).
    writers = list(range(N_USERS - 1 - N_WRITERS, N_USERS - 1))
    contributors = list(range(N_ORGS * 6 + 1, writers[0])) + [contributor_id]

    # -- items (items.create_item, then publish; terms.save_terms for challenges) -----------
    items, tags, terms_rows, rules_rows = [], [], [], []
    vis_table = [("public", .45), ("registered", .25), ("invited", .15), ("organisation", .15)]
    kinds_of_items = ["challenge"] * 2000 + ["failure"] * 1500 + ["asset"] * 1500
    rng.shuffle(kinds_of_items)
    # The benchmark's named pages come first: public and open.
    special = {1: "challenge", 2: "challenge", 3: "failure"}
    tag_pool = sorted(set(WORDS))[:120]
    terms_of: dict[int, list[dict]] = {}
    ip_models = ["contributor-retains", "non-exclusive-licence", "exclusive-licence", "assignment-on-award",
                 "open-licence"]
    for i in range(1, N_ITEMS + 1):
        kind = special.get(i) or kinds_of_items[i - 1]
        vis = "public" if i in special else _pick(rng, vis_table)
        if kind == "challenge":
            status = "open" if i in special else _pick(rng, [("draft", .1), ("open", .7), ("closed", .15),
                                                             ("archived", .05)])
        else:
            status = "open" if i in special else _pick(rng, [("draft", .1), ("open", .8), ("closed", .1)])
        org = rng.randint(1, N_ORGS)
        author = rng.choice(admins_of[org])
        created = ago(365, 30)
        body = tx.body(60, 400)
        row = {"id": i, "kind": kind, "org_id": org, "created_by_id": author, "title": tx.title()[:200],
               "summary": tx.sentence()[:500], "body": body, "body_html": render_markdown(body),
               "visibility": vis, "status": status, "created_at": created, "updated_at": created,
               "published_at": None if status == "draft" else created + timedelta(hours=1)}
        for f in ("context", "expected_outcome", "went_wrong", "lessons", "availability", "licensing_note"):
            row[f] = row[f + "_html"] = None
        row.update(opens_at=None, deadline=None, incentive_summary=None, asset_kind=None)
        if kind == "challenge":
            ctx, out = tx.body(20, 80), tx.body(20, 60)
            row.update(context=ctx, context_html=render_markdown(ctx), expected_outcome=out,
                       expected_outcome_html=render_markdown(out), incentive_summary="Cash prize and a pilot",
                       deadline=(now + timedelta(days=rng.randint(20, 300))) if status in ("open", "draft")
                       else (now - timedelta(days=rng.randint(1, 25))))
        elif kind == "failure":
            ww, le = tx.body(30, 120), tx.body(30, 120)
            row.update(went_wrong=ww, went_wrong_html=render_markdown(ww), lessons=le, lessons_html=render_markdown(le))
        else:
            av, li = tx.body(10, 40), tx.body(10, 40)
            row.update(asset_kind=rng.choice(["technology", "data-set"]), availability=av,
                       availability_html=render_markdown(av), licensing_note=li, licensing_note_html=render_markdown(li))
        items.append(row)
        item_tags = sorted(set(rng.sample(tag_pool, rng.randint(0, 4))))
        tags += [{"item_id": i, "tag": t} for t in item_tags]
        audit.add(created, "item.created", kind, i, author, i,
                  {"visibility": vis, "status": "draft", "org_id": org})
        if kind == "challenge" and status != "draft" or (kind == "challenge" and rng.random() < .3):
            versions = 2 if rng.random() < .1 else 1
            for v in range(1, versions + 1):
                conf = "sealed" if rng.random() < .3 else "open"
                ip = rng.choice(ip_models)
                data = {"ip_model": ip, "open_licence": "CC-BY-4.0" if ip == "open-licence" else "",
                        "field_of_use": tx.sentence(), "territory": "Worldwide", "licence_duration": "5 years",
                        "post_termination_rights": tx.sentence(), "background_ip": tx.sentence(),
                        "foreground_ip": tx.sentence(), "dispute_resolution": "Mediation, then the courts",
                        "governing_law": "Belgian law", "confidentiality": conf,
                        "reveal_at": (now + timedelta(days=400)) if conf == "sealed" and rng.random() < .5 else None,
                        "nda_text": tx.sentence() if rng.random() < .2 else "",
                        "incentives": [{"kind": "cash-prize", "amount": str(rng.choice([5000, 20000, 50000])),
                                        "currency": "EUR", "winners": rng.randint(1, 3)},
                                       {"kind": "recognition", "description": "Named on the results page"}]}
                clean = validate_terms(data, now)
                tid = len(terms_rows) + 1
                canon = canonical_json(canonical_terms(i, v, clean))
                when = created + timedelta(minutes=10 * v)
                t = {"id": tid, "challenge_id": i, "version": v, "ip_model": clean["ip_model"],
                     "open_licence": clean["open_licence"],
                     **{f: clean[f] for f in ("field_of_use", "territory", "licence_duration",
                                              "post_termination_rights", "background_ip", "foreground_ip",
                                              "dispute_resolution", "governing_law")},
                     "confidentiality": clean["confidentiality"], "reveal_at": clean["reveal_at"],
                     "nda_text": clean["nda_text"], "incentives_json": canonical_json(clean["incentives"]),
                     "canonical": canon, "digest": sha256_hex(canon), "created_at": when, "created_by_id": author}
                terms_rows.append(t)
                terms_of.setdefault(i, []).append(t)
                audit.add(when, "terms.version_created", "terms", tid, author, i,
                          {"version": v, "digest": t["digest"], "ip_model": t["ip_model"],
                           "confidentiality": t["confidentiality"], "supersedes": v - 1 if v > 1 else None})
                if v == 1:
                    rules = default_rules_for(SimpleNamespace(visibility=vis))
                    rules_rows.append({"challenge_id": i, "updated_by_id": author, "updated_at": when, **rules})
                    audit.add(when, "challenge.rules_set", "challenge", i, author, i,
                              {**rules, "defaults": True})
        if status != "draft":
            audit.add(created + timedelta(hours=1), "item.status_changed", kind, i, author, i,
                      {"from": "draft", "to": "open"})
            if status != "open":
                audit.add(created + timedelta(days=20), "item.status_changed", kind, i, author, i,
                          {"from": "open", "to": status})
    bulk(Item, items, 1000)
    bulk(ItemTag, tags)
    bulk(ChallengeTerms, terms_rows, 2000)
    bulk(ChallengeRules, rules_rows)

    by_id = {r["id"]: r for r in items}
    live = [r for r in items if r["status"] != "draft"]

    # -- grants on invited items (items.grant_access) -------------------------------------
    grants = []
    invited = [r for r in live if r["visibility"] == "invited"]
    mine = set(r["id"] for r in rng.sample(invited, min(60, len(invited))))
    for r in invited:
        holders = set(rng.sample(contributors, rng.randint(1, 6)))
        if r["id"] in mine:
            holders.add(contributor_id)
        actor = r["created_by_id"]
        for u in sorted(holders):
            grants.append({"id": len(grants) + 1, "item_id": r["id"], "user_id": u, "org_id": None,
                           "granted_by_id": actor, "reason": "manual", "created_at": r["published_at"]})
        if rng.random() < .3:
            grants.append({"id": len(grants) + 1, "item_id": r["id"], "user_id": None,
                           "org_id": rng.randint(1, N_ORGS), "granted_by_id": actor, "reason": "manual",
                           "created_at": r["published_at"]})
    for g in grants:
        audit.add(g["created_at"], "access.granted", "grant", g["id"], g["granted_by_id"], g["item_id"],
                  {"user_id": g["user_id"], "org_id": g["org_id"], "expires_at": None})
    bulk(AccessGrant, grants)
    access = {}  # item id -> users who may take part (registered: everyone)
    for g in grants:
        if g["user_id"]:
            access.setdefault(g["item_id"], set()).add(g["user_id"])

    def can_take_part(user: int, item: dict) -> bool:
        if item["visibility"] in ("public", "registered"):
            return True
        return item["visibility"] == "invited" and user in access.get(item["id"], ())

    # -- ideas (ideas.submit_idea: idea, lead author, revision 1, acceptance, audit) ---------
    open_challenges = [r for r in live if r["kind"] == "challenge" and r["id"] in terms_of
                       and r["visibility"] in ("public", "registered", "invited")]
    ideas, authors, revisions, acceptances = [], [], [], []
    seen_pairs = set()
    statuses = [("submitted", .6), ("under-review", .2), ("shortlisted", .08), ("declined", .08),
                ("withdrawn", .04)]
    mine_ideas = 0
    while len(ideas) < N_IDEAS:
        ch = rng.choice(open_challenges)
        user = contributor_id if mine_ideas < 12 and rng.random() < .05 else rng.choice(contributors)
        if (user, ch["id"]) in seen_pairs or not can_take_part(user, ch):
            continue
        seen_pairs.add((user, ch["id"]))
        mine_ideas += user == contributor_id
        iid = len(ideas) + 1
        terms = terms_of[ch["id"]][-1]
        title, summary, body = tx.title()[:200], tx.sentence()[:500], tx.body(40, 250)
        chash = content_hash(title, summary, body, [])
        when = ch["published_at"] + timedelta(seconds=rng.uniform(3600, max(7200, (now - ch["published_at"]).total_seconds() - 60)))
        status = _pick(rng, statuses)
        html = render_markdown(body)
        ideas.append({"id": iid, "challenge_id": ch["id"], "author_id": user, "title": title, "summary": summary,
                      "body": body, "body_html": html, "status": status, "revision": 1, "terms_id": terms["id"],
                      "content_hash": chash, "confidentiality": terms["confidentiality"],
                      "reveal_at": terms["reveal_at"], "submission_key": f"bench-{seed}-{iid:08d}",
                      "created_at": when, "submitted_at": when, "updated_at": when,
                      "decided_at": when + timedelta(days=5) if status in ("shortlisted", "declined") else None,
                      "decision_reason": "Out of scope" if status == "declined" else None})
        authors.append({"idea_id": iid, "user_id": user, "status": AuthorStatus.LEAD.value, "created_at": when,
                        "responded_at": when})
        revisions.append({"idea_id": iid, "number": 1, "title": title, "summary": summary, "body": body,
                          "body_html": html, "attachments_json": canonical_json([]), "content_hash": chash,
                          "terms_id": terms["id"], "created_at": when, "created_by_id": user})
        aid = len(acceptances) + 1
        acceptances.append({"id": aid, "dedupe_key": acceptance_key(AcceptancePurpose.SUBMISSION.value, user,
                                                                    terms["id"], iid, 1),
                            "purpose": AcceptancePurpose.SUBMISSION.value, "user_id": user,
                            "challenge_id": ch["id"], "terms_id": terms["id"], "terms_version": terms["version"],
                            "terms_digest": terms["digest"], "idea_id": iid, "idea_revision": 1,
                            "content_hash": chash, "eligibility_confirmed": False, "coi_confirmed": False,
                            "coi_note": "", "accepted_at": when})
        audit.add(when, "terms.accepted", "acceptance", aid, user, ch["id"],
                  {"purpose": "submission", "terms_version": terms["version"], "terms_digest": terms["digest"],
                   "idea_id": iid, "idea_revision": 1, "content_sha256": chash})
        audit.add(when, "idea.submitted", "idea", iid, user, ch["id"],
                  {"revision": 1, "content_sha256": chash, "terms_version": terms["version"],
                   "terms_digest": terms["digest"], "coauthors": 0})
    bulk(Idea, ideas, 2000)
    bulk(IdeaAuthor, authors)
    bulk(IdeaRevision, revisions, 2000)
    bulk(TermsAcceptance, acceptances)

    # -- Q&A (engagement.ask_question, answer_question) ------------------------------------
    questions, answers = [], []
    qa_targets = [r for r in live if r["kind"] == "challenge" and r["id"] not in (1, 2)
                  and r["visibility"] in ("public", "registered", "invited")]
    plan = [(by_id[1], BIG_QA, 1.0), (by_id[2], MID_QA, 1.0)] + [(None, N_QUESTIONS, .8)]
    for target, count, answered in plan:
        asked = 0
        while asked < count:
            ch = target or rng.choice(qa_targets)
            asker = rng.choice(contributors)
            if not can_take_part(asker, ch):
                asker = contributor_id if contributor_id in access.get(ch["id"], ()) else asker
                if not can_take_part(asker, ch):
                    continue
            asked += 1
            qid = len(questions) + 1
            body = tx.sentence(8, 30)[:-1] + "?"
            when = ch["published_at"] + timedelta(seconds=rng.uniform(60, (now - ch["published_at"]).total_seconds() - 7200))
            show = rng.random() < .5
            questions.append({"id": qid, "item_id": ch["id"], "author_id": asker, "show_name": show, "body": body,
                              "body_html": render_markdown(body), "created_at": when})
            audit.add(when, "question.asked", "question", qid, asker, ch["id"], {"show_name": show})
            if rng.random() < answered:
                aid = len(answers) + 1
                who = rng.choice(admins_of[ch["org_id"]])
                abody = tx.sentence(10, 40)
                answers.append({"id": aid, "question_id": qid, "item_id": ch["id"], "author_id": who,
                                "body": abody, "body_html": render_markdown(abody),
                                "created_at": when + timedelta(hours=2)})
                audit.add(when + timedelta(hours=2), "question.answered", "question", qid, who, ch["id"],
                          {"answer_id": aid})
    bulk(Question, questions)
    bulk(Answer, answers)

    # -- discussions (engagement.add_comment; replies one level deep) -----------------------
    comments = []
    failures = [r for r in live if r["kind"] == "failure" and r["id"] != 3
                and r["visibility"] in ("public", "registered", "invited")]
    tops: dict[int, list[int]] = {}
    for target, count in ((by_id[3], BIG_THREAD), (None, N_COMMENTS)):
        posted = 0
        while posted < count:
            f = target or rng.choice(failures)
            author = rng.choice(contributors)
            if not can_take_part(author, f):
                continue
            posted += 1
            cid = len(comments) + 1
            parent = rng.choice(tops[f["id"]]) if tops.get(f["id"]) and rng.random() < .2 else None
            body = tx.body(10, 60)
            when = f["published_at"] + timedelta(seconds=rng.uniform(60, (now - f["published_at"]).total_seconds() - 60))
            comments.append({"id": cid, "item_id": f["id"], "parent_id": parent, "author_id": author, "body": body,
                             "body_html": render_markdown(body), "created_at": when})
            if parent is None:
                tops.setdefault(f["id"], []).append(cid)
            audit.add(when, "comment.posted", "comment", cid, author, f["id"], {"parent_id": parent})
    # A reply is never older than its top-level comment (the service writes them in order).
    created_of = {c["id"]: c["created_at"] for c in comments}
    for c in comments:
        if c["parent_id"] and c["created_at"] <= created_of[c["parent_id"]]:
            c["created_at"] = created_of[c["parent_id"]] + timedelta(minutes=5)
    bulk(Comment, comments)

    # -- the audit chain -------------------------------------------------------------------
    last = s.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).scalar()
    bulk(AuditEvent, audit.chained((last.id + 1) if last else 1, last.hash if last else GENESIS))
    s.commit()

    if db.engine.dialect.name == "postgresql":
        # Explicit ids were given: move every sequence past them.
        for table in db.metadata.sorted_tables:
            if "id" in table.c and table.c.id.primary_key:
                s.execute(text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                               f"COALESCE((SELECT MAX(id) FROM {table.name}), 0) + 1, false)"))
        s.commit()
        s.execute(text("ANALYZE"))
        s.commit()
    counts = {m.__tablename__: s.execute(select(func.count()).select_from(m)).scalar()
              for m in (Organisation, User, Item, ChallengeTerms, AccessGrant, Idea, Question, Answer, Comment,
                        AuditEvent)}
    return {
        "version": VERSION, "seed": seed, "generated_at": now.isoformat(),
        "insert_seconds": round(time.perf_counter() - started, 1), "counts": counts,
        "contributor": {"email": CONTRIBUTOR, "password": PASSWORD, "id": contributor_id},
        "writers": [{"email": f"user{u}@example.test", "password": PASSWORD, "id": u}
                    for u in writers],
        "pages": {"big_challenge": 1, "mid_challenge": 2, "big_failure": 3},
        "qa_on": {"1": sum(q["item_id"] == 1 for q in questions), "2": sum(q["item_id"] == 2 for q in questions)},
        "comments_on_big_failure": sum(c["item_id"] == 3 for c in comments),
        "search_words": [w for w in WORDS[:40]],
        "open_public_challenges": [r["id"] for r in live if r["kind"] == "challenge" and r["visibility"] == "public"
                                   and r["status"] == "open" and r["id"] in terms_of][:200],
        "open_public_failures": [r["id"] for r in live if r["kind"] == "failure" and r["visibility"] == "public"
                                 and r["status"] == "open"][:200],
    }


def prepare(db: str, d: Path | None = None, seed: int = 16, force: bool = False, quiet: bool = False):
    """The benchmark data set for `db` ("sqlite" or "postgres"): reused when its manifest
    matches, generated (migrations, rows, search index) otherwise. Returns (env, manifest)."""
    d = (d or DEFAULT_DIR) / db
    d.mkdir(parents=True, exist_ok=True)
    mpath = d / "manifest.json"
    manifest = json.loads(mpath.read_text()) if mpath.exists() else None
    fresh = force or not manifest or manifest.get("version") != VERSION or manifest.get("seed") != seed
    say = (lambda *a: None) if quiet else (lambda *a: print("dataset:", *a, file=sys.stderr, flush=True))
    url = sqlite_url(d) if db == "sqlite" else postgres_url(recreate=fresh, cluster=d / "cluster")
    if not fresh:
        why = not_the_dataset(url, manifest)
        if why is None:
            if not manifest.get("database_id"):
                manifest["database_id"] = database_identity(url)
                _write_manifest(mpath, manifest)
            return bench_env(db, d, url), manifest
        say(f"{why}: generating the data set again")
        fresh = True
        if db == "postgres":
            url = postgres_url(recreate=True, cluster=d / "cluster")
    if db == "sqlite":
        for p in d.glob("marketplace.db*"):
            p.unlink()
    env = bench_env(db, d, url)
    if mpath.exists():
        mpath.unlink()
    import shutil

    shutil.rmtree(d / "search", ignore_errors=True)
    t0 = time.perf_counter()
    # Migrations, exactly as `make serve` runs them.
    r = subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "app", "db", "upgrade"], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"dataset: migration failed:\n{r.stderr[-3000:]}")
    say(f"migrated ({db}) in {time.perf_counter() - t0:.1f} s; inserting rows")
    app = make_app(env)
    with app.app_context():
        manifest = generate(app, seed)
        say(f"rows inserted in {manifest['insert_seconds']} s: {manifest['counts']}")
        t1 = time.perf_counter()
        from marketplace.search.cli import rebuild_index

        stats = rebuild_index()
        manifest["index_seconds"] = round(time.perf_counter() - t1, 1)
        manifest["index"] = {k: v for k, v in (stats or {}).items() if isinstance(v, (int, float, str))}
        say(f"search index rebuilt in {manifest['index_seconds']} s")
    manifest["database_url"] = url
    manifest["database_id"] = database_identity(url)
    _write_manifest(mpath, manifest)
    return env, manifest


def _write_manifest(path: Path, manifest: dict) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # readers never see half a manifest
    tmp.write_text(json.dumps(manifest, indent=1, default=str))
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where the data lives (default %(default)s)")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--force", action="store_true", help="regenerate even when the manifest matches")
    a = ap.parse_args()
    _env, manifest = prepare(a.db, a.dir, a.seed, a.force)
    print(json.dumps({k: v for k, v in manifest.items() if not isinstance(v, list)}, indent=1, default=str))


if __name__ == "__main__":
    main()
