"""The page cache for anonymous visitors (marketplace/pagecache.py): what it serves, what it
stores, and that every committed write, from any path and any process, invalidates it before
the next request, while a rollback does not. Real app, real SQLite, real Whoosh index."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import event, select, update

from marketplace import create_app, pagecache
from marketplace.config import ConfigError, TestingConfig
from marketplace.extensions import db
from marketplace.models import Item, UserSession
from marketplace.search import get_runtime

from .factories import sign_in_client
from .factories_moderation import act

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def w(app, f):
    owner = f.make_user(name="Owner Person")
    mod = f.make_user(site_role="moderator")
    org = f.make_org(name="Acme Labs", owner=owner)
    ch = f.make_item(org, title="Quantum widget challenge", tags=("widgets",))
    other = f.make_item(org, kind="failure", title="Failed gasket failure")

    class W:
        pass

    world = W()
    world.owner, world.mod, world.org, world.ch, world.other = owner, mod, org, ch, other
    world.ch_id, world.org_slug = ch.id, org.slug
    get_runtime(app).apply_now(wait=True)  # the index exists: searches need no first-time drain
    return world


def fresh() -> None:
    """Forget the rows this test's session holds: the test shares its session (and identity
    map) with the requests it makes, so a write made outside that session would otherwise be
    hidden by the session's own copy, cache or no cache."""
    db.session.expire_all()


def raw_get(app, path: str, **environ) -> tuple[str, dict, bytes]:
    """A GET through the WSGI app with exactly the environ given (the test client would drop
    an empty Cookie header)."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    env = EnvironBuilder(path=path).get_environ()
    env.update(environ)
    body, status, headers = run_wsgi_app(app, env, buffered=True)
    return status, dict(headers), b"".join(body)


def cache(app) -> pagecache.PageCache:
    return pagecache.get_cache(app)


def token(app) -> str | None:
    return app.extensions["pagecache_store"].read()


def pages(w) -> dict[str, str]:
    """Every kind of cacheable page, each showing the challenge to anonymous visitors."""
    return {
        "home": "/",
        "list": "/challenges/",
        "detail": f"/challenges/{w.ch_id}",
        "org": f"/orgs/{w.org_slug}",
        "search": "/search?q=quantum",
        "feed": "/feeds/challenges.atom",
    }


def hit_twice(client, path):
    first = client.get(path)
    second = client.get(path)
    return first, second


def test_every_cacheable_page_is_stored_then_served(app, client, w):
    for name, path in pages(w).items():
        first, second = hit_twice(client, path)
        assert first.status_code == 200, name
        assert first.headers["X-Page-Cache"] == "miss", name
        assert second.headers["X-Page-Cache"] == "hit", name
        assert second.data == first.data and b"widget challenge" in second.data, name
        assert second.headers["Content-Type"] == first.headers["Content-Type"], name
        # Per-request headers are fresh; the rest is kept.
        assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"], name
        assert int(second.headers["Age"]) >= 0 and "Age" not in first.headers, name
        assert second.headers["Content-Security-Policy"] == first.headers["Content-Security-Policy"], name
    # A proxy's sane request id is kept on a hit, as on a miss.
    assert client.get("/", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"


def test_pages_not_on_the_allow_list_are_never_cached(app, client, w):
    for path in ("/auth/login", "/auth/register", "/transparency", "/healthz", "/challenges/new"):
        r1, r2 = hit_twice(client, path)
        assert "X-Page-Cache" not in r1.headers and "X-Page-Cache" not in r2.headers, path
    assert len(cache(app)) == 0


# --------------------------------------------------------------------------- invalidation


def anonymous_sees(client, w) -> dict[str, bool]:
    """Whether the challenge shows on each page, for an anonymous visitor, right now."""
    out = {}
    for name, path in pages(w).items():
        r = client.get(path)
        out[name] = r.status_code == 200 and b"widget challenge" in r.data  # search marks "Quantum"
    return out


@pytest.mark.parametrize("level", ["invited", "organisation", "registered"])
def test_an_item_made_private_by_its_owner_is_gone_on_the_very_next_request(app, client, w, level):
    assert all(anonymous_sees(client, w).values())
    assert all(anonymous_sees(client, w).values())  # now from the cache
    assert cache(app).hits >= len(pages(w))
    owner = app.test_client()
    sign_in_client(owner, app, w.owner.id)
    r = owner.post(f"/challenges/{w.ch_id}/visibility", data={"visibility": level})
    assert r.status_code == 302
    seen = anonymous_sees(client, w)
    assert not any(seen.values()), seen
    assert client.get(f"/challenges/{w.ch_id}").status_code == 404
    assert client.get(f"/api/v1/items/{w.ch_id}").status_code == 404


def test_a_moderator_hiding_an_item_takes_it_off_every_cached_page(app, client, w):
    assert all(anonymous_sees(client, w).values())
    act(w.mod, "challenge", w.ch_id, "hide", "Discloses a supplier contract.")
    assert not any(anonymous_sees(client, w).values())
    act(w.mod, "challenge", w.ch_id, "restore", "It was public after all.")
    assert all(anonymous_sees(client, w).values())


def test_a_new_public_item_appears_in_lists_and_feeds(app, client, f, w):
    paths = ["/", "/challenges/", "/feeds/challenges.atom", f"/orgs/{w.org_slug}"]
    for p in paths:
        hit_twice(client, p)
    f.make_item(w.org, title="Brand new robot challenge")
    for p in paths:
        r = client.get(p)
        assert r.headers["X-Page-Cache"] == "miss" and b"Brand new robot" in r.data, p


def test_an_edited_title_shows_at_once(app, client, w):
    path = f"/challenges/{w.ch_id}"
    hit_twice(client, path)
    owner = app.test_client()
    sign_in_client(owner, app, w.owner.id)
    form = owner.get(f"/challenges/{w.ch_id}/edit")
    assert form.status_code == 200
    item = db.session.get(Item, w.ch_id)
    item.title = "Renamed widget challenge"
    db.session.commit()
    r = client.get(path)
    assert b"Renamed widget challenge" in r.data and b"Quantum widget" not in r.data


def test_a_core_update_through_the_session_invalidates(app, client, w):
    path = "/challenges/"
    hit_twice(client, path)
    db.session.execute(update(Item).where(Item.id == w.ch_id).values(title="Core-updated title"))
    db.session.commit()
    assert b"Core-updated title" in client.get(path).data


def test_a_core_update_through_engine_begin_invalidates(app, client, w):
    path = f"/challenges/{w.ch_id}"
    hit_twice(client, path)
    with db.engine.begin() as conn:
        conn.execute(update(Item).where(Item.id == w.ch_id).values(title="Engine-begin title"))
    fresh()
    assert b"Engine-begin title" in client.get(path).data


def test_a_connection_commit_invalidates_before_the_connection_is_returned(app, client, w):
    path = f"/challenges/{w.ch_id}"
    hit_twice(client, path)
    with db.engine.connect() as conn:
        conn.execute(update(Item).where(Item.id == w.ch_id).values(title="Held connection title"))
        conn.commit()
        fresh()
        # The connection is still checked out: the commit alone must have invalidated.
        assert b"Held connection title" in client.get(path).data


def test_a_write_by_another_process_is_seen_by_the_next_request(app, client, w, tmp_path):
    path = f"/challenges/{w.ch_id}"
    hit_twice(client, path)
    assert client.get(path).headers["X-Page-Cache"] == "hit"
    script = textwrap.dedent(f"""
        from sqlalchemy import update
        from marketplace import create_app
        from marketplace.config import TestingConfig
        from marketplace.extensions import db
        from marketplace.models import Item

        class Cfg(TestingConfig):
            SQLALCHEMY_DATABASE_URI = {app.config['SQLALCHEMY_DATABASE_URI']!r}
            SEARCH_INDEX_DIR = {app.config['SEARCH_INDEX_DIR']!r}
            SEARCH_WORKER = "off"

        other = create_app(Cfg)
        with other.app_context():
            db.session.execute(update(Item).where(Item.id == {w.ch_id}).values(title="Written elsewhere"))
            db.session.commit()
    """)
    env = dict(os.environ, MARKETPLACE_INSTANCE=app.instance_path)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, timeout=120)
    fresh()
    r = client.get(path)
    assert r.headers["X-Page-Cache"] == "miss" and b"Written elsewhere" in r.data


def test_a_flask_command_bumps_the_generation_of_the_other_processes(app, client, w):
    path = "/challenges/"
    hit_twice(client, path)
    before = token(app)
    env = dict(os.environ, MARKETPLACE_INSTANCE=app.instance_path, SECRET_KEY="pagecache-test-secret-0123456789",
               DATABASE_URL=app.config["SQLALCHEMY_DATABASE_URI"], SEARCH_WORKER="off", FLASK_APP="app")
    r = subprocess.run([str(ROOT / ".venv/bin/flask"), "--app", "app", "pagecache", "bump"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert token(app) != before
    assert client.get(path).headers["X-Page-Cache"] == "miss"


def test_a_rollback_does_not_bump(app, client, w):
    path = f"/challenges/{w.ch_id}"
    hit_twice(client, path)
    before = token(app)
    item = db.session.get(Item, w.ch_id)
    item.title = "Never committed"
    db.session.flush()
    db.session.rollback()
    with db.engine.connect() as conn:
        conn.execute(update(Item).where(Item.id == w.ch_id).values(title="Never committed either"))
        conn.rollback()
    assert token(app) == before
    r = client.get(path)
    assert r.headers["X-Page-Cache"] == "hit" and b"Never committed" not in r.data


def test_reads_do_not_bump(app, client, w):
    before = token(app)
    db.session.execute(select(Item)).all()
    db.session.commit()
    with db.engine.begin() as conn:
        conn.execute(select(Item.id)).all()
    assert token(app) == before


def test_data_committed_while_a_page_renders_is_not_stored(app, client, w):
    path = f"/challenges/{w.ch_id}"
    engine = db.engine
    done = []

    def write_once(conn, *_a):
        # A write committed by someone else during the rendering, after the generation was read.
        if not done and "items" in _a[1]:
            done.append(1)
            pagecache.bump_generation(app)

    event.listen(engine, "before_cursor_execute", write_once)
    try:
        assert client.get(path).headers["X-Page-Cache"] == "miss"
    finally:
        event.remove(engine, "before_cursor_execute", write_once)
    assert done and len(cache(app)) == 0
    assert client.get(path).headers["X-Page-Cache"] == "miss"
    assert client.get(path).headers["X-Page-Cache"] == "hit"


# --------------------------------------------------------------------------- who is served


def test_a_request_with_any_cookie_is_never_served_nor_stored(app, client, w):
    path = "/challenges/"
    hit_twice(client, path)
    n = len(cache(app))
    for environ in ({"HTTP_COOKIE": "anything=1"}, {"HTTP_COOKIE": ""}, {"HTTP_AUTHORIZATION": "Bearer oim_nope"},
                    {"HTTP_AUTHORIZATION": "Basic eDp5"}):
        for _ in range(2):
            status, headers, _body = raw_get(app, path, **environ)
            assert status.startswith(("200", "401")) and "X-Page-Cache" not in headers, environ
    assert len(cache(app)) == n
    other = app.test_client()
    other.set_cookie("theme", "dark")
    assert "X-Page-Cache" not in other.get(path).headers
    for query in ("?token=abc", "?access_token=abc", "?api_key=1", "?sig=1"):
        for _ in range(2):
            assert "X-Page-Cache" not in client.get(path + query).headers, query
    assert len(cache(app)) == n


def test_a_signed_in_page_is_never_stored_and_never_served_a_cached_page(app, client, w):
    path = "/challenges/"
    anon = client.get(path)
    assert b"Owner Person" not in anon.data
    member = app.test_client()
    sign_in_client(member, app, w.owner.id)
    n = len(cache(app))
    for _ in range(2):
        r = member.get(path)
        assert "X-Page-Cache" not in r.headers and b"Owner Person" in r.data
    assert len(cache(app)) == n


def test_a_page_that_sets_a_cookie_or_flashes_is_not_stored(app, client, w):
    from flask import flash

    # The verdict is the app's: a view that flashes (and so writes the session) is refused.
    @app.after_request
    def _flash(resp):
        from flask import request

        if request.path == "/about":
            flash("hello")
        return resp

    r1 = client.get("/about")
    assert r1.headers["X-Page-Cache"] == "miss" and "Set-Cookie" in r1.headers and len(cache(app)) == 0
    assert app.test_client().get("/about").headers["X-Page-Cache"] == "miss"  # still not stored
    assert len(cache(app)) == 0


def test_the_host_and_scheme_are_part_of_the_key(app, client, w):
    path = "/feeds/challenges.atom"
    a = client.get(path, base_url="http://one.example")
    b = client.get(path, base_url="https://two.example")
    assert a.headers["X-Page-Cache"] == b.headers["X-Page-Cache"] == "miss"
    assert b"two.example" in b.data and b"two.example" not in a.data
    assert client.get(path, base_url="http://one.example").data == a.data


# --------------------------------------------------------------------------- HTTP details


def test_head_is_served_from_a_get_entry_without_a_body(app, client, w):
    path = "/challenges/"
    h = client.head(path)
    assert h.headers["X-Page-Cache"] == "miss" and len(cache(app)) == 0  # a HEAD is never stored
    g = client.get(path)
    h = client.head(path)
    assert h.status_code == 200 and h.headers["X-Page-Cache"] == "hit" and h.data == b""
    assert h.headers["Content-Length"] == g.headers["Content-Length"] == str(len(g.data))


def test_the_api_is_never_cached_and_keeps_counting_calls(app, client, w):
    """API answers promise RateLimit-* headers and a per-address limit: every call reaches
    the app (no X-Page-Cache), and conditional requests are the API's own 304s."""
    path = "/api/v1/challenges"
    first = client.get(path)
    again = client.get(path)
    assert "X-Page-Cache" not in first.headers and "X-Page-Cache" not in again.headers
    assert len(cache(app)) == 0
    etag = first.headers["ETag"]
    r = client.get(path, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.headers["ETag"] == etag and "X-Page-Cache" not in r.headers
    db.session.execute(update(Item).where(Item.id == w.ch_id).values(title="Changed for the etag"))
    db.session.commit()
    r = client.get(path, headers={"If-None-Match": etag})
    assert r.status_code == 200 and r.headers["ETag"] != etag and b"Changed for the etag" in r.data


def test_entries_expire_after_the_ttl(app, client, w):
    now = [1000.0]
    cache(app).clock = lambda: now[0]
    path = "/challenges/"
    hit_twice(client, path)
    now[0] += app.config["PAGE_CACHE_TTL"] - 0.5
    r = client.get(path)
    assert r.headers["X-Page-Cache"] == "hit" and r.headers["Age"] == str(int(app.config["PAGE_CACHE_TTL"] - 0.5))
    now[0] += 0.5
    assert client.get(path).headers["X-Page-Cache"] == "miss"
    assert client.get(path).headers["X-Page-Cache"] == "hit"


def test_entries_over_the_size_limit_are_not_stored(app, client, w):
    cache(app).max_entry_bytes = 200
    r1, r2 = hit_twice(client, "/challenges/")
    assert r1.status_code == r2.status_code == 200
    assert r2.headers["X-Page-Cache"] == "miss" and len(cache(app)) == 0 and r2.data == r1.data


def test_lru_eviction_keeps_the_byte_bound(app, client, f, w):
    paths = [f"/challenges/{f.make_item(w.org, title=f'Item {i}').id}" for i in range(6)]
    client.get(paths[0])
    one = cache(app).bytes
    c = cache(app)
    c.clear()
    c.max_bytes = int(one * 2.5)
    for p in paths:
        assert client.get(p).headers["X-Page-Cache"] == "miss"
        assert c.bytes <= c.max_bytes
    assert len(c) == 2 and c.evictions == 4
    assert client.get(paths[-1]).headers["X-Page-Cache"] == "hit"
    assert client.get(paths[-2]).headers["X-Page-Cache"] == "hit"
    assert client.get(paths[0]).headers["X-Page-Cache"] == "miss"


def test_an_unreadable_generation_means_a_miss_that_is_not_stored(app, client, w):
    path = "/challenges/"
    hit_twice(client, path)
    os.remove(os.path.join(app.instance_path, pagecache.GENERATION_FILE))
    r = client.get(path)
    assert r.status_code == 200 and r.headers["X-Page-Cache"] == "miss"
    assert len(cache(app)) == 0 or client.get(path).headers["X-Page-Cache"] == "miss"
    assert client.get(path).headers["X-Page-Cache"] in ("hit", "miss")
    assert client.get(path).headers["X-Page-Cache"] == "hit"


# --------------------------------------------------------------------------- what is tracked


def test_untracked_tables_are_read_by_no_cacheable_page(app, client, w):
    """UNTRACKED_TABLES' writes do not invalidate: no cacheable page may read them."""
    seen: list[str] = []

    def log(_conn, _cursor, statement, *_a):
        seen.append(statement.lower())

    event.listen(db.engine, "before_cursor_execute", log)
    try:
        for path in pages(w).values():
            client.get(path)
        client.get("/orgs/")
        client.get("/about")
        client.get("/failures/")
        client.get(f"/failures/{w.other.id}")
    finally:
        event.remove(db.engine, "before_cursor_execute", log)
    assert seen
    for table in pagecache.UNTRACKED_TABLES:
        assert not [s for s in seen if table in s], table


def test_session_stamps_do_not_bump_but_everything_else_does(app, w):
    before = token(app)
    sign_in_client(app.test_client(), app, w.owner.id)
    db.session.execute(update(UserSession).values(last_seen_at=UserSession.last_seen_at))
    db.session.commit()
    assert token(app) == before
    db.session.execute(update(Item).where(Item.id == -1).values(title="x"))  # writes no row: still a write
    db.session.commit()
    assert token(app) != before


@pytest.mark.parametrize("sql, write", [
    ("SELECT 1", False), ("  select * from items", False), ("PRAGMA foreign_keys=ON", False),
    ("SAVEPOINT sa_1", False), ("RELEASE SAVEPOINT sa_1", False), ("ROLLBACK TO SAVEPOINT sa_1", False),
    ("WITH x AS (SELECT 1) SELECT * FROM x", False),
    ("INSERT INTO items (title) VALUES (?)", True), ("UPDATE items SET title=?", True),
    ("DELETE FROM items", True), ("WITH x AS (SELECT 1) DELETE FROM items", True),
    ("CREATE TABLE t (a int)", True), ("/* comment */ SELECT 1", True), ("REPLACE INTO items VALUES (1)", True),
    ("INSERT INTO rate_limit_counters (name, hits) VALUES (?, ?)", False),
    ("UPDATE user_sessions SET last_seen_at=? WHERE user_sessions.id = ?", False),
    ('UPDATE "user_sessions" SET x=1', False), ("UPDATE user_sessions_archive SET x=1", True),
    ("INSERT OR REPLACE INTO items (title) VALUES (?)", True),
])
def test_which_statements_count_as_writes(sql, write):
    assert pagecache._is_write(sql) is write


# --------------------------------------------------------------------------- configuration


def _cfg(tmp_path, **kw):
    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'pc.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        UPLOAD_DIR = str(tmp_path / "uploads")

    for k, v in kw.items():
        setattr(Cfg, k, v)
    return Cfg


def test_page_cache_off_serves_nothing_but_still_tracks_writes(tmp_path, f):
    app = create_app(_cfg(tmp_path, PAGE_CACHE="off"))
    app.instance_path = str(tmp_path / "inst")
    with app.app_context():
        db.create_all()
        c = app.test_client()
        assert "X-Page-Cache" not in c.get("/").headers and pagecache.get_cache(app) is None
        store = app.extensions["pagecache_store"]
        before = store.read()
        f.make_user()
        assert store.read() != before
        db.session.remove()
        db.engine.dispose()


@pytest.mark.parametrize("key, value", [("PAGE_CACHE", "maybe"), ("PAGE_CACHE_TTL", "soon"),
                                        ("PAGE_CACHE_MAX_BYTES", -1), ("PAGE_CACHE_MAX_ENTRY_BYTES", "big")])
def test_bad_settings_are_refused_with_a_message(tmp_path, key, value):
    with pytest.raises(ConfigError, match=key):
        create_app(_cfg(tmp_path, **{key: value}))


def test_the_generation_in_redis_is_shared(tmp_path, unavailable):
    from .test_hardening_ratelimits import redis_url

    url = redis_url(unavailable)
    apps = []
    for name in ("a", "b"):  # two hosts: one database, an instance folder each, one Redis
        app = create_app(_cfg(tmp_path, REDIS_URL=url))
        app.instance_path = str(tmp_path / name)
        with app.app_context():
            db.create_all()
        apps.append(app)
    a, b = apps
    store_a, store_b = a.extensions["pagecache_store"], b.extensions["pagecache_store"]
    assert store_a.kind == store_b.kind == "redis"
    ca = a.test_client()
    ca.get("/")
    assert ca.get("/").headers["X-Page-Cache"] == "hit"
    before = store_a.read()
    with b.app_context():  # a write through the other app (another host) ...
        from .factories import Factories

        Factories().make_user()
    assert store_a.read() != before  # ... is seen by this one
    assert ca.get("/").headers["X-Page-Cache"] == "miss"
    # Redis down: every request rendered, nothing stored.
    store_a.client = __import__("redis").Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2,
                                                         socket_connect_timeout=0.2)
    n = len(pagecache.get_cache(a))
    assert ca.get("/").headers["X-Page-Cache"] == "miss" and ca.get("/").headers["X-Page-Cache"] == "miss"
    assert len(pagecache.get_cache(a)) <= n
    for app in apps:
        with app.app_context():
            db.engine.dispose()


def test_a_challenge_page_gives_anonymous_visitors_no_cookie_and_is_cached(tmp_path):
    """With CSRF on (as in production), a Q&A panel's answer form is built only where it is
    shown: an anonymous visitor gets no session cookie, so the page can be cached; the
    organisation still gets its form with a CSRF token."""
    from marketplace.services import engagement as eng_svc

    from .factories import Factories

    app = create_app(_cfg(tmp_path, WTF_CSRF_ENABLED=True))
    app.instance_path = str(tmp_path)
    with app.app_context():
        db.create_all()
        f = Factories()
        owner, asker = f.make_user(), f.make_user()
        ch = f.make_item(f.make_org(owner=owner), title="Widget challenge")
        eng_svc.ask_question(asker, ch, "How big is the widget?")
        ch_id, owner_id = ch.id, owner.id
        db.session.remove()
    c = app.test_client()
    first = c.get(f"/challenges/{ch_id}")
    assert first.status_code == 200 and "Set-Cookie" not in first.headers
    assert b'name="csrf_token"' not in first.data
    assert c.get(f"/challenges/{ch_id}").headers["X-Page-Cache"] == "hit"
    member = app.test_client()
    sign_in_client(member, app, owner_id)
    page = member.get(f"/challenges/{ch_id}").get_data(as_text=True)
    assert "Answer (publishes the question)" in page and 'name="csrf_token"' in page
    with app.app_context():
        db.engine.dispose()
