"""listing revisions, reports of a revision, one report per pending request, gate.changed state

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import risk.db

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing listings and their reports are revision 1: the first revision anything was checked at.
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revision', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('listing_revision', sa.Integer(), server_default='1', nullable=False))
        batch_op.alter_column('requested_by', existing_type=sa.String(length=40), nullable=True)
    op.create_table('deal_gate_decisions',
    sa.Column('deal_id', sa.String(length=40), nullable=False),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('decision', sa.String(length=10), nullable=False),
    sa.Column('report_id', sa.String(length=40), nullable=True),
    sa.Column('event_id', sa.String(length=40), nullable=True),
    sa.Column('changed_at', risk.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deal_id'], ['deals.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('deal_id', 'stage')
    )


def downgrade() -> None:
    op.drop_table('deal_gate_decisions')
    op.execute("UPDATE reports SET requested_by = '' WHERE requested_by IS NULL")
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.alter_column('requested_by', existing_type=sa.String(length=40), nullable=False)
        batch_op.drop_column('listing_revision')
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_column('revision')
