"""`flask db upgrade` on an empty database gives exactly the models' schema.

Compared with Alembic's own autogenerate comparison (types and server defaults included; see
tests/schema_compare.py), so a model changed or added without a migration fails here until
its migration is written. tests/test_postgres.py makes the same comparison on PostgreSQL.
"""
from __future__ import annotations

import pytest
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import create_engine, inspect

from marketplace import create_app
from marketplace.config import TestingConfig
from marketplace.extensions import db

from .schema_compare import assert_schema_matches_models


@pytest.fixture
def empty_app(tmp_path):
    """An app on a brand-new, empty SQLite file (no create_all)."""

    class Cfg(TestingConfig):
        SQLALCHEMY_DATABASE_URI = f"sqlite:///{tmp_path / 'migrated.db'}"
        SEARCH_INDEX_DIR = str(tmp_path / "search")
        UPLOAD_DIR = str(tmp_path / "uploads")

    app = create_app(Cfg)
    yield app, tmp_path / "migrated.db"
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _upgrade(app):
    r = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert r.exit_code == 0, r.output + repr(r.exception)


def test_upgrade_gives_exactly_the_models_schema(empty_app):
    app, path = empty_app
    assert not inspect(create_engine(f"sqlite:///{path}")).get_table_names()
    _upgrade(app)
    with app.app_context(), db.engine.connect() as conn:
        assert_schema_matches_models(conn)


def test_upgrade_reaches_the_single_head_and_is_repeatable(empty_app):
    app, _path = empty_app
    _upgrade(app)
    _upgrade(app)  # nothing to do the second time
    with app.app_context():
        script = ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())
        heads = script.get_heads()
        assert len(heads) == 1, f"several migration heads: {heads}"
        with db.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_heads() == tuple(heads)


def test_downgrade_to_base_removes_every_table(empty_app):
    app, _path = empty_app
    _upgrade(app)
    r = app.test_cli_runner().invoke(args=["db", "downgrade", "base"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    with app.app_context():
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}


def test_revision_ids_fit_alembic_version_column(empty_app):
    """PostgreSQL stores the revision in alembic_version.version_num, a VARCHAR(32): a longer
    id upgrades on SQLite (which ignores the length) and fails on PostgreSQL."""
    app, _ = empty_app
    with app.app_context():
        script = ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())
        too_long = [r.revision for r in script.walk_revisions() if len(r.revision) > 32]
    assert too_long == []
