"""Evidence stamps, numbers, and how other listings and deals are shown, for every part of the check."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from checks.base import CheckContext
from listings import names
from listings.market.data import Community

ANOTHER_BROKERAGE = "another brokerage"
ANOTHER_BROKERAGE_ZH = "另一家经纪机构"
ANOTHER_STORE = "another store"
ANOTHER_STORE_ZH = "本公司另一门店"
CENT = Decimal("0.01")


def nothing(ctx: CheckContext, provider: str) -> dict[str, Any]:
    """Evidence for a 404: who was asked and when; there is no reference or as_of to quote."""
    return {"provider": provider, "reference": None, "as_of": None, "retrieved_at": ctx.clock.now().isoformat()}


def presign_stamp(ctx: CheckContext) -> dict[str, Any]:
    """Evidence drawn from Presign's own tables, stamped like a provider's."""
    now = ctx.clock.now().isoformat()
    return {"provider": "presign", "reference": "presign:listings", "as_of": now, "retrieved_at": now}


def market_source(ctx: CheckContext, listing: dict[str, Any], community: Community | None) -> dict[str, Any]:
    """Evidence drawn from Presign's market data (imported exports), stamped like a provider's."""
    key = community.key if community is not None else names.community_key(listing.get("community"))
    return {
        "provider": "presign",
        "reference": f"presign:market/{listing.get('city') or ''}/{key}",
        "as_of": None,
        "retrieved_at": ctx.clock.now().isoformat(),
    }


def other_listing(other: dict[str, Any], store: str | None) -> dict[str, Any]:
    """Another listing as evidence shows it: named only when it is of the listing's own store."""
    if not other.get("same_company"):
        return _another_brokerage()
    if store is None or other.get("store_id") != store:
        return _another_store()
    shown = {"same_company": True, "listing_id": other["listing_id"]}
    for key in ("status", "asking_price"):
        if other.get(key) is not None:
            shown[key] = other[key]
    return shown


def other_deal(deal: dict[str, Any], store: str | None) -> dict[str, Any]:
    if not deal.get("same_company"):
        return _another_brokerage()
    if store is None or deal.get("store_id") != store:
        return _another_store()
    return {k: deal[k] for k in ("same_company", "listing_id", "deal_id", "status") if deal.get(k) is not None}


def _another_store() -> dict[str, Any]:
    # The listing's agents read this evidence: nothing that identifies another store's listing or deal.
    return {"same_company": True, "same_store": False, "store": ANOTHER_STORE, "store_zh": ANOTHER_STORE_ZH}


def _another_brokerage() -> dict[str, Any]:
    # Nothing that identifies the other company or its listing: not its name, id, store or price.
    return {"same_company": False, "brokerage": ANOTHER_BROKERAGE, "brokerage_zh": ANOTHER_BROKERAGE_ZH}


def who(shown: list[dict[str, Any]], counter: str) -> str:
    own = [s.get("deal_id") or s["listing_id"] for s in shown if s["same_company"] and "listing_id" in s]
    stores = sum(1 for s in shown if s["same_company"] and "listing_id" not in s)
    foreign = sum(1 for s in shown if not s["same_company"])
    parts = [f"本公司 {'、'.join(own)}"] if own else []
    if stores:
        parts.append(f"{ANOTHER_STORE_ZH} {stores} {counter}")
    if foreign:
        parts.append(f"{ANOTHER_BROKERAGE_ZH} {foreign} {counter}")
    return "；".join(parts)


# -- numbers -----------------------------------------------------------------------------------


def dec(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def positive_float(value: Any) -> float | None:
    try:
        number = float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and number > 0 else None


def optional_str(value: Any) -> str | None:
    number = dec(value)
    return None if number is None else money(number)


def money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def pct(fraction: Decimal) -> str:
    return f"{(fraction * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"
