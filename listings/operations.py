"""State changes of listings. Services flush; the request boundary commits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from listings.models import Listing, ListingPhoto
from risk.auth.access import ensure_visible
from risk.db import new_id
from risk.deals.events import gate_changes
from risk.deals.models import Deal
from risk.errors import Conflict, ExternalIdUsed, NotFound
from risk.identity import protect_party
from risk.web.ids import looks_like_id

if TYPE_CHECKING:
    from risk.auth.models import ApiClient
    from risk.runtime import Runtime

# Plain columns a PATCH may correct; seller and photos are handled on their own.
_CORRECTABLE = (
    "external_id",
    "unit_id",
    "city",
    "community",
    "building",
    "unit",
    "room",
    "floor",
    "area_m2",
    "layout",
    "orientation",
    "build_year",
    "asking_price",
    "entrusted_price",
    "verification_code",
    "store_id",
    "agent_id",
)
# What a PATCH may change without a new revision: neither is anything a report checks.
_NOT_REVISED = ("status", "agent_id")
# Status changes a PATCH may make: a sold listing is final.
_TRANSITIONS = {
    "active": {"active", "withdrawn", "sold"},
    "withdrawn": {"withdrawn", "sold"},
    "sold": {"sold"},
}


def get_visible(session: Session, client: ApiClient, listing_id: str) -> Listing:
    """The listing if the client may see it; 404 otherwise (another company's, or another store's for agents)."""
    # With its photos in the same statement: every caller shows or snapshots them (a lazy load is a second).
    listing = (
        session.get(Listing, listing_id, options=[joinedload(Listing.photos)]) if looks_like_id(listing_id) else None
    )
    if listing is None:
        raise NotFound("no such listing")
    ensure_visible(client, company=listing.company, store=listing.store_id, what="listing")
    return listing


def create_listing(session: Session, rt: Runtime, client: ApiClient, data: dict[str, Any]) -> Listing:
    """Add an active listing for the client's company from validated input; 409 on a used external_id."""
    now = rt.clock.now()
    listing = Listing(
        id=new_id("lst"),
        company=client.company,
        store_id=data.get("store_id") or client.store,
        agent_id=data.get("agent_id"),
        created_by=client.id,
        status="active",
        revision=1,
        created_at=now,
        updated_at=now,
        photos=_photos(data.get("photos") or []),
        **{name: data[name] for name in _CORRECTABLE if name not in ("store_id", "agent_id")},
        **_seller_columns(rt, data["seller"]),
    )
    _refuse_used_external_id(session, listing)
    _flush_unique(session, listing, add=True)
    return listing


def update_listing(
    session: Session, rt: Runtime, listing: Listing, data: dict[str, Any]
) -> tuple[Listing, list[str]]:
    """Apply a validated PATCH: a status change and/or corrected fields. A change of what a report
    checks adds one to the revision and tells the listing's open deals whose gate that changes
    (`gate.changed`). Returns the listing and the ids of the webhook events written, to deliver after
    commit."""
    status = data.get("status", listing.status)
    if status not in _TRANSITIONS[listing.status]:
        raise Conflict(
            f"a {listing.status} listing cannot become {status}", fields={"status": [f"is {listing.status}"]}
        )
    corrections = {name: value for name, value in data.items() if name != "status"}
    if corrections and listing.status == "sold":
        raise Conflict("a sold listing cannot be changed", fields={"status": ["is sold"]})
    external_id_changed = "external_id" in corrections and corrections["external_id"] != listing.external_id
    checked = _checked(listing)
    for name in _CORRECTABLE:
        if name in corrections:
            setattr(listing, name, corrections[name])
    if "seller" in corrections:
        for column, value in _seller_columns(rt, corrections["seller"]).items():
            setattr(listing, column, value)
    if "photos" in corrections:
        listing.photos = _photos(corrections["photos"])
    listing.status = status
    listing.updated_at = rt.clock.now()
    revised = _checked(listing) != checked
    if revised:
        listing.revision += 1
    if external_id_changed:
        _refuse_used_external_id(session, listing)
    _flush_unique(session, listing, add=False)
    if not revised:
        return listing, []
    open_deals = select(Deal.id).where(Deal.listing_id == listing.id, Deal.status == "open").order_by(Deal.id)
    deal_ids = session.scalars(open_deals).all()
    return listing, [event for deal_id in deal_ids for event in gate_changes(session, rt, deal_id)]


def _checked(listing: Listing) -> dict[str, Any]:
    """The listing as reports check it (its snapshot: the seller's ID number by its keyed hash, money
    and areas as two-place strings), less what a PATCH may change without a new revision."""
    return {name: value for name, value in listing.snapshot().items() if name not in _NOT_REVISED}


def _seller_columns(rt: Runtime, seller: dict[str, Any]) -> dict[str, str]:
    return {f"seller_{name}": value for name, value in protect_party(rt.id_hash, seller).items()}


def _photos(photos: list[dict[str, str]]) -> list[ListingPhoto]:
    return [ListingPhoto(position=i, url=p["url"], sha256=p["sha256"]) for i, p in enumerate(photos)]


def _used_by(session: Session, company: str, external_id: str, listing_id: str) -> tuple[str, str] | None:
    """The id and store of the company's other listing with this external_id."""
    row = session.execute(
        select(Listing.id, Listing.store_id).where(
            Listing.company == company, Listing.external_id == external_id, Listing.id != listing_id
        )
    ).first()
    return None if row is None else (row.id, row.store_id)


def _external_id_conflict(existing: tuple[str, str]) -> ExternalIdUsed:
    return ExternalIdUsed("listing", *existing)


def _refuse_used_external_id(session: Session, listing: Listing) -> None:
    with session.no_autoflush:
        existing = _used_by(session, listing.company, listing.external_id, listing.id)
    if existing is not None:
        raise _external_id_conflict(existing)


def _flush_unique(session: Session, listing: Listing, *, add: bool) -> None:
    """Flush in a savepoint: the unique constraint, not the pre-check, decides a race on external_id."""
    # Read before the savepoint: rolling it back expires the listing's pending changes.
    key = (listing.company, listing.external_id, listing.id)
    try:
        with session.begin_nested():
            if add:
                session.add(listing)
            session.flush()
    except IntegrityError:
        existing = _used_by(session, *key)
        if existing is None:
            raise
        raise _external_id_conflict(existing) from None
