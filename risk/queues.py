"""Handing work to the workers: queues are named by workload, so a flood of one kind of work never
starves another. Everything here runs after the caller's commit and never raises on a Redis outage:
the rows are in the database and the sweeps (`worker.reconcile`) enqueue them later."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from redis.exceptions import RedisError
from rq import Queue, Retry

from risk.runtime import Runtime

log = logging.getLogger(__name__)

REPORTS = "reports"
MAINTENANCE = "maintenance"
WEBHOOKS = "webhooks"
ALL_QUEUES = (REPORTS, MAINTENANCE, WEBHOOKS)

# A report job's own bounded retries; the reconciler covers what RQ loses.
REPORT_JOB_TIMEOUT = 120
REPORT_RETRY = Retry(max=2, interval=[2, 10])


def queue(rt: Runtime, name: str) -> Queue:
    return Queue(name, connection=rt.redis())


def report_job_id(report_id: str) -> str:
    return f"report-{report_id}"


def enqueue_report(rt: Runtime, report_id: str) -> bool:
    """Hand a committed report to the workers; False (logged) if Redis is down."""
    # `enqueue_many` writes the job and queues it in one MULTI/EXEC, one round trip fewer than `enqueue`.
    data = Queue.prepare_data(
        "worker.jobs.run_report",
        (report_id,),
        job_id=report_job_id(report_id),
        timeout=REPORT_JOB_TIMEOUT,
        result_ttl=600,
        failure_ttl=7 * 86400,
        retry=REPORT_RETRY,
    )
    try:
        queue(rt, REPORTS).enqueue_many([data])
    except RedisError as exc:
        log.warning("report %s not enqueued (Redis: %s); the reconciler will pick it up", report_id, exc)
        return False
    return True


# One webhook delivery attempt is one job (`worker.webhooks.deliver_webhook`).
WEBHOOK_JOB = "worker.webhooks.deliver_webhook"
WEBHOOK_JOB_TIMEOUT = 60  # a few connect timeouts, then the attempt's total timeout; under the claim's lease


def webhook_job_id(event_id: str, attempt: int) -> str:
    return f"webhook-{event_id}-{attempt}"


def enqueue_webhook(rt: Runtime, event_id: str, attempt: int, delay: timedelta | None = None) -> bool:
    """Queue attempt `attempt` of an event, now or after `delay`; False (logged) if Redis is down."""
    options = {
        "job_id": webhook_job_id(event_id, attempt),
        "job_timeout": WEBHOOK_JOB_TIMEOUT,
        "result_ttl": 3600,
        "failure_ttl": 7 * 86400,
    }
    try:
        if delay is None:
            queue(rt, WEBHOOKS).enqueue(WEBHOOK_JOB, event_id, **options)
        else:
            queue(rt, WEBHOOKS).enqueue_in(delay, WEBHOOK_JOB, event_id, **options)
    except RedisError as exc:
        log.warning("webhook %s attempt %d not enqueued (Redis: %s); the sweep will", event_id, attempt, exc)
        return False
    return True


def enqueue_deliveries(rt: Runtime, event_ids: Iterable[str | None]) -> int:
    """Hand freshly committed webhook events to the workers; returns how many were enqueued. None
    entries (what `emit` returns for a deal without a webhook URL) are skipped."""
    return sum(enqueue_webhook(rt, event_id, 1) for event_id in event_ids if event_id)
