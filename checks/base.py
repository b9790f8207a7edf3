"""What a check is given and what it gives back.

A check is a function `run(ctx: CheckContext) -> CheckOutcome`, registered once in
`checks.registry`. It asks providers for records, judges them and returns findings. It never
decides ALLOW/REVIEW/BLOCK: the policy (`risk.policy`) maps each finding code to a decision and a
severity. A provider that still fails after its bounded retries raises `ProviderUnavailable`;
the runner turns that into an `unavailable` outcome with `CHECK_UNAVAILABLE`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from risk.clock import Clock

if TYPE_CHECKING:
    from listings.market.data import Fingerprint


@dataclass(frozen=True)
class Finding:
    code: str  # one of checks.codes.CODES
    message: str  # Chinese, for the agent
    evidence: dict[str, Any]  # provider, reference, as_of, retrieved_at and the facts; no full ID numbers


@dataclass
class CheckOutcome:
    check: str
    findings: list[Finding]
    source: str  # which provider answered, e.g. "local" or the provider's base URL
    retrieved_at: datetime
    unavailable: bool = False
    # What was looked at, shown even when the check is clear (provider, reference, as_of, summary).
    evidence: dict[str, Any] = field(default_factory=dict)
    # Machine-readable facts later rules need (e.g. leak: latest_inspected_at, recent_inspection).
    facts: dict[str, Any] = field(default_factory=dict)
    # The unit's fingerprint (authenticity), which later checks match other listings against: the
    # runner keeps it in the transaction that saves this result, rather than the check in one of its own.
    fingerprint: Fingerprint | None = None


@dataclass(frozen=True)
class Fetched:
    """One provider answer, already validated against its PROVIDERS.md shape."""

    kind: str
    key: str
    payload: dict[str, Any]
    source: str
    reference: str  # where it came from: the URL path, or "local:<kind>/<key>"
    retrieved_at: datetime

    @property
    def as_of(self) -> str | None:
        value = self.payload.get("as_of")
        return None if value is None else str(value)

    def evidence(self, **facts: Any) -> dict[str, Any]:
        base: dict[str, Any] = {
            "provider": self.source,
            "reference": self.reference,
            "as_of": self.as_of,
            "retrieved_at": self.retrieved_at.isoformat(),
        }
        base.update(facts)
        return base


class Provider(Protocol):
    """Answers `get(kind, key)` with a validated record, or None when the source has none (404)."""

    name: str

    def get(self, kind: str, key: str) -> Fetched | None: ...


class Market(Protocol):
    """What the authenticity check asks of Presign's own data (listings, deals)."""

    def other_active_listings(self, unit_id: str, listing_id: str) -> list[dict[str, Any]]: ...

    def listings_with_photos(self, sha256s: Collection[str], listing_id: str) -> dict[str, list[dict[str, Any]]]: ...

    def open_deals_on_unit(self, unit_id: str, listing_id: str) -> list[dict[str, Any]]: ...


@dataclass
class CheckContext:
    stage: str
    company: str
    subject: dict[str, Any]  # the listing snapshot (see risk.reports.operations.listing_snapshot)
    providers: Callable[[str], Provider]  # kind -> the provider that serves it
    market: Market
    clock: Clock
    id_hash: Callable[[str, str], str]  # (id_type, id_number) -> keyed hash, to compare with seller_id_hash
    # Presign's own market statistics (listings.market.data.MarketData), from `presign import-market`.
    market_data: Any = None
    # The runtime's check threads, for a check that asks two providers side by side (None: one by one).
    pool: Executor | None = None


class ProviderUnavailable(Exception):
    """A provider failed after its bounded retries (timeouts, 5xx, 429, malformed body, open breaker)."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"{provider}: {reason}")
        self.provider = provider
        self.reason = reason


Check = Callable[[CheckContext], CheckOutcome]
