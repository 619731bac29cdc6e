"""time zones for people and organisations (IANA names, UTC for existing rows); the
sealed-idea view log keeps one row per viewer, idea, thing opened and day (a unique key)

Revision ID: 0007_time_zones_view_log
Revises: 0006_reach_people
Create Date: 2026-12-10 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_time_zones_view_log'
down_revision = '0006_reach_people'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), server_default='UTC', nullable=False))
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), server_default='UTC', nullable=False))
    with op.batch_alter_table('sealed_view_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dedupe_key', sa.String(length=120), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_sealed_view_log_dedupe_key'), ['dedupe_key'])


def downgrade():
    with op.batch_alter_table('sealed_view_log', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_sealed_view_log_dedupe_key'), type_='unique')
        batch_op.drop_column('dedupe_key')
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.drop_column('timezone')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('timezone')
