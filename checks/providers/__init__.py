"""Provider adapters (PROVIDERS.md): `local` reads records imported into Presign's database,
`http` calls a provider that speaks PROVIDERS.md. Both answer `get(kind, key)` with a `Fetched`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cachetools import TTLCache

from checks.base import Fetched, Provider
from risk.clock import Clock
from risk.settings import Settings

if TYPE_CHECKING:  # the reference provider server imports this package and needs no database
    from sqlalchemy import Engine

# Record kind -> the configured provider that serves it (PRESIGN_<NAME>_PROVIDER).
KIND_PROVIDER = {
    "unit": "dictionary",
    "community_prices": "dictionary",
    "title": "title",
    "fee_account": "fees",
    "inspections": "leak",
    "listing_verification": "verification",
    "contract_filing": "filing",
}
KINDS = tuple(KIND_PROVIDER)
# Kinds whose answer is the same for every listing that asks and changes slowly (community prices are
# statistics over a community's recent deals): an HTTP provider's answer is kept this many seconds per
# process, so the authenticity check does not wait a second round trip after the unit's. Failures are
# never kept.
SHARED_KINDS_TTL = {"community_prices": 600.0}
_SHARED_MAX_ENTRIES = 10_000
_MISSING = object()


class SharedAnswers:
    """A provider whose answers for SHARED_KINDS_TTL kinds are kept a while; other kinds pass through."""

    def __init__(self, inner: Provider, clock: Clock, ttl: dict[str, float] = SHARED_KINDS_TTL) -> None:
        self.inner = inner
        self.name = inner.name
        # Aged by the runtime's clock, which tests can advance.
        self._kept: dict[str, TTLCache[str, Fetched | None]] = {
            kind: TTLCache(_SHARED_MAX_ENTRIES, seconds, timer=lambda: clock.now().timestamp())
            for kind, seconds in ttl.items()
        }
        self._lock = threading.Lock()  # a TTLCache is not thread-safe

    def get(self, kind: str, key: str) -> Fetched | None:
        kept = self._kept.get(kind)
        if kept is None:
            return self.inner.get(kind, key)
        with self._lock:
            answer = kept.get(key, _MISSING)
        if answer is not _MISSING:
            return answer  # type: ignore[return-value]
        fetched = self.inner.get(kind, key)  # ProviderUnavailable propagates and nothing is kept
        with self._lock:
            kept[key] = fetched
        return fetched

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


@dataclass
class ProviderSet:
    """The adapters of one process, one per configured provider name."""

    by_name: dict[str, Provider] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> ProviderSet:
        from checks.providers.http import HttpProvider
        from checks.providers.local import LocalProvider

        adapters: dict[str, Provider] = {}
        for name, target in settings.providers.items():
            if target == "local":
                adapters[name] = LocalProvider(engine, settings.clock)
            else:
                adapters[name] = SharedAnswers(
                    HttpProvider(
                        name=name,
                        base_url=target,
                        clock=settings.clock,
                        connect_timeout=settings.provider_connect_timeout,
                        read_timeout=settings.provider_read_timeout,
                        budget_seconds=settings.provider_budget_seconds,
                    ),
                    settings.clock,
                )
        return cls(by_name=adapters)

    def for_kind(self, kind: str) -> Provider:
        return self.by_name[KIND_PROVIDER[kind]]

    def get(self, kind: str, key: str) -> Fetched | None:
        return self.for_kind(kind).get(kind, key)

    def close(self) -> None:
        for adapter in self.by_name.values():
            close = getattr(adapter, "close", None)
            if close is not None:
                close()


class ReportAnswers:
    """A report's providers, remembering their answers: each (kind, key) is fetched once per report,
    however many checks ask for it and even when they ask at once (the filing check reads the title
    the title check fetched). A failure is remembered too: every asker gets the same one."""

    def __init__(self, providers: Callable[[str], Provider]) -> None:
        self._providers = providers
        self._answers: dict[tuple[str, str], Future[Fetched | None]] = {}
        self._lock = threading.Lock()

    def for_kind(self, kind: str) -> Provider:
        return _Remembered(self, self._providers(kind))

    def fetch(self, provider: Provider, kind: str, key: str) -> Fetched | None:
        with self._lock:
            answer = self._answers.get((kind, key))
            mine = answer is None
            if answer is None:
                answer = self._answers[(kind, key)] = Future()
        if mine:
            try:
                answer.set_result(provider.get(kind, key))
            except BaseException as exc:
                answer.set_exception(exc)
        return answer.result()


class _Remembered:
    def __init__(self, answers: ReportAnswers, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name
        self._answers = answers

    def get(self, kind: str, key: str) -> Fetched | None:
        return self._answers.fetch(self.inner, kind, key)
