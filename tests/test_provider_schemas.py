from __future__ import annotations

import json
from typing import Any

import pytest
from marshmallow import ValidationError

from checks.providers.schemas import record_key, validate
from tests.factories import (
    COMMUNITY_ID,
    UNIT_ID,
    community_prices_record,
    encumbrance,
    fee_account_record,
    fee_item,
    inspection,
    inspections_record,
    title_record,
    unit_record,
)

EXAMPLES = {
    "unit": unit_record,
    "community_prices": community_prices_record,
    "title": lambda: title_record(encumbrances=[encumbrance("seizure"), encumbrance("mortgage", "released")]),
    "fee_account": fee_account_record,
    "inspections": inspections_record,
}


def errors(kind: str, data: Any) -> dict[str, Any]:
    with pytest.raises(ValidationError) as caught:
        validate(kind, data)
    messages: dict[str, Any] = caught.value.messages  # type: ignore[assignment]
    return messages


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_contract_example_loads_to_json_safe_dict(kind: str) -> None:
    loaded = validate(kind, EXAMPLES[kind]())
    assert json.loads(json.dumps(loaded)) == loaded


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_loading_a_loaded_record_changes_nothing(kind: str) -> None:
    loaded = validate(kind, EXAMPLES[kind]())
    assert validate(kind, loaded) == loaded


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_as_of_is_required(kind: str) -> None:
    data = EXAMPLES[kind]()
    del data["as_of"]
    assert "as_of" in errors(kind, data)


def test_unknown_fields_are_ignored() -> None:
    loaded = validate("unit", unit_record(parking="B2-17", nested={"x": 1}))
    assert "parking" not in loaded and "nested" not in loaded


def test_missing_required_field_is_named() -> None:
    data = unit_record()
    del data["unit_id"]
    assert errors("unit", data) == {"unit_id": ["Missing data for required field."]}


def test_optional_fields_absent_come_back_as_none() -> None:
    data = unit_record()
    for name in ("district", "unit", "total_floors", "layout", "orientation", "build_year", "use"):
        del data[name]
    loaded = validate("unit", data)
    assert loaded["layout"] is None and loaded["build_year"] is None


def test_floor_must_be_an_integer() -> None:
    assert "floor" in errors("unit", unit_record(floor="6层"))


def test_instant_is_normalised_to_utc() -> None:
    assert validate("unit", unit_record(as_of="2026-11-20T10:00:00+08:00"))["as_of"] == "2026-11-20T02:00:00+00:00"


def test_bare_date_is_read_as_shanghai_midnight() -> None:
    assert validate("unit", unit_record(as_of="2026-11-20"))["as_of"] == "2026-11-19T16:00:00+00:00"


def test_time_without_offset_is_rejected() -> None:
    assert "as_of" in errors("unit", unit_record(as_of="2026-11-20T10:00:00"))


def test_encumbrance_type_outside_the_enum_is_rejected() -> None:
    messages = errors("title", title_record(encumbrances=[encumbrance("confiscation")]))
    assert "type" in messages["encumbrances"][0]


def test_encumbrance_status_outside_the_enum_is_rejected() -> None:
    messages = errors("title", title_record(encumbrances=[encumbrance("seizure", status="pending")]))
    assert "status" in messages["encumbrances"][0]


@pytest.mark.parametrize(
    "kind",
    [
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
    ],
)
def test_every_encumbrance_type_of_the_contract_is_accepted(kind: str) -> None:
    loaded = validate("title", title_record(encumbrances=[encumbrance(kind)]))
    assert loaded["encumbrances"][0]["type"] == kind


def test_title_without_encumbrances_list_is_rejected_not_read_as_clean() -> None:
    data = title_record()
    del data["encumbrances"]
    assert "encumbrances" in errors("title", data)


def test_title_needs_an_owner() -> None:
    assert "owners" in errors("title", title_record(owners=[]))


def test_owner_without_id_number_is_rejected() -> None:
    messages = errors("title", title_record(owners=[{"name": "张建国"}]))
    assert messages["owners"][0] == {"id_number": ["Missing data for required field."]}


def test_integer_ids_become_strings() -> None:
    loaded = validate("title", title_record(encumbrances=[encumbrance("mortgage", id=7)]))
    assert loaded["encumbrances"][0]["id"] == "7"


def test_fee_category_outside_the_enum_is_rejected() -> None:
    messages = errors("fee_account", fee_account_record(items=[fee_item(category="internet")]))
    assert "category" in messages["items"][0]


def test_money_as_number_becomes_two_place_string() -> None:
    loaded = validate("fee_account", fee_account_record(items=[fee_item(amount_due=62350.5, amount_paid=0)]))  # type: ignore[arg-type]
    assert loaded["items"][0]["amount_due"] == "62350.50"
    assert loaded["items"][0]["amount_paid"] == "0.00"


def test_money_with_three_places_is_rejected() -> None:
    messages = errors("fee_account", fee_account_record(items=[fee_item(amount_due="10.005")]))
    assert messages["items"][0] == {"amount_due": ["Money has at most two decimal places."]}


@pytest.mark.parametrize("amount", ["-1.00", "NaN", "abc", True, None])
def test_bad_money_is_rejected(amount: Any) -> None:
    messages = errors("fee_account", fee_account_record(items=[fee_item(amount_due=amount)]))
    assert "amount_due" in messages["items"][0]


def test_fee_period_ending_before_it_starts_is_rejected() -> None:
    item = fee_item(period_from="2025-12-01", period_to="2025-01-31")
    assert errors("fee_account", fee_account_record(items=[item]))["items"][0] == {
        "period_to": ["period_to is before period_from."]
    }


def test_fee_period_must_be_a_calendar_date() -> None:
    messages = errors("fee_account", fee_account_record(items=[fee_item(period_from="2025-01")]))
    assert "period_from" in messages["items"][0]


def test_inspection_result_outside_the_enum_is_rejected() -> None:
    messages = errors("inspections", inspections_record(inspections=[inspection(result="dry")]))
    assert "result" in messages["inspections"][0]


def test_empty_inspection_list_is_valid() -> None:
    assert validate("inspections", inspections_record(inspections=[]))["inspections"] == []


def test_community_prices_out_of_order_are_rejected() -> None:
    messages = errors("community_prices", community_prices_record(median="90000.00"))
    assert "median_unit_price" in messages


def test_unknown_kind_is_rejected_on_kind() -> None:
    assert "kind" in errors("parcel", {"as_of": "2026-11-20"})


def test_non_object_is_rejected() -> None:
    assert errors("unit", ["not", "an", "object"]) == {"_schema": ["Expected a JSON object."]}


def test_record_key_is_the_unit_id() -> None:
    assert record_key("title", validate("title", title_record())) == UNIT_ID


def test_record_key_of_community_prices_is_the_community_id() -> None:
    assert record_key("community_prices", validate("community_prices", community_prices_record())) == COMMUNITY_ID
