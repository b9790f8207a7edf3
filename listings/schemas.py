"""Listing schemas: what the API accepts (input, patch, query) and what it shows (output).

Money and areas come in as a JSON number or a decimal string with at most two places and go out as
decimal strings with exactly two places (`"6265000.00"`, `"89.50"`). The seller's ID number is
validated on the way in (GB 11643 for resident IDs) and only ever shown masked.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import marshmallow as ma

from listings.models import LISTING_STATUSES, Listing
from risk.clock import shanghai_date
from risk.identity import ID_TYPES, InvalidIdNumber, normalise
from risk.runtime import current
from risk.web.fields import DecimalAmount, Text
from risk.web.pagination import PageArgsSchema

MAX_PRICE = Decimal("10000000000.00")  # ten billion yuan: more is a typo, not a flat
MAX_AREA = Decimal("10000.00")
MIN_FLOOR, MAX_FLOOR = -5, 200
MIN_BUILD_YEAR = 1900
MAX_PHOTOS = 50
PATCH_STATUSES = ("withdrawn", "sold")


# -- input ----------------------------------------------------------------------------------------


class SellerInputSchema(ma.Schema):
    name = Text(200, required=True)
    id_number = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=40),
        metadata={"description": "resident IDs: 18 characters, GB 11643 check digit, `x` read as `X`"},
    )
    id_type = ma.fields.String(load_default="resident_id", validate=ma.validate.OneOf(ID_TYPES))

    @ma.validates_schema
    def _check_id_number(self, data: dict[str, Any], **kwargs: Any) -> None:
        try:
            normalise(data["id_type"], data["id_number"])
        except InvalidIdNumber as exc:
            raise ma.ValidationError(str(exc), "id_number") from None

    @ma.post_load
    def _canonical(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data["id_number"] = normalise(data["id_type"], data["id_number"])
        return data


class PhotoInputSchema(ma.Schema):
    url = Text(2000, required=True, validate=ma.validate.URL(schemes={"http", "https"}, require_tld=False))
    sha256 = ma.fields.String(
        required=True, validate=ma.validate.Regexp(r"^[0-9a-fA-F]{64}\Z", error="must be 64 hexadecimal characters")
    )

    @ma.post_load
    def _lower(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data["sha256"] = data["sha256"].lower()
        return data


def _price(**kwargs: Any) -> DecimalAmount:
    return DecimalAmount(maximum=MAX_PRICE, metadata={"description": "yuan, total; number or decimal string"}, **kwargs)


class ListingInputSchema(ma.Schema):
    """A new listing. `store_id` defaults to the caller's store; agents may only name their own."""

    external_id = Text(100, required=True, metadata={"description": "the brokerage's id; unique per company"})
    unit_id = Text(100, required=True, metadata={"description": "the building dictionary's unit"})
    city = Text(50, required=True, metadata={"description": "Chinese city name, e.g. 北京"})
    community = Text(200, required=True)
    building = Text(50, required=True)
    unit = Text(50, required=True)
    room = Text(50, required=True)
    floor = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(MIN_FLOOR, MAX_FLOOR))
    area_m2 = DecimalAmount(
        maximum=MAX_AREA, required=True, metadata={"description": "m²; number or decimal string", "example": "89.50"}
    )
    layout = Text(50, required=True, metadata={"example": "2室1厅"})
    orientation = Text(50, required=True, metadata={"example": "南北"})
    build_year = ma.fields.Integer(
        required=True,
        strict=True,
        validate=ma.validate.Range(min=MIN_BUILD_YEAR),
        metadata={"description": "from 1900 to next year"},
    )
    asking_price = _price(required=True)
    entrusted_price = _price(load_default=None, allow_none=True)
    verification_code = Text(
        64, load_default=None, allow_none=True, metadata={"description": "the housing authority's 房源核验编号"}
    )
    seller = ma.fields.Nested(SellerInputSchema, required=True)
    photos = ma.fields.List(
        ma.fields.Nested(PhotoInputSchema), load_default=list, validate=ma.validate.Length(max=MAX_PHOTOS)
    )
    store_id = Text(100, load_default=None, allow_none=True)
    agent_id = Text(100, load_default=None, allow_none=True)

    @ma.validates("build_year")
    def _check_build_year(self, value: int, **kwargs: Any) -> None:
        latest = shanghai_date(current().clock.now()).year + 1
        if value > latest:
            raise ma.ValidationError(f"must be at most {latest}")


class ListingPatchSchema(ListingInputSchema):
    """`{"status": "withdrawn" | "sold"}` and/or corrected fields, each validated as on creation.

    `seller` and `photos` are replaced whole; `entrusted_price`, `verification_code` and `agent_id` may be
    set to null."""

    status = ma.fields.String(validate=ma.validate.OneOf(PATCH_STATUSES))
    store_id = Text(100)

    def __init__(self, **kwargs: Any) -> None:
        # Every top-level field is optional and nothing is defaulted; a given `seller` is still whole.
        kwargs.setdefault("partial", tuple(ListingInputSchema._declared_fields))
        super().__init__(**kwargs)

    @ma.validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError("send at least one field to change")


class ListingQuerySchema(PageArgsSchema):
    community = Text(200)
    external_id = Text(100)
    status = ma.fields.String(validate=ma.validate.OneOf(LISTING_STATUSES))


# -- output ---------------------------------------------------------------------------------------


class SellerSchema(ma.Schema):
    name = ma.fields.String(required=True)
    id_type = ma.fields.String(required=True)
    id_number = ma.fields.String(
        required=True, metadata={"description": "masked: `110105********123X`, other types keep their last 4"}
    )


class PhotoSchema(ma.Schema):
    url = ma.fields.String(required=True)
    sha256 = ma.fields.String(required=True)


class ListingSchema(ma.Schema):
    id = ma.fields.String(required=True)
    external_id = ma.fields.String(required=True)
    unit_id = ma.fields.String(required=True)
    city = ma.fields.String(required=True)
    community = ma.fields.String(required=True)
    building = ma.fields.String(required=True)
    unit = ma.fields.String(required=True)
    room = ma.fields.String(required=True)
    floor = ma.fields.Integer(required=True)
    area_m2 = DecimalAmount(maximum=MAX_AREA, required=True, metadata={"description": "m², two decimals"})
    layout = ma.fields.String(required=True)
    orientation = ma.fields.String(required=True)
    build_year = ma.fields.Integer(required=True)
    asking_price = DecimalAmount(maximum=MAX_PRICE, required=True)
    entrusted_price = DecimalAmount(maximum=MAX_PRICE, allow_none=True)
    verification_code = ma.fields.String(allow_none=True)
    seller = ma.fields.Nested(SellerSchema, required=True)
    photos = ma.fields.List(ma.fields.Nested(PhotoSchema), required=True)
    store_id = ma.fields.String(required=True)
    agent_id = ma.fields.String(allow_none=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(LISTING_STATUSES))
    revision = ma.fields.Integer(
        required=True,
        metadata={"description": "1 on create; a PATCH that changes any field but `status` and `agent_id` adds 1"},
    )
    created_at = ma.fields.AwareDateTime(required=True, format="iso")
    updated_at = ma.fields.AwareDateTime(required=True, format="iso")

    @ma.pre_dump
    def _from_model(self, listing: Listing, **kwargs: Any) -> dict[str, Any]:
        return {
            "id": listing.id,
            "external_id": listing.external_id,
            "unit_id": listing.unit_id,
            "city": listing.city,
            "community": listing.community,
            "building": listing.building,
            "unit": listing.unit,
            "room": listing.room,
            "floor": listing.floor,
            "area_m2": listing.area_m2,
            "layout": listing.layout,
            "orientation": listing.orientation,
            "build_year": listing.build_year,
            "asking_price": listing.asking_price,
            "entrusted_price": listing.entrusted_price,
            "verification_code": listing.verification_code,
            "seller": {
                "name": listing.seller_name,
                "id_type": listing.seller_id_type,
                "id_number": listing.seller_id_masked,
            },
            "photos": [{"url": p.url, "sha256": p.sha256} for p in listing.photos],
            "store_id": listing.store_id,
            "agent_id": listing.agent_id,
            "status": listing.status,
            "revision": listing.revision,
            "created_at": listing.created_at,
            "updated_at": listing.updated_at,
        }


class ListingPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ListingSchema), required=True)
    next = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "opaque cursor for the next page; null on the last"}
    )
