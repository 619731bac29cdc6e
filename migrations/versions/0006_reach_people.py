"""reach people: the mail outbox grows into a queue (status, attempts, back-off, claims,
multipart bodies, what each mail is about), notifications record what they are about and
wait for digests, per-person delivery choices, follows, announcements, deadline reminders
given, co-author invitations by e-mail, and verified e-mail addresses.

Existing accounts count as verified (they were created before verification existed);
existing mails are "sent" when they have a sent_at, else "pending".

Revision ID: 0006_reach_people
Revises: 0005_lock_is_discussion
Create Date: 2026-12-03 10:09:36.229192

"""
from alembic import op
import sqlalchemy as sa

import marketplace.models.base


# revision identifiers, used by Alembic.
revision = "0006_reach_people"
down_revision = "0005_lock_is_discussion"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('follows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('target_kind', sa.String(length=16), nullable=False),
    sa.Column('target_key', sa.String(length=64), nullable=False),
    sa.Column('created_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_follows_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_follows')),
    sa.UniqueConstraint('user_id', 'target_kind', 'target_key', name=op.f('uq_follows_user_id_target_kind_target_key'))
    )
    with op.batch_alter_table('follows', schema=None) as batch_op:
        batch_op.create_index('ix_follows_target', ['target_kind', 'target_key'], unique=False)

    op.create_table('notification_prefs',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('updated_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notification_prefs_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'category', name=op.f('pk_notification_prefs'))
    )
    op.create_table('announcements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('body_html', sa.Text(), nullable=False),
    sa.Column('created_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_announcements_author_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_announcements_item_id_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_announcements'))
    )
    with op.batch_alter_table('announcements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_announcements_item_id'), ['item_id'], unique=False)

    op.create_table('deadline_reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('lead_hours', sa.Integer(), nullable=False),
    sa.Column('deadline', marketplace.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['items.id'], name=op.f('fk_deadline_reminders_item_id_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deadline_reminders')),
    sa.UniqueConstraint('item_id', 'lead_hours', 'deadline', name=op.f('uq_deadline_reminders_item_id_lead_hours_deadline'))
    )
    with op.batch_alter_table('deadline_reminders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deadline_reminders_item_id'), ['item_id'], unique=False)

    op.create_table('coauthor_invitations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idea_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('invited_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('declined_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['idea_id'], ['ideas.id'], name=op.f('fk_coauthor_invitations_idea_id_ideas'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['invited_by_id'], ['users.id'], name=op.f('fk_coauthor_invitations_invited_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_coauthor_invitations_user_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coauthor_invitations')),
    sa.UniqueConstraint('idea_id', 'email', name=op.f('uq_coauthor_invitations_idea_id_email')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_coauthor_invitations_token_hash'))
    )
    with op.batch_alter_table('coauthor_invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_coauthor_invitations_email'), ['email'], unique=False)
        batch_op.create_index(batch_op.f('ix_coauthor_invitations_idea_id'), ['idea_id'], unique=False)

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('about_type', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('about_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('digest_pending', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index('ix_notifications_digest', ['digest_pending', 'user_id'], unique=False)

    with op.batch_alter_table('outgoing_mail', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('kind', sa.String(length=40), nullable=False, server_default=sa.text("''")))
        batch_op.add_column(sa.Column('html_body', sa.Text(), nullable=False, server_default=sa.text("''")))
        batch_op.add_column(sa.Column('headers_json', sa.Text(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('message_id', sa.String(length=200), nullable=False, server_default=sa.text("''")))
        batch_op.add_column(sa.Column('about_type', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('about_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('secret', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('status', sa.String(length=16), nullable=False, server_default=sa.text("'pending'")))
        batch_op.add_column(sa.Column('attempts', sa.Integer(), nullable=False, server_default=sa.text("'0'")))
        batch_op.add_column(sa.Column('next_attempt_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('failed_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_outgoing_mail_status_next', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_outgoing_mail_user_id_users'), 'users', ['user_id'], ['id'], ondelete='SET NULL')

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('email_verified_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True))

    op.execute("UPDATE users SET email_verified_at = created_at")
    op.execute("UPDATE outgoing_mail SET status = 'sent' WHERE sent_at IS NOT NULL")
    # The server defaults only filled the existing rows: the models give every new row its value.
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.alter_column('digest_pending', server_default=None)
    with op.batch_alter_table('outgoing_mail', schema=None) as batch_op:
        for name in ('kind', 'html_body', 'headers_json', 'message_id', 'secret', 'status', 'attempts'):
            batch_op.alter_column(name, server_default=None)


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('email_verified_at')

    with op.batch_alter_table('outgoing_mail', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_outgoing_mail_user_id_users'), type_='foreignkey')
        batch_op.drop_index('ix_outgoing_mail_status_next')
        batch_op.drop_column('failed_at')
        batch_op.drop_column('last_error')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('attempts')
        batch_op.drop_column('status')
        batch_op.drop_column('secret')
        batch_op.drop_column('about_id')
        batch_op.drop_column('about_type')
        batch_op.drop_column('message_id')
        batch_op.drop_column('headers_json')
        batch_op.drop_column('html_body')
        batch_op.drop_column('kind')
        batch_op.drop_column('user_id')

    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index('ix_notifications_digest')
        batch_op.drop_column('digest_pending')
        batch_op.drop_column('about_id')
        batch_op.drop_column('about_type')

    with op.batch_alter_table('coauthor_invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_coauthor_invitations_idea_id'))
        batch_op.drop_index(batch_op.f('ix_coauthor_invitations_email'))

    op.drop_table('coauthor_invitations')
    with op.batch_alter_table('deadline_reminders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deadline_reminders_item_id'))

    op.drop_table('deadline_reminders')
    with op.batch_alter_table('announcements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_announcements_item_id'))

    op.drop_table('announcements')
    op.drop_table('notification_prefs')
    with op.batch_alter_table('follows', schema=None) as batch_op:
        batch_op.drop_index('ix_follows_target')

    op.drop_table('follows')
