"""The migrated schema compared with the models, by Alembic's own autogenerate comparison.

Used on SQLite (tests/test_migrations.py) and on PostgreSQL (tests/test_postgres.py): the
schema there is built by the migrations alone, so a model changed or added without its
migration shows up here as a difference.
"""
from __future__ import annotations

import pprint

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from marketplace.extensions import db


def schema_diff(conn: Connection) -> list:
    """Every difference autogenerate would write a migration for: tables, columns, types,
    nullability, server defaults, indexes, unique and foreign-key constraints."""
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return compare_metadata(ctx, db.metadata)


def assert_schema_matches_models(conn: Connection) -> None:
    diff = schema_diff(conn)
    assert diff == [], ("the migrations and the models differ (write the missing migration with "
                        "`flask db migrate`):\n" + pprint.pformat(diff))
    tables = set(inspect(conn).get_table_names()) - {"alembic_version"}
    assert tables == set(db.metadata.tables)
