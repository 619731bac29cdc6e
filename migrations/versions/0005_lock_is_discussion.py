"""lock and unlock decisions are discussion moderation

Revision ID: 0005_lock_is_discussion
Revises: 0004_search_writer_retries
Create Date: 2026-12-03 11:30:00

A lock or unlock of an item's discussion is taken by moderators in scope or by the item's own
organisation admins (policy: can_lock_discussion), so the decision is placed as discussion
moderation (policy.decision_placement). Earlier rows were placed like their item: an admin
who locked their own discussion could not see the decision. Data only.
"""
from alembic import op

revision = "0005_lock_is_discussion"
down_revision = "0004_search_writer_retries"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("UPDATE moderation_actions SET is_discussion = TRUE WHERE action IN ('lock', 'unlock')")


def downgrade():
    op.execute("UPDATE moderation_actions SET is_discussion = FALSE WHERE action IN ('lock', 'unlock')")
