"""Deal schemas: input (create, patch, query) and output, with the deal's gate answer per stage."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import marshmallow as ma

from listings.schemas import SellerInputSchema, SellerSchema
from risk.deals.models import DATE_FIELDS, DEAL_STATUSES
from risk.gate.schemas import GateAnswerSchema
from risk.requirements.schemas import RequirementSchema
from risk.web.fields import DecimalAmount, Moment, Text
from risk.web.pagination import PageArgsSchema

MAX_DEPOSIT = Decimal("10000000000.00")
MAX_CO_BUYERS = 10
PATCH_STATUSES = ("cancelled", "completed")


def check_date_order(dates: dict[str, datetime | None]) -> dict[str, list[str]]:
    """Problems with dates that go backwards (deposit → signing → online signing → transfer), by field."""
    problems: dict[str, list[str]] = {}
    previous: tuple[str, datetime] | None = None
    for name in DATE_FIELDS:
        value = dates.get(name)
        if value is None:
            continue
        if previous is not None and value < previous[1]:
            problems[name] = [f"must not be before {previous[0]} ({previous[1].isoformat()})"]
        previous = (name, value)
    return problems


def _webhook_url(**kwargs: Any) -> ma.fields.Field:
    return Text(
        2000,
        validate=ma.validate.URL(schemes={"http", "https"}, require_tld=False),
        metadata={"description": "where report.completed and gate.changed events are POSTed"},
        **kwargs,
    )


def _filing_no(**kwargs: Any) -> ma.fields.Field:
    described = {"description": "the authority's number of the online-signed contract (网签备案号)"}
    return Text(100, metadata=described, **kwargs)


def _co_buyers(**kwargs: Any) -> ma.fields.Field:
    return ma.fields.List(
        ma.fields.Nested(SellerInputSchema),
        validate=ma.validate.Length(max=MAX_CO_BUYERS),
        metadata={"description": "the buyers besides `buyer` named on the contract"},
        **kwargs,
    )


def _moment(**kwargs: Any) -> ma.fields.Field:
    return Moment(**kwargs)


def _shown(**kwargs: Any) -> ma.fields.Field:
    # Out, a date is shown as stored: deals saved before dates were bounded may hold any.
    return ma.fields.AwareDateTime(format="iso", metadata={"description": "ISO 8601 with offset"}, **kwargs)


class DealInputSchema(ma.Schema):
    external_id = Text(100, required=True, metadata={"description": "the contract system's id; unique per company"})
    listing_id = Text(40, required=True)
    buyer = ma.fields.Nested(SellerInputSchema, required=True)
    deposit_amount = DecimalAmount(maximum=MAX_DEPOSIT, required=True, metadata={"description": "yuan"})
    deposit_at = _moment(required=True)
    signing_at = _moment(required=True)
    online_signing_at = _moment(required=True)
    transfer_at = _moment(load_default=None, allow_none=True)
    webhook_url = _webhook_url(load_default=None, allow_none=True)
    filing_no = _filing_no(load_default=None, allow_none=True)
    co_buyers = _co_buyers(load_default=list)

    @ma.validates_schema
    def _dates_in_order(self, data: dict[str, Any], **kwargs: Any) -> None:
        problems = check_date_order(data)
        if problems:
            raise ma.ValidationError(problems)


class DealPatchSchema(ma.Schema):
    """Any deal date, the webhook URL, `filing_no`, `co_buyers`, or `status` (`cancelled`, `completed`)."""

    deposit_at = _moment()
    signing_at = _moment()
    online_signing_at = _moment()
    transfer_at = _moment(allow_none=True)
    webhook_url = _webhook_url(allow_none=True)
    status = ma.fields.String(validate=ma.validate.OneOf(PATCH_STATUSES))
    filing_no = _filing_no(allow_none=True)
    co_buyers = _co_buyers()

    @ma.validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ma.ValidationError("send at least one field to change")


class DealQuerySchema(PageArgsSchema):
    listing_id = Text(40)
    external_id = Text(100)
    status = ma.fields.String(validate=ma.validate.OneOf(DEAL_STATUSES))
    changed_since = ma.fields.AwareDateTime(
        format="iso", metadata={"description": "deals whose data or gate answer changed at or after this time"}
    )


class DealSchema(ma.Schema):
    id = ma.fields.String(required=True)
    external_id = ma.fields.String(required=True)
    listing_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(DEAL_STATUSES))
    buyer = ma.fields.Nested(SellerSchema, required=True)
    co_buyers = ma.fields.List(ma.fields.Nested(SellerSchema), required=True)
    filing_no = ma.fields.String(allow_none=True)
    deposit_amount = DecimalAmount(maximum=MAX_DEPOSIT, required=True)
    deposit_at = _shown(required=True)
    signing_at = _shown(required=True)
    online_signing_at = _shown(required=True)
    transfer_at = _shown(allow_none=True)
    webhook_url = ma.fields.String(
        allow_none=True, metadata={"description": "the contract system's; absent for agent keys"}
    )
    # When the receiver answered 410 Gone; null while enabled (a PATCH of `webhook_url` enables it again).
    webhook_disabled_at = _shown(allow_none=True)
    store_id = ma.fields.String(required=True)
    created_at = _shown(required=True)
    updated_at = _shown(required=True)
    changed_at = _shown(required=True)
    requirements = ma.fields.List(
        ma.fields.Nested(RequirementSchema), metadata={"description": "what must be done before which stage"}
    )
    gate = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Nested(GateAnswerSchema),
        metadata={"description": "the current gate answer per stage (read-only: reading starts no refresh)"},
    )


class DealPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DealSchema), required=True)
    next = ma.fields.String(required=True, allow_none=True)


def deal_body(
    deal: Any, gate: dict[str, dict[str, Any]] | None = None, *, webhook_url: bool = True,
    requirements: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The deal as the API shows it; without `webhook_url` for readers confined to a store (agents)."""
    data = {
        "id": deal.id,
        "external_id": deal.external_id,
        "listing_id": deal.listing_id,
        "status": deal.status,
        "buyer": {"name": deal.buyer_name, "id_type": deal.buyer_id_type, "id_number": deal.buyer_id_masked},
        "co_buyers": [
            {"name": c["name"], "id_type": c["id_type"], "id_number": c["id_masked"]} for c in deal.co_buyers or []
        ],
        "filing_no": deal.filing_no,
        "deposit_amount": deal.deposit_amount,
        "webhook_url": deal.webhook_url,
        "webhook_disabled_at": deal.webhook_disabled_at,
        "store_id": deal.store_id,
        "created_at": deal.created_at,
        "updated_at": deal.updated_at,
        "changed_at": deal.changed_at,
        **{name: getattr(deal, name) for name in DATE_FIELDS},
    }
    if gate is not None:
        data["gate"] = gate
    if requirements is not None:
        data["requirements"] = requirements
    if not webhook_url:
        del data["webhook_url"]
    return DealSchema().dump(data)  # type: ignore[no-any-return]
