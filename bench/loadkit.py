"""What bench/pages.py and bench/load.py share: the two servers of a run (the site under
`make serve`'s own start script and the hello-world ceiling under the same gunicorn
settings), a small browser (keep-alive connection, cookie jar, the real sign-in form), a
bounded load runner (processes x threads, each thread a virtual user that stops at the
deadline) and the table it prints.

The client is ours (http.client): it is bounded (a fixed number of virtual users, no
open-loop flood), reuses its connection where the server keeps it (gunicorn's sync workers
close it after each response: the client then reconnects, as a browser would), and runs in
several processes so one interpreter lock does not cap the figures.
"""
from __future__ import annotations

import http.client
import multiprocessing as mp
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
WORKER_CMD = re.compile(r"flask --app app worker( |$)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connection_owner(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of `pids` holds the server side of the TCP connection from `client_port` to
    `server_port` on this host: the socket's inode from /proc/net/tcp, then the process whose
    file descriptors include it (a sync gunicorn worker holds the connection it accepted)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and int(f[1].rsplit(":", 1)[1], 16) == server_port \
                    and int(f[2].rsplit(":", 1)[1], 16) == client_port and f[9] != "0":
                inodes.add(f"socket:[{f[9]}]")
    if not inodes:
        return None
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return pid
            except OSError:
                continue
    return None


def loadavg() -> tuple[float, float, float]:
    return os.getloadavg()


# --------------------------------------------------------------------------- servers


class Server:
    """One process group we start and stop (never anything else)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int, log: Path):
        self.name, self.argv, self.env, self.port, self.log = name, argv, env, port, log
        self.proc: subprocess.Popen | None = None

    def start(self, ready_path: str = "/", timeout: float = 90) -> "Server":
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=out,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} ended at start (status {self.proc.returncode}); see {self.log}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                c.request("GET", ready_path)
                if c.getresponse().status < 500:
                    # Every worker imports the app after the fork: give them all a request.
                    for _ in range(8):
                        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                        c.request("GET", ready_path)
                        c.getresponse().read()
                    return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer on port {self.port} in {timeout} s; see {self.log}")

    def group(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process of this server's group."""
        out = []
        if not self.proc:
            return out
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                if os.getpgid(int(d.name)) != self.proc.pid:
                    continue
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except (OSError, ProcessLookupError):
                continue
            out.append((int(d.name), cmd))
        return out

    def gunicorn_workers(self) -> list[int]:
        procs = self.group()
        # run.sh's own shells carry "gunicorn" in their command line too ("run.sh gunicorn").
        gun = {pid for pid, cmd in procs if "gunicorn" in cmd and "run.sh" not in cmd}
        # Workers are gunicorn processes whose parent is the gunicorn master.
        workers = []
        for pid in gun:
            try:
                ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid in gun:
                workers.append(pid)
        return sorted(workers)

    def background_workers(self) -> list[int]:
        """The `flask worker` run.sh started beside gunicorn (it writes the search index)."""
        return sorted(pid for pid, cmd in self.group() if WORKER_CMD.search(cmd))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=40)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.proc = None


def site_server(env: dict[str, str], data_dir: Path, workers: int = 4, extra: dict | None = None) -> Server:
    """The site as `make serve` runs it (scripts/run.sh gunicorn: migrate, one `flask worker`
    beside gunicorn, gunicorn.conf.py), with 4 workers on a free local port."""
    port = free_port()
    e = dict(env, GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=str(workers), GUNICORN_LOGLEVEL="warning",
             VENV=str(ROOT / ".venv"), PATH=f"{BIN}:{os.environ.get('PATH', '')}")
    e.pop("SEARCH_WORKER", None)
    e.pop("MAIL_WORKER", None)
    e.update(extra or {})
    return Server("site", ["bash", str(ROOT / "scripts/run.sh"), "gunicorn"], e, port, data_dir / "site.log")


def hello_server(data_dir: Path, workers: int = 4) -> Server:
    """The ceiling: a Flask hello-world under the same gunicorn.conf.py and worker count."""
    port = free_port()
    e = dict(os.environ, GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY=str(workers),
             GUNICORN_LOGLEVEL="warning")
    return Server("hello", [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "bench.hello_app:app"], e, port,
                  data_dir / "hello.log")


# --------------------------------------------------------------------------- browser


class Browser:
    """One visitor: a connection to the server (reopened when the server closes it) and a
    cookie jar. `forwarded_for` gives the visitor an address of its own (the server runs with
    TRUSTED_PROXIES=1 then), so per-address limits apply per visitor, not to the whole run."""

    def __init__(self, port: int, timeout: float = 60, forwarded_for: str | None = None,
                 headers: dict[str, str] | None = None):
        self.port, self.timeout = port, timeout
        self.cookies: dict[str, str] = {}
        self.forwarded_for = forwarded_for
        self.extra_headers = dict(headers or {})  # sent with every request (e.g. Authorization)
        self.conn: http.client.HTTPConnection | None = None

    def _headers(self, extra: dict | None = None) -> dict:
        h = {"User-Agent": "marketplace-bench/1", "Accept": "text/html,application/json"}
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.forwarded_for:
            h["X-Forwarded-For"] = self.forwarded_for
        h.update(self.extra_headers)
        h.update(extra or {})
        return h

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, body bytes, response headers); raises OSError/HTTPException on failure."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self.conn.request(method, path, body=body, headers=self._headers(headers))
            r = self.conn.getresponse()
            data = r.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        for raw in r.headers.get_all("Set-Cookie") or []:
            c = SimpleCookie()
            c.load(raw)
            for k, m in c.items():
                if m["expires"] and "1970" in m["expires"] or m["max-age"] == "0":
                    self.cookies.pop(k, None)
                else:
                    self.cookies[k] = m.value
        if r.will_close:
            self.conn.close()
            self.conn = None
        return r.status, data, r.headers

    def get(self, path: str):
        return self.request("GET", path)

    def post(self, path: str, form: dict):
        body = urllib.parse.urlencode(form).encode()
        return self.request("POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})

    def csrf(self, html: bytes) -> str:
        m = CSRF_RE.search(html.decode("utf-8", "replace"))
        if not m:
            raise RuntimeError("no CSRF token on the page")
        return m.group(1)

    def sign_in(self, email: str, password: str) -> None:
        """Through the real form: the page, its CSRF token, the POST, the session cookie."""
        status, html, _h = self.get("/auth/login")
        if status != 200:
            raise RuntimeError(f"sign-in page answered {status}")
        status, body, h = self.post("/auth/login", {"csrf_token": self.csrf(html), "email": email,
                                                    "password": password, "remember": "y"})
        if status != 302:
            raise RuntimeError(f"sign-in of {email} refused ({status}): {body[:300]!r}")


# --------------------------------------------------------------------------- load runner


@dataclass
class Stats:
    label: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)

    def pct(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


class Recorder:
    """Collects (label, seconds, error) from one process's threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.rows: list[tuple[str, float, str | None]] = []
        self.notes: list[dict] = []

    def note(self, entry: dict) -> None:
        """Anything a virtual user wants back in the parent (e.g. the writes it made)."""
        with self.lock:
            self.notes.append(entry)

    def __call__(self, label: str, seconds: float, error: str | None = None) -> None:
        with self.lock:
            self.rows.append((label, seconds, error))


def _proc_main(user_fn, first: int, n_threads: int, duration: float, barrier, q) -> None:
    random.seed(first)
    rec = Recorder()
    threads = [threading.Thread(target=_guard, args=(user_fn, first + i, duration, barrier, rec), daemon=True)
               for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    q.put((rec.rows, rec.notes, time.time()))


def _guard(user_fn, index: int, duration: float, barrier, rec: Recorder) -> None:
    act = None
    try:
        act = user_fn(index, rec)  # setup (sign-in...): before the clock starts
    except Exception as e:
        rec("(virtual user set-up failed)", 0.0, f"{type(e).__name__}: {e}"[:200])
    barrier.wait(timeout=600)
    deadline = time.time() + duration
    try:
        while act is not None and time.time() < deadline:
            if act():  # True: this user has nothing more to do
                break
    except Exception as e:  # a virtual user that crashes is an error, not a silent stop
        rec("(virtual user crashed)", 0.0, f"{type(e).__name__}: {e}"[:200])


def run_load(user_fn, users: int, duration: float, procs: int = 2, notes: list | None = None
             ) -> tuple[dict[str, Stats], float]:
    """Run `users` virtual users spread over `procs` processes for `duration` seconds.

    user_fn(index, record) sets one user up (signs in...) and returns its action: a callable
    doing one step (one request, or one write), returning True when the user is done. The
    clock starts when every user is set up; each stops at the deadline after the step in
    flight. Returns the stats per label and the elapsed wall time (start to the last answer).
    The users' notes (Recorder.note) are appended to `notes`."""
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = max(1, min(procs, users))
    barrier = ctx.Barrier(users + 1)
    ps, first = [], 0
    for p in range(procs):
        n = users // procs + (1 if p < users % procs else 0)
        ps.append(ctx.Process(target=_proc_main, args=(user_fn, first, n, duration, barrier, q)))
        first += n
    for p in ps:
        p.start()
    barrier.wait(timeout=600)
    start = time.time()
    stats: dict[str, Stats] = {}
    end = start
    for _ in ps:
        # Bounded: every request has a timeout, so a process silent this long has died.
        rows, user_notes, finished = q.get(timeout=duration + 900)
        end = max(end, finished)
        if notes is not None:
            notes.extend(user_notes)
        for label, secs, err in rows:
            st = stats.setdefault(label, Stats(label))
            if err:
                st.errors += 1
                st.error_kinds[err] = st.error_kinds.get(err, 0) + 1
            else:
                st.latencies.append(secs)
    for p in ps:
        p.join()
    return stats, end - start


def timed(rec, label: str, fn, ok=(200,)):
    """Call fn() -> (status, body, headers); record its latency or its error."""
    t = time.perf_counter()
    try:
        status, body, headers = fn()
    except Exception as e:
        rec(label, time.perf_counter() - t, f"{type(e).__name__}"[:80])
        return None
    secs = time.perf_counter() - t
    if status not in ok:
        rec(label, secs, f"HTTP {status}")
        return None
    rec(label, secs)
    return status, body, headers


def ms(x: float) -> str:
    return "-" if x != x else (f"{x * 1000:.0f}" if x >= 0.01 else f"{x * 1000:.1f}")


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows])


def cycle_user(port: int, paths: list[str], cookies: dict[str, str] | None, label: str, timeout: float = 60,
               headers=None):
    """A virtual user fetching `paths` in turn (each user starts at its own offset).
    `headers(index)`: the headers virtual user `index` sends with every request (its own
    address in X-Forwarded-For, its own API token...)."""

    def user(index: int, rec):
        b = Browser(port, timeout=timeout, headers=headers(index) if headers else None)
        b.cookies = dict(cookies or {})
        state = {"i": index}

        def act():
            path = paths[state["i"] % len(paths)]
            state["i"] += 1
            timed(rec, label, lambda: b.get(path))
        return act
    return user


def median(xs):
    return statistics.median(xs) if xs else float("nan")
