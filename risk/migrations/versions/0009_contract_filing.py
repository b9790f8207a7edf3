"""deals.filing_no, deals.co_buyers and when either last changed (the contract filing before transfer)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import risk.db

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('filing_no', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('co_buyers', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('parties_changed_at', risk.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.drop_column('parties_changed_at')
        batch_op.drop_column('co_buyers')
        batch_op.drop_column('filing_no')
