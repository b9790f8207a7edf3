"""Dates: bounded in request bodies, and a date stored before the bounds never costs a report its findings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from risk.deals.models import Deal
from risk.reports import runner
from risk.reports.digest import digest
from risk.reports.models import Report
from risk.runtime import Runtime
from tests import factories as f
from tests.api_helpers import assert_error, count
from tests.deal_helpers import create_deal, deal_body, drain, world

FAR_FUTURE = datetime(9999, 12, 31, 15, 59, 59, tzinfo=UTC)  # 9999-12-31 23:59:59 in Shanghai


def store_transfer_at(rt: Runtime, deal_id: str, moment: datetime) -> None:
    """A deal date written straight to the database, as one saved before the bounds existed."""
    with rt.sessions() as session:
        session.execute(update(Deal).where(Deal.id == deal_id).values(transfer_at=moment))
        session.commit()


def set_attempts(rt: Runtime, report_id: str, attempts: int) -> None:
    with rt.sessions() as session:
        session.execute(update(Report).where(Report.id == report_id).values(attempts=attempts))
        session.commit()


def deal_report(client, headers, listing_id: str, deal_id: str, stage: str) -> dict:
    body = {"stage": stage, "deal_id": deal_id}
    response = client.post(f"/api/v1/listings/{listing_id}/reports", json=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    return response.get_json()


def read_report(client, headers, report_id: str) -> dict:
    response = client.get(f"/api/v1/reports/{report_id}", headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_seized_unit_under_a_deal_dated_9999_completes_blocked_by_the_seizure(client, cs, rt, listing):
    world(rt, title=f.title_record(encumbrances=[f.encumbrance("seizure")]))
    deal = create_deal(client, cs, listing["id"])
    store_transfer_at(rt, deal["id"], FAR_FUTURE)
    report = deal_report(client, cs, listing["id"], deal["id"], "deposit")
    drain(rt)
    body = read_report(client, cs, report["id"])
    assert (body["status"], body["decision"]) == ("complete", "BLOCK")
    assert "TITLE_SEIZURE" in [r["code"] for r in body["reasons"]]
    assert {c["check"]: c["status"] for c in body["checks"]}["title"] == "blocking"
    assert all(c["status"] != "unavailable" for c in body["checks"])


# -- bounds in request bodies -------------------------------------------------------------------------

BEYOND = [
    ("transfer_at", "9999-12-31T00:00:00+08:00"),
    ("transfer_at", "2101-01-01T00:00:00+08:00"),
    ("transfer_at", "2100-12-31T16:00:00+00:00"),  # 2101-01-01 00:00 in Shanghai
    ("deposit_at", "1989-12-31T23:59:59+08:00"),
    ("deposit_at", "1989-12-31T15:59:59+00:00"),  # 1989-12-31 23:59:59 in Shanghai
    ("deposit_at", "0001-01-01T00:00:00+14:00"),  # before the first time datetime can hold, once in UTC
]


@pytest.mark.parametrize(("field", "value"), BEYOND)
def test_a_deal_created_with_a_date_out_of_bounds_is_422_naming_it(client, cs, listing, rt, field, value):
    response = client.post("/api/v1/deals", json=deal_body(listing["id"], **{field: value}), headers=cs)
    assert list(assert_error(response, 422, "validation_error")["fields"]) == [field]
    assert count(rt, Deal) == 0


@pytest.mark.parametrize("field", ["deposit_at", "signing_at", "online_signing_at", "transfer_at"])
def test_every_deal_date_is_bounded_on_create_and_on_change(client, cs, listing, field):
    deal = create_deal(client, cs, listing["id"])
    response = client.patch(f"/api/v1/deals/{deal['id']}", json={field: "9999-12-31T00:00:00+08:00"}, headers=cs)
    assert field in assert_error(response, 422, "validation_error")["fields"]
    response = client.post("/api/v1/deals", json=deal_body(listing["id"], **{field: "1900-01-01T00:00:00+08:00"}),
                           headers=cs)  # fmt: skip
    assert field in assert_error(response, 422, "validation_error")["fields"]


def test_the_bounds_themselves_are_accepted(client, cs, listing):
    body = create_deal(client, cs, listing["id"], deposit_at="1990-01-01T00:00:00+08:00", signing_at=
                       "1990-01-01T00:00:00+08:00", online_signing_at="2100-12-31T23:59:59+08:00",
                       transfer_at="2100-12-31T15:59:59+00:00")  # fmt: skip
    assert datetime.fromisoformat(body["deposit_at"]) == datetime(1989, 12, 31, 16, tzinfo=UTC)
    assert datetime.fromisoformat(body["transfer_at"]) == datetime(2100, 12, 31, 15, 59, 59, tzinfo=UTC)


def test_the_openapi_document_states_the_bounds_of_every_deal_date(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    for schema in ("DealInput", "DealPatch"):
        properties = spec["components"]["schemas"][schema]["properties"]
        for field in ("deposit_at", "signing_at", "online_signing_at", "transfer_at"):
            assert properties[field]["x-minimum"] == "1990-01-01T00:00:00+08:00"
            assert properties[field]["x-maximum"] == "2100-12-31T23:59:59.999999+08:00"


def test_a_deal_dated_9999_in_the_database_is_still_shown(client, cs, rt, listing):
    deal = create_deal(client, cs, listing["id"])
    store_transfer_at(rt, deal["id"], FAR_FUTURE)
    response = client.get(f"/api/v1/deals/{deal['id']}", headers=cs)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["transfer_at"] == FAR_FUTURE.isoformat()


# -- an error after the checks finished --------------------------------------------------------------


def commitments_that_fail(monkeypatch) -> None:
    """Attaching commitments raises, as date arithmetic on a date out of range once did."""

    def broken(**kwargs):
        raise OverflowError("date value out of range")

    monkeypatch.setattr(runner, "applicable", broken)


def seized_deal_report(client, cs, rt, listing) -> str:
    world(rt, title=f.title_record(encumbrances=[f.encumbrance("seizure")]))
    deal = create_deal(client, cs, listing["id"])
    return str(deal_report(client, cs, listing["id"], deal["id"], "deposit")["id"])


FINISHED = {"title": "blocking", "fees": "clear", "leak": "clear", "authenticity": "clear"}


def test_an_error_attaching_commitments_keeps_every_finished_check_and_leaves_the_report_to_a_retry(
    client, cs, rt, listing, monkeypatch
):
    report_id = seized_deal_report(client, cs, rt, listing)
    commitments_that_fail(monkeypatch)
    drain(rt)
    body = read_report(client, cs, report_id)
    assert (body["status"], body["decision"]) == ("running", None)
    assert {c["check"]: c["status"] for c in body["checks"]} == FINISHED
    title = next(c for c in body["checks"] if c["check"] == "title")
    assert [x["code"] for x in title["findings"]] == ["TITLE_SEIZURE"]


def test_a_retry_after_the_error_is_gone_completes_the_report_with_its_commitments(
    client, cs, rt, listing, monkeypatch
):
    report_id = seized_deal_report(client, cs, rt, listing)
    with monkeypatch.context() as patch:
        commitments_that_fail(patch)
        drain(rt)
    completed = runner.run_report(rt, report_id)
    assert completed is not None and completed.decision == "BLOCK"
    body = read_report(client, cs, report_id)
    assert (body["status"], body["notes"]) == ("complete", [])
    assert "FEE_ARREARS_ADVANCE" in [c["code"] for c in body["commitments"]]


def test_after_its_attempts_a_report_whose_commitments_fail_completes_with_its_findings_and_says_so(
    client, cs, rt, listing, monkeypatch, settings
):
    report_id = seized_deal_report(client, cs, rt, listing)
    commitments_that_fail(monkeypatch)
    drain(rt)
    for _ in range(settings.report_max_attempts):  # RQ's retries, then the sweeper's last run
        try:
            runner.run_report(rt, report_id)
        except OverflowError:
            continue
        break
    body = read_report(client, cs, report_id)
    assert (body["status"], body["decision"]) == ("complete", "BLOCK")
    assert [r["code"] for r in body["reasons"]] == ["TITLE_SEIZURE"]
    assert {c["check"]: c["status"] for c in body["checks"]} == FINISHED
    assert body["commitments"] == []
    assert len(body["notes"]) == 1 and "commitments" in body["notes"][0]
    assert body["digest"] == digest(body)


def test_the_last_attempt_completes_the_report_at_once_without_waiting_for_the_sweeper(
    client, cs, rt, listing, monkeypatch, settings
):
    report_id = seized_deal_report(client, cs, rt, listing)
    commitments_that_fail(monkeypatch)
    set_attempts(rt, report_id, settings.report_max_attempts - 1)
    completed = runner.run_report(rt, report_id)
    assert completed is not None and completed.decision == "BLOCK"
