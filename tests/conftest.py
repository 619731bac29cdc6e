"""Shared fixtures: a real SQLite file and a real Whoosh index in a temporary folder."""
from __future__ import annotations

import warnings

warnings.filterwarnings("ignore", category=SyntaxWarning)

import pytest  # noqa: E402

from marketplace import create_app  # noqa: E402
from marketplace.config import TestingConfig  # noqa: E402
from marketplace.extensions import db  # noqa: E402

from .factories import Factories  # noqa: E402


@pytest.fixture
def app(tmp_path):
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
