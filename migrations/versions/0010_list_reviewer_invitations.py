"""invitations by e-mail to an invitation list (list_invitations) and as an outside judge
(reviewer_invitations): hashed single-use tokens, like item invitations

Revision ID: 0010_list_reviewer_invitations
Revises: 0009_sessions_rate_limits
Create Date: 2026-12-03 13:25:50.931518

"""
from alembic import op
import sqlalchemy as sa

import marketplace.models.base


# revision identifiers, used by Alembic.
revision = '0010_list_reviewer_invitations'
down_revision = '0009_sessions_rate_limits'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('list_invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('invited_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('member_until', marketplace.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('accepted_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('accepted_by_id', sa.Integer(), nullable=True),
    sa.Column('member_id', sa.Integer(), nullable=True),
    sa.Column('declined_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['accepted_by_id'], ['users.id'], name=op.f('fk_list_invitations_accepted_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['invited_by_id'], ['users.id'], name=op.f('fk_list_invitations_invited_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['list_id'], ['invitation_lists.id'], name=op.f('fk_list_invitations_list_id_invitation_lists'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['member_id'], ['list_members.id'], name=op.f('fk_list_invitations_member_id_list_members'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['revoked_by_id'], ['users.id'], name=op.f('fk_list_invitations_revoked_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_list_invitations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_list_invitations_token_hash'))
    )
    with op.batch_alter_table('list_invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_list_invitations_email'), ['email'], unique=False)
        batch_op.create_index('ix_list_invitations_list_email', ['list_id', 'email'], unique=False)
        batch_op.create_index(batch_op.f('ix_list_invitations_list_id'), ['list_id'], unique=False)

    op.create_table('reviewer_invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('challenge_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('invited_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('nda_text', sa.Text(), nullable=False),
    sa.Column('appointment_id', sa.Integer(), nullable=True),
    sa.Column('accepted_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('accepted_by_id', sa.Integer(), nullable=True),
    sa.Column('declined_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['accepted_by_id'], ['users.id'], name=op.f('fk_reviewer_invitations_accepted_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['appointment_id'], ['reviewer_appointments.id'], name=op.f('fk_reviewer_invitations_appointment_id_reviewer_appointments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['challenge_id'], ['items.id'], name=op.f('fk_reviewer_invitations_challenge_id_items'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['invited_by_id'], ['users.id'], name=op.f('fk_reviewer_invitations_invited_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['revoked_by_id'], ['users.id'], name=op.f('fk_reviewer_invitations_revoked_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reviewer_invitations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_reviewer_invitations_token_hash'))
    )
    with op.batch_alter_table('reviewer_invitations', schema=None) as batch_op:
        batch_op.create_index('ix_reviewer_invitations_challenge_email', ['challenge_id', 'email'], unique=False)
        batch_op.create_index(batch_op.f('ix_reviewer_invitations_challenge_id'), ['challenge_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reviewer_invitations_email'), ['email'], unique=False)



def downgrade():
    with op.batch_alter_table('reviewer_invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reviewer_invitations_email'))
        batch_op.drop_index(batch_op.f('ix_reviewer_invitations_challenge_id'))
        batch_op.drop_index('ix_reviewer_invitations_challenge_email')

    op.drop_table('reviewer_invitations')
    with op.batch_alter_table('list_invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_list_invitations_list_id'))
        batch_op.drop_index('ix_list_invitations_list_email')
        batch_op.drop_index(batch_op.f('ix_list_invitations_email'))

    op.drop_table('list_invitations')
