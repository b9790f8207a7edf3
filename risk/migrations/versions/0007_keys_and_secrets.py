"""keys and secrets: a client's keys and webhook secrets in their own tables, secrets encrypted;
deals.webhook_disabled_at

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

import risk.db

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def _box():
    # `risk.schema.upgrade` hands over the instance's SecretBox when it has one; without it a migrated
    # secret is stored marked plain and `presign secrets reencrypt` (or the next start) encrypts it.
    return context.config.attributes.get("secret_box") if context.config is not None else None


def upgrade() -> None:
    conn = op.get_bind()
    clients = sa.table(
        'api_clients', sa.column('id', sa.String), sa.column('key_hash', sa.String),
        sa.column('key_prefix', sa.String), sa.column('webhook_secret', sa.String),
        sa.column('created_at', risk.db.UTCDateTime(timezone=True)),
    )
    old = conn.execute(sa.select(clients)).all()
    # The columns go before the new tables reference api_clients: SQLite's batch mode copies and drops
    # the table, and the drop would cascade to rows that already point at it.
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.drop_column('key_hash')
        batch_op.drop_column('key_prefix')
        batch_op.drop_column('webhook_secret')

    op.create_table('api_keys',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', risk.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', risk.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash')
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_keys_client_id'), ['client_id'], unique=False)

    op.create_table('webhook_secrets',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('client_id', sa.String(length=40), nullable=False),
    sa.Column('encrypted', sa.Text(), nullable=False),
    sa.Column('standard', sa.Boolean(), nullable=False),
    sa.Column('created_at', risk.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', risk.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['client_id'], ['api_clients.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('webhook_secrets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_secrets_client_id'), ['client_id'], unique=False)

    keys = sa.table(
        'api_keys', sa.column('id', sa.String), sa.column('client_id', sa.String), sa.column('key_hash', sa.String),
        sa.column('prefix', sa.String), sa.column('created_at', risk.db.UTCDateTime(timezone=True)),
    )
    secrets = sa.table(
        'webhook_secrets', sa.column('id', sa.String), sa.column('client_id', sa.String),
        sa.column('encrypted', sa.Text), sa.column('standard', sa.Boolean),
        sa.column('created_at', risk.db.UTCDateTime(timezone=True)),
    )
    box = _box()
    for row in old:
        conn.execute(keys.insert().values(
            id=risk.db.new_id('key'), client_id=row.id, key_hash=row.key_hash, prefix=row.key_prefix,
            created_at=row.created_at,
        ))
        # Secrets issued before v1.1 (`token_urlsafe`) sign only Presign-Signature.
        conn.execute(secrets.insert().values(
            id=risk.db.new_id('whs'), client_id=row.id,
            encrypted=box.encrypt(row.webhook_secret) if box is not None else 'plain:' + row.webhook_secret,
            standard=False, created_at=row.created_at,
        ))

    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('webhook_disabled_at', risk.db.UTCDateTime(timezone=True), nullable=True))

    _protect_registry_records(conn)


def _protect_registry_records(conn) -> None:
    """Imported records keep people's ID numbers only as keyed hashes and masked forms from now on."""
    from risk.identity import protect_record

    id_hash = context.config.attributes.get("id_hash") if context.config is not None else None
    records = sa.table('provider_records', sa.column('id', sa.Integer), sa.column('kind', sa.String),
                       sa.column('payload', sa.JSON))
    for record_id, payload in conn.execute(sa.select(records.c.id, records.c.payload)).all():
        protected = protect_record(id_hash, payload) if id_hash is not None and isinstance(payload, dict) else payload
        if protected != payload:
            conn.execute(records.update().where(records.c.id == record_id).values(payload=protected))


def downgrade() -> None:
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.drop_column('webhook_disabled_at')

    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('key_prefix', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('webhook_secret', sa.String(length=100), nullable=True))
    conn = op.get_bind()
    box = _box()
    # The newest key and secret of each client go back on the client row; extra ones are lost.
    for client_id, key_hash, prefix in conn.execute(sa.text(
        'SELECT client_id, key_hash, prefix FROM api_keys ORDER BY created_at'
    )).all():
        conn.execute(sa.text('UPDATE api_clients SET key_hash = :h, key_prefix = :p WHERE id = :c'),
                     {'h': key_hash, 'p': prefix, 'c': client_id})
    for client_id, encrypted in conn.execute(sa.text(
        'SELECT client_id, encrypted FROM webhook_secrets ORDER BY created_at'
    )).all():
        plain = box.decrypt(encrypted) if box is not None else encrypted.removeprefix('plain:')
        conn.execute(sa.text('UPDATE api_clients SET webhook_secret = :s WHERE id = :c'),
                     {'s': plain, 'c': client_id})
    with op.batch_alter_table('api_clients', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_api_clients_key_hash', ['key_hash'])

    with op.batch_alter_table('webhook_secrets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_secrets_client_id'))
    op.drop_table('webhook_secrets')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_keys_client_id'))
    op.drop_table('api_keys')
