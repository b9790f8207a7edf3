# ruff: noqa: F811 - the fixtures of tests/test_webhooks.py are imported by name
"""Webhook signatures for v1.1 secrets (Standard Webhooks, checked with that spec's reference library as a
receiver would), secret rotation, a receiver's 410 Gone and its Retry-After."""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from risk.auth import operations as keys
from risk.auth.keys import new_webhook_secret
from risk.auth.models import WebhookSecret
from risk.db import transaction
from risk.webhooks import signing
from tests.test_webhooks import (  # noqa: F401 - fixtures
    creator,
    cs,
    deal,
    emit_for,
    load,
    send_now,
)


@pytest.fixture
def now(rt):
    """The reference library checks the timestamp against the real time: so does this test's clock."""
    rt.clock.set(datetime.now(UTC).replace(microsecond=0))
    return rt.clock.now()


def test_a_delivery_verifies_with_the_standard_webhooks_reference_library(rt, deal, receiver, creator, now):
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)

    [got] = receiver.received
    payload = Webhook(creator.webhook_secret).verify(got.body, got.headers)
    assert payload["id"] == event_id
    assert got.headers["webhook-id"] == event_id
    assert got.headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert got.signature_ok  # Presign-Signature as before, keyed by the secret string as printed
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(got.body, got.headers)  # another secret


def test_a_tampered_body_does_not_verify(rt, deal, receiver, creator, now):
    send_now(rt, emit_for(rt, deal["id"]))
    [got] = receiver.received
    with pytest.raises(WebhookVerificationError):
        Webhook(creator.webhook_secret).verify(got.body.replace(b"ALLOW", b"BLOCK"), got.headers)


def test_a_secret_issued_before_v1_1_signs_only_presign_signature(rt, deal, receiver, creator, now):
    legacy = "whsec_pre-v1.1-url-safe-token"
    with transaction(rt.sessions) as session:
        session.execute(
            update(WebhookSecret)
            .where(WebhookSecret.client_id == creator.client.id)
            .values(encrypted=rt.secret_box.encrypt(legacy), standard=False)
        )
    receiver.secret = legacy
    send_now(rt, emit_for(rt, deal["id"]))

    [got] = receiver.received
    assert got.signature_ok
    assert not {"webhook-id", "webhook-timestamp", "webhook-signature"} & {h.lower() for h in got.headers}


def test_during_a_secret_rotation_both_secrets_sign_both_headers(rt, deal, receiver, creator, now):
    with transaction(rt.sessions) as session:
        client = keys.get_client(session, creator.client.id)
        new_secret = keys.rotate_secret(session, rt.clock, rt.secret_box, client, timedelta(hours=1))
    send_now(rt, emit_for(rt, deal["id"]))

    [got] = receiver.received
    for secret in (creator.webhook_secret, new_secret):
        Webhook(secret).verify(got.body, got.headers)
        assert signing.verify(secret, got.headers["Presign-Signature"], got.body, now=int(now.timestamp()))
    assert got.headers["Presign-Signature"].count("v1=") == 2
    assert len(got.headers["webhook-signature"].split(" ")) == 2


def test_after_the_rotation_overlap_only_the_new_secret_signs(rt, deal, receiver, creator, now):
    with transaction(rt.sessions) as session:
        client = keys.get_client(session, creator.client.id)
        new_secret = keys.rotate_secret(session, rt.clock, rt.secret_box, client, timedelta(0))
    send_now(rt, emit_for(rt, deal["id"]))

    [got] = receiver.received
    Webhook(new_secret).verify(got.body, got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(creator.webhook_secret).verify(got.body, got.headers)
    assert got.headers["Presign-Signature"].count("v1=") == 1


def test_a_410_gone_disables_the_deals_webhook_until_its_url_is_patched(rt, client, cs, deal, receiver):
    receiver.fail_next, receiver.fail_status = 1, 410
    first = emit_for(rt, deal["id"])
    send_now(rt, first)

    event = load(rt, first)
    assert event.status == "failed"
    assert event.attempts[-1].status_code == 410 and "410" in (event.attempts[-1].error or "")
    shown = client.get(f"/api/v1/deals/{deal['id']}", headers=cs).get_json()
    assert shown["webhook_disabled_at"] is not None

    second = emit_for(rt, deal["id"])
    send_now(rt, second)
    assert len(receiver.received) == 1  # nothing sent while disabled
    assert load(rt, second).status == "failed" and "disabled" in (load(rt, second).last_error or "")

    patched = client.patch(f"/api/v1/deals/{deal['id']}", json={"webhook_url": receiver.url}, headers=cs)
    assert patched.status_code == 200 and patched.get_json()["webhook_disabled_at"] is None
    third = emit_for(rt, deal["id"])
    send_now(rt, third)
    assert load(rt, third).status == "delivered"


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_honoured(rt, deal, receiver, status):
    receiver.fail_next, receiver.fail_status = 1, status
    receiver.fail_headers = {"Retry-After": "1800"}
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)

    event = load(rt, event_id)
    assert event.status == "pending"
    assert event.next_attempt_at is not None and event.next_attempt_at >= rt.clock.now() + timedelta(seconds=1800)


def test_retry_after_as_an_http_date_is_honoured(rt, deal, receiver):
    later = rt.clock.now() + timedelta(hours=2)
    receiver.fail_next, receiver.fail_status = 1, 503
    receiver.fail_headers = {"Retry-After": email.utils.format_datetime(later, usegmt=True)}
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)

    assert load(rt, event_id).next_attempt_at >= later


def test_a_500_with_retry_after_keeps_the_usual_backoff(rt, deal, receiver):
    receiver.fail_next, receiver.fail_status = 1, 500
    receiver.fail_headers = {"Retry-After": "1800"}
    event_id = emit_for(rt, deal["id"])
    send_now(rt, event_id)

    assert load(rt, event_id).next_attempt_at < rt.clock.now() + timedelta(minutes=5)
