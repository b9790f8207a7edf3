"""requirements: what a deal must do before which stage; reports.requirements and reports.exceptions

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import risk.db

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('requirements',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('deal_id', sa.String(length=40), nullable=False),
    sa.Column('code', sa.String(length=50), nullable=False),
    sa.Column('finding_code', sa.String(length=50), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('what', sa.Text(), nullable=False),
    sa.Column('who', sa.String(length=20), nullable=False),
    sa.Column('due_stage', sa.String(length=20), nullable=False),
    sa.Column('table_version', sa.String(length=50), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('satisfied_by', sa.JSON(), nullable=True),
    sa.Column('opened_by_report', sa.String(length=40), nullable=False),
    sa.Column('created_at', risk.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', risk.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['deal_id'], ['deals.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('deal_id', 'code', 'subject', name='uq_requirements_deal_code_subject')
    )
    with op.batch_alter_table('requirements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_requirements_deal_id'), ['deal_id'], unique=False)
    # Null for reports completed before requirements existed: their digests were computed without them.
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requirements', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('exceptions', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('exceptions')
        batch_op.drop_column('requirements')
    with op.batch_alter_table('requirements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_requirements_deal_id'))
    op.drop_table('requirements')
