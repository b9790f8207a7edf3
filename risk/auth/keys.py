"""Creating and resolving API keys. Only the SHA-256 of a key is stored; the key is shown once."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from risk.auth.models import ROLES, ApiClient
from risk.clock import Clock
from risk.db import new_id

KEY_PREFIX = "psk_"


@dataclass(frozen=True)
class NewKey:
    client: ApiClient
    key: str
    webhook_secret: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    session: Session, clock: Clock, *, role: str, name: str, company: str = "default", store: str = "default"
) -> NewKey:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    secret = "whsec_" + secrets.token_urlsafe(32)
    client = ApiClient(
        id=new_id("cli"),
        name=name,
        role=role,
        company=company,
        store=store,
        key_hash=hash_key(key),
        key_prefix=key[:12],
        webhook_secret=secret,
        created_at=clock.now(),
    )
    session.add(client)
    session.flush()
    return NewKey(client=client, key=key, webhook_secret=secret)


def resolve(session: Session, key: str) -> ApiClient | None:
    """The active client for a presented key, by one indexed read."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    client = session.scalars(select(ApiClient).where(ApiClient.key_hash == hash_key(key))).first()
    if client is None or client.revoked_at is not None:
        return None
    return client
