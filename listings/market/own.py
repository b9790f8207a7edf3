"""The Market the authenticity check asks: Presign's own listings and deals, every company.

Answers carry `listing_id`, `same_company` and `store_id` for every row; the check decides what to
show (another company's listing is never named, another store's only as "another store"). Each query
rides an index: listings(unit_id, status), listing_photos(sha256), deals(listing_id).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from listings.models import Listing, ListingPhoto
from risk.db import Prepared, reading
from risk.deals.models import Deal

# A deal that still holds its unit: neither cancelled nor completed.
HOLDING_STATUSES = ("open",)

_L, _P = Listing.__table__.c, ListingPhoto.__table__.c
_OTHER_ACTIVE = Prepared(
    select(_L.id, _L.company, _L.store_id, _L.status, _L.asking_price)
    .where(_L.unit_id == bindparam("unit_id"), _L.status == "active", _L.id != bindparam("listing_id"))
    .order_by(_L.id)
)
_WITH_PHOTO = Prepared(
    select(_L.id, _L.company, _L.store_id, _L.status)
    .join_from(Listing.__table__, ListingPhoto.__table__, _P.listing_id == _L.id)
    .where(_P.sha256 == bindparam("sha256"), _L.id != bindparam("listing_id"))
    .distinct()
    .order_by(_L.id)
)


class SqlMarket:
    """Lookups run as prepared statements on a pooled connection (`risk.db.reading`): a report makes
    several, and a Session per lookup was most of their cost."""

    def __init__(self, sessions: sessionmaker[Session], company: str) -> None:
        self.sessions = sessions
        self.engine = sessions.kw["bind"]
        self.company = company

    def other_active_listings(self, unit_id: str, listing_id: str) -> list[dict[str, Any]]:
        """Active listings of the same unit, any company, except `listing_id`."""
        with reading(self.engine) as db:
            rows = db.all(_OTHER_ACTIVE, {"unit_id": unit_id, "listing_id": listing_id})
        return [
            {
                "listing_id": row.id,
                "same_company": row.company == self.company,
                "store_id": row.store_id,
                "status": row.status,
                "asking_price": f"{row.asking_price:.2f}",
            }
            for row in rows
        ]

    def listings_with_photo(self, sha256: str, listing_id: str) -> list[dict[str, Any]]:
        """Listings of any status and company, except `listing_id`, that carry a photo with this hash."""
        with reading(self.engine) as db:
            rows = db.all(_WITH_PHOTO, {"sha256": sha256, "listing_id": listing_id})
        return [
            {
                "listing_id": row.id,
                "same_company": row.company == self.company,
                "store_id": row.store_id,
                "status": row.status,
            }
            for row in rows
        ]

    def open_deals_on_unit(self, unit_id: str, listing_id: str) -> list[dict[str, Any]]:
        """Deals still holding the unit (neither cancelled nor completed), any company, on its other listings."""
        stmt = (
            select(Deal.id, Deal.listing_id, Deal.company, Deal.store_id, Deal.status)
            .join(Listing, Listing.id == Deal.listing_id)
            .where(Listing.unit_id == unit_id, Deal.listing_id != listing_id, Deal.status.in_(HOLDING_STATUSES))
            .order_by(Deal.id)
        )
        with self.sessions() as session:
            rows = session.execute(stmt).all()
        return [
            {
                "deal_id": row.id,
                "listing_id": row.listing_id,
                "same_company": row.company == self.company,
                "store_id": row.store_id,
                "status": row.status,
            }
            for row in rows
        ]
