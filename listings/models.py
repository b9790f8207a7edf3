from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from risk.db import Base, UTCDateTime

LISTING_STATUSES = ("active", "withdrawn", "sold")


class Listing(Base):
    __tablename__ = "listings"
    __table_args__ = (
        UniqueConstraint("company", "external_id", name="uq_listings_company_external_id"),
        Index("ix_listings_unit_status", "unit_id", "status"),
        Index("ix_listings_company_community", "company", "community"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    company: Mapped[str] = mapped_column(String(100))
    store_id: Mapped[str] = mapped_column(String(100))
    agent_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_by: Mapped[str] = mapped_column(String(40))
    external_id: Mapped[str] = mapped_column(String(100))
    unit_id: Mapped[str] = mapped_column(String(100))
    city: Mapped[str] = mapped_column(String(50))
    community: Mapped[str] = mapped_column(String(200))
    building: Mapped[str] = mapped_column(String(50))
    unit: Mapped[str] = mapped_column(String(50))
    room: Mapped[str] = mapped_column(String(50))
    floor: Mapped[int] = mapped_column(Integer)
    area_m2: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    layout: Mapped[str] = mapped_column(String(50))
    orientation: Mapped[str] = mapped_column(String(50))
    build_year: Mapped[int] = mapped_column(Integer)
    asking_price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    entrusted_price: Mapped[Decimal | None] = mapped_column(Numeric(14, 2), nullable=True)
    # The housing authority's listing verification code (房源核验编号), read by the authenticity check.
    verification_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seller_name: Mapped[str] = mapped_column(String(200))
    seller_id_type: Mapped[str] = mapped_column(String(32))
    # Never the ID number itself: a keyed hash to compare with, and the masked form to show.
    seller_id_hash: Mapped[str] = mapped_column(String(64))
    seller_id_masked: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="active")
    # 1 on create, one more for each PATCH that changes what a report checks (not status or agent):
    # a report of an older revision is never fresh.
    revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    photos: Mapped[list[ListingPhoto]] = relationship(
        back_populates="listing", cascade="all, delete-orphan", order_by="ListingPhoto.position"
    )

    def snapshot(self) -> dict[str, Any]:
        """The listing as checks see it: JSON-safe, money and areas as strings, ID number hashed."""
        return {
            "listing_id": self.id,
            "external_id": self.external_id,
            "company": self.company,
            "store_id": self.store_id,
            "agent_id": self.agent_id,
            "status": self.status,
            "unit_id": self.unit_id,
            "city": self.city,
            "community": self.community,
            "building": self.building,
            "unit": self.unit,
            "room": self.room,
            "floor": self.floor,
            "area_m2": f"{self.area_m2:.2f}",
            "layout": self.layout,
            "orientation": self.orientation,
            "build_year": self.build_year,
            "asking_price": f"{self.asking_price:.2f}",
            "entrusted_price": None if self.entrusted_price is None else f"{self.entrusted_price:.2f}",
            "verification_code": self.verification_code,
            "seller": {
                "name": self.seller_name,
                "id_type": self.seller_id_type,
                "id_hash": self.seller_id_hash,
                "id_masked": self.seller_id_masked,
            },
            "photos": [{"url": p.url, "sha256": p.sha256} for p in self.photos],
        }


class ListingPhoto(Base):
    __tablename__ = "listing_photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    listing_id: Mapped[str] = mapped_column(ForeignKey("listings.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    url: Mapped[str] = mapped_column(String(2000))
    sha256: Mapped[str] = mapped_column(String(64), index=True)

    listing: Mapped[Listing] = relationship(back_populates="photos")
