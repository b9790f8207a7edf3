"""Community profiles and price statistics, rebuilt for a whole city from its market observations.

A profile says what homes a community has: layouts, area range (overall and per room count), building
heights (total floors), build years, aspects. It is built from every row, whatever its date: buildings
do not change. Prices are robust statistics (median and percentiles, never a mean) of recent rows only:
a group's prices are those of its newest `PRICE_WINDOW_DAYS`, widened to `PRICE_MAX_AGE_DAYS` when
that leaves fewer than `MIN_PRICE_SAMPLE` rows, and never older than `PRICE_MAX_AGE_DAYS` before the
city's newest row. Homes (N室) and room-type apartments/商住 (N房间) are priced apart.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from listings import names
from listings.lianjia import REFERENCE
from listings.market import price_model
from listings.market.models import MarketArea, MarketCommunity, MarketCommunityGram, MarketObservation
from risk.clock import Clock

PRICE_WINDOW_DAYS = 730
PRICE_MAX_AGE_DAYS = 5 * 365
MIN_PRICE_SAMPLE = 5
HOME, ROOM = "home", "room"
# The city's homes per room count (N室): the area range nearly all of them fall in, for room counts with
# at least CITY_ROOMS_MIN_HOMES homes; the yardstick of a layout in a community too thinly seen.
CITY_LEVEL = "city"
CITY_ROOMS_MIN_HOMES = 50
CITY_AREA_QUANTILES = (0.005, 0.995)
_BATCH = 5000


@dataclass
class _Obs:
    kind: str
    community: str
    key: str
    district: str | None
    bizcircle: str | None
    rooms: int | None
    halls: int | None
    room_type: bool
    area: float | None
    orientation: str | None
    floor_level: str | None
    floors: int | None
    year: int | None
    price: int | None
    day: date | None
    samples: int


@dataclass
class _Community:
    key: str
    names: Counter[str] = field(default_factory=Counter)
    districts: Counter[str] = field(default_factory=Counter)
    bizcircles: Counter[str] = field(default_factory=Counter)
    homes: list[_Obs] = field(default_factory=list)
    references: list[_Obs] = field(default_factory=list)


@dataclass
class BuildResult:
    communities: int = 0
    priced_communities: int = 0
    bizcircles: int = 0
    districts: int = 0
    newest: date | None = None


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of an already sorted, non-empty sequence (q in 0..1)."""
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def price_stats(rows: Iterable[tuple[int, date | None, str]]) -> dict[str, Any] | None:
    """Median, p10/p25/p75/p90, sample size and date range of (unit price, date, kind) rows."""
    rows = list(rows)
    if not rows:
        return None
    ordered = sorted(float(p) for p, _d, _k in rows)
    days = [d for _p, d, _k in rows if d is not None]
    return {
        "median": round(percentile(ordered, 0.5)),
        "p10": round(percentile(ordered, 0.10)),
        "p25": round(percentile(ordered, 0.25)),
        "p75": round(percentile(ordered, 0.75)),
        "p90": round(percentile(ordered, 0.90)),
        "n": len(ordered),
        "deals": sum(1 for *_x, k in rows if k == "deal"),
        "listings": sum(1 for *_x, k in rows if k == "listing"),
        "from": min(days).isoformat() if days else None,
        "to": max(days).isoformat() if days else None,
    }


def recent(rows: list[_Obs], oldest: date | None) -> list[_Obs]:
    """The priced rows a group is judged on: its newest window, widened when that is too thin."""
    priced = [r for r in rows if r.price is not None and (oldest is None or r.day is None or r.day >= oldest)]
    dated = [r.day for r in priced if r.day is not None]
    if not dated:
        return priced
    start = max(dated) - timedelta(days=PRICE_WINDOW_DAYS)
    window = [r for r in priced if r.day is None or r.day >= start]
    return window if len(window) >= MIN_PRICE_SAMPLE else priced


def typed_stats(rows: list[_Obs], oldest: date | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind, room_type in ((HOME, False), (ROOM, True)):
        chosen = recent([r for r in rows if r.room_type is room_type], oldest)
        stats = price_stats((r.price, r.day, r.kind) for r in chosen if r.price is not None)
        if stats:
            out[kind] = stats
    return out


def profile(rows: list[_Obs]) -> dict[str, Any]:
    """What homes a community has, from every row of it."""
    areas = sorted(r.area for r in rows if r.area)
    floors = Counter(r.floors for r in rows if r.floors)
    years = sorted(r.year for r in rows if r.year)
    rooms = [r.rooms for r in rows if r.rooms is not None]
    by_rooms: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        if r.rooms is not None and r.area:
            by_rooms[r.rooms].append(r.area)
    layouts = Counter(names.Layout(r.rooms, r.halls, r.room_type).key for r in rows if r.rooms is not None)
    return {
        "n": len(rows),
        "layouts": dict(layouts.most_common()),
        "rooms": {"min": min(rooms), "max": max(rooms), "n": len(rooms)} if rooms else None,
        "room_type_share": round(sum(1 for r in rows if r.room_type) / len(rows), 3) if rows else 0,
        "area": _spread(areas),
        "area_by_rooms": {str(k): [min(v), max(v), len(v)] for k, v in sorted(by_rooms.items())},
        "floors": {str(k): v for k, v in sorted(floors.items())},
        "floors_n": sum(floors.values()),
        "build_year": {"min": years[0], "max": years[-1], "n": len(years)} if years else None,
        "orientations": dict(Counter(r.orientation for r in rows if r.orientation).most_common(8)),
    }


def area_profile(rows: list[_Obs]) -> dict[str, Any]:
    """The 99th percentile of floors, rooms and area of a bizcircle's or district's homes: not the
    maximum, which a single mistyped row (a 90-storey building) would set."""
    out: dict[str, Any] = {"n": len(rows)}
    for name, values in (
        ("floors", sorted(float(r.floors) for r in rows if r.floors)),
        ("rooms", sorted(float(r.rooms) for r in rows if r.rooms)),
        ("area", sorted(r.area for r in rows if r.area)),
    ):
        out[f"{name}_p99"] = round(percentile(values, 0.99), 2) if values else None
    return out


def city_profile(rows: list[_Obs]) -> dict[str, Any]:
    """The city's homes (not N房间) by room count: the 0.5th and 99.5th percentiles of their area, for
    room counts with at least CITY_ROOMS_MIN_HOMES homes. A 5室 of 50 m² or a 2室 of 300 m² is no home
    layout anywhere in the city, whatever community it claims."""
    by_rooms: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        if r.rooms and r.area and not r.room_type:
            by_rooms[r.rooms].append(r.area)
    low, high = CITY_AREA_QUANTILES
    area_by_rooms: dict[str, list[float]] = {}
    for rooms, areas in sorted(by_rooms.items()):
        if len(areas) >= CITY_ROOMS_MIN_HOMES:
            areas.sort()
            bounds = [round(percentile(areas, q), 2) for q in (low, high)]
            area_by_rooms[str(rooms)] = [*bounds, len(areas)]
    return {**area_profile(rows), "area_by_rooms": area_by_rooms}


def _spread(ordered: list[float]) -> dict[str, Any] | None:
    if not ordered:
        return None
    return {
        "min": ordered[0],
        "p05": round(percentile(ordered, 0.05), 2),
        "median": round(percentile(ordered, 0.5), 2),
        "p95": round(percentile(ordered, 0.95), 2),
        "max": ordered[-1],
        "n": len(ordered),
    }


def rebuild_city(
    session: Session, city: str, clock: Clock, progress: Callable[[int, int], None] | None = None
) -> BuildResult:
    """Recompute every profile and statistic of `city` from its observations, replacing the old ones."""
    observations = _load(session, city)
    result = BuildResult()
    dated = [o.day for o in observations if o.day is not None and o.price is not None]
    result.newest = max(dated) if dated else None
    oldest = result.newest - timedelta(days=PRICE_MAX_AGE_DAYS) if result.newest else None

    communities: dict[str, _Community] = {}
    for obs in observations:
        c = communities.get(obs.key)
        if c is None:
            c = communities[obs.key] = _Community(obs.key)
        c.names[obs.community] += 1
        if obs.district:
            c.districts[names.district_key(obs.district)] += obs.samples
        if obs.bizcircle:
            c.bizcircles[obs.bizcircle] += obs.samples
        (c.references if obs.kind == REFERENCE else c.homes).append(obs)

    now = clock.now()
    by_bizcircle: dict[tuple[str, str], list[_Obs]] = defaultdict(list)
    by_district: dict[str, list[_Obs]] = defaultdict(list)
    community_rows: list[dict[str, Any]] = []
    gram_rows: list[dict[str, Any]] = []
    total = len(communities)
    for done, c in enumerate(communities.values(), start=1):
        district = c.districts.most_common(1)[0][0] if c.districts else None
        bizcircle = c.bizcircles.most_common(1)[0][0] if c.bizcircles else None
        prices = typed_stats(c.homes, oldest)
        reference = _reference(c.references)
        if reference:
            prices["reference"] = reference
        by_year = _by_year(c.homes)
        if len(by_year) > 1:
            prices["by_year"] = by_year
        if prices:
            result.priced_communities += 1
        community_rows.append(
            {
                "city": city,
                "key": c.key,
                "name": c.names.most_common(1)[0][0],
                "district": district,
                "bizcircle": bizcircle,
                "homes": len(c.homes),
                "profile": profile(c.homes),
                "prices": prices,
                "built_at": now,
            }
        )
        gram_rows.extend({"city": city, "gram": g, "key": c.key} for g in names.grams(c.key))
        if district:
            by_district[district].extend(c.homes)
            if bizcircle:
                by_bizcircle[(district, bizcircle)].extend(c.homes)
        if progress is not None and (done % 500 == 0 or done == total):
            progress(done, total)

    area_rows = [
        {
            "city": city,
            "level": "bizcircle",
            "district": d,
            "name": b,
            "prices": typed_stats(rows, oldest),
            "profile": area_profile(rows),
            "built_at": now,
        }
        for (d, b), rows in by_bizcircle.items()
    ]
    area_rows += [
        {
            "city": city,
            "level": "district",
            "district": d,
            "name": d,
            "prices": typed_stats(rows, oldest),
            "profile": area_profile(rows),
            "built_at": now,
        }
        for d, rows in by_district.items()
    ]
    everything = [o for c in communities.values() for o in c.homes]
    if everything:
        area_rows.append(
            {
                "city": city,
                "level": CITY_LEVEL,
                "district": "",
                "name": city,
                "prices": {},
                "profile": city_profile(everything),
                "built_at": now,
            }
        )
    _fit_prices(city, communities, community_rows, area_rows, oldest)
    for model in (MarketCommunity, MarketCommunityGram, MarketArea):
        session.execute(delete(model).where(model.city == city))
    for model, rows in ((MarketCommunity, community_rows), (MarketCommunityGram, gram_rows), (MarketArea, area_rows)):
        for start in range(0, len(rows), _BATCH):
            session.execute(insert(model), rows[start : start + _BATCH])
    result.communities = len(community_rows)
    result.bizcircles = len(by_bizcircle)
    result.districts = len(by_district)
    return result


def _fit_prices(
    city: str,
    communities: dict[str, _Community],
    community_rows: list[dict[str, Any]],
    area_rows: list[dict[str, Any]],
    oldest: date | None,
) -> None:
    """The price model (listings.market.price_model) of every level and community, stored in `prices`."""
    placed = [
        (
            row["key"],
            names.district_key(row["district"]) if row["district"] else None,
            row["bizcircle"],
            [_home(o) for o in recent([o for o in communities[row["key"]].homes if not o.room_type], oldest)
             if o.price and o.area],
        )
        for row in community_rows
    ]  # fmt: skip
    levels, models = price_model.fit_city(placed, city)
    for row in community_rows:
        if row["key"] in models:
            row["prices"]["model"] = models[row["key"]]
    for row in area_rows:
        level = levels.get((row["level"], row["district"], row["name"]))
        if level is not None:
            row["prices"]["model"] = level


def _home(o: _Obs) -> price_model.Home:
    return price_model.Home(
        area=float(o.area or 0),
        rooms=o.rooms,
        floor_level=price_model.floor_third(o.floor_level),
        total_floors=o.floors,
        build_year=o.year,
        orientation=o.orientation,
        unit_price=float(o.price or 0),
    )


def _by_year(rows: list[_Obs]) -> dict[str, int]:
    """The median unit price of homes (N室) per year seen, for years with MIN_PRICE_SAMPLE of them: how
    the community's prices moved, to compare a unit's earlier price with today's."""
    years: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        if r.price and r.day is not None and not r.room_type:
            years[r.day.year].append(r.price)
    return {str(y): round(percentile(sorted(p), 0.5)) for y, p in sorted(years.items()) if len(p) >= MIN_PRICE_SAMPLE}


def _reference(rows: list[_Obs]) -> dict[str, Any] | None:
    """A community's published reference price (小区参考均价): the newest one with a price."""
    priced = [r for r in rows if r.price]
    if not priced:
        return None
    newest = max(priced, key=lambda r: (r.day or date.min, r.samples))
    return {"price": newest.price, "on_sale": newest.samples, "as_of": newest.day.isoformat() if newest.day else None}


def _load(session: Session, city: str) -> list[_Obs]:
    o = MarketObservation
    query = select(
        o.kind, o.community, o.community_key.label("key"), o.district, o.bizcircle, o.rooms, o.halls, o.room_type,
        o.area_m2.label("area"), o.orientation, o.floor_level, o.total_floors.label("floors"),
        o.build_year.label("year"), o.unit_price.label("price"), o.observed_on.label("day"), o.samples,
    ).where(o.city == city)  # fmt: skip
    return [_Obs(**row._asdict()) for row in session.execute(query)]
