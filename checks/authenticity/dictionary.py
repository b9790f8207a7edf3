"""The listing against the building dictionary (楼盘字典): the unit exists, as listed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from checks.authenticity.common import dec, money, nothing, pct
from checks.base import CheckContext, Fetched, Finding
from listings import names
from listings.market.data import CommunityLookup, MarketData

# LISTING_MISMATCH: the listing's area may differ from the dictionary's by this fraction.
AREA_TOLERANCE = Decimal("0.03")
# Listing field -> its Chinese name; compared by what they mean (see _meaning).
COMPARED_FIELDS = {"layout": "户型", "floor": "楼层", "build_year": "建成年代", "orientation": "朝向"}


def find_community(market: MarketData | None, listing: dict[str, Any], unit: Fetched | None) -> CommunityLookup | None:
    """The listing's community in the market data, by the listing's spelling, else by the dictionary's."""
    if market is None:
        return None
    city = listing.get("city") or ""
    lookup = market.community(city, listing.get("community") or "")
    dictionary_name = unit.payload.get("community") if unit is not None else None
    if lookup.match is None and dictionary_name and dictionary_name != listing.get("community"):
        by_dictionary = market.community(city, dictionary_name)
        if by_dictionary.match is not None:
            return by_dictionary
    return lookup


def unit_not_found(ctx: CheckContext, provider: str, lookup: CommunityLookup | None) -> Finding:
    unit_id = ctx.subject["unit_id"]
    evidence = {**nothing(ctx, provider), "unit_id": unit_id}
    message = f"楼盘字典中没有该房屋（房屋编号 {unit_id}）"
    if lookup is not None:
        # Neither the unit nor its community: say what came closest, so a typo is easy to see.
        evidence["community"] = lookup.evidence()
        shown = lookup.best
        if shown is None:
            closest = "没有相近的小区"
        elif lookup.sibling:
            closest = f"最接近的「{shown.name}」是同一楼盘的另一期、分区或组团"
        else:
            needed = lookup.evidence()["min_score"]
            closest = f"最接近的是「{shown.name}」（相似度 {lookup.score:.0f}，需 ≥ {needed:.0f}）"
        message += f"，市场数据中也没有小区「{lookup.query}」：{closest}"
    return Finding("LISTING_UNIT_NOT_FOUND", message, evidence)


# -- the dictionary ----------------------------------------------------------------------------


def mismatch(listing: dict[str, Any], unit: Fetched) -> list[Finding]:
    record = unit.payload
    differences: list[dict[str, Any]] = []
    listed_area, dict_area = dec(listing.get("area_m2")), dec(record.get("area_m2"))
    if listed_area is not None and dict_area:
        off = abs(listed_area - dict_area) / dict_area
        if off > AREA_TOLERANCE:
            differences.append(
                {"field": "area_m2", "listing": money(listed_area), "dictionary": money(dict_area), "off": pct(off)}
            )
    for name in COMPARED_FIELDS:
        if _meaning(name, listing.get(name)) != _meaning(name, record.get(name)):
            differences.append({"field": name, "listing": listing.get(name), "dictionary": record.get(name)})
    if not differences:
        return []
    parts = [f"{_field_label(d['field'])}：房源 {d['listing']}，楼盘字典 {d['dictionary']}" for d in differences]
    message = "房源信息与楼盘字典不符（" + "；".join(parts) + "）"
    return [Finding("LISTING_MISMATCH", message, unit.evidence(differences=differences))]


def _field_label(name: str) -> str:
    return "面积(m²)" if name == "area_m2" else COMPARED_FIELDS[name]


def _meaning(name: str, value: Any) -> str:
    """What a field says, however it is typed: 三室两厅 is 3室2厅, 北南 is 南北, ２ is 2."""
    if name == "layout":
        layout = names.layout(value)
        if layout is not None:
            return layout.key
    elif name == "orientation":
        aspect = names.orientation(value)
        if aspect is not None:
            return aspect
    return names.plain(value)
