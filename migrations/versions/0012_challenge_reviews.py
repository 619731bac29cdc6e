"""after-action reviews of closed challenges (challenge_reviews) and what each awarded idea
became (review_outcomes)

Revision ID: 0012_challenge_reviews
Revises: 0011_account_deletion
Create Date: 2026-12-03 15:45:00.000000

"""
from alembic import op
import sqlalchemy as sa

import marketplace.models.base


# revision identifiers, used by Alembic.
revision = '0012_challenge_reviews'
down_revision = '0011_account_deletion'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('challenge_reviews',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('challenge_id', sa.Integer(), nullable=False),
    sa.Column('requested_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('achieved', sa.Text(), nullable=False),
    sa.Column('differently', sa.Text(), nullable=False),
    sa.Column('submitted_at', marketplace.models.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('submitted_by_id', sa.Integer(), nullable=True),
    sa.Column('lesson_item_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['challenge_id'], ['items.id'], name=op.f('fk_challenge_reviews_challenge_id_items'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lesson_item_id'], ['items.id'], name=op.f('fk_challenge_reviews_lesson_item_id_items'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['submitted_by_id'], ['users.id'], name=op.f('fk_challenge_reviews_submitted_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_challenge_reviews')),
    sa.UniqueConstraint('challenge_id', name=op.f('uq_challenge_reviews_challenge_id'))
    )
    with op.batch_alter_table('challenge_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_challenge_reviews_lesson_item_id'), ['lesson_item_id'], unique=False)

    op.create_table('review_outcomes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('review_id', sa.Integer(), nullable=False),
    sa.Column('idea_id', sa.Integer(), nullable=False),
    sa.Column('fate', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['idea_id'], ['ideas.id'], name=op.f('fk_review_outcomes_idea_id_ideas'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['review_id'], ['challenge_reviews.id'], name=op.f('fk_review_outcomes_review_id_challenge_reviews'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_outcomes')),
    sa.UniqueConstraint('review_id', 'idea_id', name=op.f('uq_review_outcomes_review_id_idea_id'))
    )
    with op.batch_alter_table('review_outcomes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_outcomes_review_id'), ['review_id'], unique=False)


def downgrade():
    with op.batch_alter_table('review_outcomes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_outcomes_review_id'))
    op.drop_table('review_outcomes')
    with op.batch_alter_table('challenge_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_challenge_reviews_lesson_item_id'))
    op.drop_table('challenge_reviews')
