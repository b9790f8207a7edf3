"""Asking for a report and reading it over HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import event

from risk.reports.models import Report
from tests.api_helpers import assert_error, count, create_listing, request_report


@pytest.fixture
def agent(auth: Any) -> dict[str, str]:
    return auth(role="agent")


def test_a_report_request_answers_202_pending_with_location(client, agent):
    listing = create_listing(client, agent)
    response = client.post(f"/api/v1/listings/{listing['id']}/reports", json={"stage": "signing"}, headers=agent)
    assert response.status_code == 202
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/reports/{body['id']}"
    assert (body["listing_id"], body["stage"], body["status"], body["deal_id"]) == (
        listing["id"],
        "signing",
        "pending",
        None,
    )
    assert body["decision"] is None and body["checks"] == [] and body["digest"] is None


def test_a_report_request_is_committed_then_enqueued(client, agent, rt):
    listing = create_listing(client, agent)
    report = request_report(client, agent, listing["id"])
    jobs = Queue("reports", connection=rt.redis()).jobs
    assert [job.args for job in jobs] == [(report["id"],)]
    assert count(rt, Report) == 1


def test_a_report_request_reads_the_listing_once_and_no_checks(client, agent, rt):
    """The listing comes with its photos in one statement, and a new report's (empty) checks are not
    asked of the database: two lazy loads were a third of the time from created_at to the enqueue."""
    listing = create_listing(client, agent, photos=[{"url": "https://img.example/2.jpg", "sha256": "b" * 64}])
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):
        statements.append(" ".join(statement.split()))

    event.listen(rt.engine, "before_cursor_execute", seen)
    try:
        report = request_report(client, agent, listing["id"])
    finally:
        event.remove(rt.engine, "before_cursor_execute", seen)
    reads = [s for s in statements if s.startswith("SELECT")]
    assert len(reads) == 1 and "JOIN listing_photos" in reads[0], statements
    assert not any("report_checks" in s for s in statements), statements
    assert report["checks"] == []
    with rt.sessions() as session:
        subject = session.get(Report, report["id"]).subject
    assert subject["photos"] == [{"url": "https://img.example/2.jpg", "sha256": "b" * 64}]


def test_a_redis_outage_still_answers_202_and_keeps_the_report(client, agent, rt, monkeypatch):
    listing = create_listing(client, agent)
    down = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    monkeypatch.setattr(rt, "redis", lambda: down)
    report = request_report(client, agent, listing["id"])
    assert count(rt, Report) == 1
    assert client.get(f"/api/v1/reports/{report['id']}", headers=agent).get_json()["status"] == "pending"


def test_get_returns_the_report_body(client, agent):
    listing = create_listing(client, agent)
    report = request_report(client, agent, listing["id"])
    response = client.get(f"/api/v1/reports/{report['id']}", headers=agent)
    assert response.status_code == 200
    assert response.get_json() == report


def test_a_missing_stage_is_422(client, agent, rt):
    listing = create_listing(client, agent)
    response = client.post(f"/api/v1/listings/{listing['id']}/reports", json={}, headers=agent)
    assert list(assert_error(response, 422, "validation_error")["fields"]) == ["stage"]
    assert count(rt, Report) == 0


@pytest.mark.parametrize("stage", ["listing", "deposit", "signing", "online_signing", "transfer"])
def test_every_stage_can_be_requested(client, agent, stage):
    listing = create_listing(client, agent)
    assert request_report(client, agent, listing["id"], stage=stage)["stage"] == stage
