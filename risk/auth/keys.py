"""Creating and resolving API keys. Only the SHA-256 of a key is stored; the key is shown once."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
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


def _well_formed(key: str) -> bool:
    return key.startswith(KEY_PREFIX) and len(key) <= 200


def _by_hash(db: Raw | InSession, key_hash: str) -> ApiClient | None:
    """The active client with this key hash, by one indexed read on a DBAPI connection. It comes back
    detached from any session: callers read its fields and never change it."""
    row = db.first(_BY_HASH, {"key_hash": key_hash})
    if row is None or row.revoked_at is not None:
        return None
    return ApiClient(**row._asdict())


KEY_CACHE_SECONDS = 5.0
_KEY_CACHE_ENTRIES = 1024


class KnownKeys:
    """The clients behind keys presented lately, kept a few seconds in this process.

    Every request presents its key; looking it up was a sixth of the gate's CPU on SQLite and a
    quarter on PostgreSQL (profiled in-process). Only keys that resolved are kept, by their hash and
    for `seconds`: a key revoked in the database stops working within that time; an unknown or revoked
    key is looked up on every request."""

    def __init__(self, seconds: float = KEY_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._kept: dict[str, tuple[float, ApiClient]] = {}
        self._lock = threading.Lock()

    def resolve(self, db: Callable[[], Raw | InSession], key: str) -> ApiClient | None:
        """The active client for `key`; `db` gives the connection to look it up on, when it must be."""
        if not _well_formed(key):
            return None
        key_hash = hash_key(key)
        now = self._clock()
        kept = self._kept.get(key_hash)
        if kept is not None and now - kept[0] < self.seconds:
            return kept[1]
        client = _by_hash(db(), key_hash)
        with self._lock:
            if client is None:
                self._kept.pop(key_hash, None)
            else:
                if len(self._kept) >= _KEY_CACHE_ENTRIES:
                    self._kept.clear()
                self._kept[key_hash] = (now, client)
        return client
