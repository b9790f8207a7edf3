"""The embedded provider: answers from records imported with `presign import`."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from checks.base import Fetched
from checks.providers.models import ProviderRecord
from risk.clock import Clock
from risk.db import Prepared, reading

_RECORDS = ProviderRecord.__table__.c
_PAYLOAD = Prepared(
    select(_RECORDS.payload).where(_RECORDS.kind == bindparam("kind"), _RECORDS.key == bindparam("key"))
)


class LocalProvider:
    """Reads `provider_records` by (kind, key); the payloads were validated when they were imported."""

    name = "local"

    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._engine = sessions.kw["bind"]
        self._clock = clock

    def get(self, kind: str, key: str) -> Fetched | None:
        """The record of `kind` under `key`, or None when none was imported (for inspections: none on record)."""
        with reading(self._engine) as db:  # one prepared read on a pooled connection
            row = db.first(_PAYLOAD, {"kind": kind, "key": key})
        if row is None:
            return None
        payload = row.payload
        return Fetched(
            kind=kind,
            key=key,
            payload=payload,
            source="local",
            reference=f"local:{kind}/{key}",
            retrieved_at=self._clock.now(),
        )

    def close(self) -> None:
        """Nothing to release: sessions come from the runtime's engine."""
