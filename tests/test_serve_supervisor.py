"""`make serve` (scripts/run.sh gunicorn) keeps serving when its index writer dies: the
writer is started again with back-off, and only gunicorn's end (or TERM) stops the whole."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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


def _writer_pids(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,pgid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()
            if len(line.split()) > 2 and int(line.split()[1]) == pgid and "search apply --watch" in line]


def _wait(pred, seconds: float, what: str, log: Path):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    pytest.fail(f"{what} within {seconds:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.mark.timeout(240)
def test_serve_restarts_a_killed_index_writer_and_keeps_serving(tmp_path):
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
        first = _wait(lambda: _writer_pids(serve.pid), 60, "no index writer started", log)
        os.kill(first[0], signal.SIGKILL)
        # The site serves on while the writer is down, and the writer comes back.
        assert _get(base + "/")[0] == 200
        again = _wait(lambda: [p for p in _writer_pids(serve.pid) if p not in first], 60,
                      "the index writer was not started again", log)
        assert again and serve.poll() is None
        assert "starting it again in 1 s (the site keeps serving)" in log.read_text()
        status, body = _wait(lambda: (lambda r: r if r[0] == 200 and json.loads(r[1])["search"]["writer"]
                                      == "running" else None)(_get(base + "/healthz")),
                             60, "/healthz never saw the restarted writer running", log)
        assert json.loads(body)["status"] == "ok"
    finally:
        os.killpg(serve.pid, signal.SIGTERM)  # what Ctrl-C / a service manager does: stops both
        try:
            serve.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()
    assert _writer_pids(serve.pid) == []
