"""Factories for check tests: listing snapshots, PROVIDERS.md-shaped records, an in-memory provider
and market, and a CheckContext builder. Plain functions returning plain data; override what a test
is about and leave the rest at defaults that pass every check.

Records are in the form the adapters hand to checks (checks/providers/schemas.py): instants as UTC
ISO strings, calendar dates as YYYY-MM-DD, money as two-place strings, areas as numbers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from checks.base import CheckContext, Fetched, ProviderUnavailable
from listings.models import Listing, ListingPhoto
from risk.clock import Clock, FrozenClock
from risk.identity import keyed_hash, mask, normalise, resident_check_digit
from tests.conftest import START, real_data

SECRET = "test-secret"  # the conftest settings' secret_key, so hashes here match the app's
UNIT_ID = "bj-yysh-3-2-602"
COMMUNITY_ID = "bj-yysh"
AS_OF = "2026-11-21T16:00:00+00:00"


def resident_id(first17: str) -> str:
    """A valid resident ID from its first 17 digits (GB 11643 check digit computed)."""
    return first17 + resident_check_digit(first17)


SELLER_ID = resident_id("11010519780315002")
CO_OWNER_ID = resident_id("11010819800704004")
BUYER_ID = resident_id("31010419900101003")


def real_resident_ids(expected: str = "valid") -> list[str]:
    """Resident IDs from ../shared/data/real/cn_ric_test_vectors.csv; skips when the file is absent."""
    with real_data("cn_ric_test_vectors.csv").open(encoding="utf-8") as fh:
        return [row["id_number"] for row in csv.DictReader(fh) if row["expected"] == expected]


# -- the listing snapshot -------------------------------------------------------------------------


def person(
    name: str = "张建国", id_number: str = SELLER_ID, id_type: str = "resident_id", secret: str = SECRET
) -> dict:
    """A seller or buyer as a snapshot holds them: name, type, keyed hash and masked number."""
    canonical = normalise(id_type, id_number)
    return {
        "name": name,
        "id_type": id_type,
        "id_hash": keyed_hash(secret, id_type, canonical),
        "id_masked": mask(id_type, canonical),
    }


def subject(**overrides: Any) -> dict[str, Any]:
    """A dict shaped like Listing.snapshot() plus `deal`, consistent with the default records."""
    data: dict[str, Any] = {
        "listing_id": "lst_test0000000000000000001",
        "external_id": "LJ-BJ-0001",
        "company": "default",
        "store_id": "store-1",
        "agent_id": "agent-1",
        "status": "active",
        "unit_id": UNIT_ID,
        "city": "北京",
        "community": "远洋山水",
        "building": "3",
        "unit": "2",
        "room": "602",
        "floor": 6,
        "area_m2": "89.50",
        "layout": "2室1厅",
        "orientation": "南北",
        "build_year": 2004,
        "asking_price": "6265000.00",
        "entrusted_price": "6265000.00",
        "seller": person(),
        "photos": [
            {"url": "https://img.example/1.jpg", "sha256": "a" * 64},
            {"url": "https://img.example/2.jpg", "sha256": "b" * 64},
        ],
        "deal": None,
    }
    data.update(overrides)
    return data


_default_subject = subject  # `context` takes a parameter of the same name


def deal(buyer_name: str = "李明", buyer_id: str = BUYER_ID, **overrides: Any) -> dict[str, Any]:
    """A deal as `subject["deal"]` will carry it once deals exist."""
    data: dict[str, Any] = {"deal_id": "deal_test0000000000000001", "buyer": person(buyer_name, buyer_id)}
    data.update(overrides)
    return data


# -- PROVIDERS.md records -------------------------------------------------------------------------


def unit_record(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "unit_id": UNIT_ID,
        "city": "北京",
        "district": "海淀区",
        "community_id": COMMUNITY_ID,
        "community": "远洋山水",
        "building": "3",
        "unit": "2",
        "room": "602",
        "floor": 6,
        "total_floors": 18,
        "area_m2": 89.5,
        "layout": "2室1厅",
        "orientation": "南北",
        "build_year": 2004,
        "use": "住宅",
        "as_of": AS_OF,
    }
    data.update(overrides)
    return data


def community_prices_record(
    median: str = "70000.00", p10: str = "58000.00", p90: str = "84000.00", sample_size: int = 40, **overrides: Any
) -> dict[str, Any]:
    """Yuan per m²; the default subject's 6265000 / 89.50 = 70000 sits on the median."""
    data: dict[str, Any] = {
        "community_id": COMMUNITY_ID,
        "median_unit_price": median,
        "p10_unit_price": p10,
        "p90_unit_price": p90,
        "sample_size": sample_size,
        "as_of": AS_OF,
    }
    data.update(overrides)
    return data


def owner(name: str = "张建国", id_number: str = SELLER_ID, share: str = "100%") -> dict[str, Any]:
    return {"name": name, "id_number": id_number, "share": share}


_HOLDERS = {
    "mortgage": "中国工商银行股份有限公司北京海淀支行",
    "objection": "王立新",
    "advance_registration": "赵强",
    "residence_right": "张母",
    "lease": "北京自如生活资产管理有限公司",
    "easement": "北京市热力集团有限责任公司",
}


def encumbrance(kind: str, status: str = "active", **overrides: Any) -> dict[str, Any]:
    """An entry of a title's `encumbrances`; `kind` is its `type`. Seizures are by a court."""
    court = kind not in _HOLDERS
    data: dict[str, Any] = {
        "id": f"enc-{kind}",
        "type": kind,
        "status": status,
        "registered_at": "2026-10-09T01:30:00+00:00",
        "released_at": "2026-11-01T02:00:00+00:00" if status == "released" else None,
        "holder": "北京市海淀区人民法院" if court else _HOLDERS[kind],
        "amount": "1800000.00" if kind == "mortgage" else None,
        "reference": "(2026)京0108执保1234号" if court else "京(2026)海淀区不动产证明第0045678号",
    }
    data.update(overrides)
    return data


def title_record(
    owners: Iterable[dict[str, Any]] | None = None, encumbrances: Iterable[dict[str, Any]] = (), **overrides: Any
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "unit_id": UNIT_ID,
        "certificate_no": "京(2019)海淀区不动产权第0012345号",
        "registered_area_m2": 89.5,
        "use": "住宅",
        "owners": list(owners) if owners is not None else [owner()],
        "encumbrances": list(encumbrances),
        "as_of": AS_OF,
    }
    data.update(overrides)
    return data


def fee_item(
    category: str = "property",
    period_from: str = "2025-01-01",
    period_to: str = "2025-12-31",
    amount_due: str = "3600.00",
    amount_paid: str = "3600.00",
) -> dict[str, Any]:
    return {
        "category": category,
        "period_from": period_from,
        "period_to": period_to,
        "amount_due": amount_due,
        "amount_paid": amount_paid,
    }


def fee_account_record(items: Iterable[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "unit_id": UNIT_ID,
        "company": "北京远洋物业管理有限公司",
        "paid_through": "2026-12-31",
        "items": list(items) if items is not None else [fee_item()],
        "as_of": AS_OF,
    }
    data.update(overrides)
    return data


def inspection(inspected_at: str = "2026-11-01T02:00:00+00:00", result: str = "no_leak", **overrides: Any) -> dict:
    data: dict[str, Any] = {
        "id": f"insp-{inspected_at[:10]}",
        "inspected_at": inspected_at,
        "result": result,
        "areas": [] if result == "no_leak" else ["卫生间", "厨房"],
        "inspector": "北京安居房屋检测有限公司",
        "report_ref": f"FLJC-{inspected_at[:10]}",
    }
    data.update(overrides)
    return data


def inspections_record(inspections: Iterable[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "unit_id": UNIT_ID,
        "inspections": list(inspections) if inspections is not None else [inspection()],
        "as_of": AS_OF,
    }
    data.update(overrides)
    return data


# -- providers, market, context -------------------------------------------------------------------


class MemoryProvider:
    """A Provider over a dict {(kind, key): payload}: absent keys answer None (404); kinds listed in
    `failing` raise ProviderUnavailable as a provider does after its retries."""

    def __init__(
        self,
        records: dict[tuple[str, str], dict[str, Any]],
        *,
        name: str = "memory",
        clock: Clock | None = None,
        failing: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.records = records
        self.clock = clock or FrozenClock(START)
        self.failing = frozenset(failing)
        self.calls: list[tuple[str, str]] = []

    def get(self, kind: str, key: str) -> Fetched | None:
        self.calls.append((kind, key))
        if kind in self.failing:
            raise ProviderUnavailable(self.name, "read timed out after 3 attempts")
        payload = self.records.get((kind, key))
        if payload is None:
            return None
        return Fetched(
            kind=kind,
            key=key,
            payload=payload,
            source=self.name,
            reference=f"{self.name}:{kind}/{key}",
            retrieved_at=self.clock.now(),
        )


@dataclass
class MemoryMarket:
    """A Market over lists, for checks that need no database."""

    active: list[dict[str, Any]] = field(default_factory=list)
    photos: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    deals: list[dict[str, Any]] = field(default_factory=list)

    def other_active_listings(self, unit_id: str, listing_id: str) -> list[dict[str, Any]]:
        return [x for x in self.active if x["listing_id"] != listing_id]

    def listings_with_photos(self, sha256s: Collection[str], listing_id: str) -> dict[str, list[dict[str, Any]]]:
        found = {sha: [x for x in self.photos.get(sha, []) if x["listing_id"] != listing_id] for sha in sha256s}
        return {sha: users for sha, users in found.items() if users}

    def open_deals_on_unit(self, unit_id: str, listing_id: str) -> list[dict[str, Any]]:
        return [x for x in self.deals if x["listing_id"] != listing_id]


_ABSENT: Any = object()


def _market_data(market: Any, clock: Clock) -> Any:
    from listings.market.data import SqlMarketData

    engine = getattr(market, "engine", None)
    return SqlMarketData(engine, clock) if engine is not None else None


def context(
    subject: dict[str, Any] | None = None,
    *,
    unit: dict[str, Any] | None = _ABSENT,
    community_prices: dict[str, Any] | None = _ABSENT,
    title: dict[str, Any] | None = _ABSENT,
    fee_account: dict[str, Any] | None = _ABSENT,
    inspections: dict[str, Any] | None = _ABSENT,
    market: Any = None,
    clock: Clock | None = None,
    failing: Iterable[str] = (),
    stage: str = "listing",
    company: str = "default",
    secret: str = SECRET,
) -> CheckContext:
    """A CheckContext over a MemoryProvider. Records default to clean ones for the subject's unit;
    pass None for a record the provider does not have (404). A database-backed `market` brings the
    market data of the same database, as the report runner wires it."""
    subj = subject if subject is not None else _default_subject()
    clock = clock or FrozenClock(START)
    unit_id = subj["unit_id"]
    given = {
        "unit": unit_record(unit_id=unit_id) if unit is _ABSENT else unit,
        "community_prices": community_prices_record() if community_prices is _ABSENT else community_prices,
        "title": title_record(unit_id=unit_id) if title is _ABSENT else title,
        "fee_account": fee_account_record(unit_id=unit_id) if fee_account is _ABSENT else fee_account,
        "inspections": inspections_record(unit_id=unit_id) if inspections is _ABSENT else inspections,
    }
    records: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, payload in given.items():
        if payload is not None:
            key = payload["community_id"] if kind == "community_prices" else unit_id
            records[(kind, key)] = payload
    provider = MemoryProvider(records, clock=clock, failing=failing)
    return CheckContext(
        stage=stage,
        company=company,
        subject=subj,
        providers=lambda kind: provider,
        market=market if market is not None else MemoryMarket(),
        market_data=_market_data(market, clock),
        clock=clock,
        id_hash=lambda id_type, number: keyed_hash(secret, id_type, number),
    )


def at(iso: str) -> datetime:
    """An aware datetime from an ISO string, for moving clocks in tests."""
    return datetime.fromisoformat(iso)


# -- Listing rows, for tests that need Presign's own tables -----------------------------------------


def listing_row(
    listing_id: str,
    *,
    company: str = "default",
    unit_id: str = UNIT_ID,
    status: str = "active",
    photos: Iterable[str] = (),
    **overrides: Any,
) -> Any:
    """A Listing ORM object (with photos by sha256) to add to a session; fields match `subject()`."""
    seller = person()
    values: dict[str, Any] = {
        "id": listing_id,
        "company": company,
        "store_id": "store-1",
        "agent_id": "agent-1",
        "created_by": "cli_test",
        "external_id": f"EXT-{listing_id}",
        "unit_id": unit_id,
        "city": "北京",
        "community": "远洋山水",
        "building": "3",
        "unit": "2",
        "room": "602",
        "floor": 6,
        "area_m2": Decimal("89.50"),
        "layout": "2室1厅",
        "orientation": "南北",
        "build_year": 2004,
        "asking_price": Decimal("6265000.00"),
        "entrusted_price": Decimal("6265000.00"),
        "seller_name": seller["name"],
        "seller_id_type": seller["id_type"],
        "seller_id_hash": seller["id_hash"],
        "seller_id_masked": seller["id_masked"],
        "status": status,
        "created_at": START,
        "updated_at": START,
    }
    values.update(overrides)
    row = Listing(**values)
    row.photos = [
        ListingPhoto(position=i, url=f"https://img.example/{listing_id}/{i}.jpg", sha256=sha)
        for i, sha in enumerate(photos)
    ]
    return row


def as_stored(outcome: Any) -> dict[str, Any]:
    """An outcome's findings, evidence and facts through JSON, as the report tables keep them; raises
    TypeError when something is not JSON-safe (a Decimal, a datetime)."""
    data = {"findings": [asdict(f) for f in outcome.findings], "evidence": outcome.evidence, "facts": outcome.facts}
    return json.loads(json.dumps(data, ensure_ascii=False))


FILING_NO = "京(2026)网签备字第0012345号"


def contract_filing_record(**overrides: Any) -> dict[str, Any]:
    """A filed contract for UNIT_ID between the default buyer (李明) and the registered owner (张建国)."""
    data: dict[str, Any] = {
        "filing_no": FILING_NO,
        "unit_id": UNIT_ID,
        "status": "filed",
        "filed_at": "2026-11-20T02:00:00+00:00",
        "revoked_at": None,
        "buyers": [{"name": "李明", "id_number": BUYER_ID}],
        "sellers": [{"name": "张建国", "id_number": SELLER_ID}],
        "as_of": AS_OF,
    }
    data.update(overrides)
    return data
