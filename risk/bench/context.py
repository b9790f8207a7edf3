"""What every section gets: the run's scratch space, its Redis, its sizes and the progress display."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

from risk.bench.infra import BenchError, Scratch
from risk.bench.results import Run


@dataclass(frozen=True)
class Sizes:
    latency_ms: float = 50.0
    latency_reports: int = 200  # measured reports (and as many floor jobs, interleaved)
    latency_calls: int = 50  # single provider calls and plain-Python rounds of four, for the limits
    drain_jobs: int = 1000  # reports (and no-op jobs) per throughput measurement; also the memory run
    pg_drain_jobs: int = 600
    warm_reports: int = 40  # per worker, before a throughput measurement
    gate_seconds: float = 3.0  # per closed-loop window
    gate_open_seconds: float = 5.0  # per open-loop run (the p99 at half the peak)
    gate_warmup: float = 1.0
    gate_concurrency: int = 4
    replan_deals: int = 10_000
    import_records: int = 100_000

    @classmethod
    def quick(cls, latency_ms: float = 50.0) -> Sizes:
        return cls(latency_ms=latency_ms, latency_reports=5, latency_calls=5, drain_jobs=20, pg_drain_jobs=20,
                   warm_reports=4, gate_seconds=0.3, gate_open_seconds=0.3, gate_warmup=0.1,
                   replan_deals=200, import_records=2_000)  # fmt: skip


@dataclass
class Context:
    scratch: Scratch
    run: Run
    sizes: Sizes
    redis_url: str
    pg: bool = True  # try PostgreSQL where the issue asks for it
    progress: Any = None  # rich Progress, or None
    failures: list[str] = field(default_factory=list)  # failed attempts RQ retried (and then finished)
    _task: Any = field(default=None, repr=False)

    def redis(self) -> Redis:
        conn = Redis.from_url(self.redis_url, socket_timeout=130)
        self.scratch.stack.callback(conn.close)
        return conn

    def step(self, text: str, total: float | None = None) -> None:
        if self.progress is None:
            return
        if self._task is not None:
            self.progress.update(self._task, visible=False)
        self._task = self.progress.add_task(text, total=total)

    def advance(self, amount: float = 1) -> None:
        if self.progress is not None and self._task is not None:
            self.progress.advance(self._task, amount)

    def finish_step(self) -> None:
        if self.progress is not None and self._task is not None:
            self.progress.update(self._task, visible=False)
            self._task = None


def wait_finished(job: Job, timeout: float = 60.0, failures: list[str] | None = None) -> Job:
    """Block until the job has finished (RQ's result stream), then return it refreshed.

    A failed attempt that RQ will retry is noted in `failures` and waited out; a job that fails for
    good, or is not done in time, breaks the harness."""
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        left = deadline - time.monotonic()
        result = job.latest_result(timeout=int(max(1, left))) if left > 0 else None
        status = job.get_status(refresh=True)
        if status == JobStatus.FINISHED:
            job.refresh()
            return job
        failure = (getattr(result, "exc_string", None) or "").strip()
        if failure and result is not None and result.id != seen:
            seen = result.id or ""
            if failures is not None:
                failures.append(f"{job.id}: {failure.splitlines()[-1]}")
        if status in (JobStatus.SCHEDULED, JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED) and left > 0:
            time.sleep(0.05)  # a retry is coming: RQ reschedules a failed attempt while it has retries left
            continue
        tail = "\n".join(failure.splitlines()[-12:])
        raise BenchError(f"job {job.id} did not finish within {timeout:.0f}s (status {status})"
                         + (f"\n{tail}" if tail else ""))  # fmt: skip


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise BenchError(f"{what} did not happen within {timeout:.0f}s")


@contextmanager
def holding(queue: Queue, workers: int, key: str, timeout: float = 120.0) -> Iterator[list[Job]]:
    """Keep `workers` workers busy on a hold job each until the block ends; yields the hold jobs."""
    holds = [queue.enqueue("risk.bench.jobs.hold", key, timeout, job_timeout=int(timeout) + 60, result_ttl=600)
             for _ in range(workers)]  # fmt: skip
    wait_until(lambda: all(j.get_status(refresh=True) == JobStatus.STARTED for j in holds), 60, "workers taking holds")
    try:
        yield holds
    finally:
        queue.connection.rpush(key, *["go"] * workers)
        queue.connection.expire(key, 60)
