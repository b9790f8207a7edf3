"""Webhook events: written in the caller's transaction, claimed by one delivery at a time, and their
attempts recorded with the next one planned. The database row is the delivery's state; RQ only carries
the jobs that act on it (worker/webhooks.py)."""

from __future__ import annotations

import json
import logging
import random
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from risk.auth.operations import SigningSecret, signing_secrets
from risk.clock import Clock, isoformat
from risk.crypto import SecretBox
from risk.db import new_id, transaction
from risk.deals.models import Deal
from risk.webhooks.models import EVENT_TYPES, WebhookAttempt, WebhookEvent

log = logging.getLogger(__name__)

# Retried for at least a day: the last attempt is made when the event is this old.
MAX_AGE = timedelta(hours=24)
# Seconds to wait after the 1st, 2nd, … failed attempt; the last figure repeats.
BACKOFF = (10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 21600, 28800, 43200)
JITTER = 0.1  # up to 10 % more, so that events failing together do not retry together
# How long a claim holds: longer than a delivery job may run (`risk.queues.WEBHOOK_JOB_TIMEOUT`), so a
# claim only lapses when its worker died.
CLAIM_TTL = timedelta(seconds=180)
# A job may start this much before the planned time (RQ's scheduler and our clock on another machine
# may disagree by a little) and still deliver.
EARLY = timedelta(seconds=5)
ERROR_LENGTH = 500
INTERRUPTED = "interrupted: the attempt never reported back (worker stopped or job killed)"
SNIPPET_LENGTH = 300
GONE = 410
GONE_ERROR = "410 Gone: the deal's webhook is disabled until its webhook_url is changed"
DISABLED_ERROR = "not sent: the deal's webhook is disabled (the receiver answered 410 Gone)"
# A receiver's Retry-After is honoured up to this; a longer one would outlast the day of retries.
MAX_RETRY_AFTER = timedelta(hours=6)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoformat(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable in a webhook body")


def emit(
    session: Session,
    *,
    deal_id: str,
    company: str,
    store_id: str,
    creator_id: str,
    webhook_url: str | None,
    type: str,
    data: dict[str, Any],
    clock: Clock | None = None,
) -> WebhookEvent | None:
    """Write an event for the deal's webhook in the caller's transaction (flushes, never commits).

    Returns None when the deal has no webhook URL. Once the caller has committed, it hands the ids to
    `risk.queues.enqueue_deliveries`; if it never does (or Redis is down), the sweep sends them anyway.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {type!r}")
    if not webhook_url:
        return None
    if clock is None:
        from risk.runtime import current

        clock = current().clock
    now = clock.now()
    event_id = new_id("evt")
    body = json.dumps(
        {"id": event_id, "type": type, "created_at": isoformat(now), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
        default=_json_default,
    )
    event = WebhookEvent(
        id=event_id,
        type=type,
        deal_id=deal_id,
        company=company,
        store_id=store_id,
        creator_id=creator_id,
        url=webhook_url,
        body=body,
        status="pending",
        attempt_count=0,
        created_at=now,
        updated_at=now,
        next_attempt_at=now,
    )
    session.add(event)
    session.flush()
    return event


def backoff(failed_attempts: int) -> timedelta:
    """The wait after the n-th failed attempt (n >= 1), jitter included."""
    base = BACKOFF[min(max(failed_attempts, 1), len(BACKOFF)) - 1]
    return timedelta(seconds=base * (1 + random.uniform(0, JITTER)))


@dataclass(frozen=True)
class Delivery:
    """What one claimed attempt needs, read in the claiming transaction (no ORM object leaves it)."""

    event_id: str
    token: str
    number: int  # this attempt's number, from 1
    url: str | None  # None: the deal's webhook URL was removed
    body: bytes
    # The deal creator's webhook secrets that sign now, newest first (two during a rotation's overlap);
    # empty if that client is gone.
    secrets: tuple[SigningSecret, ...]
    created_at: datetime
    deal_id: str | None = None
    disabled: bool = False  # the receiver answered 410 Gone and the URL has not been changed since


@dataclass(frozen=True)
class Outcome:
    attempted_at: datetime
    duration_ms: int | None
    status_code: int | None = None
    error: str | None = None
    snippet: str | None = None
    permanent: bool = False  # no point trying again (refused URL, creator gone)
    retry_after: timedelta | None = None  # the receiver's Retry-After on a 429 or 503

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and self.error is None


@dataclass(frozen=True)
class Recorded:
    status: str
    attempt_count: int
    next_attempt_at: datetime | None


def claim(
    sessions: sessionmaker[Session], clock: Clock, event_id: str, box: SecretBox | None = None
) -> Delivery | None:
    """Take the event for one attempt if it is pending, due and not held by another delivery; else None.

    A compare-and-set on the row: of two jobs for one event, one gets it; a stale job for a delivered,
    failed or not-yet-due event gets nothing. A previous claim that lapsed without an outcome (the worker
    died, or the job was killed) is logged as an interrupted attempt; past the day, the event then fails
    instead of being tried again, so not even a receiver that hangs every attempt is retried forever.
    """
    now = clock.now()
    token = secrets.token_hex(16)
    claimable = (
        WebhookEvent.id == event_id,
        WebhookEvent.status == "pending",
        WebhookEvent.next_attempt_at <= now + EARLY,
        or_(WebhookEvent.claim_expires_at.is_(None), WebhookEvent.claim_expires_at < now),
    )
    with transaction(sessions) as session:
        seen = session.execute(
            select(WebhookEvent.attempt_count, WebhookEvent.claim_expires_at, WebhookEvent.created_at).where(*claimable)
        ).first()
        if seen is None:
            return None
        count, lapsed, created_at = seen
        values: dict[str, Any] = {"claim_token": token, "claim_expires_at": now + CLAIM_TTL, "updated_at": now}
        give_up = False
        if lapsed is not None:
            values["attempt_count"] = count + 1
            give_up = now >= created_at + MAX_AGE
            if give_up:
                values.update(
                    status="failed", failed_at=now, next_attempt_at=None, claim_token=None, claim_expires_at=None,
                    last_error=INTERRUPTED,
                )  # fmt: skip
        result = session.execute(
            update(WebhookEvent)
            .where(*claimable, WebhookEvent.attempt_count == count)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            return None
        if lapsed is not None:
            session.add(
                WebhookAttempt(
                    event_id=event_id,
                    number=count + 1,
                    attempted_at=lapsed - CLAIM_TTL,
                    status_code=None,
                    error=INTERRUPTED,
                    duration_ms=None,
                )
            )
            log.warning("webhook %s: attempt %d never reported back (%s)", event_id, count + 1,
                        "failed: past the day" if give_up else "trying again")  # fmt: skip
        if give_up:
            return None
        event, deal_id, deal_url, disabled_at = session.execute(
            select(WebhookEvent, Deal.id, Deal.webhook_url, Deal.webhook_disabled_at)
            .outerjoin(Deal, Deal.id == WebhookEvent.deal_id)
            .where(WebhookEvent.id == event_id)
        ).one()
        if box is None:
            from risk.runtime import current

            box = current().secret_box
        signing = signing_secrets(session, box, event.creator_id, now)
        return Delivery(
            event_id=event.id,
            token=token,
            number=event.attempt_count + 1,
            # The deal's URL as it is now (a PATCH may have fixed it); the body stays as it was emitted.
            url=event.url if deal_id is None else deal_url,
            body=event.body.encode("utf-8"),
            secrets=signing,
            created_at=event.created_at,
            deal_id=deal_id,
            disabled=disabled_at is not None,
        )


def record_attempt(
    sessions: sessionmaker[Session], clock: Clock, delivery: Delivery, outcome: Outcome
) -> Recorded | None:
    """Log the attempt and move the event on: delivered, failed (a day has passed, or it cannot succeed),
    or pending with its next attempt planned. None if the claim was lost (the event is not touched)."""
    now = clock.now()
    deadline = delivery.created_at + MAX_AGE
    error = outcome.error if outcome.error is None else outcome.error[:ERROR_LENGTH]
    values: dict[str, Any] = {
        "attempt_count": delivery.number,
        "updated_at": now,
        "claim_token": None,
        "claim_expires_at": None,
        "last_error": None if outcome.delivered else (error or f"HTTP {outcome.status_code}")[:ERROR_LENGTH],
    }
    gone = outcome.status_code == GONE
    if outcome.delivered:
        values.update(status="delivered", delivered_at=now, next_attempt_at=None)
    elif outcome.permanent or gone or now >= deadline:
        values.update(status="failed", failed_at=now, next_attempt_at=None)
    else:
        values.update(status="pending", next_attempt_at=next_attempt(now, delivery.number, deadline, outcome))
    if gone:
        values["last_error"] = error = GONE_ERROR
    with transaction(sessions) as session:
        result = session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == delivery.event_id, WebhookEvent.claim_token == delivery.token)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:  # type: ignore[attr-defined]
            log.warning("webhook %s: claim lost before attempt %d was recorded", delivery.event_id, delivery.number)
            return None
        if gone and delivery.deal_id is not None:
            session.execute(
                update(Deal)
                .where(Deal.id == delivery.deal_id, Deal.webhook_disabled_at.is_(None))
                .values(webhook_disabled_at=now)
                .execution_options(synchronize_session=False)
            )
            log.warning("webhook %s: the receiver answered 410 Gone; deal %s's webhook is disabled",
                        delivery.event_id, delivery.deal_id)  # fmt: skip
        session.add(
            WebhookAttempt(
                event_id=delivery.event_id,
                number=delivery.number,
                attempted_at=outcome.attempted_at,
                status_code=outcome.status_code,
                error=error,
                duration_ms=outcome.duration_ms,
                response_snippet=None if outcome.snippet is None else outcome.snippet[:SNIPPET_LENGTH],
            )
        )
    return Recorded(status=values["status"], attempt_count=delivery.number, next_attempt_at=values["next_attempt_at"])


def next_attempt(now: datetime, failed_attempts: int, deadline: datetime, outcome: Outcome) -> datetime:
    """When to try again: after the backoff, within the day; never before a receiver's Retry-After."""
    planned = min(now + backoff(failed_attempts), deadline)
    if outcome.retry_after is not None:
        planned = max(planned, now + min(outcome.retry_after, MAX_RETRY_AFTER))
    return planned


@dataclass(frozen=True)
class Due:
    event_id: str
    attempt_count: int
    due_at: datetime
    lapsed_claim: bool  # a delivery took it and never reported back


def due_events(sessions: sessionmaker[Session], clock: Clock, limit: int = 500) -> list[Due]:
    """Pending events that are due and held by no live claim, the longest due first."""
    now = clock.now()
    with sessions() as session:
        rows = session.execute(
            select(
                WebhookEvent.id, WebhookEvent.attempt_count, WebhookEvent.next_attempt_at, WebhookEvent.claim_expires_at
            )
            .where(
                WebhookEvent.status == "pending",
                WebhookEvent.next_attempt_at <= now,
                or_(WebhookEvent.claim_expires_at.is_(None), WebhookEvent.claim_expires_at < now),
            )
            .order_by(WebhookEvent.next_attempt_at)
            .limit(limit)
        ).all()
    return [Due(event_id, count, due_at or now, lapsed is not None) for event_id, count, due_at, lapsed in rows]


# -- reading, for the API -------------------------------------------------------------------------


def deal_scope(session: Session, deal_id: str) -> tuple[str, str] | None:
    """(company, store_id) of a deal, or None when there is no such deal."""
    row = session.execute(select(Deal.company, Deal.store_id).where(Deal.id == deal_id)).first()
    return None if row is None else (row[0], row[1])


def event_view(event: WebhookEvent) -> dict[str, Any]:
    """An event as the API shows it: the body that is sent, and how its delivery went (no secrets)."""
    body = json.loads(event.body)
    return {
        "id": event.id,
        "type": event.type,
        "deal_id": event.deal_id,
        "created_at": body["created_at"],
        "data": body["data"],
        "status": event.status,
        "attempts": [
            {
                "number": a.number,
                "attempted_at": a.attempted_at,
                "status_code": a.status_code,
                "error": a.error,
                "duration_ms": a.duration_ms,
                "response_snippet": a.response_snippet,
            }
            for a in event.attempts
        ],
        "next_attempt_at": event.next_attempt_at,
        "delivered_at": event.delivered_at,
        "failed_at": event.failed_at,
    }
