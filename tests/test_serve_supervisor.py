"""`make serve` (scripts/run.sh gunicorn) runs one `flask worker` beside gunicorn and keeps
serving when it dies: the worker is started again with back-off and drains the search jobs
written meanwhile (`search verify` agrees), and only gunicorn's end (or TERM) stops the whole."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKER = re.compile(r"flask --app app worker( |$)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except OSError:
        return None, b""


def _worker_pids(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,pgid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()
            if len(line.split()) > 2 and int(line.split()[1]) == pgid and WORKER.search(line)]


def _flask(env: dict, *args: str) -> str:
    """A `flask` command on the served site's database that leaves the index to the worker."""
    r = subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "app", *args], cwd=ROOT,
                       env=dict(env, SEARCH_WORKER="off", MAIL_WORKER="off"), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, f"flask {' '.join(args)}: {r.stdout}{r.stderr}"
    return r.stdout


def _wait(pred, seconds: float, what: str, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"{what} within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.mark.timeout(240)
def test_serve_restarts_a_killed_worker_which_drains_the_backlog(tmp_path):
    if not (ROOT / ".venv" / "bin" / "gunicorn").exists():
        pytest.skip("no .venv with gunicorn (make install)")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEARCH_", "DATABASE_URL", "PYTEST"))}
    env.update(MARKETPLACE_INSTANCE=str(tmp_path), GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1",
               SECRET_KEY="supervisor-test-secret-0123456789")
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        serve = subprocess.Popen(["scripts/run.sh", "gunicorn"], cwd=ROOT, env=env, stdout=out, stderr=out,
                                 start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _get(base + "/")[0] == 200, 120, "make serve did not serve", log)
        first = _wait(lambda: _worker_pids(serve.pid), 60, "no flask worker started", log)
        assert "web workers use SEARCH_WORKER=off MAIL_WORKER=off" in log.read_text()
        os.kill(first[0], signal.SIGKILL)
        # Writes go on while the worker is down: their search jobs wait in the outbox.
        _flask(env, "users", "create", "owner@example.test", "--name", "Owner", "--password", "owner-password-1")
        for i in range(3):
            _flask(env, "orgs", "create", f"Backlog org {i}", "--kind", "company", "--owner", "owner@example.test")
        # The site serves on while the worker is down, and the worker comes back.
        assert _get(base + "/")[0] == 200
        again = _wait(lambda: [p for p in _worker_pids(serve.pid) if p not in first], 60,
                      "the worker was not started again", log)
        assert again and serve.poll() is None
        assert "starting it again in 1 s (the site keeps serving)" in log.read_text()
        status, body = _wait(lambda: (lambda r: r if r[0] == 200 and json.loads(r[1])["search"]["writer"]
                                      == "running" and json.loads(r[1])["search"]["backlog"] == 0
                                      else None)(_get(base + "/healthz")),
                             60, "/healthz never saw the restarted worker running with the backlog drained", log)
        assert json.loads(body)["status"] == "ok"
        # Drained as the index writer did: the index holds exactly what the database says.
        assert "Backlog org 2" in _get(base + "/search?q=backlog")[1].decode()
        _flask(env, "search", "verify")
    finally:
        os.killpg(serve.pid, signal.SIGTERM)  # what Ctrl-C / a service manager does: stops both
        try:
            serve.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
    assert _worker_pids(serve.pid) == []
