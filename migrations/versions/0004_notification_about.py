"""notifications: what a notification is about (table and id), so the notifications page
shows each one only while its reader may still see what it names

Revision ID: 0004_notification_about
Revises: 0003_mail_dedupe_key
Create Date: 2026-12-10 09:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004_notification_about'
down_revision = '0003_mail_dedupe_key'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('about_type', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('about_id', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('about_id')
        batch_op.drop_column('about_type')
