"""The embedded provider: answers from records imported with `presign import`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from checks.base import Fetched
from checks.providers.models import ProviderRecord
from risk.clock import Clock


class LocalProvider:
    """Reads `provider_records` by (kind, key); the payloads were validated when they were imported."""

    name = "local"

    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    def get(self, kind: str, key: str) -> Fetched | None:
        """The record of `kind` under `key`, or None when none was imported (for inspections: none on record)."""
        with self._sessions() as session:
            payload = session.scalar(
                select(ProviderRecord.payload).where(ProviderRecord.kind == kind, ProviderRecord.key == key)
            )
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
        """Nothing to release: sessions come from the runtime's engine."""
