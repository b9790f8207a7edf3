"""Re-enqueues, from the database, the work Redis lost.

The database is the source of truth: a report still pending or running past its timeout (worker
killed, job lost, Redis flushed) is enqueued again under the same job id. This runs on a timer in
every worker process, under a database lease so that one process sweeps at a time; it is not an RQ
job, so a Redis flush cannot erase it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import timedelta

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select

from risk.locks import try_acquire
from risk.reports.models import Report
from risk.runtime import Runtime
from worker.queues import enqueue_report, report_job_id
from worker.webhooks import requeue_due_webhooks

log = logging.getLogger(__name__)
LEASE = "sweep:reports"
_LIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def stale_reports(rt: Runtime, limit: int = 500) -> list[str]:
    cutoff = rt.clock.now() - rt.settings.report_stale_after
    with rt.sessions() as session:
        return list(
            session.scalars(
                select(Report.id)
                .where(Report.status.in_(("pending", "running")), Report.updated_at < cutoff)
                .order_by(Report.updated_at)
                .limit(limit)
            )
        )


def requeue_stale_reports(rt: Runtime) -> int:
    """Enqueue every stale report whose job is not alive in Redis. Returns how many were enqueued."""
    count = 0
    redis = rt.redis()
    for report_id in stale_reports(rt):
        try:
            job: Job | None = Job.fetch(report_job_id(report_id), connection=redis)
        except NoSuchJobError:
            job = None
        status = job.get_status(refresh=False) if job else None
        if status in _LIVE:
            continue
        if job:
            job.delete()
        if enqueue_report(rt, report_id):
            count += 1
            log.warning("report %s was stale (job %s); enqueued again", report_id, status or "missing")
    return count


class Sweeper:
    """A daemon thread that runs the sweeps every `interval` seconds while holding the lease."""

    def __init__(self, rt: Runtime, interval: float = 5.0) -> None:
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
        return count

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep_once()
            except Exception:  # the sweeper must outlive a database or Redis outage; it retries next tick
                log.exception("sweep failed; retrying in %.0fs", self.interval)
