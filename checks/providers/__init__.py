"""Provider adapters (PROVIDERS.md): `local` reads records imported into Presign's database,
`http` calls a provider that speaks PROVIDERS.md. Both answer `get(kind, key)` with a `Fetched`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from checks.base import Fetched, Provider
from risk.settings import Settings

# Record kind -> the configured provider that serves it (PRESIGN_<NAME>_PROVIDER).
KIND_PROVIDER = {
    "unit": "dictionary",
    "community_prices": "dictionary",
    "title": "title",
    "fee_account": "fees",
    "inspections": "leak",
}
KINDS = tuple(KIND_PROVIDER)


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
                adapters[name] = HttpProvider(
                    name=name,
                    base_url=target,
                    clock=settings.clock,
                    connect_timeout=settings.provider_connect_timeout,
                    read_timeout=settings.provider_read_timeout,
                    budget_seconds=settings.provider_budget_seconds,
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
