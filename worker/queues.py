"""Queues are named by workload, so a flood of one kind of work never starves another."""

from __future__ import annotations

import logging

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


def enqueue_report(rt: Runtime, report_id: str, *, unit_id: str | None = None) -> bool:
    """Hand a report to the workers. The row is already committed: if Redis is down this logs and
    returns False, and the reconciler enqueues it later.

    `unit_id`: the unit of the report's subject, from a caller that has the listing at hand. The job
    then sends its first provider calls before it claims the report (`risk.reports.runner`)."""
    # `enqueue_many` writes the job and queues it in one MULTI/EXEC; `enqueue` takes two round trips
    # (counted with INFO commandstats), each on the path from "request accepted" to the job starting.
    data = Queue.prepare_data(
        "worker.jobs.run_report",
        (report_id,),
        {"unit_id": unit_id} if unit_id else None,
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
