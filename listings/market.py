"""The Market the authenticity check asks: Presign's own listings (and, later, deals), every company.

Answers carry `listing_id` and `same_company` for every row; the check decides what to show
(another company's listing is never named). Each query rides an index: listings(unit_id, status)
and listing_photos(sha256).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listings.models import Listing, ListingPhoto


class SqlMarket:
    def __init__(self, sessions: sessionmaker[Session], company: str) -> None:
        self.sessions = sessions
        self.company = company

    def other_active_listings(self, unit_id: str, listing_id: str) -> list[dict[str, Any]]:
        """Active listings of the same unit, any company, except `listing_id`."""
        query = (
            select(Listing.id, Listing.company, Listing.status, Listing.asking_price)
            .where(Listing.unit_id == unit_id, Listing.status == "active", Listing.id != listing_id)
            .order_by(Listing.id)
        )
        with self.sessions() as session:
            rows = session.execute(query).all()
        return [
            {
                "listing_id": row.id,
                "same_company": row.company == self.company,
                "status": row.status,
                "asking_price": f"{row.asking_price:.2f}",
            }
            for row in rows
        ]

    def listings_with_photo(self, sha256: str, listing_id: str) -> list[dict[str, Any]]:
        """Listings of any status and company, except `listing_id`, that carry a photo with this hash."""
        query = (
            select(Listing.id, Listing.company, Listing.status)
            .join(ListingPhoto, ListingPhoto.listing_id == Listing.id)
            .where(ListingPhoto.sha256 == sha256, Listing.id != listing_id)
            .distinct()
            .order_by(Listing.id)
        )
        with self.sessions() as session:
            rows = session.execute(query).all()
        return [
            {"listing_id": row.id, "same_company": row.company == self.company, "status": row.status} for row in rows
        ]

    def open_deals_on_unit(self, unit_id: str, listing_id: str) -> list[dict[str, Any]]:
        """Open deals on the unit that are not this listing's."""
        # No deals table yet: the deals issue queries it here (deals joined to listings by unit_id).
        return []
