"""Idempotency-Key: a repeat replays the first answer, another body is 409, and races create one object."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from rq import Queue

from listings.models import Listing
from risk.db import transaction
from risk.idempotency import IdempotencyRecord, purge_expired
from risk.reports.models import Report
from tests.api_helpers import assert_error, count, create_listing, listing_body

LISTINGS = "/api/v1/listings"


@pytest.fixture
def agent(auth: Any) -> dict[str, str]:
    return auth(role="agent")


def _with_key(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


def test_a_repeat_with_the_same_body_replays_status_body_and_location(client, agent, rt):
    body = listing_body()
    first = client.post(LISTINGS, json=body, headers=_with_key(agent, "k-1"))
    again = client.post(LISTINGS, json=body, headers=_with_key(agent, "k-1"))
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(rt, Listing) == 1


def test_key_order_and_spacing_do_not_change_the_body(client, agent, rt):
    body = listing_body()
    import json

    first = client.post(LISTINGS, json=body, headers=_with_key(agent, "k-1"))
    reordered = json.dumps(dict(reversed(list(body.items()))), indent=2, ensure_ascii=False)
    again = client.post(LISTINGS, data=reordered, content_type="application/json", headers=_with_key(agent, "k-1"))
    assert again.status_code == 201 and again.get_json() == first.get_json()
    assert count(rt, Listing) == 1


def test_a_repeated_report_request_replays_202_and_enqueues_once(client, agent, rt):
    listing = create_listing(client, agent)
    path = f"{LISTINGS}/{listing['id']}/reports"
    first = client.post(path, json={"stage": "deposit"}, headers=_with_key(agent, "r-1"))
    again = client.post(path, json={"stage": "deposit"}, headers=_with_key(agent, "r-1"))
    assert first.status_code == again.status_code == 202
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"] == f"/api/v1/reports/{first.get_json()['id']}"
    assert count(rt, Report) == 1
    assert Queue("reports", connection=rt.redis()).count == 1


def test_another_body_under_the_same_key_is_409(client, agent, rt):
    client.post(LISTINGS, json=listing_body(), headers=_with_key(agent, "k-1"))
    response = client.post(LISTINGS, json=listing_body(), headers=_with_key(agent, "k-1"))
    assert_error(response, 409, "idempotency_key_reused")
    assert count(rt, Listing) == 1


def test_the_same_body_on_another_listing_under_one_key_is_409(client, agent):
    first, second = create_listing(client, agent), create_listing(client, agent)
    client.post(f"{LISTINGS}/{first['id']}/reports", json={"stage": "deposit"}, headers=_with_key(agent, "r-1"))
    response = client.post(
        f"{LISTINGS}/{second['id']}/reports", json={"stage": "deposit"}, headers=_with_key(agent, "r-1")
    )
    assert_error(response, 409, "idempotency_key_reused")


def test_different_keys_are_independent(client, agent, rt):
    body = listing_body()
    assert client.post(LISTINGS, json=body, headers=_with_key(agent, "k-1")).status_code == 201
    assert_error(client.post(LISTINGS, json=body, headers=_with_key(agent, "k-2")), 409, "conflict")  # external_id
    assert client.post(LISTINGS, json=listing_body(), headers=_with_key(agent, "k-3")).status_code == 201
    assert count(rt, Listing) == 2


def test_another_api_key_has_its_own_keys(client, auth, rt):
    first, second = auth(role="agent"), auth(role="agent")
    assert client.post(LISTINGS, json=listing_body(), headers=_with_key(first, "k-1")).status_code == 201
    response = client.post(LISTINGS, json=listing_body(), headers=_with_key(second, "k-1"))
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response.headers
    assert count(rt, Listing) == 2


def test_each_endpoint_has_its_own_keys(client, agent, rt):
    listing = create_listing(client, agent, external_id="LJ-E1")
    client.post(LISTINGS, json=listing_body(), headers=_with_key(agent, "shared"))
    response = client.post(
        f"{LISTINGS}/{listing['id']}/reports", json={"stage": "deposit"}, headers=_with_key(agent, "shared")
    )
    assert response.status_code == 202
    assert count(rt, Report) == 1


def test_a_failed_request_leaves_the_key_free(client, agent, rt):
    bad = client.post(LISTINGS, json=listing_body(floor=999), headers=_with_key(agent, "k-1"))
    assert bad.status_code == 422
    assert count(rt, IdempotencyRecord) == 0
    assert client.post(LISTINGS, json=listing_body(), headers=_with_key(agent, "k-1")).status_code == 201


def test_a_key_is_honoured_for_24_hours_then_free(client, agent, clock):
    client.post(LISTINGS, json=listing_body(), headers=_with_key(agent, "k-1"))
    clock.advance(timedelta(hours=23, minutes=59))
    assert_error(
        client.post(LISTINGS, json=listing_body(), headers=_with_key(agent, "k-1")), 409, "idempotency_key_reused"
    )
    clock.advance(timedelta(minutes=2))
    assert client.post(LISTINGS, json=listing_body(), headers=_with_key(agent, "k-1")).status_code == 201


def test_purge_removes_only_expired_records(client, agent, rt, clock):
    client.post(LISTINGS, json=listing_body(), headers=_with_key(agent, "old"))
    clock.advance(timedelta(hours=25))
    client.post(LISTINGS, json=listing_body(), headers=_with_key(agent, "new"))
    with transaction(rt.sessions) as session:
        assert purge_expired(session, clock.now()) == 1
    assert count(rt, IdempotencyRecord) == 1


@pytest.mark.parametrize("key", ["", "x" * 201, "has space", "中文"])
def test_a_malformed_key_is_400(client, agent, rt, key):
    headers = {**agent, "Idempotency-Key": key.encode("utf-8").decode("latin-1")}
    response = client.post(LISTINGS, json=listing_body(), headers=headers)
    assert list(assert_error(response, 400, "bad_request")["fields"]) == ["Idempotency-Key"]
    assert count(rt, Listing) == 0


def test_concurrent_duplicates_create_one_object(app, make_key, rt):
    headers = _with_key({"Authorization": f"Bearer {make_key()}"}, "race-1")
    body = listing_body()
    barrier = threading.Barrier(5)
    answers: list[Any] = []

    def post() -> None:
        barrier.wait()
        response = app.test_client().post(LISTINGS, json=body, headers=headers)
        answers.append((response.status_code, response.get_json(), response.headers.get("Location")))

    threads = [threading.Thread(target=post) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count(rt, Listing) == 1
    assert count(rt, IdempotencyRecord) == 1
    assert {status for status, _, _ in answers} == {201}
    assert len({(body_["id"], location) for _, body_, location in answers}) == 1


def test_concurrent_duplicate_report_requests_create_one_report(app, make_key, rt, client):
    headers = {"Authorization": f"Bearer {make_key()}"}
    listing = create_listing(client, headers)
    barrier = threading.Barrier(4)
    answers: list[Any] = []

    def post() -> None:
        barrier.wait()
        response = app.test_client().post(
            f"{LISTINGS}/{listing['id']}/reports", json={"stage": "signing"}, headers=_with_key(headers, "race-r")
        )
        answers.append((response.status_code, response.get_json()["id"]))

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count(rt, Report) == 1
    assert len(set(answers)) == 1 and answers[0][0] == 202


def test_the_worker_sweep_purges_keys_past_their_retention(client, rt, clock, auth):
    from risk.idempotency import RETENTION, IdempotencyRecord
    from tests.api_helpers import count, listing_body
    from worker.reconcile import Sweeper

    headers = {**auth(role="agent"), "Idempotency-Key": "sweep-1"}
    assert client.post("/api/v1/listings", json=listing_body(), headers=headers).status_code == 201
    Sweeper(rt).sweep_once()
    assert count(rt, IdempotencyRecord) == 1
    clock.advance(RETENTION + timedelta(minutes=1))
    Sweeper(rt).sweep_once()
    assert count(rt, IdempotencyRecord) == 0


def test_the_stored_fingerprint_is_keyed_so_guessed_id_numbers_cannot_be_checked_against_it(client, agent, rt):
    import hashlib
    import json

    from sqlalchemy import select

    body = listing_body()
    assert client.post(LISTINGS, json=body, headers=_with_key(agent, "k-hmac")).status_code == 201
    with rt.sessions() as session:
        stored = session.scalars(select(IdempotencyRecord.request_hash)).one()

    canonical = json.dumps({"method": "POST", "path": LISTINGS, "body": body}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=True)  # fmt: skip
    assert stored != hashlib.sha256(canonical.encode("ascii")).hexdigest()
    assert len(stored) == 64
