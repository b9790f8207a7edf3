"""Listing revisions (API v1.1): what a PATCH counts as a change, what a report records, and a gate
that never answers from a report of an older revision."""

from __future__ import annotations

from typing import Any

import pytest

from checks.providers.importer import import_records
from risk.reports.models import Report
from risk.runtime import Runtime
from tests import factories as f
from tests.api_helpers import count, create_listing, request_report, resident_id
from tests.deal_helpers import drain, gate, world

CLEAN_UNIT = "bj-yysh-3-2-702"


def clean_unit(rt: Runtime) -> None:
    """Registry records for a second unit of the same building that passes every check."""
    import_records(rt, [
        {"kind": "unit", **f.unit_record(unit_id=CLEAN_UNIT)},
        {"kind": "title", **f.title_record(unit_id=CLEAN_UNIT)},
        {"kind": "fee_account", **f.fee_account_record(unit_id=CLEAN_UNIT)},
        {"kind": "inspections", **f.inspections_record(unit_id=CLEAN_UNIT)},
    ])  # fmt: skip


def patch(client: Any, headers: dict[str, str], listing_id: str, **fields: Any) -> dict[str, Any]:
    response = client.patch(f"/api/v1/listings/{listing_id}", json=fields, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def completed(client: Any, headers: dict[str, str], rt: Runtime, listing_id: str, stage: str) -> dict[str, Any]:
    report = request_report(client, headers, listing_id, stage=stage)
    drain(rt)
    return client.get(f"/api/v1/reports/{report['id']}", headers=headers).get_json()  # type: ignore[no-any-return]


# -- hole 1: a listing edited after its report keeps the report's decision -------------------------


def test_moving_a_listing_back_to_a_seized_unit_is_not_allowed_on_the_clean_units_report(client, agent, rt):
    world(rt, title=f.title_record(encumbrances=[f.encumbrance("seizure")]))
    clean_unit(rt)
    listing = create_listing(client, agent)
    seized = completed(client, agent, rt, listing["id"], "signing")
    assert seized["decision"] == "BLOCK"
    assert gate(client, agent, "signing", listing_id=listing["id"])["decision"] == "BLOCK"

    patch(client, agent, listing["id"], unit_id=CLEAN_UNIT)
    clean = completed(client, agent, rt, listing["id"], "signing")
    assert clean["decision"] == "ALLOW"
    assert gate(client, agent, "signing", listing_id=listing["id"])["decision"] == "ALLOW"

    patch(client, agent, listing["id"], unit_id=f.UNIT_ID)
    answer = gate(client, agent, "signing", listing_id=listing["id"])
    assert answer["decision"] == "BLOCK"
    assert answer["reasons"][0]["code"] == "REPORT_STALE"
    assert answer["report_id"] == clean["id"]
    refresh = answer["refresh_report_id"]
    assert refresh not in (None, clean["id"], seized["id"])
    again = gate(client, agent, "signing", listing_id=listing["id"])
    assert again["reasons"][0]["code"] == "REPORT_PENDING" and again["refresh_report_id"] == refresh
    assert count(rt, Report) == 3

    drain(rt)  # the refresh checks the unit the listing names now: the seized one
    final = gate(client, agent, "signing", listing_id=listing["id"])
    assert final["decision"] == "BLOCK" and final["report_id"] == refresh
    assert [r["code"] for r in final["reasons"]] == ["TITLE_SEIZURE"]


def test_a_report_of_an_older_revision_is_stale_even_inside_its_window(client, agent, rt, listing):
    world(rt)
    report = completed(client, agent, rt, listing["id"], "listing")
    patch(client, agent, listing["id"], asking_price="6300000.00")
    answer = gate(client, agent, "listing", listing_id=listing["id"])
    assert answer["decision"] == "BLOCK" and answer["report_id"] == report["id"]
    assert answer["reasons"][0]["code"] == "REPORT_STALE"
    drain(rt)
    assert gate(client, agent, "listing", listing_id=listing["id"])["report_id"] == answer["refresh_report_id"]


def test_a_report_of_an_older_revision_still_running_is_not_the_refresh(client, agent, rt, listing):
    running = request_report(client, agent, listing["id"], stage="deposit")
    patch(client, agent, listing["id"], floor=7)
    answer = gate(client, agent, "deposit", listing_id=listing["id"])
    assert answer["reasons"][0]["code"] == "REPORT_STALE"
    assert answer["refresh_report_id"] not in (None, running["id"])


def test_a_change_of_status_or_agent_keeps_the_report_fresh(client, agent, rt, listing):
    world(rt)
    report = completed(client, agent, rt, listing["id"], "listing")
    patch(client, agent, listing["id"], agent_id="agent-7")
    patch(client, agent, listing["id"], status="withdrawn")
    answer = gate(client, agent, "listing", listing_id=listing["id"])
    assert answer["decision"] == "ALLOW" and answer["report_id"] == report["id"]


# -- the revision and what counts as a change ----------------------------------------------------


def test_a_new_listing_is_revision_1(client, agent, listing):
    assert listing["revision"] == 1
    assert client.get(f"/api/v1/listings/{listing['id']}", headers=agent).get_json()["revision"] == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"asking_price": "6300000.00"},
        {"unit_id": CLEAN_UNIT},
        {"area_m2": 90},
        {"entrusted_price": None},
        {"external_id": "LJ-BJ-RENAMED"},
        {"store_id": "default-2"},
        {"seller": {"name": "张建国", "id_number": resident_id("11010519780315010")}},
        {"seller": {"name": "张建华", "id_number": f.SELLER_ID}},
        {"photos": [{"url": "https://img.example/9.jpg", "sha256": "c" * 64}]},
        {"photos": []},
    ],
)
def test_a_patch_that_changes_a_field_adds_one(client, auth, fields):
    admin = auth(role="admin")
    listing = create_listing(client, admin)
    assert patch(client, admin, listing["id"], **fields)["revision"] == 2


@pytest.mark.parametrize(
    "fields",
    [
        {"status": "withdrawn"},
        {"agent_id": "agent-9"},
        {"asking_price": 6265000},
        {"area_m2": "89.5"},
        {"floor": 6, "layout": "2室1厅"},
        {"seller": {"name": "张建国", "id_number": f.SELLER_ID, "id_type": "resident_id"}},
        {"photos": [{"url": "https://img.example/1.jpg", "sha256": "A" * 64}]},
    ],
)
def test_a_patch_that_sets_the_same_values_or_only_status_or_agent_adds_nothing(client, agent, listing, fields):
    assert patch(client, agent, listing["id"], **fields)["revision"] == 1


def test_each_changing_patch_adds_exactly_one(client, agent, listing):
    patch(client, agent, listing["id"], floor=7, layout="3室1厅", asking_price="6000000.00")
    patch(client, agent, listing["id"], floor=7)
    assert patch(client, agent, listing["id"], floor=8)["revision"] == 3


def test_a_lower_case_x_in_the_same_id_number_is_no_change(client, agent):
    number = "11010519491231002X"
    listing = create_listing(client, agent, seller={"name": "王五", "id_number": number})
    assert patch(client, agent, listing["id"], seller={"name": "王五", "id_number": number.lower()})["revision"] == 1


def test_a_report_records_the_revision_it_checked(client, agent, rt, listing):
    first = request_report(client, agent, listing["id"], stage="deposit")
    assert first["listing_revision"] == 1
    patch(client, agent, listing["id"], room="603")
    second = request_report(client, agent, listing["id"], stage="deposit")
    assert second["listing_revision"] == 2 and second["id"] != first["id"]
    drain(rt)
    bodies = [client.get(f"/api/v1/reports/{r['id']}", headers=agent).get_json() for r in (first, second)]
    assert [(b["status"], b["listing_revision"]) for b in bodies] == [("complete", 1), ("complete", 2)]
