"""The Market the authenticity check asks: Presign's own listings (and, later, deals), every company.

Answers carry `listing_id` and `same_company` for every row; the check decides what to show
(another company's listing is never named). Each query rides an index: listings(unit_id, status)
and listing_photos(sha256).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, sessionmaker

from listings.models import Listing, ListingPhoto
from risk.db import Prepared, reading

_L, _P = Listing.__table__.c, ListingPhoto.__table__.c
_OTHER_ACTIVE = Prepared(
    select(_L.id, _L.company, _L.status, _L.asking_price)
    .where(_L.unit_id == bindparam("unit_id"), _L.status == "active", _L.id != bindparam("listing_id"))
    .order_by(_L.id)
)
_WITH_PHOTO = Prepared(
    select(_L.id, _L.company, _L.status)
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
            {"listing_id": row.id, "same_company": row.company == self.company, "status": row.status} for row in rows
        ]

    def open_deals_on_unit(self, unit_id: str, listing_id: str) -> list[dict[str, Any]]:
        """Open deals on the unit that are not this listing's."""
        # No deals table yet: the deals issue queries it here (deals joined to listings by unit_id).
        return []
