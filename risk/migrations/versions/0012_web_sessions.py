"""web page sign-in: one-time login tokens, sessions, when deals were last seen

Revision ID: 0012
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import risk.db

revision = '0012'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'web_login_tokens',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('client_id', sa.String(length=40), nullable=False),
        sa.Column('created_at', risk.db.UTCDateTime(), nullable=False),
        sa.Column('expires_at', risk.db.UTCDateTime(), nullable=False),
        sa.Column('used_at', risk.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('token_hash'),
    )
    op.create_index(op.f('ix_web_login_tokens_client_id'), 'web_login_tokens', ['client_id'], unique=False)
    op.create_table(
        'web_sessions',
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('client_id', sa.String(length=40), nullable=False),
        sa.Column('csrf_token', sa.String(length=64), nullable=False),
        sa.Column('created_at', risk.db.UTCDateTime(), nullable=False),
        sa.Column('expires_at', risk.db.UTCDateTime(), nullable=False),
        sa.Column('ended_at', risk.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('token_hash'),
    )
    op.create_index(op.f('ix_web_sessions_client_id'), 'web_sessions', ['client_id'], unique=False)
    op.create_table(
        'web_deals_seen',
        sa.Column('client_id', sa.String(length=40), nullable=False),
        sa.Column('seen_at', risk.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('client_id'),
    )


def downgrade() -> None:
    op.drop_table('web_deals_seen')
    op.drop_index(op.f('ix_web_sessions_client_id'), table_name='web_sessions')
    op.drop_table('web_sessions')
    op.drop_index(op.f('ix_web_login_tokens_client_id'), table_name='web_login_tokens')
    op.drop_table('web_login_tokens')
