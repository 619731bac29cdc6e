"""Rate limits that hold across workers (issue 15): counters in the site's database by default
(`database://`, marketplace/ratelimit.py), atomic under concurrency, keyed per account for
signed-in actions and per real client address for anonymous ones, sign-in limited both ways;
429s say so in HTML and JSON. The last test runs gunicorn with two worker processes and
shows the sign-in limit holding in total, not per worker.

Every test that is not about the database table runs twice: with the database storage and
with Redis (RATELIMIT_STORAGE_URI=redis://..., TEST_REDIS_URL, which `make test` starts with
scripts/redis.sh). Without a Redis server the Redis half skips with a reason, except under
CI=true, where a missing server fails."""
from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select, update

from marketplace.extensions import db, limiter
from marketplace.models import RateLimitCounter
from marketplace.ratelimit import DEFAULTS, DatabaseStorage

from .factories import PASSWORD, Factories
from .factories_foundation import dispose, make_app

ROOT = Path(__file__).resolve().parent.parent


def redis_url(unavailable) -> str:
    """TEST_REDIS_URL, on a Redis database of this xdist worker's own (1..15), so tests
    running in parallel never count into each other's keys."""
    raw = os.environ.get("TEST_REDIS_URL")
    if not raw:
        unavailable("TEST_REDIS_URL is not set: start a server with `scripts/redis.sh start` and export "
                    "its URL, or run `make test`")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    url = raw.rsplit("/", 1)[0] + f"/{1 + int(re.sub(r'[^0-9]', '', worker) or 0) % 15}"
    import redis

    try:
        redis.Redis.from_url(url, socket_timeout=5).ping()
    except redis.RedisError as e:
        unavailable(f"the Redis server at TEST_REDIS_URL does not answer: {type(e).__name__}")
    return url


@pytest.fixture(params=["database", "redis"])
def storage_uri(request, unavailable) -> str:
    """The storage the limits count in: the site's database, or Redis."""
    return "database://" if request.param == "database" else redis_url(unavailable)


def _limited_app(tmp_path, storage: str):
    app = make_app(tmp_path, RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=storage, TRUSTED_PROXIES=1,
                   RATELIMITS={"signin_per_address": "6/minute", "signin_per_account": "3/minute",
                               "register_per_address": "2/hour", "posts_per_account": "2/minute",
                               "ideas_per_account": "2/hour", "invitations_per_account": "2/hour",
                               "invitation_links": "2/minute", "appeals_per_address": "2/hour"})
    if storage.startswith("redis"):
        from limits.storage import RedisStorage

        assert isinstance(limiter.storage, RedisStorage)
        limiter.storage.reset()  # counters left by an earlier test on this worker's database
    else:
        assert isinstance(limiter.storage, DatabaseStorage)
    return app


@pytest.fixture
def limited(tmp_path, storage_uri):
    """An app with rate limits on, counted in its database or in Redis, behind one trusted
    proxy (so a test can be many visitors), with small limits."""
    app = _limited_app(tmp_path, storage_uri)
    yield app
    dispose(app)


@pytest.fixture
def limited_db(tmp_path):
    """`limited`, counting in the database only (tests of the counters table itself)."""
    app = _limited_app(tmp_path, "database://")
    yield app
    dispose(app)


def _as(address: str) -> dict:
    return {"headers": {"X-Forwarded-For": address}, "environ_base": {"REMOTE_ADDR": "127.0.0.1"}}


# --------------------------------------------------------------------------- the storage


def test_the_default_storage_is_the_database(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "RATELIMIT_STORAGE_URI"}
    out = subprocess.run([sys.executable, "-c", "from marketplace.config import Config; "
                          "print(Config.RATELIMIT_STORAGE_URI)"], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "database://"
    env["RATELIMIT_STORAGE_URI"] = "  "
    out = subprocess.run([sys.executable, "-c", "from marketplace.config import Config; "
                          "print(Config.RATELIMIT_STORAGE_URI)"], cwd=ROOT, env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "database://"


def test_database_storage_counts_windows_and_clears(limited_db):
    s = limiter.storage
    with limited_db.app_context():
        assert [s.incr("k", 60) for _ in range(3)] == [1, 2, 3]
        assert s.incr("k", 60, amount=5) == 8 and s.get("k") == 8
        assert time.time() < s.get_expiry("k") <= time.time() + 60
        # The window ends: the next hit starts a new one.
        db.session.execute(update(RateLimitCounter).values(expires_at=time.time() - 1))
        db.session.commit()
        assert s.get("k") == 0 and s.incr("k", 60) == 1
        long_key = "x" * 500
        assert s.incr(long_key, 60) == 1 and s.incr(long_key, 60) == 2
        names = db.session.execute(select(RateLimitCounter.name)).scalars().all()
        assert all(len(n) <= 200 for n in names) and "x" * 500 not in names
        s.clear("k")
        assert s.get("k") == 0 and s.check()
        assert s.reset() == 1  # the long key's row


def test_the_storage_is_atomic_under_concurrency(limited):
    s = limiter.storage
    seen: list[int] = []
    lock = threading.Lock()

    def hit():
        with limited.app_context():
            got = [s.incr("shared", 60) for _ in range(25)]
        with lock:
            seen.extend(got)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Every increment saw a different count: none was lost, none counted twice.
    assert sorted(seen) == list(range(1, 201))


def test_a_bad_database_uri_is_refused():
    from limits.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="database:// alone"):
        DatabaseStorage("database://elsewhere:5432/x")


# --------------------------------------------------------------------------- sign-in


def test_sign_in_is_limited_per_account_whatever_the_address(limited):
    with limited.app_context():
        Factories().make_user(email="alice@example.test")
        Factories().make_user(email="bob@example.test")
    c = limited.test_client()
    codes = [c.post("/auth/login", data={"email": "Alice@Example.test ", "password": "wrong-password-1"},
                    **_as(f"198.51.100.{i}")).status_code for i in range(4)]
    assert codes == [400, 400, 400, 429]
    r = c.post("/auth/login", data={"email": "alice@example.test", "password": PASSWORD}, **_as("203.0.113.50"))
    assert r.status_code == 429  # even the right password waits: the account is under attack
    assert "Too many sign-in attempts for this account" in r.text and "Please wait" in r.text
    assert 1 <= int(r.headers["Retry-After"]) <= 61  # the window (a minute), rounded up
    # Another account from the same addresses is not affected.
    assert c.post("/auth/login", data={"email": "bob@example.test", "password": PASSWORD},
                  **_as("198.51.100.1")).status_code == 302


def test_sign_in_is_limited_per_address_whatever_the_account(limited):
    c = limited.test_client()
    codes = [c.post("/auth/login", data={"email": f"nobody{i}@example.test", "password": "x-password-1"},
                    **_as("203.0.113.7")).status_code for i in range(7)]
    assert codes == [400] * 6 + [429]
    assert c.post("/auth/login", data={"email": "nobody@example.test", "password": "x-password-1"},
                  **_as("203.0.113.8")).status_code == 400  # another visitor


def test_a_429_is_clear_in_html_and_json(limited):
    c = limited.test_client()
    for i in range(6):
        c.post("/auth/login", data={"email": f"n{i}@example.test", "password": "x"}, **_as("192.0.2.1"))
    r = c.post("/auth/login", data={"email": "n@example.test", "password": "x"}, **_as("192.0.2.1"))
    assert r.status_code == 429 and r.mimetype == "text/html"
    assert "Too many requests: the limit here is 6 per 1 minute." in r.text and "Please wait" in r.text
    r = c.post("/auth/login", data={"email": "n@example.test", "password": "x"},
               headers={"X-Forwarded-For": "192.0.2.1", "Accept": "application/json"},
               environ_base={"REMOTE_ADDR": "127.0.0.1"})
    body = r.get_json()
    assert r.status_code == 429 and body["status"] == 429 and "limit here is 6 per 1 minute" in body["error"]
    assert int(r.headers["Retry-After"]) >= 1


def test_registration_is_limited_per_address(limited):
    c = limited.test_client()
    codes = [c.post("/auth/register", data={"email": "x"}, **_as("192.0.2.9")).status_code for _ in range(3)]
    assert codes == [400, 400, 429]


# --------------------------------------------------------------------------- per account


@pytest.fixture
def signed_in(limited):
    with limited.app_context():
        f = Factories()
        user = f.make_user(email="carol@example.test")
        org = f.make_org(owner=f.make_user())
        failure = f.make_item(org, kind="failure", visibility="public")
        challenge = f.make_item(org, kind="challenge", visibility="public")
        ids = {"failure": failure.id, "challenge": challenge.id, "user": user.id}
    c = limited.test_client()
    assert c.post("/auth/login", data={"email": "carol@example.test", "password": PASSWORD},
                  **_as("203.0.113.1")).status_code == 302
    return c, ids


def test_posts_count_per_account_across_addresses(signed_in):
    c, ids = signed_in
    # Empty comments are refused by the form; the limiter counts the attempts all the same.
    codes = [c.post(f"/engage/failures/{ids['failure']}/comment", data={"body": ""},
                    **_as(f"203.0.113.{i}")).status_code for i in range(1, 4)]
    assert codes[:2] != [429, 429] and codes[2] == 429


@pytest.mark.parametrize("path", [
    "/engage/challenges/{challenge}/ask", "/engage/failures/{failure}/comment",
    "/challenges/{challenge}/ideas/new", "/invitations/item/{challenge}",
])
def test_each_limited_action_answers_429_past_its_limit(signed_in, path):
    c, ids = signed_in
    url = path.format(**ids)
    codes = [c.post(url, data={}, **_as("203.0.113.1")).status_code for _ in range(3)]
    assert codes[2] == 429 and 429 not in codes[:2], codes


def test_limits_are_keyed_as_documented(limited):
    """Every limited view names its key: per account (or address when anonymous) for signed-in
    actions, per address for sign-up and appeals, both for sign-in, per address and mailbox
    for the forms that mail the address typed."""
    from marketplace import ratelimit

    keyed = {}
    with limited.test_request_context():
        # Flask-Limiter names each decorated view by its own scheme; the view's name ends it.
        for name in list(limiter.limit_manager._decorated_limits):
            limits = limiter.limit_manager.decorated_limits(name)
            keyed[name.rsplit(".", 1)[-1]] = {lim.key_func.__name__ for lim in limits}
    assert keyed["login"] == {"client_address", "signin_account"}
    assert keyed["register"] == keyed["forgot_password"] == {"client_address", "typed_mailbox"}
    for view in ("resend_verification", "change_email", "follow", "announce"):
        assert keyed[view] == {"account_or_address"}, view
    for view in ("ask", "answer", "edit", "comment", "send_request", "request_action", "submit", "revise",
                 "for_item", "accept", "decline", "report"):
        assert keyed[view] == {"account_or_address"}, view
    assert set(ratelimit.DEFAULTS) == set(DEFAULTS)


# --------------------------------------------------------------------------- two gunicorn workers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Site:
    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  _NoRedirect())
        page = self.opener.open(base + "/auth/login", timeout=30).read().decode()
        self.token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)

    def sign_in(self, email: str, password: str, address: str) -> int:
        data = urllib.parse.urlencode({"email": email, "password": password, "csrf_token": self.token}).encode()
        req = urllib.request.Request(self.base + "/auth/login", data=data,
                                     headers={"X-Forwarded-For": address})
        try:
            return self.opener.open(req, timeout=60).status
        except urllib.error.HTTPError as e:
            return e.code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **kw):
        return None


def _run_gunicorn(tmp_path, storage: str):
    """gunicorn (the project's gunicorn.conf.py) with two workers on a fresh SQLite database;
    yields (base URL, access log path)."""
    port = _free_port()
    db_path = tmp_path / "test.db"  # make_app's file
    app = make_app(tmp_path)  # creates the schema in the file the workers will open
    with app.app_context():
        Factories().make_user(email="target@example.test")
    dispose(app)
    access = tmp_path / "access.log"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db_path}", "SECRET_KEY": "k" * 40,
           "MARKETPLACE_INSTANCE": str(tmp_path), "SEARCH_WORKER": "off", "SEARCH_INDEX_DIR": str(tmp_path / "s"),
           "RATELIMIT_ENABLED": "1", "RATELIMIT_STORAGE_URI": storage, "TRUSTED_PROXIES": "1",
           "GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "LOG_LEVEL": "WARNING",
           "GUNICORN_LOGLEVEL": "warning"}
    cmd = [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py",
           "--access-logfile", str(access), "--access-logformat", "%(p)s %(m)s %(U)s %(s)s"]
    output = tmp_path / "gunicorn.out"
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=output.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=5)
            break
        except (urllib.error.URLError, ConnectionError, OSError):
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                proc.wait()
                pytest.fail(f"gunicorn did not start:\n{output.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
    return proc, base, access


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _burst(site: _Site, attempts: list[tuple[str, str]], threads: int = 6) -> list[int]:
    codes: list[int] = []
    lock = threading.Lock()
    queue = list(attempts)

    def work():
        while True:
            with lock:
                if not queue:
                    return
                email, address = queue.pop()
            code = site.sign_in(email, "wrong-password-1", address)
            with lock:
                codes.append(code)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return codes


def _worker_pids(access: Path) -> set[str]:
    return {line.split()[0] for line in access.read_text().splitlines() if " POST /auth/login " in line}


def test_the_sign_in_limit_holds_across_two_gunicorn_workers(tmp_path, storage_uri):
    if storage_uri.startswith("redis"):
        import redis

        redis.Redis.from_url(storage_uri).flushdb()  # this worker's own database (redis_url)
    proc, base, access = _run_gunicorn(tmp_path, storage_uri)
    try:
        site = _Site(base)
        per_address, per_account = (int(DEFAULTS[k].split("/")[0]) for k in ("signin_per_address",
                                                                           "signin_per_account"))
        # One visitor, many accounts: the per-address limit (30 a minute) in total.
        codes = _burst(site, [(f"nobody{i}@example.test", "203.0.113.77") for i in range(per_address + 10)])
        assert codes.count(400) == per_address and codes.count(429) == 10, sorted(codes)
        # Many visitors, one account: the per-account limit (10 a minute) in total.
        codes = _burst(site, [("target@example.test", f"198.51.100.{i}") for i in range(per_account + 5)])
        assert codes.count(400) == per_account and codes.count(429) == 5, sorted(codes)
        pids = _worker_pids(access)
    finally:
        _stop(proc)
    # Both processes answered sign-ins, each with its own memory: the exact totals above hold
    # only because the count is shared (with memory:// each worker would allow 30).
    assert len(pids) == 2, f"both workers must have answered sign-ins (saw pids {pids})"

