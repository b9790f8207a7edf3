"""What the authenticity check asks of Presign's market data, each answer a few indexed lookups:

- `community(city, name)`: the community by normalised name, else the best fuzzy match through the
  bigram index, with its score (and the best candidate even when it scores too low to count);
- `area(city, level, district, name)`: a bizcircle's or district's price statistics and profile;
- `same_unit_listings(fingerprint, …)`: active Presign listings that are probably the same unit;

and, for the runner, `SqlMarketData.remember(db, fingerprint)`: keep a checked listing's
fingerprint (the check returns it on its outcome) so later re-posts find it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.orm import Session, sessionmaker

from listings import names
from listings.market_models import ListingFingerprint, MarketArea, MarketCommunity, MarketCommunityGram
from listings.models import Listing
from risk.db import InSession, Prepared, reading

# A name that scores at least this against a known community is that community, written differently.
FUZZY_MIN_SCORE = 85.0
FUZZY_CANDIDATES = 40  # communities sharing the most bigrams with the name, scored one by one
# Two listings may be the same unit when their areas differ by at most this fraction (typing, rounding).
SAME_UNIT_AREA_TOLERANCE = 0.02


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
        }


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


class SqlMarketData:
    """Exact lookups run as prepared statements on a pooled connection (`risk.db.reading`): a Session per
    lookup was most of their cost on a report's path."""

    def __init__(self, sessions: sessionmaker[Session], clock: Any) -> None:
        self.sessions = sessions
        self.engine = sessions.kw["bind"]
        self.clock = clock

    def community(self, city: str, name: str) -> CommunityLookup:
        key = names.community_key(name)
        if not key:
            return CommunityLookup(query=name, key=key, match=None, score=0.0)
        with reading(self.engine) as db:
            exact = db.first(_COMMUNITY, {"city": city, "key": key})
            if exact is not None:
                found = _community(exact)
                return CommunityLookup(query=name, key=key, match=found, score=100.0, best=found)
            # No exact match: the fuzzy search, the communities sharing the most bigrams with the name.
            terms = sorted(names.grams(key))
            candidates = db.all(_fuzzy_statement(len(terms)), {"city": city, **_padded(terms)})
        if not candidates:
            return CommunityLookup(query=name, key=key, match=None, score=0.0)
        # Best score first; among equals the better-known community, then the name, so answers are stable.
        scored = sorted(
            ((names.similarity(key, c.key), c) for c in candidates), key=lambda s: (-s[0], -s[1].homes, s[1].key)
        )
        score, best = scored[0]
        found = _community(best)
        return CommunityLookup(
            query=name, key=key, match=found if score >= FUZZY_MIN_SCORE else None, score=score, best=found
        )

    def area(self, city: str, level: str, district: str, name: str) -> Area | None:
        with reading(self.engine) as db:
            row = db.first(_AREA, {"city": city, "level": level, "district": district, "name": name})
        return None if row is None else Area(level=row.level, name=row.name, prices=row.prices, profile=row.profile)

    def same_unit_listings(self, print_: Fingerprint, company: str) -> list[SameUnit]:
        """Active listings, any company, other than this one and not of its unit_id, that match its fingerprint."""
        slack = print_.area_m2 * SAME_UNIT_AREA_TOLERANCE
        params = {**print_.__dict__, "low": print_.area_m2 - slack, "high": print_.area_m2 + slack}
        with reading(self.engine) as db:
            rows = db.all(_SAME_UNIT, params)
        found = []
        for other in rows:
            other_company, status, asking = other.company, other.status, other.asking_price
            matched = same_unit(print_, other)
            if matched is not None:
                found.append(
                    SameUnit(
                        listing_id=other.listing_id,
                        same_company=other_company == company,
                        status=status,
                        asking_price=f"{asking:.2f}",
                        matched_on=matched,
                        area_m2=other.area_m2,
                        store_id=other.store_id,
                    )
                )
        return found

    def remember(self, db: InSession, print_: Fingerprint) -> None:
        """Upsert the listing's fingerprint inside the caller's write transaction; a subject that is not
        a stored listing is not remembered."""
        if db.first(_LISTING, {"id": print_.listing_id}) is not None:
            dialect = db.dialect.name
            upsert = _PREPARED_UPSERTS.get(dialect)
            if upsert is None:
                upsert = _PREPARED_UPSERTS.setdefault(dialect, Prepared(_upsert_statement(dialect)))
            db.write(upsert, fingerprint_values(print_, self.clock.now()))


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


# Built once, run with Core: on a report's critical path, after the dictionary answers (the ORM query
# with its entity loading was ~1 ms of a report's latency, traced).
_F, _L = ListingFingerprint.__table__.c, Listing.__table__.c
_C, _A = MarketCommunity.__table__.c, MarketArea.__table__.c
_COMMUNITY = Prepared(select(MarketCommunity.__table__).where(_C.city == bindparam("city"), _C.key == bindparam("key")))
_AREA = Prepared(
    select(MarketArea.__table__).where(
        _A.city == bindparam("city"),
        _A.level == bindparam("level"),
        _A.district == bindparam("district"),
        _A.name == bindparam("name"),
    )
)
_SAME_UNIT = Prepared(
    select(*_F, _L.company, _L.store_id, _L.status, _L.asking_price)
    .join_from(ListingFingerprint.__table__, Listing.__table__, _L.id == _F.listing_id)
    .where(
        _F.city == bindparam("city"),
        _F.community_key == bindparam("community_key"),
        _F.rooms == bindparam("rooms"),
        _F.listing_id != bindparam("listing_id"),
        _F.area_m2.between(bindparam("low"), bindparam("high")),
        _L.status == "active",
        _L.unit_id != bindparam("unit_id"),
    )
    .order_by(_F.listing_id)
)


_G = MarketCommunityGram.__table__.c
_FUZZY: dict[int, Prepared] = {}


def _fuzzy_statement(terms: int) -> Prepared:
    """The fuzzy search for up to `terms` bigrams, as one statement: the FUZZY_CANDIDATES communities of
    the city sharing the most bigrams with the name. Built for a power-of-two number of bigrams (a
    name's are padded by repeating one, which changes no count), so a handful are ever compiled."""
    size = _bucket(terms)
    prepared = _FUZZY.get(size)
    if prepared is None:
        shared = func.count().label("shared")
        top = (
            select(_G.key)
            .where(_G.city == bindparam("city"), _G.gram.in_([bindparam(f"g{i}") for i in range(size)]))
            .group_by(_G.key)
            .order_by(shared.desc(), _G.key)
            .limit(FUZZY_CANDIDATES)
            .subquery()
        )
        prepared = _FUZZY.setdefault(
            size,
            Prepared(
                select(MarketCommunity.__table__).where(_C.city == bindparam("city"), _C.key.in_(select(top.c.key)))
            ),
        )
    return prepared


def _bucket(terms: int) -> int:
    return max(8, 1 << (max(terms, 1) - 1).bit_length())


def _padded(terms: list[str]) -> dict[str, str]:
    size = _bucket(len(terms))
    return {f"g{i}": terms[min(i, len(terms) - 1)] for i in range(size)}


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


def _upsert_statement(dialect: str) -> Any:
    """INSERT … ON CONFLICT (listing_id) DO UPDATE, built once per dialect (building it per report was
    ~1 ms of a report's save); `.values(...)` or execute with parameters."""
    statement = _UPSERTS.get(dialect)
    if statement is None:
        table: Table = ListingFingerprint.__table__  # type: ignore[assignment]
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        base = insert(table)
        updated = {c.name: base.excluded[c.name] for c in table.columns if c.name != "listing_id"}
        statement = _UPSERTS[dialect] = base.on_conflict_do_update(index_elements=[table.c.listing_id], set_=updated)
    return statement


_UPSERTS: dict[str, Any] = {}
_PREPARED_UPSERTS: dict[str, Prepared] = {}
_LISTING = Prepared(select(_L.id).where(_L.id == bindparam("id")))


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
