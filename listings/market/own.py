"""The Market the authenticity check asks: Presign's own listings and deals, every company.

Answers carry `listing_id`, `same_company` and `store_id` for every row; the check decides what to
show (another company's listing is never named, another store's only as "another store"). Each query
rides an index: listings(unit_id, status), listing_photos(sha256), deals(listing_id).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from listings.models import Listing, ListingPhoto
from risk.deals.models import Deal

# A deal that still holds its unit: neither cancelled nor completed.
HOLDING_STATUSES = ("open",)


class SqlMarket:
    """Each lookup one indexed `select()` in a short session."""

    def __init__(self, sessions: sessionmaker[Session], company: str) -> None:
        self.sessions = sessions
        self.company = company

    def other_active_listings(self, unit_id: str, listing_id: str) -> list[dict[str, Any]]:
        """Active listings of the same unit, any company, except `listing_id`."""
        stmt = (
            select(Listing.id, Listing.company, Listing.store_id, Listing.status, Listing.asking_price)
            .where(Listing.unit_id == unit_id, Listing.status == "active", Listing.id != listing_id)
            .order_by(Listing.id)
        )
        return [{**shown, "asking_price": f"{row.asking_price:.2f}"} for row, shown in self._listings(stmt)]

    def listings_with_photo(self, sha256: str, listing_id: str) -> list[dict[str, Any]]:
        """Listings of any status and company, except `listing_id`, that carry a photo with this hash."""
        stmt = (
            select(Listing.id, Listing.company, Listing.store_id, Listing.status)
            .join(ListingPhoto, ListingPhoto.listing_id == Listing.id)
            .where(ListingPhoto.sha256 == sha256, Listing.id != listing_id)
            .distinct()
            .order_by(Listing.id)
        )
        return [shown for _row, shown in self._listings(stmt)]

    def _listings(self, stmt: Any) -> list[tuple[Any, dict[str, Any]]]:
        """Each listing row, and what every answer shows of it."""
        with self.sessions() as session:
            rows = session.execute(stmt).all()
        shown = ({"listing_id": r.id, "same_company": r.company == self.company, "store_id": r.store_id,
                  "status": r.status} for r in rows)  # fmt: skip
        return list(zip(rows, shown, strict=True))

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
