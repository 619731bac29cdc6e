"""accounts deleted by their owner: users.deleted_at (the row stays, pseudonymised, for the
records others rely on)

Revision ID: 0011_account_deletion
Revises: 0010_list_reviewer_invitations
Create Date: 2026-12-03 15:40:00.000000

"""
from alembic import op
import sqlalchemy as sa

import marketplace.models.base


# revision identifiers, used by Alembic.
revision = '0011_account_deletion'
down_revision = '0010_list_reviewer_invitations'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deleted_at', marketplace.models.base.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('deleted_at')
