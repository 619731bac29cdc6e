"""search_documents and search_terms: the PostgreSQL search backend's index
(SEARCH_BACKEND=postgres): a tsvector with a GIN index, principals as a GIN-indexed text[].
On SQLite the same tables with plain text columns (unused), so models and migrations match.

Revision ID: 0015_pg_search_documents
Revises: 0014_data_agreements
Create Date: 2026-12-03 15:45:00

"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = '0015_pg_search_documents'
down_revision = '0014_data_agreements'
branch_labels = None
depends_on = None

TEXT_ARRAY = postgresql.ARRAY(sa.Text()).with_variant(sa.Text(), "sqlite")
TSVECTOR = postgresql.TSVECTOR().with_variant(sa.Text(), "sqlite")


def upgrade():
    op.create_table('search_documents',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('digest', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('org', sa.String(length=20), nullable=True),
    sa.Column('tags', TEXT_ARRAY, nullable=False),
    sa.Column('principals', TEXT_ARRAY, nullable=False),
    sa.Column('tsv', TSVECTOR, nullable=False),
    sa.Column('created', sa.BigInteger(), nullable=False),
    sa.Column('deadline', sa.BigInteger(), nullable=False),
    sa.Column('stale_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_search_documents'))
    )
    with op.batch_alter_table('search_documents', schema=None) as batch_op:
        batch_op.create_index('ix_search_documents_created', ['created'], unique=False)
        batch_op.create_index('ix_search_documents_principals', ['principals'], unique=False, postgresql_using='gin')
        batch_op.create_index('ix_search_documents_stale_at', ['stale_at'], unique=False)
        batch_op.create_index('ix_search_documents_tags', ['tags'], unique=False, postgresql_using='gin')
        batch_op.create_index('ix_search_documents_tsv', ['tsv'], unique=False, postgresql_using='gin')

    op.create_table('search_terms',
    sa.Column('term', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('term', name=op.f('pk_search_terms'))
    )


def downgrade():
    op.drop_table('search_terms')
    with op.batch_alter_table('search_documents', schema=None) as batch_op:
        batch_op.drop_index('ix_search_documents_tsv', postgresql_using='gin')
        batch_op.drop_index('ix_search_documents_tags', postgresql_using='gin')
        batch_op.drop_index('ix_search_documents_stale_at')
        batch_op.drop_index('ix_search_documents_principals', postgresql_using='gin')
        batch_op.drop_index('ix_search_documents_created')

    op.drop_table('search_documents')
