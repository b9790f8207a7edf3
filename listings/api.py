"""The listings endpoints: create, list, read, correct or withdraw."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from sqlalchemy import select

from listings import operations
from listings.models import Listing
from listings.schemas import (
    ListingInputSchema,
    ListingPageSchema,
    ListingPatchSchema,
    ListingQuerySchema,
    ListingSchema,
)
from risk.audit.events import Actor, changed_fields, record
from risk.auth import access
from risk.auth.models import ApiClient
from risk.queues import enqueue_deliveries
from risk.runtime import current
from risk.web.boundary import endpoint
from risk.web.pagination import paginate
from risk.web.parsing import Blueprint
from risk.web.transaction import after_commit, db

blp = Blueprint("listings", __name__, url_prefix="/api/v1/listings", description="Listings of the caller's company")

LOCATION = {"Location": {"description": "the listing's URL", "schema": {"type": "string"}}}


@blp.route("")
class Listings(MethodView):
    @endpoint(access.LISTINGS_WRITE, idempotent=True)
    @blp.arguments(ListingInputSchema)
    @blp.alt_response(409, response="CONFLICT", description="`external_id` already used (the error names the listing)")
    @blp.response(201, ListingSchema, headers=LOCATION)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a listing (status `active`)."""
        client = access.current_client()
        access.ensure_store_allowed(client, data.get("store_id") or client.store)
        listing = operations.create_listing(db(), current(), client, data)
        _changed(client, listing, before=None)
        return listing, 201, {"Location": f"/api/v1/listings/{listing.id}"}

    @endpoint(access.LISTINGS_READ)
    @blp.arguments(ListingQuerySchema, location="query")
    @blp.response(200, ListingPageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """List listings, newest first; filter by `community`, `external_id`, `status`."""
        client = access.current_client()
        stmt = access.scoped(select(Listing), client, company=Listing.company, store=Listing.store_id)
        for name in ("community", "external_id", "status"):
            if name in args:
                stmt = stmt.where(getattr(Listing, name) == args[name])
        items, next_cursor = paginate(db(), stmt, Listing.id, args)
        return {"items": items, "next": next_cursor}


@blp.route("/<listing_id>")
class ListingById(MethodView):
    @endpoint(access.LISTINGS_READ)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.response(200, ListingSchema)
    def get(self, listing_id: str) -> Any:
        """Read a listing."""
        return operations.get_visible(db(), access.current_client(), listing_id)

    @endpoint(access.LISTINGS_WRITE)
    @blp.arguments(ListingPatchSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="`external_id` already used, or the listing is sold")
    @blp.response(200, ListingSchema)
    def patch(self, data: dict[str, Any], listing_id: str) -> Any:
        """Withdraw or mark sold (`{"status": ...}`), or correct fields (validated as on creation).

        A change of any field but `status` and `agent_id` adds one to `revision`: reports of an older
        revision are stale for the gate."""
        client = access.current_client()
        listing = operations.get_visible(db(), client, listing_id)
        if "store_id" in data:
            access.ensure_store_allowed(client, data["store_id"])
        return apply_patch(client, listing, data)


def apply_patch(client: ApiClient, listing: Listing, data: dict[str, Any]) -> Listing:
    """A validated PATCH (the API's, the web page's): the listing updated, its `listing.changed` event, and
    the open deals' `gate.changed` deliveries once the caller commits."""
    before = ListingSchema().dump(listing)
    rt = current()
    listing, events = operations.update_listing(db(), rt, listing, data)
    _changed(client, listing, before=before)
    if events:
        after_commit(lambda: enqueue_deliveries(rt, events))
    return listing


def _changed(client: ApiClient, listing: Listing, *, before: dict[str, Any] | None) -> None:
    """The `listing.changed` audit event: every field on creation, the changed ones on a PATCH (the
    seller's ID number masked, as the API shows it); a PATCH that changes nothing records nothing."""
    after = ListingSchema().dump(listing)
    fields = after if before is None else changed_fields(before, after, ignore=("updated_at",))
    if fields:
        record(db(), company=listing.company, type="listing.changed", actor=Actor.of(client),
               subject_kind="listing", subject_id=listing.id,
               data={"action": "created" if before is None else "updated", "fields": fields},
               at=current().clock.now())  # fmt: skip
