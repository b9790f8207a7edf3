"""Resolving API keys. Only the SHA-256 of a key is stored; the key is shown once (`risk.auth.operations`)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from risk.auth.models import ApiClient, ApiKey

KEY_PREFIX = "psk_"
SECRET_PREFIX = "whsec_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    """`whsec_` and the standard base64 of 32 random bytes, as Standard Webhooks libraries decode it."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


_CLIENTS = ApiClient.__table__.c
_KEYS = ApiKey.__table__.c
# A Core statement built once, since every request resolves its key.
_BY_HASH = (
    select(*_CLIENTS, _KEYS.expires_at.label("key_expires_at"))
    .join_from(ApiKey.__table__, ApiClient.__table__, _KEYS.client_id == _CLIENTS.id)
    .where(_KEYS.key_hash == bindparam("key_hash"))
)


def _well_formed(key: str) -> bool:
    return key.startswith(KEY_PREFIX) and len(key) <= 200


def _usable(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or now < expires_at


def _by_hash(db: Session, key_hash: str, now: datetime) -> tuple[ApiClient, datetime | None] | None:
    """The active client with this key hash and when the key expires, by one indexed read. The client
    comes back detached from any session: callers read its fields and never change it."""
    row = db.execute(_BY_HASH, {"key_hash": key_hash}).first()
    if row is None or row.revoked_at is not None or not _usable(row.key_expires_at, now):
        return None
    fields = row._asdict()
    expires_at = fields.pop("key_expires_at")
    return ApiClient(**fields), expires_at


KEY_CACHE_SECONDS = 5.0
_KEY_CACHE_ENTRIES = 1024


class KnownKeys:
    """The clients behind keys presented lately, kept a few seconds in this process.

    Every request presents its key, so a lookup per request would weigh on the gate. Only keys that
    resolved are kept, by their hash and for `seconds`: a key revoked in the database stops working
    within that time; a key whose rotation overlap ends stops at once; an unknown or revoked key is
    looked up on every request."""

    def __init__(self, seconds: float = KEY_CACHE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._kept: dict[str, tuple[float, ApiClient, datetime | None]] = {}
        self._lock = threading.Lock()

    def resolve(self, db: Callable[[], Session], key: str, now: datetime) -> ApiClient | None:
        """The active client for `key` at `now`; `db` gives the connection to look it up on, when it must be."""
        if not _well_formed(key):
            return None
        key_hash = hash_key(key)
        tick = self._clock()
        kept = self._kept.get(key_hash)
        if kept is not None and tick - kept[0] < self.seconds and _usable(kept[2], now):
            return kept[1]
        found = _by_hash(db(), key_hash, now)
        with self._lock:
            if found is None:
                self._kept.pop(key_hash, None)
            else:
                if len(self._kept) >= _KEY_CACHE_ENTRIES:
                    self._kept.clear()
                self._kept[key_hash] = (tick, found[0], found[1])
        return None if found is None else found[0]
