"""Webhook delivery end to end: events written in a transaction, delivered by a real SimpleWorker from
the real Redis to a real HTTP receiver on 127.0.0.1 that checks every signature. The clock is moved
instead of sleeping; the sweep (`requeue_due_webhooks`) is what brings a due retry to the worker, as
it does in production whenever RQ's own schedule and the database disagree."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from redis import Redis
from rq.job import Job, JobStatus
from sqlalchemy import select
from sqlalchemy.orm import selectinload

import worker.webhooks as delivery
from risk.auth.operations import NewKey, create_client
from risk.db import transaction
from risk.deals.models import Deal
from risk.queues import WEBHOOK_JOB_TIMEOUT, WEBHOOKS, enqueue_deliveries, webhook_job_id
from risk.runtime import Runtime
from risk.webhooks import operations, signing
from risk.webhooks.models import WebhookEvent
from tests.api_helpers import assert_error, create_listing
from tests.conftest import START
from tests.factories import BUYER_ID
from tests.webhook_receiver import Receiver
from worker.main import make_worker

# -- a deal whose creator signs its webhooks ---------------------------------------------------


@pytest.fixture
def creator(rt: Runtime) -> NewKey:
    with transaction(rt.sessions) as session:
        return create_client(session, rt.clock, rt.secret_box, role="contract_system", name="contracts")


@pytest.fixture
def cs(creator: NewKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {creator.key}"}


def _at(hours: float) -> str:
    return (START + timedelta(hours=hours)).isoformat()


def create_deal(client: Any, headers: dict[str, str], webhook_url: str | None) -> dict[str, Any]:
    listing = create_listing(client, headers)
    body = {
        "external_id": f"HT-WH-{time.monotonic_ns()}",
        "listing_id": listing["id"],
        "buyer": {"name": "李明", "id_number": BUYER_ID},
        "deposit_amount": "200000.00",
        "deposit_at": _at(1),
        "signing_at": _at(24),
        "online_signing_at": _at(24 * 14),
        "webhook_url": webhook_url,
    }
    response = client.post("/api/v1/deals", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


@pytest.fixture
def deal(client: Any, cs: dict[str, str], receiver: Receiver, creator: NewKey) -> dict[str, Any]:
    receiver.secret = creator.webhook_secret
    return create_deal(client, cs, receiver.url)


def emit_for(rt: Runtime, deal_id: str, type: str = "report.completed", **data: Any) -> str:
    """What the lead's code does when a deal's report completes: emit in the transaction, then enqueue."""
    with transaction(rt.sessions) as session:
        row = session.get(Deal, deal_id)
        assert row is not None
        event = operations.emit(
            session,
            deal_id=row.id,
            company=row.company,
            store_id=row.store_id,
            creator_id=row.created_by,
            webhook_url=row.webhook_url,
            type=type,
            data={"deal_id": row.id, "listing_id": row.listing_id, "stage": "signing", "decision": "ALLOW", **data},
            clock=rt.clock,
        )
        assert event is not None
        event_id = event.id
    return event_id


def work(rt: Runtime) -> None:
    """Run what is queued on `webhooks` with a real SimpleWorker, in burst mode, in this thread."""
    worker = make_worker(rt, (WEBHOOKS,))
    try:
        worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    finally:
        worker.connection.close()


def send_now(rt: Runtime, event_id: str) -> None:
    assert enqueue_deliveries(rt, [event_id]) == 1
    work(rt)


def next_attempt(rt: Runtime, event_id: str) -> None:
    """Move the clock to the event's planned attempt, sweep, and let the worker run what the sweep enqueued."""
    event = load(rt, event_id)
    assert event.status == "pending" and event.next_attempt_at is not None
    rt.clock.set(event.next_attempt_at)  # type: ignore[attr-defined]
    assert delivery.requeue_due_webhooks(rt) == 1
    work(rt)


def load(rt: Runtime, event_id: str) -> WebhookEvent:
    with rt.sessions() as session:
        event = session.scalars(
            select(WebhookEvent).where(WebhookEvent.id == event_id).options(selectinload(WebhookEvent.attempts))
        ).one()
        session.expunge_all()
        return event


# -- delivery -----------------------------------------------------------------------------------


def test_a_delivery_posts_the_stored_body_signed_with_the_creators_secret(rt, deal, receiver, creator):
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)

    [got] = receiver.received
    event = load(rt, event_id)
    assert got.signature_ok
    assert got.body == event.body.encode("utf-8")
    assert got.path == "/hooks/presign"
    assert got.headers["Content-Type"] == "application/json"
    body = json.loads(got.body)
    assert set(body) == {"id", "type", "created_at", "data"}
    assert body["id"] == event_id and event_id.startswith("evt_")
    assert body["type"] == "report.completed"
    assert datetime.fromisoformat(body["created_at"]) == START
    assert body["data"]["deal_id"] == deal["id"]
    header = got.headers["Presign-Signature"]
    assert header.startswith(f"t={int(START.timestamp())},v1=")
    assert signing.verify(creator.webhook_secret, header, got.body, now=int(START.timestamp()))
    assert not signing.verify("whsec_someone_else", header, got.body, now=int(START.timestamp()))
    assert (event.status, event.delivered_at, event.next_attempt_at) == ("delivered", START, None)
    [attempt] = event.attempts
    assert (attempt.number, attempt.status_code, attempt.error, attempt.attempted_at) == (1, 200, None, START)


def test_emit_writes_nothing_for_a_deal_without_a_webhook_url_and_never_commits(rt, client, cs):
    bare = create_deal(client, cs, None)
    with transaction(rt.sessions) as session:
        row = session.get(Deal, bare["id"])
        assert row is not None
        none = operations.emit(
            session, deal_id=row.id, company=row.company, store_id=row.store_id, creator_id=row.created_by,
            webhook_url=None, type="gate.changed", data={}, clock=rt.clock,
        )  # fmt: skip
        assert none is None
    with rt.sessions() as session:
        event = operations.emit(
            session, deal_id=bare["id"], company="default", store_id="default", creator_id="cli_x",
            webhook_url="https://hooks.example/x", type="gate.changed", data={}, clock=rt.clock,
        )  # fmt: skip
        assert event is not None
        session.rollback()  # the caller's transaction decides: rolled back, nothing was written
    with rt.sessions() as session:
        assert session.scalars(select(WebhookEvent)).all() == []
    with pytest.raises(ValueError), rt.sessions() as session:
        operations.emit(
            session, deal_id="dl_x", company="c", store_id="s", creator_id="cli_x",
            webhook_url="https://hooks.example/x", type="deal.exploded", data={}, clock=rt.clock,
        )  # fmt: skip


def test_a_failed_delivery_is_retried_with_the_same_event_and_a_growing_backoff(rt, deal, receiver, redis):
    receiver.fail_next = 3
    event_id = emit_for(rt, deal["id"], type="gate.changed", previous_decision=None)
    send_now(rt, event_id)
    # The next attempt is both in the row and scheduled in RQ under the attempt's own job id.
    assert Job.fetch(webhook_job_id(event_id, 2), connection=redis).get_status() == JobStatus.SCHEDULED

    waits = []
    for _ in range(3):
        event = load(rt, event_id)
        waits.append((event.next_attempt_at - event.attempts[-1].attempted_at).total_seconds())
        next_attempt(rt, event_id)

    event = load(rt, event_id)
    assert event.status == "delivered"
    assert [a.status_code for a in event.attempts] == [500, 500, 500, 200]
    assert receiver.ids() == [event_id] * 4
    assert len({r.body for r in receiver.received}) == 1  # the very same bytes every time
    assert all(r.signature_ok for r in receiver.received)
    assert waits == sorted(waits) and waits[0] < waits[1] < waits[2]
    for wait, base in zip(waits, operations.BACKOFF, strict=False):
        assert base <= wait <= base * (1 + operations.JITTER)
    # Each attempt is signed when it is sent: a receiver refusing old signatures accepts a late retry.
    stamps = [int(r.headers["Presign-Signature"].split(",")[0][2:]) for r in receiver.received]
    assert stamps == [int(a.attempted_at.timestamp()) for a in event.attempts]


def test_nothing_is_lost_while_the_receiver_is_down_for_an_hour(rt, deal, receiver):
    receiver.stop()
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)
    while rt.clock.now() < START + timedelta(hours=1):
        next_attempt(rt, event_id)
    assert receiver.received == []
    refused = load(rt, event_id).attempts
    assert refused and all(a.status_code is None and "connection to 127.0.0.1 failed" in a.error for a in refused)

    receiver.start()  # back on the same port
    next_attempt(rt, event_id)

    event = load(rt, event_id)
    assert event.status == "delivered"
    assert receiver.ids() == [event_id]
    assert receiver.received[0].signature_ok
    assert [a.number for a in event.attempts] == list(range(1, len(refused) + 2))


def test_a_delivered_event_is_never_sent_again_by_a_stale_job_or_the_sweep(rt, deal, receiver):
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)
    assert len(receiver.received) == 1

    enqueue_deliveries(rt, [event_id])  # a stale copy of the first job
    work(rt)
    assert delivery.deliver(rt, event_id) == "skipped"
    rt.clock.advance(timedelta(days=2))
    assert delivery.requeue_due_webhooks(rt) == 0
    work(rt)

    assert len(receiver.received) == 1
    assert len(load(rt, event_id).attempts) == 1


def test_a_stale_job_before_the_retry_is_due_sends_nothing(rt, deal, receiver):
    receiver.fail_next = 1
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)
    enqueue_deliveries(rt, [event_id])  # attempt 1's job again, long before attempt 2 is due
    work(rt)
    assert delivery.requeue_due_webhooks(rt) == 0
    assert len(receiver.received) == 1
    assert load(rt, event_id).attempt_count == 1


def test_two_deliveries_of_one_event_at_once_send_it_once(rt, deal, receiver):
    receiver.delay = 0.5
    event_id = emit_for(rt, deal["id"])
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(delivery.deliver(rt, event_id))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["delivered", "skipped"]
    assert len(receiver.received) == 1
    assert len(load(rt, event_id).attempts) == 1


def test_gives_up_after_a_day_and_marks_the_event_failed(rt, deal, receiver):
    receiver.fail_next = 10**6
    receiver.fail_status = 503
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)
    for _ in range(40):
        if load(rt, event_id).status != "pending":
            break
        next_attempt(rt, event_id)

    event = load(rt, event_id)
    assert event.status == "failed"
    assert event.next_attempt_at is None and event.failed_at is not None
    times = [a.attempted_at for a in event.attempts]
    assert times == sorted(times)
    assert times[-1] - event.created_at >= timedelta(hours=24)  # retried for at least a day
    assert all(t - event.created_at < timedelta(hours=24) for t in times[:-1])  # and stopped then
    assert all(a.status_code == 503 for a in event.attempts)
    assert receiver.ids() == [event_id] * len(times)
    rt.clock.advance(timedelta(days=3))
    assert delivery.requeue_due_webhooks(rt) == 0


def test_a_private_url_is_refused_at_delivery_without_the_allow_flag(rt, deal, receiver):
    event_id = emit_for(rt, deal["id"])
    rt.settings = replace(rt.settings, webhook_allow_private=False)  # the deal was written while allowed
    send_now(rt, event_id)

    assert receiver.received == []
    event = load(rt, event_id)
    assert event.status == "failed"
    [attempt] = event.attempts
    assert attempt.status_code is None
    assert "refused" in attempt.error and "127.0.0.1 is a loopback address" in attempt.error
    rt.clock.advance(timedelta(hours=2))
    assert delivery.requeue_due_webhooks(rt) == 0  # not retried


def test_a_redirect_is_recorded_and_not_followed(rt, deal, receiver):
    receiver.redirect_to = f"http://127.0.0.1:{receiver.port}/elsewhere"
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)
    assert [r.path for r in receiver.received] == ["/hooks/presign"]
    event = load(rt, event_id)
    assert event.status == "pending"
    assert (event.attempts[0].status_code, event.attempts[0].error) == (302, "redirects are not followed")


def test_a_receiver_that_does_not_answer_in_time_is_retried(rt, deal, receiver, monkeypatch):
    monkeypatch.setattr(delivery, "READ_TIMEOUT", 0.3)
    receiver.delay = 1.0
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)
    event = load(rt, event_id)
    assert event.status == "pending"
    [attempt] = event.attempts
    assert attempt.status_code is None and attempt.error == "no answer within 0.3 s"
    assert 250 <= attempt.duration_ms < 1000

    receiver.delay = 0
    next_attempt(rt, event_id)
    assert load(rt, event_id).status == "delivered"


def test_an_answer_that_trickles_in_is_cut_at_the_total_timeout(rt, deal, receiver, monkeypatch):
    monkeypatch.setattr(delivery, "READ_TIMEOUT", 0.5)  # each byte comes sooner than this
    monkeypatch.setattr(delivery, "TOTAL_TIMEOUT", 1.0)
    receiver.trickle = True
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)
    event = load(rt, event_id)
    assert event.status == "pending"
    [attempt] = event.attempts
    assert attempt.status_code is None and attempt.error == "no complete answer within 1 s"
    assert 900 <= attempt.duration_ms < 2500


def test_an_answer_that_is_not_http_is_a_failed_attempt(rt, deal, receiver):
    receiver.garbage = True
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)
    event = load(rt, event_id)
    assert event.status == "pending" and event.claim_token is None
    assert event.attempts[0].status_code is None and event.attempts[0].error.startswith("BadStatusLine")


def test_a_retry_goes_to_the_deals_current_url(rt, client, cs, deal, receiver, creator):
    receiver.fail_next = 1
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)
    fixed = Receiver().start()
    fixed.secret = creator.webhook_secret
    try:
        response = client.patch(f"/api/v1/deals/{deal['id']}", json={"webhook_url": fixed.url}, headers=cs)
        assert response.status_code == 200, response.get_json()
        next_attempt(rt, event_id)
        assert fixed.ids() == [event_id] and fixed.received[0].signature_ok
        assert load(rt, event_id).status == "delivered"
    finally:
        fixed.stop()


@pytest.fixture
def localhost_cert(tmp_path) -> tuple[str, str]:
    """A self-signed certificate for `localhost` (cert file, key file)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_receiver(localhost_cert, creator) -> Iterator[Receiver]:
    server = Receiver().start(tls=localhost_cert)
    server.secret = creator.webhook_secret
    yield server
    server.stop()


def test_https_is_sent_to_the_checked_address_and_verified_against_the_host_name(
    rt, client, cs, tls_receiver, localhost_cert, monkeypatch
):
    monkeypatch.setattr(delivery.certifi, "where", lambda: localhost_cert[0])  # trust the test's certificate
    https = create_deal(client, cs, f"https://localhost:{tls_receiver.port}/hooks/presign")
    event_id = emit_for(rt, https["id"])
    send_now(rt, event_id)
    assert load(rt, event_id).status == "delivered"
    [got] = tls_receiver.received
    assert got.signature_ok and got.headers["Host"] == f"localhost:{tls_receiver.port}"


def test_https_with_an_untrusted_certificate_or_another_name_is_not_delivered(
    rt, client, cs, tls_receiver, localhost_cert, monkeypatch
):
    untrusted = emit_for(rt, create_deal(client, cs, f"https://localhost:{tls_receiver.port}/h")["id"])
    send_now(rt, untrusted)
    monkeypatch.setattr(delivery.certifi, "where", lambda: localhost_cert[0])
    wrong_name = emit_for(rt, create_deal(client, cs, f"https://127.0.0.1:{tls_receiver.port}/h")["id"])
    send_now(rt, wrong_name)

    assert tls_receiver.received == []
    for event_id, reason in ((untrusted, "certificate verify failed"), (wrong_name, "doesn't match 'localhost'")):
        event = load(rt, event_id)
        assert event.status == "pending"  # retried: a certificate can be fixed within the day
        assert event.attempts[0].error.startswith("TLS error") and reason in event.attempts[0].error


def test_an_attempt_that_never_reported_back_is_logged_and_tried_again(rt, client, cs, deal, receiver):
    event_id = emit_for(rt, deal["id"])
    assert operations.claim(rt.sessions, rt.clock, event_id) is not None  # a worker takes it, then dies
    assert delivery.requeue_due_webhooks(rt) == 0  # held by a live claim
    rt.clock.advance(operations.CLAIM_TTL + timedelta(seconds=1))
    assert delivery.requeue_due_webhooks(rt) == 1
    work(rt)

    event = load(rt, event_id)
    assert event.status == "delivered" and receiver.ids() == [event_id]
    [lost, done] = event.attempts
    assert (lost.number, lost.status_code, lost.error, lost.duration_ms) == (1, None, operations.INTERRUPTED, None)
    assert lost.attempted_at == START
    assert (done.number, done.status_code) == (2, 200)
    page = client.get(f"/api/v1/deals/{deal['id']}/webhooks", headers=cs).get_json()
    assert [a["duration_ms"] is None for a in page["items"][0]["attempts"]] == [True, False]


def test_a_job_left_started_by_a_hard_killed_worker_does_not_hold_the_event(rt, deal, receiver, redis):
    event_id = emit_for(rt, deal["id"])
    enqueue_deliveries(rt, [event_id])
    job = Job.fetch(webhook_job_id(event_id, 1), connection=redis)
    job.set_status(JobStatus.STARTED)  # a worker took the job ...
    assert operations.claim(rt.sessions, rt.clock, event_id) is not None  # ... and the event, then got SIGKILL
    assert delivery.requeue_due_webhooks(rt) == 0
    rt.clock.advance(operations.CLAIM_TTL + timedelta(seconds=1))
    assert delivery.requeue_due_webhooks(rt) == 1
    work(rt)
    assert load(rt, event_id).status == "delivered" and receiver.ids() == [event_id]


def test_a_job_started_but_never_claiming_is_taken_as_dead_after_the_job_timeout(rt, deal, receiver, redis):
    event_id = emit_for(rt, deal["id"])
    enqueue_deliveries(rt, [event_id])
    Job.fetch(webhook_job_id(event_id, 1), connection=redis).set_status(JobStatus.STARTED)
    assert delivery.requeue_due_webhooks(rt) == 0  # it may be about to claim
    rt.clock.advance(timedelta(seconds=WEBHOOK_JOB_TIMEOUT + 31))
    assert delivery.requeue_due_webhooks(rt) == 1
    work(rt)
    assert load(rt, event_id).status == "delivered" and receiver.ids() == [event_id]


def test_past_the_day_an_attempt_that_never_reported_back_fails_the_event(rt, deal, receiver):
    event_id = emit_for(rt, deal["id"])
    rt.clock.set(START + timedelta(hours=24))
    assert operations.claim(rt.sessions, rt.clock, event_id) is not None  # the last try hangs and is killed
    rt.clock.advance(operations.CLAIM_TTL + timedelta(seconds=1))
    assert delivery.requeue_due_webhooks(rt) == 1
    work(rt)

    event = load(rt, event_id)
    assert event.status == "failed" and event.last_error == operations.INTERRUPTED
    assert [a.error for a in event.attempts] == [operations.INTERRUPTED]
    assert receiver.received == []
    assert delivery.requeue_due_webhooks(rt) == 0


# -- Redis loses work: the database still has it ------------------------------------------------


def test_after_redis_is_flushed_the_sweep_enqueues_the_due_event(rt, deal, receiver, redis):
    receiver.fail_next = 1
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)
    redis.flushdb()  # the scheduled retry is gone
    rt.clock.set(load(rt, event_id).next_attempt_at)

    assert delivery.requeue_due_webhooks(rt) == 1
    assert delivery.requeue_due_webhooks(rt) == 0  # already queued: not twice
    work(rt)

    assert load(rt, event_id).status == "delivered"
    assert receiver.ids() == [event_id, event_id]


def test_an_event_never_enqueued_is_sent_by_the_worker_sweep(rt, deal, receiver, redis):
    from worker.reconcile import Sweeper

    event_id = emit_for(rt, deal["id"])
    redis.flushdb()  # as if the enqueue after the commit had been lost
    assert Sweeper(rt).sweep_once() >= 1
    work(rt)
    assert receiver.ids() == [event_id]


def test_enqueue_deliveries_does_not_raise_when_redis_is_down(rt, deal, receiver):
    event_id = emit_for(rt, deal["id"])
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    real, rt._redis = rt._redis, down
    try:
        assert enqueue_deliveries(rt, [event_id, None]) == 0
    finally:
        rt._redis = real
        down.close()
    assert delivery.requeue_due_webhooks(rt) == 1
    work(rt)
    assert receiver.ids() == [event_id]


# -- the delivery log in the API ----------------------------------------------------------------


def test_every_attempt_is_readable_through_the_api(rt, client, cs, deal, receiver, creator):
    receiver.fail_next = 2
    first = emit_for(rt, deal["id"])
    send_now(rt, first)
    next_attempt(rt, first)
    next_attempt(rt, first)
    second = emit_for(rt, deal["id"], type="gate.changed", previous_decision=None)
    receiver.stop()
    send_now(rt, second)

    response = client.get(f"/api/v1/deals/{deal['id']}/webhooks", headers=cs)
    assert response.status_code == 200, response.get_json()
    page = response.get_json()
    assert page["next"] is None
    assert [item["id"] for item in page["items"]] == [second, first]  # newest first
    pending, delivered = page["items"]

    assert delivered["type"] == "report.completed" and delivered["status"] == "delivered"
    assert delivered["data"]["deal_id"] == deal["id"]
    assert [a["status_code"] for a in delivered["attempts"]] == [500, 500, 200]
    assert [a["number"] for a in delivered["attempts"]] == [1, 2, 3]
    for attempt in delivered["attempts"]:
        assert datetime.fromisoformat(attempt["attempted_at"]).utcoffset() is not None
        assert isinstance(attempt["duration_ms"], int) and attempt["duration_ms"] >= 0
        assert attempt["error"] is None
    assert delivered["attempts"][0]["response_snippet"] == '{"error":"down"}'
    assert delivered["next_attempt_at"] is None and delivered["delivered_at"] is not None

    assert pending["status"] == "pending" and pending["delivered_at"] is None
    assert pending["next_attempt_at"] is not None
    assert pending["attempts"][0]["status_code"] is None and "failed" in pending["attempts"][0]["error"]
    assert creator.webhook_secret not in response.get_data(as_text=True)

    one = client.get(f"/api/v1/deals/{deal['id']}/webhooks?limit=1", headers=cs).get_json()
    assert [item["id"] for item in one["items"]] == [second] and one["next"]
    rest = client.get(f"/api/v1/deals/{deal['id']}/webhooks?limit=1&cursor={one['next']}", headers=cs).get_json()
    assert [item["id"] for item in rest["items"]] == [first] and rest["next"] is None


def test_a_deal_without_events_has_an_empty_log(client, cs, deal):
    response = client.get(f"/api/v1/deals/{deal['id']}/webhooks", headers=cs)
    assert response.status_code == 200
    assert response.get_json() == {"items": [], "next": None}


def test_the_webhook_log_is_for_the_deals_company_and_roles_that_manage_deals(rt, client, cs, deal, auth):
    emit_for(rt, deal["id"])
    path = f"/api/v1/deals/{deal['id']}/webhooks"
    assert client.get(path, headers=auth(role="admin")).status_code == 200
    assert_error(client.get(path, headers=auth(role="contract_system", company="other")), 404, "not_found")
    assert_error(client.get(path, headers=auth(role="admin", company="other")), 404, "not_found")
    assert_error(client.get(path, headers=auth(role="agent")), 403, "forbidden")
    assert_error(client.get(path, headers=auth(role="reviewer")), 403, "forbidden")
    assert_error(client.get(path), 401, "unauthorized")
    assert_error(client.get("/api/v1/deals/dl_nosuchdeal0000000000000/webhooks", headers=cs), 404, "not_found")
    assert_error(client.get("/api/v1/deals/NOT%20AN%20ID/webhooks", headers=cs), 404, "not_found")
    assert_error(client.get(f"{path}?cursor=garbage", headers=cs), 422, "validation_error")


def test_the_webhook_log_is_in_the_openapi_document(client):
    document = client.get("/api/v1/openapi.json").get_json()
    operation = document["paths"]["/api/v1/deals/{deal_id}/webhooks"]["get"]
    assert {"200", "401", "403", "404"} <= set(operation["responses"])
