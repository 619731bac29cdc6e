"""search writer: retry/park columns on the outbox; the database's random identity

Revision ID: 0004_search_writer_retries
Revises: 0003_mail_dedupe_key
Create Date: 2026-12-03 09:00:00

The outbox gains attempts / last_error / retry_at / parked_at (failed index jobs are
retried with back-off, then parked with their error). `database_identity` holds one random
token, created here, that the search index records so it is never served against another
database (issue 14).
"""
import secrets
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

import marketplace.models.base


# revision identifiers, used by Alembic.
revision = "0004_search_writer_retries"
down_revision = "0003_mail_dedupe_key"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('search_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('retry_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('parked_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True))

    identity = op.create_table('database_identity',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token', sa.String(length=64), nullable=False),
    sa.Column('created_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_database_identity'))
    )
    op.bulk_insert(identity, [{"id": 1, "token": secrets.token_hex(16),
                               "created_at": datetime.now(timezone.utc)}])


def downgrade():
    op.drop_table('database_identity')
    with op.batch_alter_table('search_outbox', schema=None) as batch_op:
        batch_op.drop_column('parked_at')
        batch_op.drop_column('retry_at')
        batch_op.drop_column('last_error')
        batch_op.drop_column('attempts')
