"""真房源: the unit exists, is really for sale, at the owner's price, with its own photos.

The listing is held against the building dictionary (楼盘字典), the owner's entrusted price, the
community's recent unit prices, and Presign's own listings (duplicates, reused photos, open deals).
Another brokerage's listing or deal is never named in evidence: only "another brokerage".
"""

from __future__ import annotations

import unicodedata
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from checks.base import CheckContext, CheckOutcome, Fetched, Finding
from checks.registry import register

# LISTING_MISMATCH: the listing's area may differ from the dictionary's by this fraction.
AREA_TOLERANCE = Decimal("0.03")
# LISTING_PRICE_ANOMALY (entrusted): the asking price may differ from the owner's written price by this.
ENTRUSTED_TOLERANCE = Decimal("0.01")
# LISTING_PRICE_ANOMALY (community): a unit price is far outside the community's range when it is
# below min(p10, LOW × median) or above max(p90, HIGH × median), judged only on at least
# MIN_SAMPLE recent deals. Provisional; to be tuned on real deal data.
COMMUNITY_LOW_FACTOR = Decimal("0.7")
COMMUNITY_HIGH_FACTOR = Decimal("1.5")
COMMUNITY_MIN_SAMPLE = 5

ANOTHER_BROKERAGE = "another brokerage"
ANOTHER_BROKERAGE_ZH = "另一家经纪机构"
# Listing field -> its Chinese name; compared after normalising (see _plain).
COMPARED_FIELDS = {"layout": "户型", "floor": "楼层", "build_year": "建成年代", "orientation": "朝向"}
CENT = Decimal("0.01")


@register("authenticity", kinds=("unit", "community_prices"))
def run(ctx: CheckContext) -> CheckOutcome:
    listing = ctx.subject
    provider = ctx.providers("unit")
    unit = provider.get("unit", listing["unit_id"])
    findings: list[Finding] = []
    if unit is None:
        findings.append(_unit_not_found(ctx, provider.name))
        evidence = {**_nothing(ctx, provider.name), "unit_id": listing["unit_id"], "unit_found": False}
    else:
        evidence = unit.evidence(unit_id=listing["unit_id"], unit_found=True)
        findings += _mismatch(listing, unit)
    findings += _entrusted_price(ctx, listing)
    if unit is not None:
        community_findings, evidence["community_prices"] = _community_price(ctx, listing, unit)
        findings += community_findings
    findings += _market_findings(ctx, listing)
    evidence["photos_checked"] = len({p.get("sha256") for p in listing.get("photos") or [] if p.get("sha256")})

    judged = bool(evidence.get("community_prices", {}).get("judged"))
    facts = {"unit_found": unit is not None, "community_price_judged": judged}
    return CheckOutcome(
        check="authenticity",
        findings=findings,
        source=unit.source if unit is not None else provider.name,
        retrieved_at=unit.retrieved_at if unit is not None else ctx.clock.now(),
        evidence=evidence,
        facts=facts,
    )


def _nothing(ctx: CheckContext, provider: str) -> dict[str, Any]:
    """Evidence for a 404: who was asked and when; there is no reference or as_of to quote."""
    return {"provider": provider, "reference": None, "as_of": None, "retrieved_at": ctx.clock.now().isoformat()}


def _unit_not_found(ctx: CheckContext, provider: str) -> Finding:
    unit_id = ctx.subject["unit_id"]
    evidence = {**_nothing(ctx, provider), "unit_id": unit_id}
    return Finding("LISTING_UNIT_NOT_FOUND", f"楼盘字典中没有该房屋（房屋编号 {unit_id}）", evidence)


# -- the dictionary ----------------------------------------------------------------------------


def _mismatch(listing: dict[str, Any], unit: Fetched) -> list[Finding]:
    record = unit.payload
    differences = []
    listed_area, dict_area = _dec(listing.get("area_m2")), _dec(record.get("area_m2"))
    if listed_area is not None and dict_area:
        off = abs(listed_area - dict_area) / dict_area
        if off > AREA_TOLERANCE:
            differences.append(
                {"field": "area_m2", "listing": _str(listed_area), "dictionary": _str(dict_area), "off": _pct(off)}
            )
    for name in COMPARED_FIELDS:
        if _plain(listing.get(name)) != _plain(record.get(name)):
            differences.append({"field": name, "listing": listing.get(name), "dictionary": record.get(name)})
    if not differences:
        return []
    parts = [f"{_field_label(d['field'])}：房源 {d['listing']}，楼盘字典 {d['dictionary']}" for d in differences]
    message = "房源信息与楼盘字典不符（" + "；".join(parts) + "）"
    return [Finding("LISTING_MISMATCH", message, unit.evidence(differences=differences))]


def _field_label(name: str) -> str:
    return "面积(m²)" if name == "area_m2" else COMPARED_FIELDS[name]


def _plain(value: Any) -> str:
    # Full-width digits and letters, ideographic spaces and stray spaces are typing, not facts.
    if value is None:
        return ""
    return "".join(unicodedata.normalize("NFKC", str(value)).split()).casefold()


# -- prices ------------------------------------------------------------------------------------


def _entrusted_price(ctx: CheckContext, listing: dict[str, Any]) -> list[Finding]:
    asking, entrusted = _dec(listing.get("asking_price")), _dec(listing.get("entrusted_price"))
    if asking is None or not entrusted:
        return []
    off = abs(asking - entrusted) / entrusted
    if off <= ENTRUSTED_TOLERANCE:
        return []
    evidence = {
        **_presign(ctx),
        "which": "entrusted_price",
        "asking_price": _str(asking),
        "entrusted_price": _str(entrusted),
        "off": _pct(off),
        "tolerance": _pct(ENTRUSTED_TOLERANCE),
    }
    message = (
        f"挂牌价 {_str(asking)} 元与业主委托价 {_str(entrusted)} 元相差 {_pct(off)}，超过 {_pct(ENTRUSTED_TOLERANCE)}"
    )
    return [Finding("LISTING_PRICE_ANOMALY", message, evidence)]


def _community_price(ctx: CheckContext, listing: dict[str, Any], unit: Fetched) -> tuple[list[Finding], dict[str, Any]]:
    """Judge the unit price against the community's; also returns what was looked at."""
    community_id = unit.payload.get("community_id")
    provider = ctx.providers("community_prices")
    prices = provider.get("community_prices", str(community_id)) if community_id else None
    if prices is None:
        return [], {**_nothing(ctx, provider.name), "community_id": community_id, "judged": False}
    # The dictionary's area, not the listing's: a bait price cannot hide behind an inflated area.
    area = _dec(unit.payload.get("area_m2")) or _dec(listing.get("area_m2"))
    asking = _dec(listing.get("asking_price"))
    record = prices.payload
    median, sample = _dec(record.get("median_unit_price")), int(record.get("sample_size") or 0)
    if not area or asking is None or not median or sample < COMMUNITY_MIN_SAMPLE:
        return [], prices.evidence(community_id=community_id, sample_size=sample, judged=False)

    unit_price = (asking / area).quantize(CENT, rounding=ROUND_HALF_UP)
    low, high = _bounds(median, _dec(record.get("p10_unit_price")), _dec(record.get("p90_unit_price")))
    figures = {
        "community_id": community_id,
        "unit_price": _str(unit_price),
        "median": _str(median),
        "p10": _optional(record.get("p10_unit_price")),
        "p90": _optional(record.get("p90_unit_price")),
        "sample_size": sample,
        "low": _str(low),
        "high": _str(high),
    }
    looked_at = prices.evidence(**figures, judged=True)
    if low <= unit_price <= high:
        return [], looked_at
    side = "低于" if unit_price < low else "高于"
    message = (
        f"挂牌单价 {_str(unit_price)} 元/m² {side}小区正常区间 {_str(low)}–{_str(high)} 元/m²"
        f"（近期成交中位数 {_str(median)} 元/m²，样本 {sample} 套）"
    )
    return [Finding("LISTING_PRICE_ANOMALY", message, prices.evidence(which="community_range", **figures))], looked_at


def _bounds(median: Decimal, p10: Decimal | None, p90: Decimal | None) -> tuple[Decimal, Decimal]:
    low = median * COMMUNITY_LOW_FACTOR
    high = median * COMMUNITY_HIGH_FACTOR
    return (min(p10, low) if p10 is not None else low), (max(p90, high) if p90 is not None else high)


# -- Presign's own listings and deals ----------------------------------------------------------


def _market_findings(ctx: CheckContext, listing: dict[str, Any]) -> list[Finding]:
    listing_id, unit_id = listing["listing_id"], listing["unit_id"]
    findings = []
    others = ctx.market.other_active_listings(unit_id, listing_id)
    if others:
        shown = [_other_listing(o) for o in others]
        evidence = {**_presign(ctx), "unit_id": unit_id, "others": shown}
        message = f"同一房屋另有 {len(others)} 条在售房源：{_who(shown, '条')}"
        findings.append(Finding("LISTING_DUPLICATE", message, evidence))
    reused = _reused_photos(ctx, listing)
    if reused:
        evidence = {**_presign(ctx), "photos": reused}
        users = [u for p in reused for u in p["used_by"]]
        message = f"{len(reused)} 张房源照片也出现在其他房源中：{_who(users, '条')}"
        findings.append(Finding("LISTING_PHOTO_REUSED", message, evidence))
    deals = ctx.market.open_deals_on_unit(unit_id, listing_id)
    if deals:
        shown = [_other_deal(d) for d in deals]
        evidence = {**_presign(ctx), "unit_id": unit_id, "deals": shown}
        message = f"该房屋已在其他房源的交易中（{len(deals)} 笔未结交易：{_who(shown, '笔')}）"
        findings.append(Finding("LISTING_NOT_FOR_SALE", message, evidence))
    return findings


def _reused_photos(ctx: CheckContext, listing: dict[str, Any]) -> list[dict[str, Any]]:
    reused, seen = [], set()
    for photo in listing.get("photos") or []:
        sha = photo.get("sha256")
        if not sha or sha in seen:
            continue
        seen.add(sha)
        users = ctx.market.listings_with_photo(sha, listing["listing_id"])
        if users:
            reused.append({"sha256": sha, "url": photo.get("url"), "used_by": [_other_listing(u) for u in users]})
    return reused


def _other_listing(other: dict[str, Any]) -> dict[str, Any]:
    if not other.get("same_company"):
        return _another_brokerage()
    shown = {"same_company": True, "listing_id": other["listing_id"]}
    for key in ("status", "asking_price"):
        if other.get(key) is not None:
            shown[key] = other[key]
    return shown


def _other_deal(deal: dict[str, Any]) -> dict[str, Any]:
    if not deal.get("same_company"):
        return _another_brokerage()
    return {k: deal[k] for k in ("same_company", "listing_id", "deal_id", "status") if deal.get(k) is not None}


def _another_brokerage() -> dict[str, Any]:
    # Nothing that identifies the other company or its listing: not its name, id, store or price.
    return {"same_company": False, "brokerage": ANOTHER_BROKERAGE, "brokerage_zh": ANOTHER_BROKERAGE_ZH}


def _who(shown: list[dict[str, Any]], counter: str) -> str:
    own = [s.get("deal_id") or s["listing_id"] for s in shown if s["same_company"]]
    foreign = sum(1 for s in shown if not s["same_company"])
    parts = [f"本公司 {'、'.join(own)}"] if own else []
    if foreign:
        parts.append(f"{ANOTHER_BROKERAGE_ZH} {foreign} {counter}")
    return "；".join(parts)


def _presign(ctx: CheckContext) -> dict[str, Any]:
    """Evidence drawn from Presign's own tables, stamped like a provider's."""
    now = ctx.clock.now().isoformat()
    return {"provider": "presign", "reference": "presign:listings", "as_of": now, "retrieved_at": now}


# -- numbers -----------------------------------------------------------------------------------


def _dec(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def _optional(value: Any) -> str | None:
    number = _dec(value)
    return None if number is None else _str(number)


def _str(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _pct(fraction: Decimal) -> str:
    return f"{(fraction * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"
