"""overrides with dual control: approvals in their own table, an override status, reports' overridable

Revision ID: 0003
Revises: 0002

Every v1 override becomes an approved override with one approval (v1 overrode REVIEW reports only, one
reviewer each). A complete report is overridable when it is a REVIEW: the policy in force before this
revision marked no rule overridable, so no earlier BLOCK is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import risk.db

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_overrides = sa.table(
    'overrides',
    sa.column('id', sa.String),
    sa.column('decision', sa.String),
    sa.column('reason', sa.String),
    sa.column('reviewer_id', sa.String),
    sa.column('reviewer_name', sa.String),
    sa.column('created_at', risk.db.UTCDateTime()),
    sa.column('status', sa.String),
    sa.column('required_approvals', sa.Integer),
    sa.column('decided_at', risk.db.UTCDateTime()),
)
_approvals = sa.table(
    'override_approvals',
    sa.column('override_id', sa.String),
    sa.column('number', sa.Integer),
    sa.column('decision', sa.String),
    sa.column('reviewer_id', sa.String),
    sa.column('reviewer_name', sa.String),
    sa.column('reason', sa.String),
    sa.column('evidence_ref', sa.String),
    sa.column('at', risk.db.UTCDateTime()),
)
_reports = sa.table(
    'reports', sa.column('status', sa.String), sa.column('decision', sa.String), sa.column('overridable', sa.Boolean)
)


def upgrade() -> None:
    op.create_table('override_approvals',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('override_id', sa.String(length=40), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('decision', sa.String(length=10), nullable=False),
    sa.Column('reviewer_id', sa.String(length=40), nullable=False),
    sa.Column('reviewer_name', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.String(length=2000), nullable=False),
    sa.Column('evidence_ref', sa.String(length=200), nullable=True),
    sa.Column('at', risk.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['override_id'], ['overrides.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('override_id', 'number', name='uq_override_approvals_number'),
    sa.UniqueConstraint('override_id', 'reviewer_id', name='uq_override_approvals_reviewer'),
    sa.UniqueConstraint('override_id', 'reviewer_name', name='uq_override_approvals_reviewer_name')
    )
    op.execute(
        _approvals.insert().from_select(
            ['override_id', 'number', 'decision', 'reviewer_id', 'reviewer_name', 'reason', 'evidence_ref', 'at'],
            sa.select(
                _overrides.c.id, sa.literal(1), _overrides.c.decision, _overrides.c.reviewer_id,
                _overrides.c.reviewer_name, _overrides.c.reason, sa.null(), _overrides.c.created_at,
            ),
        )
    )
    with op.batch_alter_table('overrides', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('required_approvals', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('decided_at', risk.db.UTCDateTime(timezone=True), nullable=True))
    op.execute(
        _overrides.update().values(status='approved', required_approvals=1, decided_at=_overrides.c.created_at)
    )
    with op.batch_alter_table('overrides', schema=None) as batch_op:
        batch_op.alter_column('status', existing_type=sa.String(length=10), nullable=False)
        batch_op.alter_column('required_approvals', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column('reason')
        batch_op.drop_column('reviewer_id')
        batch_op.drop_column('reviewer_name')

    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overridable', sa.Boolean(), nullable=True))
    op.execute(
        _reports.update()
        .where(_reports.c.status == 'complete')
        .values(overridable=sa.case((_reports.c.decision == 'REVIEW', sa.true()), else_=sa.false()))
    )


def downgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_column('overridable')
    # v1 read any override as ALLOW: one that is pending or declined must not survive the downgrade.
    op.execute(_overrides.delete().where(_overrides.c.status != 'approved'))
    with op.batch_alter_table('overrides', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('reviewer_id', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('reviewer_name', sa.String(length=200), nullable=True))
    first = sa.select(_approvals).where(_approvals.c.override_id == _overrides.c.id, _approvals.c.number == 1)
    op.execute(
        _overrides.update().values(
            reason=first.with_only_columns(_approvals.c.reason).scalar_subquery(),
            reviewer_id=first.with_only_columns(_approvals.c.reviewer_id).scalar_subquery(),
            reviewer_name=first.with_only_columns(_approvals.c.reviewer_name).scalar_subquery(),
        )
    )
    with op.batch_alter_table('overrides', schema=None) as batch_op:
        batch_op.alter_column('reason', existing_type=sa.String(length=2000), nullable=False)
        batch_op.alter_column('reviewer_id', existing_type=sa.String(length=40), nullable=False)
        batch_op.alter_column('reviewer_name', existing_type=sa.String(length=200), nullable=False)
        batch_op.drop_column('decided_at')
        batch_op.drop_column('required_approvals')
        batch_op.drop_column('status')
    op.drop_table('override_approvals')
