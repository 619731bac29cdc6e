"""The application on PostgreSQL: migrations, real flows through the test client, concurrency.

Needs ``TEST_DATABASE_URL`` (``postgresql+psycopg://...``), which ``make test`` sets after
starting a throwaway server with ``scripts/pg.sh``. Without it these tests skip with a reason,
except under ``CI=true``, where a missing server is a failure, never a silent skip
(``unavailable`` in tests/conftest.py).

Each run of this module creates its own database on that server (so parallel runs and xdist
workers never share rows) and drops it afterwards.

The schema comes from the migrations only: ``flask db upgrade`` runs for real, as a subprocess
reading ``DATABASE_URL``, and nothing is added from the models afterwards. The migrated schema
is compared with the models by Alembic's autogenerate comparison, so a migration that lags the
models fails here on PostgreSQL as tests/test_migrations.py fails it on SQLite.
"""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select, text, update
from sqlalchemy.engine import make_url

from marketplace import create_app
from marketplace.config import TestingConfig
from marketplace.extensions import db
from marketplace.models import AccessGrant, Item, Organisation, User, utcnow

from .schema_compare import assert_schema_matches_models

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "pg-password-123"
PLURAL = {"challenge": "challenges", "failure": "failures", "asset": "assets"}


# --------------------------------------------------------------------------- database + app


@pytest.fixture(scope="module", autouse=True)
def cheap_password_hashing():
    """Still Argon2id, with the smallest cost: these tests are about the database, and a
    few dozen registrations at the production cost would take most of the module's time."""
    from argon2 import PasswordHasher

    from marketplace import security

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(security, "_hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
        yield


@pytest.fixture(scope="module")
def pg_url(unavailable):
    """A fresh, empty database on the TEST_DATABASE_URL server; dropped afterwards."""
    raw = os.environ.get("TEST_DATABASE_URL")
    if not raw:
        unavailable("TEST_DATABASE_URL is not set: start a server with `scripts/pg.sh start` "
                    "and export its URL, or run `make test`")
    base = make_url(raw)
    if not base.drivername.startswith("postgresql"):
        unavailable(f"TEST_DATABASE_URL is not a PostgreSQL URL ({base.drivername})")
    if base.drivername == "postgresql":
        base = base.set(drivername="postgresql+psycopg")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"mk_test_{worker}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # noqa: BLE001 - any connection problem means "no server"
        admin.dispose()
        unavailable(f"cannot create a database on TEST_DATABASE_URL: {e}")
    yield base.set(database=name)
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def migrated(pg_url, tmp_path_factory):
    """`flask db upgrade` against the empty database, as an operator would run it."""
    inst = tmp_path_factory.mktemp("pg-instance")
    env = dict(os.environ, DATABASE_URL=pg_url.render_as_string(hide_password=False),
               SECRET_KEY=secrets.token_urlsafe(32), MARKETPLACE_INSTANCE=str(inst),
               SEARCH_INDEX_DIR=str(inst / "search"), UPLOAD_DIR=str(inst / "uploads"),
               SEARCH_WORKER="off", FLASK_APP="app")
    env.pop("FLASK_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"flask db upgrade failed on PostgreSQL:\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def pg_app(pg_url, migrated, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pg-app")

    class PgConfig(TestingConfig):
        SQLALCHEMY_DATABASE_URI = pg_url.render_as_string(hide_password=False)
        SQLALCHEMY_ENGINE_OPTIONS = {"pool_size": 20, "max_overflow": 10, "pool_pre_ping": True}
        SEARCH_INDEX_DIR = str(tmp / "search")
        UPLOAD_DIR = str(tmp / "uploads")

    app = create_app(PgConfig)
    app.instance_path = str(tmp)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_flask_db_upgrade_reaches_head(pg_url, migrated):
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(_alembic_cfg(AlembicConfig)).get_heads())
    engine = create_engine(pg_url)
    try:
        with engine.connect() as c:
            current = set(c.execute(text("SELECT version_num FROM alembic_version")).scalars())
            tables = set(inspect(c).get_table_names())
    finally:
        engine.dispose()
    assert current == heads
    # The foundation's tables at least; later migrations add more.
    assert {"users", "organisations", "memberships", "items", "access_grants", "audit_events"} <= tables


def test_migrated_schema_is_exactly_the_models(pg_app):
    """Built by the migrations alone: a model ahead of its migration fails here."""
    with pg_app.app_context(), db.engine.connect() as conn:
        assert_schema_matches_models(conn)


def _alembic_cfg(cls):
    cfg = cls(str(ROOT / "migrations" / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    return cfg


# --------------------------------------------------------------------------- flows


def _register(app, client, email: str, name: str) -> None:
    """Register as a person does: the form, the link mailed to confirm the address, sign in."""
    import re

    from marketplace.models import OutgoingMail

    r = client.post("/auth/register", data={"email": email, "display_name": name,
                                            "password": PASSWORD, "confirm": PASSWORD})
    assert r.status_code == 200 and "Check your inbox" in r.text, f"registering {email}: {r.status_code}"
    with app.app_context():
        body = db.session.execute(select(OutgoingMail.body).where(OutgoingMail.to_email == email)
                                  .order_by(OutgoingMail.id.desc())).scalars().first()
        db.session.remove()
    path = re.search(r"https?://[^/\s]+(/auth/verify/\S+)", body).group(1)
    assert client.get(path).status_code == 302
    assert client.post("/auth/login", data={"email": email, "password": PASSWORD}).status_code == 302


class Person:
    """One browser-like session: a test client that registered and stays signed in."""

    def __init__(self, app, email: str, name: str):
        self.email = email
        self.client = app.test_client()
        _register(app, self.client, email, name)

    def user(self) -> User:
        return db.session.execute(select(User).where(User.email == self.email)).scalar_one()


def _future(days: int = 30) -> str:
    return (utcnow() + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


def _post_item(p: Person, kind: str, title: str, visibility: str, publish: bool = True,
               org_id: int | None = None) -> int:
    data = {"title": title, "body": f"Body of *{title}*.", "visibility": visibility, "tags": "pg, flows"}
    if org_id is not None:
        data["org"] = str(org_id)
    if kind == "challenge":
        data["deadline"] = _future()
    elif kind == "asset":
        data["asset_kind"] = "technology"
    r = p.client.post(f"/{PLURAL[kind]}/new", data={**data, ("publish" if publish else "save"): "1"})
    if publish and kind == "challenge":
        # A challenge opens only with a terms sheet (issue 3): the form says so; then draft,
        # terms, publish, the way it tells a person to.
        assert r.status_code == 400 and "terms sheet" in r.get_data(as_text=True), r.status_code
        item_id = _post_item(p, kind, title, visibility, publish=False, org_id=org_id)
        _set_terms(p, item_id)
        r = p.client.post(f"/{PLURAL[kind]}/{item_id}/status", data={"status": "open"})
        assert r.status_code == 302 and "/status" not in r.headers["Location"], r.status_code
        return item_id
    assert r.status_code == 302, f"posting {title}: {r.status_code} {r.get_data(as_text=True)[:500]}"
    return int(r.headers["Location"].rstrip("/").rsplit("/", 1)[-1])


def _set_terms(p: Person, challenge_id: int) -> None:
    na = "Not applicable"
    r = p.client.post(f"/challenges/{challenge_id}/terms/edit", data={
        "ip_model": "contributor-retains", "confidentiality": "open",
        **{f: na for f in ("field_of_use", "territory", "licence_duration", "post_termination_rights",
                           "background_ip", "foreground_ip", "dispute_resolution", "governing_law")},
        "incentives-0-kind": "recognition", "incentives-0-description": "Named in the results"})
    assert r.status_code == 302, f"terms for {challenge_id}: {r.status_code} {r.get_data(as_text=True)[:500]}"


def _create_org(p: Person, name: str, kind: str) -> str:
    r = p.client.post("/orgs/new", data={"name": name, "kind": kind, "description": "On PostgreSQL."})
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    return r.headers["Location"].rstrip("/").rsplit("/", 1)[-1]


@pytest.fixture(scope="module")
def world(pg_app):
    """Organisations, members, items at every visibility level and grants, made through the UI."""
    app = pg_app
    people = {key: Person(app, f"{key}@pg.test", key.replace("_", " ").title()) for key in (
        "owner", "org_admin", "member", "granted", "partner", "outsider", "moderator", "revoked", "expired")}
    r = app.test_cli_runner().invoke(args=["users", "set-role", "moderator@pg.test", "moderator"])
    assert r.exit_code == 0, r.output

    slug = _create_org(people["owner"], "Postgres Robotics", "company")
    partner_slug = _create_org(people["partner"], "Partner University", "university")
    for key, role in (("org_admin", "admin"), ("member", "member")):
        r = people["owner"].client.post(f"/orgs/{slug}/members", data={"email": f"{key}@pg.test", "role": role})
        assert r.status_code == 302, r.get_data(as_text=True)[:500]

    ids: dict[str, int] = {}
    for vis in ("public", "registered", "invited", "organisation"):
        ids[f"challenge-{vis}"] = _post_item(people["owner"], "challenge", f"PG challenge {vis}", vis)
    ids["challenge-draft"] = _post_item(people["owner"], "challenge", "PG challenge draft", "public", publish=False)
    ids["failure-invited"] = _post_item(people["org_admin"], "failure", "PG failure invited", "invited")
    ids["asset-registered"] = _post_item(people["org_admin"], "asset", "PG asset registered", "registered")

    owner = people["owner"].client
    invited = ids["challenge-invited"]
    for form in ({"email": "granted@pg.test"}, {"org": partner_slug}, {"email": "revoked@pg.test"},
                 {"email": "expired@pg.test", "expires_at": _future(1)}):
        r = owner.post(f"/challenges/{invited}/access", data=form)
        assert r.status_code == 302, r.get_data(as_text=True)[:500]
    r = owner.post(f"/failures/{ids['failure-invited']}/access", data={"email": "granted@pg.test"})
    assert r.status_code == 302

    with app.app_context():
        grants = {g.user.email if g.user else g.organisation.slug: g.id for g in db.session.execute(
            select(AccessGrant).where(AccessGrant.item_id == invited)).scalars()}
        # Time passes for the expiring grant (the service refuses an expiry in the past).
        db.session.execute(update(AccessGrant).where(AccessGrant.id == grants["expired@pg.test"])
                           .values(expires_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    r = owner.post(f"/challenges/{invited}/access/{grants['revoked@pg.test']}/revoke")
    assert r.status_code == 302
    return {"app": app, "people": people, "ids": ids, "slug": slug}


def _viewers(world):
    """(label, User or None): anonymous plus every person (inside an app context)."""
    return [("anonymous", None)] + [(key, p.user()) for key, p in world["people"].items()]


def _clients(world):
    """(label, signed-in test client): anonymous plus every person."""
    return [("anonymous", world["app"].test_client())] + \
        [(key, p.client) for key, p in world["people"].items()]


def test_visible_query_matches_per_object_can(world):
    from marketplace import policy

    with world["app"].app_context():
        items = db.session.execute(select(Item)).scalars().all()
        assert len(items) == len(world["ids"])
        for label, user in _viewers(world):
            listed = {i.id for i in db.session.execute(policy.visible(user, Item)).scalars()}
            allowed = {i.id for i in items if policy.can(user, "view", i)}
            assert listed == allowed, f"{label}: visible() {sorted(listed)} != can(view) {sorted(allowed)}"


# What each viewer must see: the rules of issue 2, spelled out for this world.
EXPECTED = {
    "anonymous": {"challenge-public"},
    "outsider": {"challenge-public", "challenge-registered", "asset-registered"},
    "revoked": {"challenge-public", "challenge-registered", "asset-registered"},
    "expired": {"challenge-public", "challenge-registered", "asset-registered"},
    "granted": {"challenge-public", "challenge-registered", "asset-registered", "challenge-invited",
                "failure-invited"},
    "partner": {"challenge-public", "challenge-registered", "asset-registered", "challenge-invited"},
    "member": {"challenge-public", "challenge-registered", "asset-registered", "challenge-invited",
               "failure-invited", "challenge-organisation"},
    "moderator": {"challenge-public", "challenge-registered", "asset-registered", "challenge-invited",
                  "failure-invited", "challenge-organisation"},
}
EXPECTED["owner"] = EXPECTED["org_admin"] = EXPECTED["member"] | {"challenge-draft"}


def test_each_viewer_sees_exactly_what_the_rules_allow(world):
    from marketplace import policy

    names = {v: k for k, v in world["ids"].items()}
    with world["app"].app_context():
        for label, user in _viewers(world):
            seen = {names[i.id] for i in db.session.execute(policy.visible(user, Item)).scalars()}
            assert seen == EXPECTED[label], label


def test_pages_answer_like_the_policy(world):
    """Detail pages: 200 for what the viewer may see, 404 (never 403) for the rest; the
    challenge list shows exactly the visible challenges."""
    ids = world["ids"]
    for label, client in _clients(world):
        for key, item_id in ids.items():
            kind = key.split("-")[0]
            r = client.get(f"/{PLURAL[kind]}/{item_id}")
            want = 200 if key in EXPECTED[label] else 404
            assert r.status_code == want, f"{label} GET {key}: {r.status_code}"
            if want == 404:
                assert "PG " not in r.get_data(as_text=True), f"{label}: 404 page leaks a title"
        page = client.get("/challenges/").get_data(as_text=True)
        for key in ids:
            if key.startswith("challenge-"):
                title = f"PG challenge {key.split('-', 1)[1]}"
                assert (title in page) == (key in EXPECTED[label]), f"{label}: list and {title}"


# --------------------------------------------------------------------------- concurrency


def _run_threads(n: int, fn) -> list:
    """Run fn(i) in n threads started together; return results, re-raising the first error."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list = []

    def run(i):
        try:
            barrier.wait(timeout=30)
            results[i] = fn(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def test_concurrent_writes_do_not_fail(world):
    """Many writers at once: every post and registration succeeds, the audit chain holds."""
    from marketplace import audit

    app = world["app"]
    n = 6
    writers = [world["people"]["owner"].client] + [app.test_client() for _ in range(n - 1)]
    for c in writers[1:]:
        r = c.post("/auth/login", data={"email": "org_admin@pg.test", "password": PASSWORD})
        assert r.status_code == 302
    with app.app_context():
        before = db.session.execute(select(Item.id)).scalars().all()

    def post(i):
        codes = []
        for j in range(3):
            # Failures publish without further conditions; challenges go in as drafts.
            if j % 2:
                r = writers[i].post("/failures/new", data={
                    "title": f"Concurrent {i}-{j}", "body": "At the same time.", "visibility": "public",
                    "publish": "1"})
            else:
                r = writers[i].post("/challenges/new", data={
                    "title": f"Concurrent {i}-{j}", "body": "At the same time.", "visibility": "public",
                    "deadline": _future(), "save": "1"})
            codes.append(r.status_code)
        return codes

    assert _run_threads(n, post) == [[302, 302, 302]] * n

    def register(i):
        c = app.test_client()
        return c.post("/auth/register", data={"email": f"rush{i}@pg.test", "display_name": f"Rush {i}",
                                              "password": PASSWORD, "confirm": PASSWORD}).status_code

    assert _run_threads(n, register) == [200] * n  # "check your inbox", each

    with app.app_context():
        after = db.session.execute(select(Item.id)).scalars().all()
        assert len(after) == len(before) + 3 * n
        result = audit.verify_chain()
        assert result.ok, result.problem


def test_concurrent_duplicates_get_a_form_error_not_a_500(world):
    """The same organisation name from several people at once: one wins, the rest are told."""
    app = world["app"]
    n = 5
    clients = []
    for i in range(n):
        c = app.test_client()
        _register(app, c, f"dup{i}@pg.test", f"Dup {i}")
        clients.append(c)

    def create(i):
        return clients[i].post("/orgs/new", data={"name": "Same Name Ltd", "kind": "company"}).status_code

    codes = sorted(_run_threads(n, create))
    assert codes == [302] + [400] * (n - 1), codes
    with app.app_context():
        assert db.session.execute(
            select(Organisation.id).where(Organisation.name == "Same Name Ltd")).scalars().all().__len__() == 1
