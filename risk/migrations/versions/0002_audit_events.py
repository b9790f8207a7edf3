"""audit events: one hash chain per company; gate answers become `gate.answered` events

The gate's answers move from `gate_answers` into `audit_events` (unchained: the worker's chainer links
them), and `gate_answers` is dropped. The database itself refuses to change or delete an event: a
trigger lets an UPDATE through only when it sets `seq`, `prev_hash` and `hash` from null and changes
nothing else, and refuses every DELETE (and, on PostgreSQL, TRUNCATE).

Downgrade recreates an empty `gate_answers` and drops the events: development only.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import risk.db

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_KEPT = ("id", "company", "type", "at", "actor_client_id", "actor_role", "actor_name", "subject_kind", "subject_id")

_SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused'); END
    """,
    f"""
    CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    WHEN NOT (
        OLD.seq IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL
        AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL
        AND {" AND ".join(f"NEW.{c} IS OLD.{c}" for c in (*_KEPT, "data"))}
    )
    BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused'); END
    """,
)

_PG_FUNCTION = f"""
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.seq IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL
           AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL
           AND ({", ".join(f"NEW.{c}" for c in _KEPT)}, NEW.data::text)
               IS NOT DISTINCT FROM ({", ".join(f"OLD.{c}" for c in _KEPT)}, OLD.data::text)
        THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END
$$
"""
_PG_TRIGGERS = (
    _PG_FUNCTION,
    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()",
)

# Each recorded answer becomes a `gate.answered` event by the client that asked, in the order given.
_CONVERT = """
INSERT INTO audit_events (company, type, at, actor_client_id, actor_role, actor_name, subject_kind,
                          subject_id, data)
SELECT g.company, 'gate.answered', g.answered_at, g.client_id, COALESCE(c.role, 'unknown'),
       COALESCE(c.name, g.client_id),
       CASE WHEN g.deal_id IS NULL THEN 'listing' ELSE 'deal' END, COALESCE(g.deal_id, g.listing_id),
       g.answer
FROM gate_answers g LEFT JOIN api_clients c ON c.id = g.client_id
ORDER BY g.answered_at, g.id
"""


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('company', sa.String(length=100), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=True),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('at', risk.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_client_id', sa.String(length=40), nullable=True),
    sa.Column('actor_role', sa.String(length=32), nullable=False),
    sa.Column('actor_name', sa.String(length=200), nullable=False),
    sa.Column('subject_kind', sa.String(length=20), nullable=False),
    sa.Column('subject_id', sa.String(length=100), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=True),
    sa.Column('hash', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('company', 'seq', name='uq_audit_events_company_seq')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_subject', ['company', 'subject_kind', 'subject_id', 'id'], unique=False)
        batch_op.create_index('ix_audit_events_unchained', ['company', 'id'], unique=False,
                              postgresql_where=sa.text('seq IS NULL'), sqlite_where=sa.text('seq IS NULL'))

    op.execute(_CONVERT)
    with op.batch_alter_table('gate_answers', schema=None) as batch_op:
        batch_op.drop_index('ix_gate_answers_listing')
        batch_op.drop_index(batch_op.f('ix_gate_answers_deal_id'))
    op.drop_table('gate_answers')

    for statement in _PG_TRIGGERS if op.get_bind().dialect.name == "postgresql" else _SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")
    else:
        op.execute("DROP TRIGGER audit_events_no_update")
        op.execute("DROP TRIGGER audit_events_no_delete")
    op.create_table('gate_answers',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('company', sa.String(length=100), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('listing_id', sa.String(length=40), nullable=False),
    sa.Column('deal_id', sa.String(length=40), nullable=True),
    sa.Column('stage', sa.String(length=20), nullable=False),
    sa.Column('decision', sa.String(length=10), nullable=False),
    sa.Column('report_id', sa.String(length=40), nullable=True),
    sa.Column('override_id', sa.String(length=40), nullable=True),
    sa.Column('refresh_report_id', sa.String(length=40), nullable=True),
    sa.Column('answer', sa.JSON(), nullable=False),
    sa.Column('answered_at', risk.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('gate_answers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gate_answers_deal_id'), ['deal_id'], unique=False)
        batch_op.create_index('ix_gate_answers_listing', ['listing_id', 'answered_at'], unique=False)
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_unchained', postgresql_where=sa.text('seq IS NULL'),
                            sqlite_where=sa.text('seq IS NULL'))
        batch_op.drop_index('ix_audit_events_subject')
    op.drop_table('audit_events')
