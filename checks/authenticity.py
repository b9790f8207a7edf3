"""真房源: the unit exists, is really for sale, at the owner's price, with its own photos.

The listing is held against the building dictionary (楼盘字典), the owner's entrusted price, the
community's recent unit prices, and Presign's own listings (duplicates, reused photos, open deals).
Another brokerage's listing or deal is never named in evidence: only "another brokerage"; another
store's of the same company only "another store", since the listing's agents read the report too.

Presign's market data (`presign import-market`, listings/market_data.py) adds what the dictionary
provider does not know: the community found by normalised or fuzzy name (with its score), its profile
(a unit missing from the dictionary is judged against what the community has), its recent prices (with
a fallback to the bizcircle, then the district, when the community has too few), and re-posted units
found by their attributes whatever their unit_id and however their text is written. A `unit` record
from the dictionary provider stays authoritative when there is one.
"""

from __future__ import annotations

import os
import threading
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from checks.base import CheckContext, CheckOutcome, Fetched, Finding
from checks.registry import register
from listings import names
from listings.market_data import (
    Area,
    Community,
    CommunityLookup,
    Fingerprint,
    MarketData,
    SameUnit,
)
from listings.profiles import CITY_LEVEL, HOME, ROOM

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
# Market data (unit price against the market): the range is [min(p10, LOW × median), max(p90, HIGH × median)]
# at the first level with enough recent rows. Coarser levels spread more, so their ranges are wider. A
# price far above the market is no bait, so the high bounds only catch what is absurd. Chosen on the
# Beijing and Shanghai exports (docs/AUTHENTICITY.md): about 1 % of genuine listings fall outside.
MARKET_FACTORS = {
    "community": (Decimal("0.7"), Decimal("2.0")),
    "community_reference": (Decimal("0.7"), Decimal("2.0")),
    "bizcircle": (Decimal("0.65"), Decimal("2.5")),
    "district": (Decimal("0.45"), Decimal("3.0")),
}
MARKET_MIN_SAMPLE = 3  # recent rows a community needs: the median of three neighbours beats a bizcircle's
AREA_MIN_SAMPLE = 20  # recent rows a bizcircle or district needs before it is a yardstick
REFERENCE_MIN_ON_SALE = 3  # listings behind a published reference price (小区参考均价)
# Community profile: a unit missing from the dictionary is judged against what its community has. Only
# what the community cannot have is a mismatch, with margins for what a sample of its homes has not shown:
# wide on one or two homes, narrower on PROFILE_MIN_HOMES or more. Margins by homes seen:
# (floor factor, floor slack, extra rooms, area factor, build-year slack or None: not judged).
PROFILE_MIN_HOMES = 3
PROFILE_MARGINS = {"thin": (2.0, 6, 2, 2.5, None), "known": (1.5, 3, 2, 1.8, 10)}
# Too few homes of the community seen: also what nothing in its bizcircle comes near (the bizcircle's 99th
# percentile of floors, rooms, area, on at least AREA_PROFILE_MIN_HOMES homes), with these margins.
AREA_PROFILE_MIN_HOMES = 30
AROUND_FLOOR_FACTOR, AROUND_FLOOR_SLACK, AROUND_EXTRA_ROOMS, AROUND_AREA_FACTOR = 1.5, 3, 2, 1.5
# Too few homes of the community seen: also an area that the city's homes of that room count (N室) never
# come near: below CITY_AREA_LOW_FACTOR × their 0.5th percentile or above CITY_AREA_HIGH_FACTOR × their
# 99.5th (listings.profiles.city_profile).
CITY_AREA_LOW_FACTOR, CITY_AREA_HIGH_FACTOR = 0.85, 1.2
MIN_AREA_PER_ROOM = 7.0  # m² per 室 below which no layout fits, in any community
LEVEL_ZH = {"community": "小区", "community_reference": "小区参考均价", "bizcircle": "商圈", "district": "区县"}

ANOTHER_BROKERAGE = "another brokerage"
ANOTHER_BROKERAGE_ZH = "另一家经纪机构"
ANOTHER_STORE = "another store"
ANOTHER_STORE_ZH = "本公司另一门店"
# Listing field -> its Chinese name; compared after normalising (see _plain).
COMPARED_FIELDS = {"layout": "户型", "floor": "楼层", "build_year": "建成年代", "orientation": "朝向"}
CENT = Decimal("0.01")
# Presign-side lookups that need only the listing run on these threads while the dictionary is asked:
# one pool per process, made on first use in that process (never inherited across a fork).
_LOOKUP_THREADS = 4
_lookup_pool: ThreadPoolExecutor | None = None
_lookup_pid = 0
_lookup_lock = threading.Lock()


def _look_ahead(ctx: CheckContext) -> _Early:
    """The lookups that need only the listing (the runner makes them while the dictionary is asked)."""
    return _early_lookups(ctx, ctx.subject, market_data(ctx))


@register("authenticity")
def run(ctx: CheckContext) -> CheckOutcome:
    listing = ctx.subject
    provider = ctx.providers("unit")
    market = market_data(ctx)
    # What does not depend on the dictionary's answer is looked up while it is being asked (by the
    # runner, ahead, or here on a thread of their own). The lookups are always waited for; their errors
    # propagate (over the provider's, which stays chained to them).
    early: _Early | None = None
    pending = _lookups().submit(_early_lookups, ctx, listing, market) if early is None else None
    try:
        unit = provider.get("unit", listing["unit_id"])
    finally:
        if pending is not None:
            early = pending.result()
    assert early is not None
    lookup = _find_community(market, listing, unit, early.community)
    community = lookup.match if lookup is not None else None
    findings: list[Finding] = []
    if unit is None:
        evidence = {**_nothing(ctx, provider.name), "unit_id": listing["unit_id"], "unit_found": False}
        if community is None:
            findings.append(_unit_not_found(ctx, provider.name, lookup))
        else:
            assert market is not None and lookup is not None  # a community was found in it
            profile = _profile_mismatch(ctx, listing, market, community, lookup)
            profile_findings, evidence["community_profile"] = profile
            findings += profile_findings
    else:
        evidence = unit.evidence(unit_id=listing["unit_id"], unit_found=True)
        findings += _mismatch(listing, unit)
    if lookup is not None:
        evidence["community"] = lookup.evidence()
    findings += _entrusted_price(ctx, listing)
    if unit is not None or community is not None:
        price_findings, evidence["community_prices"] = _prices(ctx, listing, unit, market, community)
        findings += price_findings
    unit_print = fingerprint(listing, unit, lookup)
    findings += _market_findings(ctx, listing, market, unit_print, early)
    evidence["photos_checked"] = len({p.get("sha256") for p in listing.get("photos") or [] if p.get("sha256")})

    prices = evidence.get("community_prices", {})
    facts = {"unit_found": unit is not None, "community_price_judged": bool(prices.get("judged"))}
    if lookup is not None:
        facts["community_matched"] = community is not None
        facts["price_level"] = prices.get("level")
    return CheckOutcome(
        check="authenticity",
        findings=findings,
        source=unit.source if unit is not None else provider.name,
        retrieved_at=unit.retrieved_at if unit is not None else ctx.clock.now(),
        evidence=evidence,
        facts=facts,
        fingerprint=unit_print if market is not None else None,  # kept with the result (see the runner)
    )


def market_data(ctx: CheckContext) -> MarketData | None:
    """Presign's market data, as the runner hands it to the check (None: judge by the dictionary alone)."""
    return ctx.market_data  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _Early:
    """The lookups keyed only by the listing's own fields, made while the dictionary is asked."""

    community: CommunityLookup | None  # by the listing's spelling (None: no market data)
    others: list[dict[str, Any]]  # other active listings of the unit
    photos: list[tuple[dict[str, Any], list[dict[str, Any]]]]  # each distinct photo hash, its other users
    deals: list[dict[str, Any]]  # open deals on the unit
    # The same-unit candidates for the fingerprint the listing alone gives, when it needs nothing else.
    guessed_print: Fingerprint | None
    alike: list[SameUnit]


def _lookups() -> ThreadPoolExecutor:
    global _lookup_pool, _lookup_pid
    with _lookup_lock:
        if _lookup_pool is None or _lookup_pid != os.getpid():
            _lookup_pool = ThreadPoolExecutor(max_workers=_LOOKUP_THREADS, thread_name_prefix="authenticity-lookup")
            _lookup_pid = os.getpid()
        return _lookup_pool


def _early_lookups(ctx: CheckContext, listing: dict[str, Any], market: MarketData | None) -> _Early:
    listing_id, unit_id = listing["listing_id"], listing["unit_id"]
    community = market.community(listing.get("city") or "", listing.get("community") or "") if market else None
    others = ctx.market.other_active_listings(unit_id, listing_id)
    photos, seen = [], set()
    for photo in listing.get("photos") or []:
        sha = photo.get("sha256")
        if not sha or sha in seen:
            continue
        seen.add(sha)
        photos.append((photo, ctx.market.listings_with_photo(sha, listing_id)))
    deals = ctx.market.open_deals_on_unit(unit_id, listing_id)
    # The fingerprint needs the dictionary only for a total floor count the listing lacks, or for a
    # community found by the dictionary's spelling (when the listing's finds none).
    guessed = None
    if market is not None and community is not None and community.match is not None:
        if listing.get("total_floors") is not None:
            guessed = fingerprint(listing, None, community)
    alike = market.same_unit_listings(guessed, ctx.company) if market is not None and guessed else []
    return _Early(community, others, photos, deals, guessed, alike)


def _find_community(
    market: MarketData | None, listing: dict[str, Any], unit: Fetched | None, by_listing: CommunityLookup | None
) -> CommunityLookup | None:
    """The listing's community in the market data, by the listing's spelling, else by the dictionary's."""
    if market is None:
        return None
    city = listing.get("city") or ""
    lookup = by_listing if by_listing is not None else market.community(city, listing.get("community") or "")
    dictionary_name = unit.payload.get("community") if unit is not None else None
    if lookup.match is None and dictionary_name and dictionary_name != listing.get("community"):
        by_dictionary = market.community(city, dictionary_name)
        if by_dictionary.match is not None:
            return by_dictionary
    return lookup


def _nothing(ctx: CheckContext, provider: str) -> dict[str, Any]:
    """Evidence for a 404: who was asked and when; there is no reference or as_of to quote."""
    return {"provider": provider, "reference": None, "as_of": None, "retrieved_at": ctx.clock.now().isoformat()}


def _unit_not_found(ctx: CheckContext, provider: str, lookup: CommunityLookup | None) -> Finding:
    unit_id = ctx.subject["unit_id"]
    evidence = {**_nothing(ctx, provider), "unit_id": unit_id}
    message = f"楼盘字典中没有该房屋（房屋编号 {unit_id}）"
    if lookup is not None:
        # Neither the unit nor its community: say what came closest, so a typo is easy to see.
        evidence["community"] = lookup.evidence()
        shown = lookup.best
        closest = (
            f"最接近的是「{shown.name}」（相似度 {lookup.score:.0f}，需 ≥ {lookup.evidence()['min_score']:.0f}）"
            if shown
            else "没有相近的小区"
        )
        message += f"，市场数据中也没有小区「{lookup.query}」：{closest}"
    return Finding("LISTING_UNIT_NOT_FOUND", message, evidence)


# -- the dictionary ----------------------------------------------------------------------------


def _mismatch(listing: dict[str, Any], unit: Fetched) -> list[Finding]:
    record = unit.payload
    differences: list[dict[str, Any]] = []
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


def _prices(
    ctx: CheckContext,
    listing: dict[str, Any],
    unit: Fetched | None,
    market: MarketData | None,
    community: Community | None,
) -> tuple[list[Finding], dict[str, Any]]:
    """The dictionary provider's community prices when they can judge; else Presign's market data."""
    looked: dict[str, Any] | None = None
    if unit is not None:
        findings, looked = _community_price(ctx, listing, unit)
        if looked["judged"] or market is None:
            return findings, looked
    assert market is not None
    findings, market_looked = _market_price(ctx, listing, unit, market, community)
    if looked is not None:
        market_looked["dictionary_prices"] = looked
    return findings, market_looked


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


def _market_price(
    ctx: CheckContext,
    listing: dict[str, Any],
    unit: Fetched | None,
    market: MarketData,
    community: Community | None,
) -> tuple[list[Finding], dict[str, Any]]:
    """Judge the unit price against the market: the community, else its bizcircle, else its district."""
    area = (_dec(unit.payload.get("area_m2")) if unit is not None else None) or _dec(listing.get("area_m2"))
    asking = _dec(listing.get("asking_price"))
    layout = names.layout(listing.get("layout")) or (names.layout(unit.payload.get("layout")) if unit else None)
    kind = ROOM if layout is not None and layout.room_type else HOME
    looked: dict[str, Any] = {**_market_source(ctx, listing, community), "property_type": kind, "judged": False}
    if not area or asking is None:
        return [], looked
    chosen, tried = _yardstick(listing, unit, market, community, kind)
    looked["levels_tried"] = tried
    if chosen is None:
        return [], looked
    level, name, stats = chosen
    median = Decimal(stats["median"])
    low, high = _market_bounds(level, median, stats)
    unit_price = (asking / area).quantize(CENT, rounding=ROUND_HALF_UP)
    fallback = tried[0]["level"] != level
    figures: dict[str, Any] = {
        "level": level,
        "level_name": name,
        "fallback": fallback,
        "unit_price": _str(unit_price),
        "median": _str(median),
        "p10": _optional(stats.get("p10")),
        "p90": _optional(stats.get("p90")),
        "sample_size": stats["n"],
        "from": stats.get("from"),
        "to": stats.get("to"),
        "low": _str(low),
        "high": _str(high),
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
    where = f"{LEVEL_ZH[level]}「{name}」"
    message = (
        f"挂牌单价 {_str(unit_price)} 元/m² {side}{where}正常区间 {_str(low)}–{_str(high)} 元/m²{kind_zh}"
        f"（{basis} {_str(median)} 元/m²，样本 {stats['n']} 套{span}）"
    )
    if fallback:
        message += f"；{figures['fallback_reason']}"
    evidence = {**looked, "which": "market_range"}
    evidence.pop("judged")
    return [Finding("LISTING_PRICE_ANOMALY", message, evidence)], looked


def _market_bounds(level: str, median: Decimal, stats: dict[str, Any]) -> tuple[Decimal, Decimal]:
    low_factor, high_factor = MARKET_FACTORS[level]
    low, high = median * low_factor, median * high_factor
    p10, p90 = _dec(stats.get("p10")), _dec(stats.get("p90"))
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


def _fallback_reason(tried: list[dict[str, Any]], level: str) -> str:
    parts = [
        f"{LEVEL_ZH[t['level']]}「{t['name']}」"
        + ("不在市场数据中" if t.get("known") is False else f"近期样本仅 {t['n']} 套")
        for t in tried
        if t["level"] != level
    ]
    return "；".join(parts) + f"，改按{LEVEL_ZH[level]}判断"


def _market_source(ctx: CheckContext, listing: dict[str, Any], community: Community | None) -> dict[str, Any]:
    """Evidence drawn from Presign's market data (imported exports), stamped like a provider's."""
    key = community.key if community is not None else names.community_key(listing.get("community"))
    return {
        "provider": "presign",
        "reference": f"presign:market/{listing.get('city') or ''}/{key}",
        "as_of": None,
        "retrieved_at": ctx.clock.now().isoformat(),
    }


# -- the community profile (a unit the dictionary does not know) ---------------------------------


def _profile_mismatch(
    ctx: CheckContext, listing: dict[str, Any], market: MarketData, community: Community, lookup: CommunityLookup
) -> tuple[list[Finding], dict[str, Any]]:
    """What the listing claims that its community cannot have; also returns what was looked at."""
    profile = community.profile
    homes = int(profile.get("n") or 0)
    looked = {**_market_source(ctx, listing, community), "community": community.name, "homes": homes}
    around = None
    if homes < PROFILE_MIN_HOMES and community.bizcircle and community.district:
        district = names.district_key(community.district)
        found = market.area(listing.get("city") or "", "bizcircle", district, community.bizcircle)
        if found is not None and int(found.profile.get("n") or 0) >= AREA_PROFILE_MIN_HOMES:
            around = found
            looked["bizcircle"] = {"name": found.name, "homes": found.profile["n"]}
    whole = None
    if homes < PROFILE_MIN_HOMES:
        city = listing.get("city") or ""
        whole = market.area(city, CITY_LEVEL, "", city)
        if whole is not None and whole.profile.get("area_by_rooms"):
            looked["city"] = {"name": whole.name, "homes": whole.profile.get("n")}
        else:
            whole = None
    looked["judged"] = homes > 0 or around is not None or whole is not None
    differences = _impossible(listing, profile, homes)
    for extra in (
        _unlike_around(listing, around) if around is not None else [],
        _unlike_city(listing, whole) if whole is not None else [],
    ):
        seen = {d["field"] for d in differences}
        differences += [d for d in extra if d["field"] not in seen]
    if not differences:
        return [], looked
    parts = [f"{_profile_label(d['field'])}：房源 {d['listing']}，{d['community']}" for d in differences]
    message = f"房源信息与小区「{community.name}」的情况不符（" + "；".join(parts) + f"；依据该小区 {homes} 套房源）"
    evidence = {**looked, "which": "community_profile", "differences": differences, "match": lookup.evidence()}
    evidence.pop("judged")
    return [Finding("LISTING_MISMATCH", message, evidence)], looked


def _impossible(listing: dict[str, Any], profile: dict[str, Any], homes: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    layout = names.layout(listing.get("layout"))
    area = _float(listing.get("area_m2"))
    if (
        layout is not None
        and not layout.room_type
        and layout.rooms
        and area
        and area / layout.rooms < MIN_AREA_PER_ROOM
    ):
        found.append(
            {"field": "layout", "listing": listing.get("layout"), "community": f"{area:g} m² 容不下 {layout.rooms} 室"}
        )
    if homes == 0:
        return found
    floor_factor, floor_slack, extra_rooms, area_factor, year_slack = PROFILE_MARGINS[
        "known" if homes >= PROFILE_MIN_HOMES else "thin"
    ]
    floors = [int(k) for k in profile.get("floors") or {}]
    if floors:
        highest = max(floors)
        limit = int(highest * floor_factor + floor_slack)
        for name in ("floor", "total_floors"):
            value = listing.get(name)
            if isinstance(value, int) and value > limit:
                shown = f"小区楼栋最高 {highest} 层"
                found.append({"field": name, "listing": value, "community": shown, "limit": limit})
    rooms = profile.get("rooms")
    if layout is not None and rooms and layout.rooms > rooms["max"] + extra_rooms:
        found.append({"field": "layout", "listing": listing.get("layout"), "community": f"小区最多 {rooms['max']} 室"})
    spread = profile.get("area")
    if area and spread and not spread["min"] / area_factor <= area <= spread["max"] * area_factor:
        shown = f"小区面积 {spread['min']:g}–{spread['max']:g} m²"
        found.append({"field": "area_m2", "listing": f"{area:.2f}", "community": shown})
    years = profile.get("build_year")
    year = listing.get("build_year")
    if year_slack is not None and isinstance(year, int) and years:
        if not years["min"] - year_slack <= year <= years["max"] + year_slack:
            shown = f"小区建成 {years['min']}–{years['max']} 年"
            found.append({"field": "build_year", "listing": year, "community": shown})
    return found


def _unlike_around(listing: dict[str, Any], around: Area) -> list[dict[str, Any]]:
    """What no home of the community's bizcircle comes near: for communities with too few homes seen."""
    found: list[dict[str, Any]] = []
    p = around.profile
    where = f"商圈「{around.name}」"
    if p.get("floors_p99"):
        limit = int(p["floors_p99"] * AROUND_FLOOR_FACTOR + AROUND_FLOOR_SLACK)
        for name in ("floor", "total_floors"):
            value = listing.get(name)
            if isinstance(value, int) and value > limit:
                shown = f"{where}99% 的楼栋不超过 {p['floors_p99']:g} 层"
                found.append({"field": name, "listing": value, "community": shown, "limit": limit})
    layout = names.layout(listing.get("layout"))
    if layout is not None and p.get("rooms_p99") and layout.rooms > p["rooms_p99"] + AROUND_EXTRA_ROOMS:
        shown = f"{where}99% 的房屋不超过 {p['rooms_p99']:g} 室"
        found.append({"field": "layout", "listing": listing.get("layout"), "community": shown})
    area = _float(listing.get("area_m2"))
    if area and p.get("area_p99") and area > p["area_p99"] * AROUND_AREA_FACTOR:
        shown = f"{where}99% 的房屋不超过 {p['area_p99']:g} m²"
        found.append({"field": "area_m2", "listing": f"{area:.2f}", "community": shown})
    return found


def _unlike_city(listing: dict[str, Any], whole: Area) -> list[dict[str, Any]]:
    """An area that the city's homes of the listing's room count never come near (homes, not N房间)."""
    layout = names.layout(listing.get("layout"))
    area = _float(listing.get("area_m2"))
    if layout is None or layout.room_type or not layout.rooms or not area:
        return []
    spread = (whole.profile.get("area_by_rooms") or {}).get(str(layout.rooms))
    if not spread:
        return []
    low, high = spread[0] * CITY_AREA_LOW_FACTOR, spread[1] * CITY_AREA_HIGH_FACTOR
    if low <= area <= high:
        return []
    shown = f"全市 {layout.rooms} 室的房屋 99% 在 {spread[0]:g}–{spread[1]:g} m²"
    return [{"field": "layout", "listing": f"{listing.get('layout')}，{area:.2f} m²", "community": shown}]


def _profile_label(name: str) -> str:
    return {"total_floors": "总楼层", "area_m2": "面积(m²)"}.get(name) or COMPARED_FIELDS[name]


def fingerprint(listing: dict[str, Any], unit: Fetched | None, lookup: CommunityLookup | None) -> Fingerprint | None:
    """The listing's unit in comparable form; None when its layout or area cannot be read."""
    if lookup is None:
        return None
    layout = names.layout(listing.get("layout"))
    area = _float(listing.get("area_m2"))
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


# -- Presign's own listings and deals ----------------------------------------------------------


def _market_findings(
    ctx: CheckContext,
    listing: dict[str, Any],
    market: MarketData | None,
    unit_print: Fingerprint | None,
    early: _Early,
) -> list[Finding]:
    unit_id = listing["unit_id"]
    store = listing.get("store_id")
    findings = []
    shown = [_other_listing(o, store) for o in early.others]
    if unit_print is not None and unit_print == early.guessed_print:
        alike = early.alike
    else:
        alike = market.same_unit_listings(unit_print, ctx.company) if market is not None and unit_print else []
    shown += [_alike(a, store) for a in alike]
    if shown:
        evidence = {**_presign(ctx), "unit_id": unit_id, "others": shown}
        message = f"同一房屋另有 {len(shown)} 条在售房源：{_who(shown, '条')}"
        if alike:
            message += f"（其中 {len(alike)} 条房屋编号不同，按小区、户型、面积、楼层、朝向判断为同一房屋）"
        findings.append(Finding("LISTING_DUPLICATE", message, evidence))
    reused = _reused_photos(early, store)
    if reused:
        evidence = {**_presign(ctx), "photos": reused}
        users = [u for p in reused for u in p["used_by"]]
        message = f"{len(reused)} 张房源照片也出现在其他房源中：{_who(users, '条')}"
        findings.append(Finding("LISTING_PHOTO_REUSED", message, evidence))
    deals = early.deals
    if deals:
        shown = [_other_deal(d, store) for d in deals]
        evidence = {**_presign(ctx), "unit_id": unit_id, "deals": shown}
        message = f"该房屋已在其他房源的交易中（{len(deals)} 笔未结交易：{_who(shown, '笔')}）"
        findings.append(Finding("LISTING_NOT_FOR_SALE", message, evidence))
    return findings


def _reused_photos(early: _Early, store: str | None) -> list[dict[str, Any]]:
    return [
        {"sha256": photo["sha256"], "url": photo.get("url"), "used_by": [_other_listing(u, store) for u in users]}
        for photo, users in early.photos
        if users
    ]


def _other_listing(other: dict[str, Any], store: str | None) -> dict[str, Any]:
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


def _alike(other: SameUnit, store: str | None) -> dict[str, Any]:
    """A listing found by its attributes, not its unit_id; shown like any other, plus what matched."""
    shown = _other_listing(
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


def _other_deal(deal: dict[str, Any], store: str | None) -> dict[str, Any]:
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


def _who(shown: list[dict[str, Any]], counter: str) -> str:
    own = [s.get("deal_id") or s["listing_id"] for s in shown if s["same_company"] and "listing_id" in s]
    stores = sum(1 for s in shown if s["same_company"] and "listing_id" not in s)
    foreign = sum(1 for s in shown if not s["same_company"])
    parts = [f"本公司 {'、'.join(own)}"] if own else []
    if stores:
        parts.append(f"{ANOTHER_STORE_ZH} {stores} {counter}")
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


def _float(value: Any) -> float | None:
    try:
        number = float(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and number > 0 else None


def _optional(value: Any) -> str | None:
    number = _dec(value)
    return None if number is None else _str(number)


def _str(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _pct(fraction: Decimal) -> str:
    return f"{(fraction * 100).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)}%"
