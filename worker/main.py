"""Running a worker: one RQ worker with its scheduler, plus the database sweeps on a timer.

Worker class: `SimpleWorker` (no fork per job). A fork costs about 15 ms a job and throws away what a
process keeps between jobs: HTTP sessions with their keep-alive connections, breaker state and the
database pool. A report's checks already run in a thread pool inside the job, so one process is kept
busy by I/O, not CPU; production scales out with more worker processes (`presign worker` many times).
Job timeouts still hold: SimpleWorker enforces them with SIGALRM in the main thread.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq import Queue, SimpleWorker

from risk.redis_conn import redis_url
from risk.runtime import Runtime
from worker.queues import ALL_QUEUES
from worker.reconcile import SWEEP_INTERVAL, Sweeper

log = logging.getLogger(__name__)


def make_worker(rt: Runtime, queues: tuple[str, ...] = ALL_QUEUES) -> SimpleWorker:
    # The worker's own connection: RQ raises its socket timeout above the blocking dequeue's.
    connection = Redis.from_url(redis_url(rt.settings))
    return SimpleWorker([Queue(name, connection=connection) for name in queues], connection=connection)


def run_worker(rt: Runtime, *, burst: bool = False, sweep_interval: float = SWEEP_INTERVAL) -> bool:
    """Work until stopped (SIGTERM/SIGINT finish the current job first), or until the queues are
    empty with `burst`. Returns whether any job ran."""
    worker = make_worker(rt)
    sweeper = None if burst else Sweeper(rt, sweep_interval).start()
    try:
        return worker.work(burst=burst, with_scheduler=True, logging_level="INFO")
    finally:
        if sweeper is not None:
            sweeper.stop()
