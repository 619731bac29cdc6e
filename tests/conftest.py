"""Shared fixtures: a real SQLite file and a real Whoosh index in a temporary folder.

Also the suite's rule on skips. Every feature and Python dependency is always installed, so
tests import them directly and never skip for their absence. Only an outside service (Debian's
Chromium, a PostgreSQL server) may be missing: fixtures then call ``unavailable(reason)``,
which skips with that reason locally and fails under ``CI=true``. And under ``CI=true`` a run
in which anything at all was skipped (or xfailed) fails, whatever skipped it.
"""
from __future__ import annotations

import os

import pytest

from marketplace import create_app
from marketplace.config import TestingConfig
from marketplace.extensions import db

from .factories import Factories


def in_ci() -> bool:
    """CI=true (or 1): nothing may quietly fall away. scripts/test.sh reads it the same way."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true")


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this may not be skipped; `make test` provides it)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def unavailable():
    """unavailable(reason): an outside service this test needs is missing; skip with the
    reason, or fail under CI=true. Never for a Python package or a feature of ours."""
    return _unavailable


# --------------------------------------------------------------------------- no skips in CI


class NoSkipsInCI:
    """Registered under CI=true (in the xdist controller, or the single process): notes every
    skipped or xfailed test or collector, lists them after the run and fails the run."""

    def __init__(self):
        self.skipped: list[str] = []

    def _note(self, report) -> None:
        if report.skipped:
            what = "xfailed" if hasattr(report, "wasxfail") else "skipped"
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr or "")
            self.skipped.append(f"{report.nodeid} ({what}): {reason}")

    def pytest_runtest_logreport(self, report):
        self._note(report)  # under xdist the controller receives every worker's reports

    def pytest_collectreport(self, report):
        self._note(report)

    def pytest_sessionfinish(self, session):
        if self.skipped and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if not self.skipped:
            return
        terminalreporter.section("skipped under CI=true", sep="=", red=True, bold=True)
        for line in self.skipped:
            terminalreporter.line(line, red=True)
        terminalreporter.line(f"{len(self.skipped)} skipped: under CI=true that fails the run", red=True, bold=True)


def pytest_configure(config):
    if in_ci() and not hasattr(config, "workerinput"):
        config.pluginmanager.register(NoSkipsInCI(), "no-skips-in-ci")


# --------------------------------------------------------------------------- app fixtures


@pytest.fixture(scope="session", autouse=True)
def _drop_search_template_databases():
    """tests/search_backends.py makes a template database per process when a test uses the
    PostgreSQL search backend; drop it at the end."""
    yield
    from .search_backends import drop_templates

    drop_templates()


@pytest.fixture
def app(request, tmp_path):
    """An app on SQLite in tmp_path with the Whoosh backend. A test may ask for a search
    backend with ``@pytest.mark.parametrize("app", BACKENDS, indirect=True)`` (the names of
    tests/search_backends.py: "fast", "whoosh", "postgres")."""
    variant = getattr(request, "param", None)
    if variant is not None:
        from .search_backends import dispose_search_app, make_search_app

        app = make_search_app(variant, tmp_path, request.getfixturevalue("unavailable"))
        yield app
        dispose_search_app(app)
        return

    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'test.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        UPLOAD_DIR = str(tmp_path / "uploads")

    app = create_app(Cfg)
    app.instance_path = str(tmp_path)
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def ctx(app):
    """An application context for direct service/policy calls."""
    with app.app_context():
        yield app


@pytest.fixture
def f(ctx):
    """Factories bound to the test database (make_user, make_org, make_item, ...)."""
    return Factories()


class AuthActions:
    def __init__(self, client):
        self._client = client

    def login(self, email: str, password: str = "correct-horse-battery"):
        return self._client.post("/auth/login", data={"email": email, "password": password})

    def logout(self):
        return self._client.post("/auth/logout")


@pytest.fixture
def auth(client):
    return AuthActions(client)
