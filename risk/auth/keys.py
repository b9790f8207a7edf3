"""Creating and resolving API keys. Only the SHA-256 of a key is stored; the key is shown once."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from risk.auth.models import ROLES, ApiClient
from risk.clock import Clock
from risk.db import InSession, Prepared, Raw, new_id

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


# Every request resolves its key: compiled once and run on the request's raw connection (`risk.db.Raw`), since an ORM
# query per request cost more than the gate's own work (profiled under `presign bench`).
_BY_HASH = Prepared(select(*ApiClient.__table__.c).where(ApiClient.__table__.c.key_hash == bindparam("key_hash")))


def resolve(db: Raw | InSession, key: str) -> ApiClient | None:
    """The active client for a presented key, by one indexed read on a DBAPI connection.

    The client comes back detached from any session: callers read its fields and never change it."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    row = db.first(_BY_HASH, {"key_hash": hash_key(key)})
    if row is None or row.revoked_at is not None:
        return None
    return ApiClient(**row._asdict())
