"""Re-posts: the same unit listed elsewhere (by unit_id or by fingerprint), or already in an open deal."""

from __future__ import annotations

from typing import Any

from checks.authenticity.common import other_deal, other_listing, positive_float, presign_stamp, who
from checks.base import CheckContext, Fetched, Finding
from listings import names
from listings.market.data import CommunityLookup, Fingerprint, MarketData, SameUnit


def findings(ctx: CheckContext, market: MarketData | None, unit_print: Fingerprint | None) -> list[Finding]:
    """The unit's other active listings (by unit_id, then by fingerprint) and its open deals."""
    listing = ctx.subject
    unit_id, listing_id, store = listing["unit_id"], listing["listing_id"], listing.get("store_id")
    found = []
    shown = [other_listing(o, store) for o in ctx.market.other_active_listings(unit_id, listing_id)]
    alike = market.same_unit_listings(unit_print, ctx.company) if market is not None and unit_print else []
    shown += [_alike(a, store) for a in alike]
    if shown:
        evidence = {**presign_stamp(ctx), "unit_id": unit_id, "others": shown}
        message = f"同一房屋另有 {len(shown)} 条在售房源：{who(shown, '条')}"
        if alike:
            message += f"（其中 {len(alike)} 条房屋编号不同，按小区、户型、面积、楼层、朝向判断为同一房屋）"
        found.append(Finding("LISTING_DUPLICATE", message, evidence))
    deals = ctx.market.open_deals_on_unit(unit_id, listing_id)
    if deals:
        shown = [other_deal(d, store) for d in deals]
        evidence = {**presign_stamp(ctx), "unit_id": unit_id, "deals": shown}
        message = f"该房屋已在其他房源的交易中（{len(deals)} 笔未结交易：{who(shown, '笔')}）"
        found.append(Finding("LISTING_NOT_FOR_SALE", message, evidence))
    return found


def fingerprint(listing: dict[str, Any], unit: Fetched | None, lookup: CommunityLookup | None) -> Fingerprint | None:
    """The listing's unit in comparable form; None when its layout or area cannot be read."""
    if lookup is None:
        return None
    layout = names.layout(listing.get("layout"))
    area = positive_float(listing.get("area_m2"))
    key = lookup.match.key if lookup.match is not None else lookup.key
    if layout is None or not area or not key:
        return None
    total = listing.get("total_floors")
    if total is None and unit is not None:
        total = unit.payload.get("total_floors")
    floor = listing.get("floor")
    building = "-".join(
        k for k in (names.number_key(listing.get("building")), names.number_key(listing.get("unit"))) if k
    )
    return Fingerprint(
        listing_id=listing["listing_id"],
        unit_id=listing["unit_id"],
        city=listing.get("city") or "",
        community_key=key,
        rooms=layout.rooms,
        halls=layout.halls,
        room_type=layout.room_type,
        area_m2=area,
        floor=floor if isinstance(floor, int) else None,
        total_floors=total if isinstance(total, int) else None,
        orientation=names.orientation(listing.get("orientation")),
        building=building,
        room=names.number_key(listing.get("room")),
    )


def _alike(other: SameUnit, store: str | None) -> dict[str, Any]:
    """A listing found by its attributes, not its unit_id; shown like any other, plus what matched."""
    shown = other_listing(
        {
            "listing_id": other.listing_id,
            "same_company": other.same_company,
            "store_id": other.store_id,
            "status": other.status,
            "asking_price": other.asking_price,
        },
        store,
    )
    return {**shown, "matched_by": "attributes", "matched_on": other.matched_on}
