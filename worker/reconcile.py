"""Re-enqueues, from the database, the work Redis lost.

The database is the source of truth: a report pending with no job in Redis (Redis flushed or
restarted, the enqueue failed) or running with no heartbeat (worker killed, job failed while the
database was down) is enqueued again under the same job id. This runs on a timer in
every worker process, under a database lease so that one process sweeps at a time; it is not an RQ
job, so a Redis flush cannot erase it. The same timer chains pending audit events (API.md: within 5
seconds), in every worker at once: the chainer takes its own per-company lock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from redis.exceptions import RedisError
from rq.job import Job, JobStatus
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from risk.audit.chain import chain_pending
from risk.db import transaction
from risk.deals.rechecks import start_due_rechecks
from risk.idempotency import purge_expired
from risk.locks import release, try_acquire
from risk.queues import enqueue_report, report_job_id
from risk.reports.models import Report
from risk.runtime import Runtime
from worker.outage import OutageLog
from worker.webhooks import requeue_due_webhooks

log = logging.getLogger(__name__)
LEASE = "sweep:reports"
_WAITING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def unfinished_reports(rt: Runtime, limit: int = 500) -> list[Any]:
    """Reports pending or running with no progress for `report_stale_after`, oldest first: (id,
    status, updated_at, heartbeat_at)."""
    cutoff = rt.clock.now() - rt.settings.report_stale_after
    with rt.sessions() as session:
        rows = session.execute(
            select(Report.id, Report.status, Report.updated_at, Report.heartbeat_at)
            .where(Report.status.in_(("pending", "running")), Report.updated_at < cutoff)
            .order_by(Report.updated_at)
            .limit(limit)
        )
        return list(rows)


def requeue_stale_reports(rt: Runtime) -> int:
    """Enqueue every report that no live job or worker is taking care of. Returns how many.

    A report is left alone while its job waits in Redis (queued, scheduled, deferred) or while a worker
    writes its heartbeat. Otherwise it was lost: a pending report Redis never got or lost (a flush, a
    restart), or a running one whose worker was killed (its job still says "started") or whose job
    failed while the database was down (RQ's retries spent). Two runs of one report cannot both
    complete it (the runner's compare-and-set), so a rare early requeue costs time, never a duplicate."""
    rows = unfinished_reports(rt)
    if not rows:
        return 0
    redis = rt.redis()
    abandoned_before = rt.clock.now() - rt.settings.report_heartbeat_timeout
    jobs = Job.fetch_many([report_job_id(row.id) for row in rows], connection=redis)
    count = 0
    for row, job in zip(rows, jobs, strict=True):
        status = job.get_status(refresh=False) if job is not None else None
        if status in _WAITING:
            continue
        last_beat = max(row.updated_at, row.heartbeat_at or row.updated_at)
        if (status == JobStatus.STARTED or row.status == "running") and last_beat >= abandoned_before:
            continue  # a live worker is running it
        if job is not None:
            job.delete()
        if enqueue_report(rt, row.id):
            count += 1
            log.warning("report %s was %s with job %s; enqueued again", row.id, row.status, status or "missing")
    return count


def _start_due_rechecks(rt: Runtime) -> int:
    return len(start_due_rechecks(rt))


def _purge_idempotency_keys(rt: Runtime) -> int:
    with transaction(rt.sessions) as session:
        purge_expired(session, rt.clock.now())  # Idempotency-Keys past their 24 hours
    return 0


# Every sweep, in order: a periodic task is one more entry (a function of the Runtime returning how
# much it started).
SWEEPS: list[Callable[[Runtime], int]] = [
    requeue_stale_reports,
    _start_due_rechecks,
    requeue_due_webhooks,
    _purge_idempotency_keys,
]


# Audit events are chained on this timer, and must be within 5 seconds of their action.
SWEEP_INTERVAL = 2.0


class Sweeper:
    """A daemon thread that chains audit events and runs the sweeps (while holding the lease) every
    `interval` seconds."""

    def __init__(self, rt: Runtime, interval: float = SWEEP_INTERVAL) -> None:
        self.rt = rt
        self.interval = interval
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="presign-sweeper", daemon=True)
        self._outage = OutageLog(log, "sweep")

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and hand the lease on, so that a worker started next sweeps at once."""
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            release(self.rt.sessions, LEASE, self.holder)
        except Exception as exc:  # the database is down: the lease expires by itself
            log.warning("sweep lease not released (%s)", exc)

    def sweep_once(self) -> int:
        """One pass of every sweep, if this process holds the lease. Returns how much it started."""
        if not try_acquire(self.rt.sessions, self.rt.clock, LEASE, self.holder, timedelta(seconds=self.interval * 2)):
            return 0
        return sum(sweep(self.rt) for sweep in SWEEPS)

    def _guarded(self, task: Callable[[], Any]) -> None:
        """Run one task of the tick; an outage or a bug is logged and retried next tick, never fatal."""
        try:
            task()
        except (SQLAlchemyError, RedisError) as exc:  # an outage: the sweeper outlives it
            self._outage.failed(exc, self.interval)
        except Exception:  # a bug in one task must not end this worker's sweeps
            log.exception("sweep task failed; retrying in %.0fs", self.interval)
        else:
            self._outage.succeeded()

    def _loop(self) -> None:
        # The first pass runs at start: a worker restarted after an outage picks up stale reports and
        # due work at once, and the thread's own allocations (its malloc arena, its pooled connection,
        # about 1.7 MB of RSS) are made before the first job rather than in the middle of a busy queue.
        while True:
            # Every worker chains (the chainer takes its own per-company lock); the sweeps run under the lease.
            self._guarded(lambda: chain_pending(self.rt.sessions))
            self._guarded(self.sweep_once)
            if self._stop.wait(self.interval):
                return
