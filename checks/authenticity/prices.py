"""The price: the owner's entrusted price, the dictionary's community prices, Presign's market data."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from checks.authenticity.common import (
    CENT,
    dec,
    market_source,
    money,
    nothing,
    optional_str,
    other_listing,
    pct,
    positive_float,
    presign_stamp,
    who,
)
from checks.base import CheckContext, Fetched, Finding
from listings import names
from listings.market import price_model
from listings.market.data import Community, CommunityLookup, Fingerprint, MarketData
from listings.profiles import HOME, ROOM

# LISTING_PRICE_ANOMALY (entrusted): the asking price may differ from the owner's written price by this.
ENTRUSTED_TOLERANCE = Decimal("0.01")
# LISTING_PRICE_ANOMALY (community): a unit price is far outside the community's range when it is
# below min(p10, LOW × median) or above max(p90, HIGH × median), judged only on at least
# MIN_SAMPLE recent deals. Provisional; to be tuned on real deal data.
COMMUNITY_LOW_FACTOR = Decimal("0.7")
COMMUNITY_HIGH_FACTOR = Decimal("1.5")
COMMUNITY_MIN_SAMPLE = 5
# Market data (unit price against the market): the range is [min(p10, LOW × median), max(p90, HIGH × median)]
# at the first level with enough recent rows. Coarser levels spread more, so their ranges are wider. A
# price far above the market is no bait, so the high bounds only catch what is absurd. Chosen on the
# Beijing and Shanghai exports (docs/AUTHENTICITY.md).
MARKET_FACTORS = {
    "community": (Decimal("0.7"), Decimal("2.0")),
    "community_reference": (Decimal("0.7"), Decimal("2.0")),
    "bizcircle": (Decimal("0.65"), Decimal("2.5")),
    "district": (Decimal("0.45"), Decimal("3.0")),
}
MARKET_MIN_SAMPLE = 3  # recent rows a community needs: the median of three neighbours beats a bizcircle's
AREA_MIN_SAMPLE = 20  # recent rows a bizcircle or district needs before it is a yardstick
REFERENCE_MIN_ON_SALE = 3  # listings behind a published reference price (小区参考均价)
# LISTING_PRICE_ANOMALY (model): a unit price more than MODEL_Z robust standard deviations and below
# MODEL_MAX_RATIO of what the flat should cost in its community (listings.market.price_model). Where the
# model judges, a price under the range's low bound stands only when the model also puts it RANGE_CONFIRM_Z
# below: a small old flat is cheap per m². Chosen on the shared cities (docs/AUTHENTICITY.md).
MODEL_Z = 3.0
MODEL_MAX_RATIO = 0.75
RANGE_CONFIRM_Z = 2.0
# Where the community keeps enough homes, the flat is judged against its nearest neighbours there instead
# (price_model.local): they scatter less around it than the community does, so a lower z is as sure.
LOCAL_Z = 2.5
# LISTING_PRICE_ANOMALY (history): the unit listed or sold before at a unit price this much higher than today's,
# once the community's price movement since is allowed for (a bait cut is to 40–70 % of the own price).
HISTORY_RATIO = 0.7
LEVEL_ZH = {"community": "小区", "community_reference": "小区参考均价", "bizcircle": "商圈", "district": "区县"}


def entrusted(ctx: CheckContext, listing: dict[str, Any]) -> list[Finding]:
    asking, entrusted = dec(listing.get("asking_price")), dec(listing.get("entrusted_price"))
    if asking is None or not entrusted:
        return []
    off = abs(asking - entrusted) / entrusted
    if off <= ENTRUSTED_TOLERANCE:
        return []
    evidence = {
        **presign_stamp(ctx),
        "which": "entrusted_price",
        "asking_price": money(asking),
        "entrusted_price": money(entrusted),
        "off": pct(off),
        "tolerance": pct(ENTRUSTED_TOLERANCE),
    }
    message = (
        f"挂牌价 {money(asking)} 元与业主委托价 {money(entrusted)} 元相差 {pct(off)}，超过 {pct(ENTRUSTED_TOLERANCE)}"
    )
    return [Finding("LISTING_PRICE_ANOMALY", message, evidence)]


def judge(
    ctx: CheckContext,
    listing: dict[str, Any],
    unit: Fetched | None,
    market: MarketData | None,
    lookup: CommunityLookup | None,
) -> tuple[list[Finding], dict[str, Any]]:
    """The dictionary provider's community prices when they can judge; else Presign's market data.

    A price left unjudged says why (`not_judged`): a clear check must not hide an unjudged price."""
    looked: dict[str, Any] | None = None
    if unit is not None:
        findings, looked = _community_price(ctx, listing, unit)
        if looked["judged"] or market is None:
            return findings, looked
    assert market is not None
    findings, market_looked = _market_price(ctx, listing, unit, market, lookup)
    if looked is not None:
        market_looked["dictionary_prices"] = looked
    return findings, market_looked


def _community_price(ctx: CheckContext, listing: dict[str, Any], unit: Fetched) -> tuple[list[Finding], dict[str, Any]]:
    """Judge the unit price against the community's; also returns what was looked at."""
    community_id = unit.payload.get("community_id")
    provider = ctx.providers("community_prices")
    prices = provider.get("community_prices", str(community_id)) if community_id else None
    if prices is None:
        missing = "楼盘字典没有该小区的价格" if community_id else "楼盘字典未给出小区编号"
        return [], {**nothing(ctx, provider.name), "community_id": community_id, "judged": False, "not_judged": missing}
    # The dictionary's area, not the listing's: a bait price cannot hide behind an inflated area.
    area = dec(unit.payload.get("area_m2")) or dec(listing.get("area_m2"))
    asking = dec(listing.get("asking_price"))
    record = prices.payload
    median, sample = dec(record.get("median_unit_price")), int(record.get("sample_size") or 0)
    reason = _unpriced(area, asking)
    if reason is None and (not median or sample < COMMUNITY_MIN_SAMPLE):
        reason = f"小区近期成交仅 {sample} 套（需 ≥ {COMMUNITY_MIN_SAMPLE}）"
    if reason is not None or not area or asking is None or not median:
        return [], prices.evidence(community_id=community_id, sample_size=sample, judged=False, not_judged=reason)

    unit_price = (asking / area).quantize(CENT, rounding=ROUND_HALF_UP)
    low, high = _bounds(median, dec(record.get("p10_unit_price")), dec(record.get("p90_unit_price")))
    figures = {
        "community_id": community_id,
        "unit_price": money(unit_price),
        "median": money(median),
        "p10": optional_str(record.get("p10_unit_price")),
        "p90": optional_str(record.get("p90_unit_price")),
        "sample_size": sample,
        "low": money(low),
        "high": money(high),
    }
    looked_at = prices.evidence(**figures, judged=True)
    if low <= unit_price <= high:
        return [], looked_at
    side = "低于" if unit_price < low else "高于"
    message = (
        f"挂牌单价 {money(unit_price)} 元/m² {side}小区正常区间 {money(low)}–{money(high)} 元/m²"
        f"（近期成交中位数 {money(median)} 元/m²，样本 {sample} 套）"
    )
    return [Finding("LISTING_PRICE_ANOMALY", message, prices.evidence(which="community_range", **figures))], looked_at


def _bounds(median: Decimal, p10: Decimal | None, p90: Decimal | None) -> tuple[Decimal, Decimal]:
    low = median * COMMUNITY_LOW_FACTOR
    high = median * COMMUNITY_HIGH_FACTOR
    return (min(p10, low) if p10 is not None else low), (max(p90, high) if p90 is not None else high)


def _market_price(
    ctx: CheckContext,
    listing: dict[str, Any],
    unit: Fetched | None,
    market: MarketData,
    lookup: CommunityLookup | None,
) -> tuple[list[Finding], dict[str, Any]]:
    """Judge the unit price against the market: the community, else its bizcircle, else its district."""
    community = lookup.match if lookup is not None else None
    area = (dec(unit.payload.get("area_m2")) if unit is not None else None) or dec(listing.get("area_m2"))
    asking = dec(listing.get("asking_price"))
    layout = names.layout(listing.get("layout")) or (names.layout(unit.payload.get("layout")) if unit else None)
    kind = ROOM if layout is not None and layout.room_type else HOME
    looked: dict[str, Any] = {**market_source(ctx, listing, community), "property_type": kind, "judged": False}
    reason = _unpriced(area, asking)
    if reason is not None or not area or asking is None:
        return [], {**looked, "not_judged": reason}
    chosen, tried = _yardstick(listing, unit, market, community, kind)
    looked["levels_tried"] = tried
    if chosen is None:
        return [], {**looked, "not_judged": _fallback_reason(tried, None)}
    level, name, stats = chosen
    median = Decimal(stats["median"])
    low, high = _market_bounds(level, median, stats)
    unit_price = (asking / area).quantize(CENT, rounding=ROUND_HALF_UP)
    fallback = tried[0]["level"] != level
    figures: dict[str, Any] = {
        "level": level,
        "level_name": name,
        "fallback": fallback,
        "unit_price": money(unit_price),
        "median": money(median),
        "p10": optional_str(stats.get("p10")),
        "p90": optional_str(stats.get("p90")),
        "sample_size": stats["n"],
        "from": stats.get("from"),
        "to": stats.get("to"),
        "low": money(low),
        "high": money(high),
    }
    if fallback:
        figures["fallback_reason"] = _fallback_reason(tried, level)
    looked.update(figures, judged=True, as_of=stats.get("to"))
    if low <= unit_price <= high:
        return [], looked
    side = "低于" if unit_price < low else "高于"
    kind_zh = "（公寓/商住按房间计价）" if kind == ROOM else ""
    basis = "小区参考均价" if level == "community_reference" else "近期成交与挂牌中位数"
    span = f"，{stats['from']}–{stats['to']}" if stats.get("from") and stats.get("from") != stats.get("to") else ""
    said = lookup.said() if lookup is not None and community is not None and level.startswith("community") else None
    where = LEVEL_ZH[level] + (said or f"「{name}」")
    message = (
        f"挂牌单价 {money(unit_price)} 元/m² {side}{where}正常区间 {money(low)}–{money(high)} 元/m²{kind_zh}"
        f"（{basis} {money(median)} 元/m²，样本 {stats['n']} 套{span}）"
    )
    if fallback:
        message += f"；{figures['fallback_reason']}"
    evidence = {**looked, "which": "market_range"}
    evidence.pop("judged")
    return [Finding("LISTING_PRICE_ANOMALY", message, evidence)], looked


def _market_bounds(level: str, median: Decimal, stats: dict[str, Any]) -> tuple[Decimal, Decimal]:
    low_factor, high_factor = MARKET_FACTORS[level]
    low, high = median * low_factor, median * high_factor
    p10, p90 = dec(stats.get("p10")), dec(stats.get("p90"))
    return (min(p10, low) if p10 is not None else low), (max(p90, high) if p90 is not None else high)


def _yardstick(
    listing: dict[str, Any], unit: Fetched | None, market: MarketData, community: Community | None, kind: str
) -> tuple[tuple[str, str, dict[str, Any]] | None, list[dict[str, Any]]]:
    """The first level with enough recent rows: community, its reference price, bizcircle, district."""
    city = listing.get("city") or ""
    tried: list[dict[str, Any]] = []
    if community is not None:
        stats = community.prices.get(kind)
        tried.append({"level": "community", "name": community.name, "n": stats["n"] if stats else 0})
        if stats and stats["n"] >= MARKET_MIN_SAMPLE:
            return ("community", community.name, stats), tried
        reference = community.prices.get("reference") if kind == HOME else None
        if reference and reference["on_sale"] >= REFERENCE_MIN_ON_SALE:
            tried.append({"level": "community_reference", "name": community.name, "n": reference["on_sale"]})
            as_of = reference.get("as_of")
            return (
                "community_reference",
                community.name,
                {"median": reference["price"], "n": reference["on_sale"], "from": as_of, "to": as_of},
            ), tried
    else:
        tried.append({"level": "community", "name": listing.get("community") or "", "n": 0, "known": False})
    district_name = (community.district if community is not None else None) or (
        unit.payload.get("district") if unit is not None else None
    )
    district = names.district_key(district_name) if district_name else ""
    if community is not None and community.bizcircle and district:
        found = market.area(city, "bizcircle", district, community.bizcircle)
        stats = found.prices.get(kind) if found is not None else None
        tried.append({"level": "bizcircle", "name": community.bizcircle, "n": stats["n"] if stats else 0})
        if stats and stats["n"] >= AREA_MIN_SAMPLE:
            return ("bizcircle", community.bizcircle, stats), tried
    if district:
        found = market.area(city, "district", district, district)
        stats = found.prices.get(kind) if found is not None else None
        tried.append({"level": "district", "name": district, "n": stats["n"] if stats else 0})
        if stats and stats["n"] >= AREA_MIN_SAMPLE:
            return ("district", district, stats), tried
    return None, tried


def _unpriced(area: Decimal | None, asking: Decimal | None) -> str | None:
    if not area:
        return "面积未知，无法计算单价"
    return "没有挂牌价" if asking is None else None


def _fallback_reason(tried: list[dict[str, Any]], level: str | None) -> str:
    """Why the levels before `level` could not judge (`level` None: no level could)."""
    parts = [
        f"{LEVEL_ZH[t['level']]}「{t['name']}」"
        + ("不在市场数据中" if t.get("known") is False else f"近期样本仅 {t['n']} 套")
        for t in tried
        if t["level"] != level
    ]
    return "；".join(parts) + (f"，改按{LEVEL_ZH[level]}判断" if level else "，没有可用的价格样本")


def by_model(
    ctx: CheckContext, listing: dict[str, Any], unit: Fetched | None, market: MarketData, lookup: CommunityLookup
) -> tuple[list[Finding], dict[str, Any]]:
    """Judge the unit price against what this flat should cost in its community (the stored price model)."""
    community = lookup.match
    assert community is not None
    looked: dict[str, Any] = {**market_source(ctx, listing, community), "judged": False}
    stored = community.prices.get("model")
    record = unit.payload if unit is not None else {}
    area = positive_float(record.get("area_m2")) or positive_float(listing.get("area_m2"))
    asking = positive_float(listing.get("asking_price"))
    layout = names.layout(listing.get("layout")) or names.layout(record.get("layout"))
    reason = _unpriced(dec(area), dec(asking))
    if reason is None and (layout is None or layout.room_type):
        reason = "公寓/商住或户型不明，不按住宅价格模型判断"
    if reason is None and stored is None:
        reason = "该小区没有价格模型（所在商圈、区县和全市的住宅样本都不足）"
    if reason is not None or stored is None or area is None or asking is None or layout is None:
        return [], {**looked, "not_judged": reason}
    level = market.area(listing.get("city") or "", stored["level"], stored["district"], stored["name"])
    fitted = level.prices.get("model") if level is not None else None
    if fitted is None:
        return [], {**looked, "not_judged": "价格模型未找到（市场数据需重新导入）"}
    total = listing.get("total_floors") or record.get("total_floors")
    home = price_model.Home(
        area=area,
        rooms=layout.rooms,
        floor_level=price_model.floor_level(listing.get("floor"), total),
        total_floors=total if isinstance(total, int) else None,
        build_year=listing.get("build_year") or record.get("build_year"),
        orientation=listing.get("orientation") or record.get("orientation"),
    )
    predicted, spread = price_model.judge(fitted, stored, home)
    unit_price = asking / area
    z = (math.log(unit_price) - predicted) / spread
    figures = {
        "level": stored["level"],
        "level_name": stored["name"],
        "community_homes": stored["n"],
        "unit_price": f"{unit_price:.2f}",
        "predicted": f"{math.exp(predicted):.2f}",
        "interval": [f"{math.exp(predicted - MODEL_Z * spread):.2f}", f"{math.exp(predicted + MODEL_Z * spread):.2f}"],
        "spread_log": round(spread, 4),
        "z": round(z, 2),
        "threshold_z": -MODEL_Z,
        "features": price_model.features(home),
    }
    judged_by, judged_z, threshold = predicted, z, MODEL_Z
    near = price_model.local(stored, fitted, home)
    if near is not None:
        offset, near_spread, k = near
        judged_by = predicted - stored["offset"] + offset
        judged_z, threshold = (math.log(unit_price) - judged_by) / near_spread, LOCAL_Z
        figures["neighbours"] = {
            "homes": k,
            "predicted": f"{math.exp(judged_by):.2f}",
            "interval": [f"{math.exp(judged_by - LOCAL_Z * near_spread):.2f}",
                         f"{math.exp(judged_by + LOCAL_Z * near_spread):.2f}"],
            "spread_log": round(near_spread, 4),
            "z": round(judged_z, 2),
            "threshold_z": -LOCAL_Z,
        }  # fmt: skip
    looked.update(figures, judged=True)
    if judged_z >= -threshold or unit_price >= MODEL_MAX_RATIO * math.exp(judged_by):
        return [], looked
    shown = figures.get("neighbours") or figures
    low, high = shown["interval"]
    basis = f"，并与小区内最相近的 {shown['homes']} 套比较" if "neighbours" in figures else ""
    message = (
        f"挂牌单价 {figures['unit_price']} 元/m² 远低于该房屋在小区{lookup.said()}的预测单价 "
        f"{shown['predicted']} 元/m²（按面积、户型、楼层、楼高、房龄、朝向估计{basis}，正常区间 {low}–{high} 元/m²，"
        f"低 {-shown['z']:.1f} 个标准差）"
    )
    evidence = {**looked, "which": "model"}
    evidence.pop("judged")
    return [Finding("LISTING_PRICE_ANOMALY", message, evidence)], looked


def with_model(ranged: list[Finding], modelled: list[Finding], model: dict[str, Any]) -> list[Finding]:
    """One market price finding: the range's, unless the model explains a low price; else the model's."""
    # Slopes fitted city-wide mix too many kinds of estate to overrule a community's own range.
    if model.get("judged") and model["level"] != "city" and model["z"] >= -RANGE_CONFIRM_Z:
        ranged = [f for f in ranged if float(f.evidence["unit_price"]) >= float(f.evidence["low"])]
    return ranged or modelled


def history(
    ctx: CheckContext,
    listing: dict[str, Any],
    market: MarketData,
    community: Community | None,
    unit_print: Fingerprint | None,
) -> list[Finding]:
    """The unit's earlier prices (its Presign listings by unit_id or fingerprint, any status and company;
    the exports' listings and sales of the same flat) much higher than today's unit price."""
    area, asking = positive_float(listing.get("area_m2")), positive_float(listing.get("asking_price"))
    if area is None or asking is None:
        return []
    by_year = (community.prices.get("by_year") if community is not None else None) or {}
    today = ctx.clock.now().year
    by_id = [_earlier(o, asking / area, by_year, today, listing) for o in
             market.unit_history(listing["unit_id"], listing["listing_id"], ctx.company)]  # fmt: skip
    alike = [_earlier(o, asking / area, by_year, today, listing) for o in
             (market.earlier_prices(unit_print, ctx.company) if unit_print is not None else [])]  # fmt: skip
    earlier = [e for e in by_id if float(e["ratio"]) < HISTORY_RATIO]
    # A flat found by its attributes may be its twin next door: every record found must say it was dearer.
    if alike and all(float(e["ratio"]) < HISTORY_RATIO for e in alike):
        earlier += alike
    if not earlier:
        return []
    lowest = min(float(e["ratio"]) for e in earlier)
    evidence = {**presign_stamp(ctx), "which": "history", "unit_id": listing["unit_id"], "earlier": earlier,
                "threshold": HISTORY_RATIO}  # fmt: skip
    listed = [e for e in earlier if "market" not in e]
    said = [who(listed, "条")] if listed else []
    said += [f"{len(earlier) - len(listed)} 条历史挂牌或成交记录"] if len(listed) < len(earlier) else []
    message = (
        f"该房屋此前挂牌或成交单价明显更高：现单价仅为此前的 {lowest:.0%}（已按小区房价变动调整，"
        f"低于 {HISTORY_RATIO:.0%}；{'，'.join(said)}）"
    )
    return [Finding("LISTING_PRICE_ANOMALY", message, evidence)]


def _earlier(
    other: dict[str, Any], unit_price: float, by_year: dict[str, int], today: int, listing: dict[str, Any]
) -> dict[str, Any]:
    """An earlier price as the evidence shows it, with today's unit price over it once moved to today."""
    if "market" in other:
        then, price = other["observed_on"], float(other["unit_price"])
        shown = {k: other[k] for k in ("market", "unit_price", "observed_on", "matched_on")}
    else:
        then = other["listed_on"]
        price = float(other["asking_price"]) / other["area_m2"] if other["area_m2"] else 0.0
        shown = other_listing(other, listing.get("store_id"))
        if "matched_on" in other:
            shown["matched_on"] = other["matched_on"]
    movement = _movement(by_year, int(then[:4]), today) if then else None
    ratio = unit_price / (price * (movement or 1.0)) if price else 1.0
    return {**shown, "ratio": f"{ratio:.2f}", "movement": movement}


def _movement(by_year: dict[str, int], then: int, now: int) -> float | None:
    """The community's median price now over then (nearest years seen); None when it is not known."""
    if len(by_year) < 2:
        return None
    years = [int(y) for y in by_year]
    return round(by_year[str(_nearest(years, now))] / by_year[str(_nearest(years, then))], 3)


def _nearest(years: list[int], year: int) -> int:
    return min(years, key=lambda y: abs(y - year))
