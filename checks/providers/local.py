"""The embedded provider: answers from records imported with `presign import`."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Engine, Table, bindparam, select

from checks.base import Fetched
from checks.providers.models import ProviderRecord
from risk.clock import Clock
from risk.db import each_statement

_RECORDS = cast(Table, ProviderRecord.__table__)
_PAYLOAD = select(_RECORDS.c.payload).where(_RECORDS.c.kind == bindparam("kind"), _RECORDS.c.key == bindparam("key"))


class LocalProvider:
    """Reads `provider_records` by (kind, key); the payloads were validated when they were imported."""

    name = "local"

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def get(self, kind: str, key: str) -> Fetched | None:
        """The record of `kind` under `key`, or None when none was imported (for inspections: none on record)."""
        with each_statement(self._engine) as db:  # one read: no transaction around it
            payload = db.execute(_PAYLOAD, {"kind": kind, "key": key}).scalar()
        if payload is None:
            return None
        return Fetched(
            kind=kind,
            key=key,
            payload=payload,
            source="local",
            reference=f"local:{kind}/{key}",
            retrieved_at=self._clock.now(),
        )

    def close(self) -> None:
        """Nothing to release: connections come from the runtime's engine."""
