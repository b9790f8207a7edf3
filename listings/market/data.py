"""What the authenticity check asks of Presign's market data, each answer a few indexed lookups:

- `community(city, name)`: the community by normalised name, else the best fuzzy match through the
  bigram index, with its score (and the best candidate even when it scores too low to count);
- `area(city, level, district, name)`: a bizcircle's or district's price statistics and profile;
- `same_unit_listings(fingerprint, …)`: active Presign listings that are probably the same unit;
- `earlier_prices(fingerprint, …)`: the unit's earlier prices found by fingerprint: Presign listings of
  any status and the imported exports' listings and sales (deals) of the same flat;

and, for the runner, `SqlMarketData.remember(db, fingerprint)`: keep a checked listing's
fingerprint (the check returns it on its outcome) so later re-posts find it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from sqlalchemy import Engine, Table, bindparam, func, select
from sqlalchemy.orm import Session

from listings import names
from listings.market import price_model
from listings.market.models import (
    ListingFingerprint,
    MarketArea,
    MarketCommunity,
    MarketCommunityGram,
    MarketObservation,
)
from listings.models import Listing
from risk.db import each_statement

# A name that scores at least this against a known community is that community, written differently.
FUZZY_MIN_SCORE = 85.0
FUZZY_CANDIDATES = 40  # communities sharing the most bigrams with the name, scored one by one
# Two listings may be the same unit when their areas differ by at most this fraction (typing, rounding).
SAME_UNIT_AREA_TOLERANCE = 0.02

# Core statements built once: a report asks most of them, and building one costs more than running it.
_C, _G, _A, _O, _F, _L = (
    cast(Table, m.__table__)
    for m in (MarketCommunity, MarketCommunityGram, MarketArea, MarketObservation, ListingFingerprint, Listing)
)
_COMMUNITY = select(_C).where(_C.c.city == bindparam("city"), _C.c.key == bindparam("key"))
_shared = func.count().label("shared")
_TOP_KEYS = (
    select(_G.c.key)
    .where(_G.c.city == bindparam("city"), _G.c.gram.in_(bindparam("grams", expanding=True)))
    .group_by(_G.c.key)
    .order_by(_shared.desc(), _G.c.key)
    .limit(bindparam("candidates"))
    .subquery()
)
# The communities of the city sharing the most bigrams with the name.
_FUZZY = select(_C).where(_C.c.city == bindparam("city"), _C.c.key.in_(select(_TOP_KEYS.c.key)))
_AREA = select(_A.c.level, _A.c.name, _A.c.prices, _A.c.profile).where(
    _A.c.city == bindparam("city"), _A.c.level == bindparam("level"), _A.c.district == bindparam("district"),
    _A.c.name == bindparam("name"),
)  # fmt: skip
_OBSERVED = select(_O.c.kind, _O.c.halls, _O.c.room_type, _O.c.area_m2, _O.c.orientation, _O.c.total_floors,
                   _O.c.floor_level, _O.c.unit_price, _O.c.observed_on).where(
    _O.c.city == bindparam("city"),
    _O.c.community_key == bindparam("community_key"),
    _O.c.kind.in_(("listing", "deal")),
    _O.c.rooms == bindparam("rooms"),
    _O.c.area_m2.between(bindparam("area_from"), bindparam("area_to")),
    _O.c.unit_price.is_not(None),
)  # fmt: skip
_ALIKE = (
    select(_F, _L.c.company, _L.c.store_id, _L.c.status, _L.c.asking_price, _L.c.created_at)
    .join(_L, _L.c.id == _F.c.listing_id)
    .where(
        _F.c.city == bindparam("city"),
        _F.c.community_key == bindparam("community_key"),
        _F.c.rooms == bindparam("rooms"),
        _F.c.listing_id != bindparam("listing_id"),
        _F.c.area_m2.between(bindparam("area_from"), bindparam("area_to")),
        _L.c.unit_id != bindparam("unit_id"),
    )
    .order_by(_F.c.listing_id)
)
_UNIT_HISTORY = (
    select(_L.c.id, _L.c.company, _L.c.store_id, _L.c.status, _L.c.asking_price, _L.c.area_m2, _L.c.created_at)
    .where(_L.c.unit_id == bindparam("unit_id"), _L.c.id != bindparam("listing_id"))
    .order_by(_L.c.created_at, _L.c.id)
)


@dataclass(frozen=True)
class Community:
    key: str
    name: str
    district: str | None
    bizcircle: str | None
    homes: int
    profile: dict[str, Any]
    prices: dict[str, Any]


@dataclass(frozen=True)
class Area:
    level: str  # bizcircle or district
    name: str
    prices: dict[str, Any]
    profile: dict[str, Any]


@dataclass(frozen=True)
class CommunityLookup:
    query: str
    key: str
    match: Community | None  # the community, found exactly or fuzzily at FUZZY_MIN_SCORE or more
    score: float  # 100 for an exact key; the best fuzzy score otherwise (0 when nothing came close)
    best: Community | None = None  # the closest candidate, also when it scored too low to count
    sibling: bool = False  # the closest scored high enough but names another phase, zone or group

    @property
    def exact(self) -> bool:
        return self.match is not None and self.match.key == self.key

    def evidence(self) -> dict[str, Any]:
        shown = self.match or self.best
        return {
            "community_as_listed": self.query,
            "matched": self.match is not None,
            "match": "exact" if self.exact else ("fuzzy" if self.match else "none"),
            "best_match": shown.name if shown else None,
            "score": round(self.score, 1),
            "min_score": FUZZY_MIN_SCORE,
            "sibling": self.sibling,
        }

    def said(self) -> str:
        """The community as a message names it: a fuzzy match says what was listed and what it was read as."""
        if self.match is None or self.exact:
            return f"「{self.match.name if self.match else self.query}」"
        return f"「{self.query}」按「{self.match.name}」核对"


@dataclass(frozen=True)
class Fingerprint:
    listing_id: str
    unit_id: str
    city: str
    community_key: str
    rooms: int
    halls: int | None
    room_type: bool
    area_m2: float
    floor: int | None
    total_floors: int | None
    orientation: str | None
    building: str = ""
    room: str = ""


@dataclass
class SameUnit:
    listing_id: str
    same_company: bool
    status: str
    asking_price: str
    matched_on: list[str] = field(default_factory=list)
    area_m2: float = 0.0
    store_id: str | None = None


class MarketData(Protocol):
    def community(self, city: str, name: str) -> CommunityLookup: ...

    def area(self, city: str, level: str, district: str, name: str) -> Area | None: ...

    def same_unit_listings(self, print_: Fingerprint, company: str) -> list[SameUnit]: ...

    def unit_history(self, unit_id: str, listing_id: str, company: str) -> list[dict[str, Any]]: ...

    def earlier_prices(self, print_: Fingerprint, company: str) -> list[dict[str, Any]]: ...


class SqlMarketData:
    """Each lookup one or two indexed statements, read outside a transaction (`risk.db.each_statement`)."""

    def __init__(self, engine: Engine, clock: Any) -> None:
        self.engine = engine
        self.clock = clock

    def community(self, city: str, name: str) -> CommunityLookup:
        key = names.community_key(name)
        if not key:
            return CommunityLookup(query=name, key=key, match=None, score=0.0)
        with each_statement(self.engine) as db:
            exact = db.execute(_COMMUNITY, {"city": city, "key": key}).first()
            if exact is not None:
                found = _community(exact)
                return CommunityLookup(query=name, key=key, match=found, score=100.0, best=found)
            grams = sorted(names.grams(key))
            candidates = db.execute(_FUZZY, {"city": city, "grams": grams, "candidates": FUZZY_CANDIDATES}).all()
        if not candidates:
            return CommunityLookup(query=name, key=key, match=None, score=0.0)
        # Best score first; among equals the better-known community, then the name, so answers are stable.
        scored = sorted(
            ((names.similarity(key, c.key), c) for c in candidates), key=lambda s: (-s[0], -s[1].homes, s[1].key)
        )
        # A sibling estate (another phase, zone or group) is never this one, however alike the names.
        matching = [s for s in scored if s[0] >= FUZZY_MIN_SCORE and names.same_place(key, s[1].key)]
        score, best = matching[0] if matching else scored[0]
        found = _community(best)
        sibling = not matching and score >= FUZZY_MIN_SCORE
        return CommunityLookup(
            query=name, key=key, match=found if matching else None, score=score, best=found, sibling=sibling
        )

    def area(self, city: str, level: str, district: str, name: str) -> Area | None:
        with each_statement(self.engine) as db:
            row = db.execute(_AREA, {"city": city, "level": level, "district": district, "name": name}).first()
        return None if row is None else Area(level=row.level, name=row.name, prices=row.prices, profile=row.profile)

    def same_unit_listings(self, print_: Fingerprint, company: str) -> list[SameUnit]:
        """Active listings, any company, other than this one and not of its unit_id, that match its fingerprint."""
        return [a for a, _created in self._alike(print_, company) if a.status == "active"]

    def earlier_prices(self, print_: Fingerprint, company: str) -> list[dict[str, Any]]:
        """The unit's earlier prices by fingerprint: Presign's listings of it under another unit_id (any
        status and company), and the exports' listings and sales of the same flat (market observations)."""
        found: list[dict[str, Any]] = [
            {"listing_id": a.listing_id, "same_company": a.same_company, "store_id": a.store_id,
             "status": a.status, "asking_price": a.asking_price, "area_m2": a.area_m2,
             "listed_on": created.date().isoformat(), "matched_on": a.matched_on}
            for a, created in self._alike(print_, company)
        ]  # fmt: skip
        with each_statement(self.engine) as db:
            rows = db.execute(_OBSERVED, _alike_params(print_)).all()
        level = price_model.floor_level(print_.floor, print_.total_floors)
        today = self.clock.now().date()
        for row in rows:
            if row.observed_on is not None and row.observed_on > today:
                continue
            observed = Fingerprint(listing_id="", unit_id="", city=print_.city, community_key=print_.community_key,
                                   rooms=print_.rooms, halls=row.halls, room_type=row.room_type,
                                   area_m2=row.area_m2 or 0.0, floor=None, total_floors=row.total_floors,
                                   orientation=row.orientation)  # fmt: skip
            matched = same_unit(print_, observed)
            theirs = price_model.floor_third(row.floor_level)
            if matched is None or (level is not None and theirs is not None and level != theirs):
                continue
            found.append({
                "market": row.kind,  # an export's listing or sale, not a Presign listing
                "unit_price": row.unit_price,
                "observed_on": row.observed_on.isoformat() if row.observed_on else None,
                "matched_on": matched + (["floor_level"] if level is not None and theirs is not None else []),
            })  # fmt: skip
        return found

    def _alike(self, print_: Fingerprint, company: str) -> list[tuple[SameUnit, Any]]:
        """Listings of any status and company, other than this one and not of its unit_id, that match its
        fingerprint, each with when it was listed."""
        params = {**_alike_params(print_), "listing_id": print_.listing_id, "unit_id": print_.unit_id}
        with each_statement(self.engine) as db:
            rows = db.execute(_ALIKE, params).all()
        found = []
        for other in rows:  # the fingerprint's columns and its listing's
            matched = same_unit(print_, other)
            if matched is not None:
                found.append(
                    (
                        SameUnit(
                            listing_id=other.listing_id,
                            same_company=other.company == company,
                            status=other.status,
                            asking_price=f"{other.asking_price:.2f}",
                            matched_on=matched,
                            area_m2=other.area_m2,
                            store_id=other.store_id,
                        ),
                        other.created_at,
                    )
                )
        return found

    def unit_history(self, unit_id: str, listing_id: str, company: str) -> list[dict[str, Any]]:
        """Presign's other listings of the unit, of any status and company: its earlier prices."""
        with each_statement(self.engine) as db:
            rows = db.execute(_UNIT_HISTORY, {"unit_id": unit_id, "listing_id": listing_id}).all()
        return [
            {
                "listing_id": row.id,
                "same_company": row.company == company,
                "store_id": row.store_id,
                "status": row.status,
                "asking_price": f"{row.asking_price:.2f}",
                "area_m2": float(row.area_m2),
                "listed_on": row.created_at.date().isoformat(),
            }
            for row in rows
        ]

    def remember(self, session: Session, print_: Fingerprint) -> None:
        """Upsert the listing's fingerprint inside the caller's write transaction; a subject that is not
        a stored listing is not remembered."""
        if session.scalar(select(Listing.id).where(Listing.id == print_.listing_id)) is not None:
            session.execute(_upsert(session, fingerprint_values(print_, self.clock.now())))


def same_unit(mine: Fingerprint, other: Any) -> list[str] | None:
    """The fields on which two fingerprints agree, or None when one known field tells them apart.

    Community, room count and area (within tolerance) are already equal. A field only one side knows
    does not tell units apart; differing building and room numbers (both given) do.
    """
    matched = ["community", "rooms", "area_m2"]
    pairs = (
        ("halls", mine.halls, other.halls),
        ("room_type", mine.room_type, other.room_type),
        ("orientation", mine.orientation, other.orientation),
        ("floor", mine.floor, other.floor),
        ("total_floors", mine.total_floors, other.total_floors),
    )
    for name, a, b in pairs:
        if a is None or b is None:
            continue
        if a != b:
            return None
        matched.append(name)
    if mine.building and mine.room and other.building and other.room:
        if (mine.building, mine.room) != (other.building, other.room):
            return None
        matched.append("building_room")
    return matched


def _alike_params(print_: Fingerprint) -> dict[str, Any]:
    """What a unit like this one shares: its community and room count, and its area within tolerance."""
    slack = print_.area_m2 * SAME_UNIT_AREA_TOLERANCE
    return {"city": print_.city, "community_key": print_.community_key, "rooms": print_.rooms,
            "area_from": print_.area_m2 - slack, "area_to": print_.area_m2 + slack}  # fmt: skip


def fingerprint_values(print_: Fingerprint, now: Any) -> dict[str, Any]:
    return {
        "listing_id": print_.listing_id,
        "city": print_.city,
        "community_key": print_.community_key[:200],
        "rooms": print_.rooms,
        "halls": print_.halls,
        "room_type": print_.room_type,
        "area_m2": print_.area_m2,
        "floor": print_.floor,
        "total_floors": print_.total_floors,
        "orientation": print_.orientation,
        "building": print_.building[:50],
        "room": print_.room[:50],
        "updated_at": now,
    }


def _upsert(session: Session, values: dict[str, Any] | list[dict[str, Any]]) -> Any:
    return _upsert_statement(session.get_bind().dialect.name).values(values)


@functools.cache  # built once per dialect: its column collection costs more than running it
def _upsert_statement(dialect: str) -> Any:
    """INSERT … ON CONFLICT (listing_id) DO UPDATE: a re-checked listing's fingerprint replaces its old one."""
    table: Table = ListingFingerprint.__table__  # type: ignore[assignment]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    base = insert(table)
    updated = {c.name: base.excluded[c.name] for c in table.columns if c.name != "listing_id"}
    return base.on_conflict_do_update(index_elements=[table.c.listing_id], set_=updated)


def remember_many(session: Session, prints: list[Fingerprint], now: Any) -> None:
    """Fingerprints of many listings at once (the evaluation's market, a backfill)."""
    statement = _upsert_statement(session.get_bind().dialect.name)  # built once, executed many
    for start in range(0, len(prints), 500):
        session.execute(statement, [fingerprint_values(p, now) for p in prints[start : start + 500]])


def _community(row: Any) -> Community:
    return Community(
        key=row.key,
        name=row.name,
        district=row.district,
        bizcircle=row.bizcircle,
        homes=row.homes,
        profile=row.profile,
        prices=row.prices,
    )
