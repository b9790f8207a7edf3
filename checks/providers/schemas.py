"""The record shapes of PROVIDERS.md, one schema per record kind.

Loading validates a provider's answer (or an imported line) and returns a JSON-safe dict, the one
form that is stored locally and handed to the checks by both adapters:

- instants (`as_of`, `*_at`) become UTC ISO 8601 strings (`2026-11-20T02:00:00+00:00`); a bare date
  is read as midnight in Asia/Shanghai; a time without an offset is refused;
- calendar dates (`period_from`, `period_to`, `paid_through`) stay `YYYY-MM-DD`;
- money (`*_price`, `amount*`) becomes a decimal string with two places (`"62350.50"`);
- areas are numbers (float), counts and floors ints;
- every field of the shape is present in the result: optional ones are None when absent.

Unknown fields are ignored. Lists the checks judge by (`owners`, `encumbrances`, `items`,
`inspections`) are required: a provider that leaves one out is broken, and reading that as
"nothing on record" would turn a failure into a clean finding.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validates_schema
from marshmallow.validate import Length, OneOf, Range

from risk.clock import SHANGHAI

ENCUMBRANCE_TYPES = (
    "seizure",
    "seizure_renewal",
    "pre_seizure",
    "queued_seizure",
    "mortgage",
    "objection",
    "advance_registration",
    "residence_right",
    "lease",
    "easement",
)
ENCUMBRANCE_STATUSES = ("active", "released")
FEE_CATEGORIES = ("property", "heating", "water", "electricity", "gas", "parking", "other")
INSPECTION_RESULTS = ("no_leak", "suspected", "leaking")
VERIFICATION_STATUSES = ("valid", "revoked", "expired")
FILING_STATUSES = ("filed", "revoked", "completed")

_CENT = Decimal("0.01")
_MONEY_MAX = Decimal("1e13")


class Text(fields.String):
    """A non-blank string, trimmed."""

    def __init__(self, *, max_length: int = 200, **kwargs: Any) -> None:
        super().__init__(validate=Length(min=1, max=max_length), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        return text.strip()


class Identifier(Text):
    """An identifier that providers may send as a string or an integer; always a string here."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=100, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return super()._deserialize(value, attr, data, **kwargs)


class Money(fields.Field):
    """Yuan, in as a number or a decimal string, out as a string with two places."""

    default_error_messages = {
        "invalid": "Not a valid amount of money.",
        "places": "Money has at most two decimal places.",
        "negative": "Must not be negative.",
        "range": "Amount is out of range.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise self.make_error("invalid")
        try:
            # str() first: a float such as 0.07 reads as Decimal("0.07"), not its binary expansion.
            amount = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise self.make_error("invalid") from exc
        if not amount.is_finite():
            raise self.make_error("invalid")
        if amount != amount.quantize(_CENT):
            raise self.make_error("places")
        if amount < 0:
            raise self.make_error("negative")
        if amount >= _MONEY_MAX:
            raise self.make_error("range")
        return str(amount.quantize(_CENT))


class Area(fields.Float):
    """Square metres, a positive finite number."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_nan=False, validate=Range(min=0, min_inclusive=False, max=1e6), **kwargs)


class Instant(fields.Field):
    """An ISO 8601 time with an offset (or a bare date, read as Shanghai midnight), out as UTC ISO text."""

    default_error_messages = {
        "invalid": "Not a valid ISO 8601 date or time.",
        "naive": "A time needs a UTC offset (e.g. 2026-11-20T10:00:00+08:00).",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        text = value.strip()
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                return datetime.combine(day, time(0), SHANGHAI).astimezone(UTC).isoformat()
            moment = datetime.fromisoformat(text)
        except ValueError as exc:
            raise self.make_error("invalid") from exc
        if moment.tzinfo is None:
            raise self.make_error("naive")
        return moment.astimezone(UTC).isoformat()


class Day(fields.Field):
    """A calendar date `YYYY-MM-DD`, kept as that text."""

    default_error_messages = {"invalid": "Not a valid date (YYYY-MM-DD)."}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        text = value.strip()
        try:
            if len(text) != 10:
                raise ValueError(text)
            return date.fromisoformat(text).isoformat()
        except ValueError as exc:
            raise self.make_error("invalid") from exc


# Optional fields: may be absent or null, and are None in the result when they are.
OPTIONAL: dict[str, Any] = {"load_default": None, "allow_none": True}


class _Record(Schema):
    class Meta:
        unknown = EXCLUDE

    as_of = Instant(required=True)


class UnitSchema(_Record):
    """`GET /units/{unit_id}`: one unit of the building dictionary (楼盘字典)."""

    unit_id = Identifier(required=True)
    city = Text(required=True, max_length=50)
    district = Text(max_length=50, **OPTIONAL)
    community_id = Identifier(required=True)
    community = Text(required=True)
    building = Text(required=True, max_length=50)
    unit = Text(max_length=50, **OPTIONAL)
    room = Text(required=True, max_length=50)
    floor = fields.Integer(required=True, strict=True, validate=Range(min=-10, max=300))
    total_floors = fields.Integer(strict=True, validate=Range(min=1, max=300), **OPTIONAL)
    area_m2 = Area(required=True)
    layout = Text(max_length=50, **OPTIONAL)
    orientation = Text(max_length=50, **OPTIONAL)
    build_year = fields.Integer(strict=True, validate=Range(min=1800, max=2100), **OPTIONAL)
    use = Text(max_length=50, **OPTIONAL)


class CommunityPricesSchema(_Record):
    """`GET /communities/{community_id}/prices`: yuan per m² from recent deals."""

    community_id = Identifier(required=True)
    median_unit_price = Money(required=True)
    p10_unit_price = Money(required=True)
    p90_unit_price = Money(required=True)
    sample_size = fields.Integer(strict=True, validate=Range(min=0), **OPTIONAL)

    @validates_schema(skip_on_field_errors=True)
    def _ordered(self, data: dict[str, Any], **kwargs: Any) -> None:
        low, mid, high = (Decimal(data[k]) for k in ("p10_unit_price", "median_unit_price", "p90_unit_price"))
        if not low <= mid <= high:
            raise ValidationError("Prices must satisfy p10 <= median <= p90.", "median_unit_price")


class OwnerSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = Text(required=True, max_length=100)
    id_number = Text(required=True, max_length=40)
    # A share as the registry writes it: 0.5, "1/2", "50%", "共同共有".
    share = fields.Raw(validate=lambda v: isinstance(v, int | float | str) and not isinstance(v, bool), **OPTIONAL)


class EncumbranceSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = Identifier(required=True)
    type = fields.String(required=True, validate=OneOf(ENCUMBRANCE_TYPES))
    status = fields.String(required=True, validate=OneOf(ENCUMBRANCE_STATUSES))
    registered_at = Instant(**OPTIONAL)
    released_at = Instant(**OPTIONAL)
    holder = Text(**OPTIONAL)
    amount = Money(**OPTIONAL)
    reference = Text(**OPTIONAL)


class TitleSchema(_Record):
    """`GET /titles/{unit_id}`: the title search (产调)."""

    unit_id = Identifier(required=True)
    certificate_no = Text(max_length=100, **OPTIONAL)
    registered_area_m2 = Area(**OPTIONAL)
    use = Text(max_length=50, **OPTIONAL)
    owners = fields.List(fields.Nested(OwnerSchema), required=True, validate=Length(min=1))
    encumbrances = fields.List(fields.Nested(EncumbranceSchema), required=True)


class FeeItemSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    category = fields.String(required=True, validate=OneOf(FEE_CATEGORIES))
    period_from = Day(required=True)
    period_to = Day(required=True)
    amount_due = Money(required=True)
    amount_paid = Money(required=True)

    @validates_schema(skip_on_field_errors=True)
    def _period(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data["period_to"] < data["period_from"]:
            raise ValidationError("period_to is before period_from.", "period_to")


class FeeAccountSchema(_Record):
    """`GET /fee-accounts/{unit_id}`: the fee ledger (物业费); owed = sum(amount_due - amount_paid)."""

    unit_id = Identifier(required=True)
    company = Text(**OPTIONAL)
    paid_through = Day(**OPTIONAL)
    items = fields.List(fields.Nested(FeeItemSchema), required=True)


class InspectionSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = Identifier(required=True)
    inspected_at = Instant(required=True)
    result = fields.String(required=True, validate=OneOf(INSPECTION_RESULTS))
    areas = fields.List(Text(max_length=100), load_default=list)
    inspector = Text(max_length=100, **OPTIONAL)
    report_ref = Text(**OPTIONAL)


class InspectionsSchema(_Record):
    """`GET /inspections?unit_id=`: leak inspections (房漏检测); an empty list means none on record."""

    unit_id = Identifier(required=True)
    inspections = fields.List(fields.Nested(InspectionSchema), required=True)


class ListingVerificationSchema(_Record):
    """`GET /listing-verifications/{code}`: the authority's listing verification (房源核验)."""

    code = Identifier(required=True)
    unit_id = Identifier(required=True)
    status = fields.String(required=True, validate=OneOf(VERIFICATION_STATUSES))
    issued_at = Instant(**OPTIONAL)
    expires_at = Instant(**OPTIONAL)
    owners = fields.List(fields.Nested(OwnerSchema), required=True, validate=Length(min=1))


class PartySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = Text(required=True, max_length=100)
    id_number = Text(required=True, max_length=40)


class ContractFilingSchema(_Record):
    """`GET /contract-filings/{filing_no}`: the online-signed contract filed with the authority (网签备案)."""

    filing_no = Identifier(required=True)
    unit_id = Identifier(required=True)
    status = fields.String(required=True, validate=OneOf(FILING_STATUSES))
    filed_at = Instant(**OPTIONAL)
    revoked_at = Instant(**OPTIONAL)
    buyers = fields.List(fields.Nested(PartySchema), required=True, validate=Length(min=1))
    sellers = fields.List(fields.Nested(PartySchema), required=True, validate=Length(min=1))


SCHEMAS: dict[str, type[Schema]] = {
    "unit": UnitSchema,
    "community_prices": CommunityPricesSchema,
    "title": TitleSchema,
    "fee_account": FeeAccountSchema,
    "inspections": InspectionsSchema,
    "listing_verification": ListingVerificationSchema,
    "contract_filing": ContractFilingSchema,
}
_KEY_FIELD = {"community_prices": "community_id", "listing_verification": "code", "contract_filing": "filing_no"}
# Schema instances hold no per-load state, so one per kind serves every thread.
_INSTANCES: dict[str, Schema] = {}


def _schema(kind: str) -> Schema:
    schema = _INSTANCES.get(kind)
    if schema is None:
        if kind not in SCHEMAS:
            raise ValidationError({"kind": [f"Unknown kind {kind!r}; expected one of: {', '.join(SCHEMAS)}."]})
        schema = _INSTANCES[kind] = SCHEMAS[kind]()
    return schema


def validate(kind: str, data: Any) -> dict[str, Any]:
    """Validate one record of `kind`; return its JSON-safe form or raise ValidationError."""
    schema = _schema(kind)
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["Expected a JSON object."]})
    result: dict[str, Any] = schema.load(data)
    return result


def key_field(kind: str) -> str:
    """The field a record of `kind` is stored and asked for under: unit_id, community_id for prices,
    code for verifications, filing_no for contract filings."""
    return _KEY_FIELD.get(kind, "unit_id")


def record_key(kind: str, payload: dict[str, Any]) -> str:
    """The key a record is stored and asked for under (`key_field`)."""
    return str(payload[key_field(kind)])
