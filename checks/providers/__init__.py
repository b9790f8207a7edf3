"""Provider adapters (PROVIDERS.md): `local` reads records imported into Presign's database,
`http` calls a provider that speaks PROVIDERS.md. Both answer `get(kind, key)` with a `Fetched`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from checks.base import Fetched, Provider
from risk.settings import Settings

if TYPE_CHECKING:  # the reference provider server imports this package and needs no database
    from sqlalchemy.orm import Session, sessionmaker

    from checks.providers.http import Asked

# Record kind -> the configured provider that serves it (PRESIGN_<NAME>_PROVIDER).
KIND_PROVIDER = {
    "unit": "dictionary",
    "community_prices": "dictionary",
    "title": "title",
    "fee_account": "fees",
    "inspections": "leak",
    "contract_filing": "filing",
}
KINDS = tuple(KIND_PROVIDER)
# Kinds asked for by the unit's id (PROVIDERS.md): a report can ask for all of them before its checks run.
UNIT_KINDS = frozenset({"unit", "title", "fee_account", "inspections"})
# Kinds whose answer is the same for every listing that asks and changes slowly (community prices are
# statistics over a community's recent deals): an HTTP provider's answer is kept this many seconds per
# process. Without it the authenticity check waits for a second round trip after the unit's (it needs
# the unit's community id first), which a profile of `presign bench` showed holding a report at twice
# the slowest provider. Failures are never kept.
SHARED_KINDS_TTL = {"community_prices": 600.0}
_SHARED_MAX_ENTRIES = 10_000


class SharedAnswers:
    """A provider whose answers for SHARED_KINDS_TTL kinds are kept a while; other kinds pass through."""

    def __init__(self, inner: Provider, ttl: dict[str, float] = SHARED_KINDS_TTL) -> None:
        self.inner = inner
        self.name = inner.name
        self._ttl = ttl
        self._kept: dict[tuple[str, str], tuple[float, Fetched | None]] = {}
        self._lock = threading.Lock()

    def ask(self, kind: str, key: str) -> Asked | None:
        """Kinds kept here are not asked ahead: a kept answer needs no call."""
        ask = getattr(self.inner, "ask", None)
        return None if ask is None or kind in self._ttl else ask(kind, key)  # type: ignore[no-any-return]

    def get(self, kind: str, key: str) -> Fetched | None:
        ttl = self._ttl.get(kind)
        if ttl is None:
            return self.inner.get(kind, key)
        with self._lock:
            kept = self._kept.get((kind, key))
        if kept is not None and time.monotonic() - kept[0] < ttl:
            return kept[1]
        fetched = self.inner.get(kind, key)  # ProviderUnavailable propagates and nothing is kept
        with self._lock:
            if len(self._kept) >= _SHARED_MAX_ENTRIES:
                self._kept.clear()
            self._kept[(kind, key)] = (time.monotonic(), fetched)
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
    def from_settings(cls, settings: Settings, sessions: sessionmaker[Session]) -> ProviderSet:
        from checks.providers.http import HttpProvider
        from checks.providers.local import LocalProvider

        adapters: dict[str, Provider] = {}
        for name, target in settings.providers.items():
            if target == "local":
                adapters[name] = LocalProvider(sessions, settings.clock)
            else:
                adapters[name] = SharedAnswers(
                    HttpProvider(
                        name=name,
                        base_url=target,
                        clock=settings.clock,
                        connect_timeout=settings.provider_connect_timeout,
                        read_timeout=settings.provider_read_timeout,
                        budget_seconds=settings.provider_budget_seconds,
                    )
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


class FirstRound:
    """A report's first provider calls, sent together from one thread before its checks run.

    The calls its checks will make first are all asked by the unit's id (`UNIT_KINDS`): every request
    is sent at once (`ask`), and the thread that runs the report reads the answers of the checks it may
    run itself (`settle`). Checks find their answers through `for_kind`; one whose answer is still
    unread reads it in its own thread. From four threads the same calls cost twice the CPU, in handing
    the GIL over around every socket call (profiled). An answer that needs a retry is retried by the
    check that asks for it, as `get` would, so the retries of different providers still overlap; later
    calls (community prices) and `local` providers are asked as before.
    """

    def __init__(self, providers: ProviderSet, asked: dict[tuple[str, str], Asked]) -> None:
        self._providers = providers
        self._asked = asked
        self._lock = threading.Lock()

    @staticmethod
    def kinds_first(kinds: Iterable[str]) -> list[str]:
        """Those of these kinds a round asks for first: the ones asked by the unit's id."""
        return [kind for kind in dict.fromkeys(kinds) if kind in UNIT_KINDS]

    @classmethod
    def ask(cls, providers: ProviderSet, kinds: Iterable[str], key: str) -> FirstRound:
        """Send the first calls for these kinds (those asked by the unit's id, from HTTP providers)."""
        round_ = cls(providers, {})
        try:
            for kind in cls.kinds_first(kinds):
                ask = getattr(providers.for_kind(kind), "ask", None)
                call = ask(kind, key) if ask is not None else None
                if call is not None:
                    round_._asked[(kind, key)] = call
        except BaseException:
            round_.abandon()
            raise
        return round_

    def asked(self, kinds: Iterable[str], key: str) -> bool:
        """Whether every call for these kinds went out in this round (and is not taken yet)."""
        with self._lock:
            return all((kind, key) in self._asked for kind in kinds)

    def settle(self, kinds: Iterable[str], key: str) -> None:
        """Read the answers for these kinds, in this thread."""
        with self._lock:
            calls = [call for kind in kinds if (call := self._asked.get((kind, key))) is not None]
        try:
            for call in calls:
                call.settle()
        except BaseException:
            self.abandon()
            raise

    def answered(self, kinds: Iterable[str], key: str) -> bool:
        """Whether every call for these kinds was answered in this round: a check that makes only these
        calls has nothing left to wait for."""
        with self._lock:
            return all((asked := self._asked.get((kind, key))) is not None and asked.answered for kind in kinds)

    def abandon(self) -> None:
        """Give up the calls no check has taken (interrupted: a job timeout), closing their connections."""
        with self._lock:
            calls, self._asked = list(self._asked.values()), {}
        for call in calls:
            call.abandon()

    def for_kind(self, kind: str) -> Provider:
        """The provider of `kind`, answering from this round first."""
        return _AnsweredFirst(self._providers.for_kind(kind), self)

    def take(self, kind: str, key: str) -> Asked | None:
        with self._lock:
            return self._asked.pop((kind, key), None)


class _AnsweredFirst:
    def __init__(self, inner: Provider, first: FirstRound) -> None:
        self.inner = inner
        self.name = inner.name
        self._first = first

    def get(self, kind: str, key: str) -> Fetched | None:
        asked = self._first.take(kind, key)
        return asked.answer() if asked is not None else self.inner.get(kind, key)


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
