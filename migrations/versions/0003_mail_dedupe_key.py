"""outgoing mail: a unique dedupe key, so a mail such as the daily moderation digest is
queued at most once per key (per moderator and day), even by concurrent runs

Revision ID: 0003_mail_dedupe_key
Revises: 0002_features
Create Date: 2026-12-03 08:49:45.217105

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003_mail_dedupe_key'
down_revision = '0002_features'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('outgoing_mail', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dedupe_key', sa.String(length=120), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_outgoing_mail_dedupe_key'), ['dedupe_key'])


def downgrade():
    with op.batch_alter_table('outgoing_mail', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_outgoing_mail_dedupe_key'), type_='unique')
        batch_op.drop_column('dedupe_key')
