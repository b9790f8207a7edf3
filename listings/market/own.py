"""The Market the authenticity check asks: Presign's own listings and deals, every company.

Answers carry `listing_id`, `same_company` and `store_id` for every row; the check decides what to
show (another company's listing is never named, another store's only as "another store"). Each query
rides an index: listings(unit_id, status), listing_photos(sha256), deals(listing_id).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from sqlalchemy import Engine, Table, bindparam, select

from listings.models import Listing, ListingPhoto
from risk.db import each_statement
from risk.deals.models import Deal

# A deal that still holds its unit: neither cancelled nor completed.
HOLDING_STATUSES = ("open",)

# Core statements built once: a report asks each of them, and building one costs more than running it.
_L, _P, _D = (cast(Table, m.__table__) for m in (Listing, ListingPhoto, Deal))
_OTHER_ACTIVE = (
    select(_L.c.id, _L.c.company, _L.c.store_id, _L.c.status, _L.c.asking_price)
    .where(_L.c.unit_id == bindparam("unit_id"), _L.c.status == "active", _L.c.id != bindparam("listing_id"))
    .order_by(_L.c.id)
)
_WITH_PHOTOS = (
    select(_P.c.sha256, _L.c.id, _L.c.company, _L.c.store_id, _L.c.status)
    .join(_P, _P.c.listing_id == _L.c.id)
    .where(_P.c.sha256.in_(bindparam("sha256s", expanding=True)), _L.c.id != bindparam("listing_id"))
    .distinct()
    .order_by(_P.c.sha256, _L.c.id)
)
_OPEN_DEALS = (
    select(_D.c.id, _D.c.listing_id, _D.c.company, _D.c.store_id, _D.c.status)
    .join(_L, _L.c.id == _D.c.listing_id)
    .where(_L.c.unit_id == bindparam("unit_id"), _D.c.listing_id != bindparam("listing_id"),
           _D.c.status.in_(HOLDING_STATUSES))
    .order_by(_D.c.id)
)  # fmt: skip


class SqlMarket:
    """Each lookup one indexed statement, read outside a transaction (`risk.db.each_statement`)."""

    def __init__(self, engine: Engine, company: str) -> None:
        self.engine = engine
        self.company = company

    def other_active_listings(self, unit_id: str, listing_id: str) -> list[dict[str, Any]]:
        """Active listings of the same unit, any company, except `listing_id`."""
        rows = self._listings(_OTHER_ACTIVE, unit_id=unit_id, listing_id=listing_id)
        return [{**shown, "asking_price": f"{row.asking_price:.2f}"} for row, shown in rows]

    def listings_with_photos(self, sha256s: Collection[str], listing_id: str) -> dict[str, list[dict[str, Any]]]:
        """Per photo hash, the listings of any status and company, except `listing_id`, that carry a photo
        with it; a hash no other listing carries is left out. One statement for all of a listing's photos."""
        found: dict[str, list[dict[str, Any]]] = {}
        if sha256s:
            for row, shown in self._listings(_WITH_PHOTOS, sha256s=sorted(set(sha256s)), listing_id=listing_id):
                found.setdefault(row.sha256, []).append(shown)
        return found

    def _listings(self, stmt: Any, **params: Any) -> list[tuple[Any, dict[str, Any]]]:
        """Each listing row, and what every answer shows of it."""
        with each_statement(self.engine) as db:
            rows = db.execute(stmt, params).all()
        shown = ({"listing_id": r.id, "same_company": r.company == self.company, "store_id": r.store_id,
                  "status": r.status} for r in rows)  # fmt: skip
        return list(zip(rows, shown, strict=True))

    def open_deals_on_unit(self, unit_id: str, listing_id: str) -> list[dict[str, Any]]:
        """Deals still holding the unit (neither cancelled nor completed), any company, on its other listings."""
        with each_statement(self.engine) as db:
            rows = db.execute(_OPEN_DEALS, {"unit_id": unit_id, "listing_id": listing_id}).all()
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
