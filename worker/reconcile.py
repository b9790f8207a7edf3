"""Re-enqueues, from the database, the work Redis lost.

The database is the source of truth: a report still pending or running past its timeout (worker
killed, job lost, Redis flushed) is enqueued again under the same job id. This runs on a timer in
every worker process, under a database lease so that one process sweeps at a time; it is not an RQ
job, so a Redis flush cannot erase it. The same timer chains pending audit events (API.md: within 5
seconds), in every worker at once: the chainer takes its own per-company lock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select

from risk.audit.chain import chain_pending
from risk.db import transaction
from risk.idempotency import purge_expired
from risk.locks import try_acquire
from risk.reports.models import Report
from risk.runtime import Runtime
from worker.queues import REPORT_JOB_TIMEOUT, enqueue_report, report_job_id
from worker.webhooks import requeue_due_webhooks

log = logging.getLogger(__name__)
LEASE = "sweep:reports"
_LIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def stale_reports(rt: Runtime, limit: int = 500) -> list[tuple[str, datetime]]:
    """(id, updated_at) of reports pending or running with no progress for `report_stale_after`."""
    cutoff = rt.clock.now() - rt.settings.report_stale_after
    with rt.sessions() as session:
        rows = session.execute(
            select(Report.id, Report.updated_at)
            .where(Report.status.in_(("pending", "running")), Report.updated_at < cutoff)
            .order_by(Report.updated_at)
            .limit(limit)
        )
        return [(row.id, row.updated_at) for row in rows]


def requeue_stale_reports(rt: Runtime) -> int:
    """Enqueue every stale report whose job is not alive in Redis. Returns how many were enqueued."""
    count = 0
    redis = rt.redis()
    # A job still "started" with no progress past its own timeout belongs to a worker that died
    # (killed hard, so RQ never marked it failed): it is not alive, whatever Redis says.
    dead_after = rt.clock.now() - timedelta(seconds=REPORT_JOB_TIMEOUT + 30)
    for report_id, updated_at in stale_reports(rt):
        try:
            job: Job | None = Job.fetch(report_job_id(report_id), connection=redis)
        except NoSuchJobError:
            job = None
        status = job.get_status(refresh=False) if job else None
        if status in _LIVE and not (status == JobStatus.STARTED and updated_at < dead_after):
            continue
        if job:
            job.delete()
        if enqueue_report(rt, report_id):
            count += 1
            log.warning("report %s was stale (job %s); enqueued again", report_id, status or "missing")
    return count


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

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sweep_once(self) -> int:
        """One pass of every sweep, if this process holds the lease. Returns how much it started."""
        from worker.recheck import start_due_rechecks

        if not try_acquire(self.rt.sessions, self.rt.clock, LEASE, self.holder, timedelta(seconds=self.interval * 3)):
            return 0
        count = requeue_stale_reports(self.rt)
        count += len(start_due_rechecks(self.rt))
        count += requeue_due_webhooks(self.rt)
        with transaction(self.rt.sessions) as session:
            purge_expired(session, self.rt.clock.now())  # Idempotency-Keys past their 24 hours
        return count

    def _loop(self) -> None:
        # The first pass runs at start: a worker restarted after an outage picks up stale reports and
        # due work at once, and the thread's own allocations (its malloc arena, its pooled connection,
        # about 1.7 MB of RSS) are made before the first job rather than in the middle of a busy queue.
        while True:
            try:
                chain_pending(self.rt.sessions)
            except Exception:  # as the sweeps: retried next tick, and a failed chaining stops no sweep
                log.exception("chaining audit events failed; retrying in %.0fs", self.interval)
            try:
                self.sweep_once()
            except Exception:  # the sweeper must outlive a database or Redis outage; it retries next tick
                log.exception("sweep failed; retrying in %.0fs", self.interval)
            if self._stop.wait(self.interval):
                return
