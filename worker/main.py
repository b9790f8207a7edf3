"""Running a worker: one RQ worker, RQ's scheduler as a thread of it, the database sweeps and the
running reports' heartbeat on timers; it rides out Redis outages.

Worker class: `SimpleWorker` (no fork per job), as `Worker` below. A fork per job throws away what a process keeps
between jobs: HTTP sessions with their keep-alive connections, breaker state and the
database pool. A report's checks already run in a thread pool inside the job, so one process is kept
busy by I/O, not CPU; production scales out with more worker processes (`presign worker` many times).
Job timeouts still hold: SimpleWorker enforces them with SIGALRM in the main thread.

Threads, not processes: RQ's `work(with_scheduler=True)` forks its scheduler, and a worker killed with
SIGKILL left that child running for minutes, holding the scheduler locks and a database connection.
Every thread here dies with the worker.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.scheduler import RQScheduler

from risk.queues import ALL_QUEUES
from risk.redis_conn import redis_url
from risk.runtime import Runtime
from worker.heartbeat import Heartbeat
from worker.outage import REPEAT_EVERY, OutageLog
from worker.reconcile import SWEEP_INTERVAL, Sweeper

log = logging.getLogger(__name__)
# The longest pause between two tries to reach Redis again, in RQ's dequeue loop and here.
REDIS_RETRY_MAX = 5.0
# How often RQ's command-channel thread wakes to see whether it should stop: the bound on its share
# of a worker's shutdown.
COMMAND_CHANNEL_WAKE = 1.0


class Worker(SimpleWorker):
    """RQ's SimpleWorker, its command channel's thread waking every second instead of every minute.

    RQ unsubscribes before it stops that thread; a thread that reads the unsubscribe reply first then
    waits its whole interval for a subscription that never comes, and the stopping worker with it."""

    def subscribe(self) -> None:
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=COMMAND_CHANNEL_WAKE, daemon=True, exception_handler=self._pubsub_exception_handler
        )


def make_worker(rt: Runtime, queues: tuple[str, ...] = ALL_QUEUES) -> Worker:
    # The worker's own connection: RQ raises its socket timeout above the blocking dequeue's.
    connection = Redis.from_url(redis_url(rt.settings))
    worker = Worker([Queue(name, connection=connection) for name in queues], connection=connection)
    worker.max_connection_wait_time = REDIS_RETRY_MAX  # RQ's own default waits up to a minute
    return worker


class SchedulerThread:
    """RQ's scheduler (`RQScheduler`) driven by a thread of the worker: moves due scheduled jobs (retries
    with an interval, webhook retries) to their queues while it holds the queues' scheduler locks. It
    tries for the locks every tick, so a worker takes over within a lock's TTL of the holder's death."""

    def __init__(self, rt: Runtime, queues: tuple[str, ...] = ALL_QUEUES, interval: float = 1.0) -> None:
        connection = Redis.from_url(redis_url(rt.settings), socket_connect_timeout=2, socket_timeout=10)
        self.scheduler = RQScheduler(list(queues), connection=connection, interval=int(interval))
        self.queues = set(queues)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="presign-scheduler", daemon=True)
        self._outage = OutageLog(log, "scheduler (Redis)")

    def start(self) -> SchedulerThread:
        self._thread.start()
        return self

    def tick(self) -> None:
        if self.scheduler.acquired_locks != self.queues:
            self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            self.scheduler.heartbeat()
            self.scheduler.enqueue_scheduled_jobs()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            self.scheduler.release_locks()
        except RedisError:
            pass  # the locks expire by themselves

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except RedisError as exc:
                self._outage.failed(exc, self.interval)
            else:
                self._outage.succeeded()
            self._stop.wait(self.interval)


class _EveryThirtySeconds(logging.Filter):
    """Lets RQ's "could not connect to Redis" through once, then once every 30 seconds."""

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if "could not connect to Redis" not in str(record.msg):
            return True
        now = time.monotonic()
        if now - self._last < REPEAT_EVERY:
            return False
        self._last = now
        return True


def run_worker(rt: Runtime, *, burst: bool = False, sweep_interval: float = SWEEP_INTERVAL) -> bool:
    """Work until stopped (SIGTERM/SIGINT finish the current job first), or until the queues are
    empty with `burst`. Returns whether any job ran.

    Not in burst mode, a worker loop that RQ ends on a Redis error (a lost connection after a job,
    Redis down at start) is started again once Redis answers; the sweeps re-enqueue whatever Redis
    lost."""
    if burst:
        return make_worker(rt).work(burst=True, with_scheduler=True, logging_level="INFO")
    stop = threading.Event()
    worked = False
    rq_log = logging.getLogger("rq.worker")
    throttle = _EveryThirtySeconds()
    rq_log.addFilter(throttle)
    heartbeat = Heartbeat(rt).start()
    sweeper = Sweeper(rt, sweep_interval).start()
    scheduler = SchedulerThread(rt).start()
    outage = OutageLog(log, "worker (Redis)")
    try:
        while not stop.is_set():
            worker = make_worker(rt)
            _stop_on_signal(worker, stop)
            try:
                worked = worker.work(with_scheduler=False, logging_level="INFO") or worked
            except RedisError as exc:  # from RQ's start-up, outside its own retry loop
                outage.failed(exc, REDIS_RETRY_MAX)
            if not stop.is_set():
                stop.wait(1.0)  # RQ's loop ended on an error: never restart it in a tight loop
                _wait_for_redis(rt, stop, outage)
    finally:
        scheduler.stop()
        sweeper.stop()
        heartbeat.stop()
        rq_log.removeFilter(throttle)
    return worked


def _stop_on_signal(worker: Worker, stop: threading.Event) -> None:
    """Tell a stop request (SIGTERM, SIGINT) from RQ's loop ending on an error: RQ installs its bound
    `request_stop` as the handler when `work()` starts, so the instance's attribute is what it calls."""
    rq_request_stop = worker.request_stop

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()
        rq_request_stop(signum, frame)

    worker.request_stop = request_stop  # type: ignore[method-assign]


def _wait_for_redis(rt: Runtime, stop: threading.Event, outage: OutageLog) -> None:
    """Back off until Redis answers, or until SIGTERM/SIGINT."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    probe = Redis.from_url(redis_url(rt.settings), socket_connect_timeout=2, socket_timeout=2)
    pause = 0.25
    try:
        while not stop.is_set():
            try:
                probe.ping()
            except RedisError as exc:
                outage.failed(exc, pause)
                stop.wait(pause)
                pause = min(pause * 2, REDIS_RETRY_MAX)
            else:
                outage.succeeded()
                return
    finally:
        probe.close()
