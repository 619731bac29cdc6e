"""Real-browser fixtures: the app on a live server, driven by Debian's Chromium via Playwright.

Reusable by every feature's browser tests (tests/browser/test_*.py):

* ``live_server``: the app served by werkzeug in a background thread on a free port, on a
  temporary SQLite file and search folder, with CSRF **on**, rate limits off and the search
  index updated synchronously. ``live_server.url`` is the base URL, ``live_server.app`` the
  Flask app (for ``with live_server.app.app_context(): ...``), ``live_server("/path")`` a full URL.
  One server per test session (per xdist worker): use fresh e-mail addresses (``unique()``).
* ``browser``: one headless Chromium per session; ``page``: a fresh context (own cookies) per
  test; ``new_page(**context_options)``: more pages with their own cookies in the same test
  (a second person; or ``viewport={"width": 390, "height": 844}`` for a phone).
* ``shot(page, "name")``: a full-page PNG in tests/browser/artifacts/<test>-<name>.png; a
  failing test leaves one of every open page too.
* Flows in ``tests.browser.flows``: ``register`` (through the mailed confirmation link),
  ``login``, ``logout``, ``create_org``, ``post_item``, ``mail_link``; the ``login`` fixture
  is the same function. Mail is queued, never sent: ``mail_link(address, "/path")`` reads
  the link a person would click from the outbox.

The browser is Debian's ``/usr/bin/chromium`` (``make test`` installs it as root); Playwright's
own browser downloads are never used. Without Chromium the tests skip with the reason, except
under ``CI=true``, where they fail (``unavailable`` in tests/conftest.py). Any unhandled server
error during a test fails that test.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import expect, sync_playwright
from werkzeug.serving import make_server

from marketplace import create_app
from marketplace.config import TestingConfig
from marketplace.extensions import db

from . import flows

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def pytest_collection_modifyitems(items):
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.fspath)).resolve().parent == here:
            item.add_marker(pytest.mark.browser)


# --------------------------------------------------------------------------- live server


class _ErrorLog(logging.Handler):
    """Collects ERROR records from the app and werkzeug: an unhandled exception anywhere."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@dataclass
class LiveServer:
    url: str
    app: Flask
    errors: _ErrorLog = field(repr=False, default_factory=_ErrorLog)

    def __call__(self, path: str = "/") -> str:
        return self.url + path


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")

    class BrowserConfig(TestingConfig):
        SECRET_KEY = secrets.token_urlsafe(32)
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp / 'live.db'}"
        SEARCH_INDEX_DIR = str(tmp / "search")
        UPLOAD_DIR = str(tmp / "uploads")
        WTF_CSRF_ENABLED = True  # the browser posts real forms with real tokens
        RATELIMIT_ENABLED = False
        SEARCH_WORKER = "sync"
        PROPAGATE_UNHANDLED = False  # show the 500 page, as in production; errors are logged

    app = create_app(BrowserConfig)
    app.instance_path = str(tmp)
    with app.app_context():
        db.create_all()
    errors = _ErrorLog()
    for name in ("marketplace", "werkzeug", app.logger.name):
        logging.getLogger(name).addHandler(errors)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    live = LiveServer(url=f"http://127.0.0.1:{server.server_port}", app=app, errors=errors)
    flows.read_mail = lambda address: _mails(app, address)
    yield live
    server.shutdown()
    thread.join(timeout=10)
    for name in ("marketplace", "werkzeug", app.logger.name):
        logging.getLogger(name).removeHandler(errors)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _mails(app: Flask, address: str) -> list[str]:
    """The texts of the mails queued for an address (the live server queues; it never sends)."""
    from sqlalchemy import select

    from marketplace.models import OutgoingMail

    with app.app_context():
        rows = db.session.execute(select(OutgoingMail.body).where(OutgoingMail.to_email == address.lower())
                                  .order_by(OutgoingMail.id)).scalars().all()
        db.session.remove()
    return list(rows)


@pytest.fixture(autouse=True)
def _no_server_errors(request):
    """Fail a browser test when the server logged an unhandled error while it ran."""
    if "live_server" not in request.fixturenames:
        yield
        return
    live = request.getfixturevalue("live_server")
    start = len(live.errors.records)
    yield
    new = live.errors.records[start:]
    if new:
        fmt = logging.Formatter()
        pytest.fail("server errors during the test:\n" + "\n".join(fmt.format(r) for r in new), pytrace=False)


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def browser(unavailable):
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"Debian's Chromium is not installed at {CHROMIUM} "
                    "(`make test` installs it with apt-get when run as root)")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    # Assertions wait as long as actions do: a busy 2-core CI machine is slow, not broken.
    expect.set_options(timeout=15_000)
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    except Exception as e:  # noqa: BLE001 - report any launch failure as the reason
        pw.stop()
        unavailable(f"Chromium at {CHROMIUM} did not start under Playwright: {e}")
    yield b
    b.close()
    pw.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


@pytest.fixture
def new_page(browser, live_server, request):
    """Open pages with their own cookies (a second person in the same test)."""
    contexts = []

    def make(**context_options):
        opts = {"base_url": live_server.url, "viewport": {"width": 1280, "height": 900},
                "locale": "en-GB", "timezone_id": "UTC", **context_options}
        ctx = browser.new_context(**opts)
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        p = ctx.new_page()
        p.on("dialog", lambda d: d.accept())  # data-confirm buttons: answer "OK"
        return p

    yield make
    failed = getattr(request.node, "rep_call", None)
    for i, ctx in enumerate(contexts):
        if failed is not None and failed.failed:
            for j, p in enumerate(ctx.pages):
                try:
                    _save(p, request.node.name, f"FAILED-{i}{j}")
                except Exception:  # noqa: BLE001 - a dead page must not hide the real failure
                    pass
        ctx.close()


@pytest.fixture
def page(new_page):
    return new_page()


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:150]


def _save(page, test_name: str, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{_safe(f'{test_name}-{name}')}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(autouse=True)
def _fresh_artifacts(request):
    """Each test starts without its screenshots of an earlier run (no stale FAILED-*.png)."""
    prefix = _safe(f"{request.node.name}-")
    if ARTIFACTS.is_dir():
        for old in ARTIFACTS.glob("*.png"):
            if old.name.startswith(prefix):
                old.unlink(missing_ok=True)


@pytest.fixture
def shot(request):
    """shot(page, "name") -> Path of a full-page PNG under tests/browser/artifacts/."""
    return lambda page, name: _save(page, request.node.name, name)


@pytest.fixture
def login():
    return flows.login


unique = flows.unique
