"""Presign's own market data: imported export rows, the community profiles and price statistics built
from them, the fuzzy-name index, and the attribute fingerprints of Presign's listings.

Every lookup the authenticity check makes rides an index: communities by (city, key), name bigrams by
(city, gram), areas by (city, level, district, name), fingerprints by (city, community_key, rooms).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from risk.db import Base, UTCDateTime


class MarketSource(Base):
    """One imported export file: re-importing it replaces its rows."""

    __tablename__ = "market_sources"
    __table_args__ = (UniqueConstraint("city", "name", name="uq_market_sources_city_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    city: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    rows: Mapped[int] = mapped_column(Integer)
    first_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    last_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MarketObservation(Base):
    """One usable row of an export: a listing, a deal, or a community's reference price."""

    __tablename__ = "market_observations"
    __table_args__ = (Index("ix_market_observations_city_community", "city", "community_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source_id: Mapped[int] = mapped_column(ForeignKey("market_sources.id", ondelete="CASCADE"), index=True)
    city: Mapped[str] = mapped_column(String(50))
    kind: Mapped[str] = mapped_column(String(20))
    line: Mapped[int] = mapped_column(Integer)
    external_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    district: Mapped[str | None] = mapped_column(String(50), nullable=True)
    bizcircle: Mapped[str | None] = mapped_column(String(50), nullable=True)
    community: Mapped[str] = mapped_column(String(200))
    community_key: Mapped[str] = mapped_column(String(200))
    rooms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    halls: Mapped[int | None] = mapped_column(Integer, nullable=True)
    room_type: Mapped[bool] = mapped_column(Boolean, default=False)
    area_m2: Mapped[float | None] = mapped_column(Float, nullable=True)
    orientation: Mapped[str | None] = mapped_column(String(20), nullable=True)
    floor_level: Mapped[str | None] = mapped_column(String(20), nullable=True)
    total_floors: Mapped[int | None] = mapped_column(Integer, nullable=True)
    build_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    unit_price: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_price: Mapped[float | None] = mapped_column(Float, nullable=True)
    observed_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    samples: Mapped[int] = mapped_column(Integer, default=1)


class MarketCommunity(Base):
    """A community's profile (layouts, areas, floors, build years) and price statistics, per city."""

    __tablename__ = "market_communities"
    __table_args__ = (UniqueConstraint("city", "key", name="uq_market_communities_city_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    city: Mapped[str] = mapped_column(String(50))
    key: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))  # the spelling seen most often
    district: Mapped[str | None] = mapped_column(String(50), nullable=True)
    bizcircle: Mapped[str | None] = mapped_column(String(50), nullable=True)
    homes: Mapped[int] = mapped_column(Integer)  # listing and deal rows behind the profile
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    # {"home": stats, "room": stats, "reference": {...}}: see listings.profiles.price_stats.
    prices: Mapped[dict[str, Any]] = mapped_column(JSON)
    built_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MarketCommunityGram(Base):
    """The fuzzy-name index: one row per character bigram of a community key."""

    __tablename__ = "market_community_grams"
    __table_args__ = (Index("ix_market_community_grams_city_gram", "city", "gram"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    city: Mapped[str] = mapped_column(String(50))
    gram: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(200))


class MarketArea(Base):
    """Price statistics of a bizcircle (商圈) or a district: the fallback for thinly traded communities."""

    __tablename__ = "market_areas"
    __table_args__ = (
        UniqueConstraint("city", "level", "district", "name", name="uq_market_areas_city_level_district_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    city: Mapped[str] = mapped_column(String(50))
    level: Mapped[str] = mapped_column(String(20))  # bizcircle, district, or city (the whole city's homes)
    district: Mapped[str] = mapped_column(String(50))  # district key (东城, not 东城区)
    name: Mapped[str] = mapped_column(String(50))
    prices: Mapped[dict[str, Any]] = mapped_column(JSON)
    # What homes around here are like (high percentiles of floors, rooms, area): the yardstick for the
    # units of communities whose own profile is too thin. See listings.profiles.area_profile.
    profile: Mapped[dict[str, Any]] = mapped_column(JSON)
    built_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ListingFingerprint(Base):
    """A Presign listing's unit in comparable form, written when the listing is checked, so that a
    re-posted unit is found whatever its unit_id and however its text is written."""

    __tablename__ = "listing_fingerprints"
    __table_args__ = (Index("ix_listing_fingerprints_lookup", "city", "community_key", "rooms"),)

    listing_id: Mapped[str] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), primary_key=True)
    city: Mapped[str] = mapped_column(String(50))
    community_key: Mapped[str] = mapped_column(String(200))
    rooms: Mapped[int] = mapped_column(Integer)
    halls: Mapped[int | None] = mapped_column(Integer, nullable=True)
    room_type: Mapped[bool] = mapped_column(Boolean, default=False)
    area_m2: Mapped[float] = mapped_column(Float)
    floor: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_floors: Mapped[int | None] = mapped_column(Integer, nullable=True)
    orientation: Mapped[str | None] = mapped_column(String(20), nullable=True)
    building: Mapped[str] = mapped_column(String(50), default="")  # digits only, '' when not given
    room: Mapped[str] = mapped_column(String(50), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
