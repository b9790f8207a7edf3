"""Report requests (API v1.1): one report per pending request of a listing revision, deal and stage,
however many callers press "check", and who asked for it."""

from __future__ import annotations

import threading
from dataclasses import replace
from typing import Any

from rq import Queue
from sqlalchemy import select

from risk.deals.rechecks import start_due_rechecks
from risk.queues import REPORTS
from risk.reports.models import Report
from tests.api_helpers import count, create_listing, request_report
from tests.deal_helpers import create_deal, drain, gate

CALLERS = 60


def ask(client: Any, headers: dict[str, str], listing_id: str, **body: Any) -> Any:
    return client.post(f"/api/v1/listings/{listing_id}/reports", json={"stage": "deposit", **body}, headers=headers)


def queued(rt: Any) -> list[str]:
    return list(Queue(REPORTS, connection=rt.redis()).get_job_ids())


def test_sixty_identical_requests_at_once_start_one_report_and_one_job(app, make_key, rt):
    rt.settings = replace(rt.settings, rate_limit=float(CALLERS))  # the presses, not the rate limit, are at stake
    key = {"Authorization": f"Bearer {make_key(role='agent')}"}
    listing = create_listing(app.test_client(), key)
    start = threading.Barrier(CALLERS, timeout=60)
    answers: list[Any] = []
    failures: list[BaseException] = []

    def press() -> None:
        try:
            with app.test_client() as c:
                start.wait()
                answers.append(ask(c, key, listing["id"]))
        except BaseException as error:  # handed to the test's thread
            failures.append(error)

    threads = [threading.Thread(target=press) for _ in range(CALLERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures and len(answers) == CALLERS
    assert {a.status_code for a in answers} == {202}
    ids = {a.get_json()["id"] for a in answers}
    assert len(ids) == 1
    assert {a.headers["Location"] for a in answers} == {f"/api/v1/reports/{ids.pop()}"}
    assert count(rt, Report) == 1
    assert len(queued(rt)) == 1


def test_a_request_while_one_is_pending_answers_with_that_report_and_starts_nothing(client, agent, rt, listing):
    first = request_report(client, agent, listing["id"])
    response = ask(client, agent, listing["id"])
    assert response.status_code == 202
    assert response.get_json()["id"] == first["id"]
    assert response.headers["Location"] == f"/api/v1/reports/{first['id']}"
    assert count(rt, Report) == 1 and len(queued(rt)) == 1


def test_once_the_report_completes_a_request_starts_another(client, agent, rt, listing):
    first = request_report(client, agent, listing["id"])
    drain(rt)
    second = request_report(client, agent, listing["id"])
    assert second["id"] != first["id"] and second["status"] == "pending"


def test_another_stage_or_deal_or_revision_starts_another(client, agent, cs, rt, listing):
    deal = create_deal(client, cs, listing["id"])
    other = create_deal(client, cs, listing["id"])
    ids = {
        ask(client, agent, listing["id"]).get_json()["id"],
        ask(client, agent, listing["id"], stage="signing").get_json()["id"],
        ask(client, cs, listing["id"], deal_id=deal["id"]).get_json()["id"],
        ask(client, cs, listing["id"], deal_id=other["id"]).get_json()["id"],
    }
    client.patch(f"/api/v1/listings/{listing['id']}", json={"floor": 7}, headers=agent)
    ids.add(ask(client, agent, listing["id"]).get_json()["id"])
    assert len(ids) == 5 and count(rt, Report) == 5


def test_the_gate_joins_a_requested_report_and_a_request_joins_the_gates_refresh(client, agent, rt, listing):
    requested = request_report(client, agent, listing["id"], stage="signing")
    answer = gate(client, agent, "signing", listing_id=listing["id"])
    assert answer["refresh_report_id"] == requested["id"]
    assert answer["reasons"][0]["code"] == "REPORT_PENDING"
    refresh = gate(client, agent, "deposit", listing_id=listing["id"])["refresh_report_id"]
    assert ask(client, agent, listing["id"]).get_json()["id"] == refresh
    assert count(rt, Report) == 2


def test_an_idempotent_replay_returns_the_original_answer(client, agent, rt, listing):
    headers = {**agent, "Idempotency-Key": "press-once"}
    first = ask(client, headers, listing["id"])
    replay = ask(client, headers, listing["id"])
    assert replay.status_code == 202 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.get_json() == first.get_json()
    assert count(rt, Report) == 1 and len(queued(rt)) == 1


# -- requested_by ---------------------------------------------------------------------------------


def client_id(rt: Any, headers: dict[str, str]) -> str:
    from risk.auth.keys import hash_key
    from risk.auth.models import ApiKey

    with rt.sessions() as session:
        key = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(headers["Authorization"][7:]))).one()
        return key.client_id


def test_requested_by_is_the_client_whose_call_created_the_report(client, agent, auth, listing, rt):
    report = request_report(client, agent, listing["id"])
    assert report["requested_by"] == client_id(rt, agent)
    joined = ask(client, auth(role="agent"), listing["id"]).get_json()
    assert joined["requested_by"] == client_id(rt, agent)


def test_the_gates_refresh_is_requested_by_the_client_that_asked(client, agent, rt, listing):
    refresh = gate(client, agent, "signing", listing_id=listing["id"])["refresh_report_id"]
    assert client.get(f"/api/v1/reports/{refresh}", headers=agent).get_json()["requested_by"] == client_id(rt, agent)


def test_a_recheck_is_requested_by_nobody(client, cs, rt, listing, clock):
    from datetime import datetime, timedelta

    deal = create_deal(client, cs, listing["id"])
    clock.set(datetime.fromisoformat(deal["online_signing_at"]) - timedelta(hours=24))
    [report_id] = start_due_rechecks(rt)
    assert client.get(f"/api/v1/reports/{report_id}", headers=cs).get_json()["requested_by"] is None
