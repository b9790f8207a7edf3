"""The community profile: what a unit the dictionary does not know claims that its community cannot have."""

from __future__ import annotations

from typing import Any

from checks.authenticity.common import market_source, positive_float
from checks.authenticity.dictionary import COMPARED_FIELDS
from checks.base import CheckContext, Finding
from listings import names
from listings.market.data import Area, Community, CommunityLookup, MarketData
from listings.profiles import CITY_LEVEL

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


def mismatch(
    ctx: CheckContext, listing: dict[str, Any], market: MarketData, community: Community, lookup: CommunityLookup
) -> tuple[list[Finding], dict[str, Any]]:
    """What the listing claims that its community cannot have; also returns what was looked at."""
    profile = community.profile
    homes = int(profile.get("n") or 0)
    looked = {**market_source(ctx, listing, community), "community": community.name, "homes": homes}
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
    message = f"房源信息与小区{lookup.said()}的情况不符（" + "；".join(parts) + f"；依据该小区 {homes} 套房源）"
    evidence = {**looked, "which": "community_profile", "differences": differences, "match": lookup.evidence()}
    evidence.pop("judged")
    return [Finding("LISTING_MISMATCH", message, evidence)], looked


def _impossible(listing: dict[str, Any], profile: dict[str, Any], homes: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    layout = names.layout(listing.get("layout"))
    area = positive_float(listing.get("area_m2"))
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
    area = positive_float(listing.get("area_m2"))
    if area and p.get("area_p99") and area > p["area_p99"] * AROUND_AREA_FACTOR:
        shown = f"{where}99% 的房屋不超过 {p['area_p99']:g} m²"
        found.append({"field": "area_m2", "listing": f"{area:.2f}", "community": shown})
    return found


def _unlike_city(listing: dict[str, Any], whole: Area) -> list[dict[str, Any]]:
    """An area that the city's homes of the listing's room count never come near (homes, not N房间)."""
    layout = names.layout(listing.get("layout"))
    area = positive_float(listing.get("area_m2"))
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
