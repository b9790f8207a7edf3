"""2. Report throughput against RQ's own no-op throughput (same worker class, same Redis), 2 workers
against 1 on PostgreSQL, and 6. the worker's memory over the run.

A drain: the workers are each held busy by a `hold` job while the queue fills, then released at once;
the rate is jobs / (last job's end − release), from RQ's own timestamps, so neither the enqueueing nor
the harness's polling is in the figure.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import func, select

from risk.bench.context import Context, holding, wait_finished, wait_until
from risk.bench.infra import BenchError
from risk.bench.results import Row
from risk.bench.site import Site, write_records
from risk.db import transaction
from risk.demo.world import records
from risk.queues import REPORTS, enqueue_report
from risk.reports.models import Report
from risk.reports.operations import write_report

SECTION_RATE = "2 report throughput"
SECTION_MEMORY = "6 worker memory"
WORKER_CLASS = "rq.SimpleWorker"  # worker/main.py make_worker: what `presign worker` runs
RSS_LIMIT_MB = 150.0
FLAT_TOLERANCE_MB = 2.0
LISTINGS = 20
DRAIN_BLOCKS = 5  # the one-worker SQLite drain, in blocks interleaved with no-op drains


def _blocks(n: int) -> list[int]:
    """n jobs as DRAIN_BLOCKS near-equal blocks (fewer when n is small)."""
    count = max(1, min(DRAIN_BLOCKS, n // 4))
    return [n // count + (1 if i < n % count else 0) for i in range(count)]


def run(ctx: Context) -> None:
    sizes, scratch = ctx.sizes, ctx.scratch
    ctx.step("throughput: starting an instant provider and one worker (SQLite)")
    world = write_records(scratch.root / "throughput-world.jsonl", records(datetime.now(UTC)))
    _, provider_url = scratch.provider(world, 0)
    site = Site.create(scratch, "throughput", redis_url=ctx.redis_url, provider_url=provider_url)
    site.add_listings(LISTINGS)
    worker = scratch.worker("worker-throughput-1", site.env)
    queue = Queue(REPORTS, connection=ctx.redis())
    _warm(ctx, site, queue)

    n = sizes.drain_jobs
    blocks = _blocks(n)
    # The no-op drain settles the worker's own caches before the memory run starts.
    ctx.step(f"throughput: {n} no-op jobs, settling the worker", total=n)
    drain(ctx, queue, 1, partial(_noops, queue, n))
    sampler = RssSampler(worker.popen.pid).start()
    noops: list[dict[str, Any]] = []
    drained: list[dict[str, Any]] = []
    try:
        for i, size in enumerate(blocks):
            if i == 0:
                ctx.step(f"throughput: {size} no-op jobs", total=size)
                noops.append(drain(ctx, queue, 1, partial(_noops, queue, size)))
            ctx.step(f"throughput: {size} reports, one worker, SQLite (block {i + 1} of {len(blocks)})", total=size)
            drained.append(drain(ctx, queue, 1, partial(_reports, site, size)))
            ctx.step(f"throughput: {size} no-op jobs", total=size)
            noops.append(drain(ctx, queue, 1, partial(_noops, queue, size)))
    finally:
        sampler.stop()
    ids = [job_id for block in drained for job_id in block["ids"]]
    _check_complete(site, ids)
    # Each block of reports against the no-op drains just before and after it: the machine's speed
    # drifts (no-op rates of 70 and 145 jobs/s a minute apart were seen), so a ratio is only taken
    # between neighbours, and the median of the blocks' ratios is the figure.
    ratios = [block["rate"] / ((noops[i]["rate"] + noops[i + 1]["rate"]) / 2) for i, block in enumerate(drained)]
    ratio = statistics.median(ratios)
    noop_rate = sum(d["jobs"] for d in noops) / sum(d["seconds"] for d in noops)
    report_rate = n / sum(d["seconds"] for d in drained)
    ctx.run.data["throughput"] = {
        "worker_class": WORKER_CLASS,
        "noop": [d["rate"] for d in noops],
        "reports_sqlite_blocks": [d["rate"] for d in drained],
        "block_ratios": ratios,
        "reports_sqlite": report_rate,
        "jobs": n,
    }
    spread = ", ".join(f"{d['rate']:.0f}" for d in noops)
    ctx.run.add(
        Row(SECTION_RATE, f"RQ no-op jobs/s, one {WORKER_CLASS}", noop_rate, "jobs/s", None,
            f"drains: {spread}", "—", None),
        Row(SECTION_RATE, "reports/s, one worker, SQLite, instant providers", report_rate, "/s", noop_rate,
            "RQ no-op jobs/s", "≥ 0.35 ×", ratio >= 0.35, ratio=ratio,
            note=f"{n} reports in {len(blocks)} blocks, each between two no-op drains of its size, drained by one "
                 f"`presign worker` ({WORKER_CLASS}); the ratio is the median of the blocks' "
                 f"({', '.join(f'{r:.2f}' for r in ratios)})"),
    )  # fmt: skip
    ended = sorted(when for block in drained for when in block["ended"])
    _memory_rows(ctx, sampler, ended, since=drained[0]["released"])
    scratch.stop(worker)

    if ctx.pg:
        _postgres(ctx, provider_url)


def _postgres(ctx: Context, provider_url: str) -> None:
    scratch, n = ctx.scratch, ctx.sizes.pg_drain_jobs
    url = scratch.postgres("throughput")
    if url is None:
        ctx.run.skipped.append("2 workers against 1 on PostgreSQL (could not create a database)")
        return
    ctx.step("throughput: PostgreSQL, one worker")
    site = Site.create(scratch, "throughput-pg", redis_url=ctx.redis_url, database_url=url, provider_url=provider_url)
    site.add_listings(LISTINGS)
    queue = Queue(REPORTS, connection=ctx.redis())
    scratch.worker("worker-pg-1", site.env)
    _warm(ctx, site, queue)
    ctx.step(f"throughput: {n} reports, one worker, PostgreSQL", total=n)
    one = drain(ctx, queue, 1, lambda: _reports(site, n))
    _check_complete(site, one["ids"])
    ctx.step("throughput: PostgreSQL, starting a second worker")
    scratch.worker("worker-pg-2", site.env)
    _warm(ctx, site, queue, workers=2)
    ctx.step(f"throughput: {n} reports, two workers, PostgreSQL", total=n)
    two = drain(ctx, queue, 2, lambda: _reports(site, n))
    _check_complete(site, two["ids"])
    ctx.run.data["throughput"].update({"reports_pg_1": one["rate"], "reports_pg_2": two["rate"], "pg_jobs": n})
    ctx.run.add(
        Row(SECTION_RATE, "reports/s, one worker, PostgreSQL", one["rate"], "/s", None, "", "—", None),
        Row(SECTION_RATE, "reports/s, two workers against one, PostgreSQL", two["rate"], "/s", one["rate"],
            "one worker", "≥ 1.7 ×", two["rate"] >= 1.7 * one["rate"],
            note="2 cores shared by the workers, Redis, PostgreSQL, the provider and the harness"),
    )  # fmt: skip


def _warm(ctx: Context, site: Site, queue: Queue, workers: int = 1) -> None:
    """A few reports first, so that imports, connections and caches are not in the measured run."""
    for job_id in _reports(site, ctx.sizes.warm_reports * workers):
        wait_finished(Job(job_id, connection=queue.connection), 60, ctx.failures)


def _noops(queue: Queue, n: int) -> list[str]:
    jobs = queue.enqueue_many([Queue.prepare_data("risk.bench.jobs.noop", result_ttl=600) for _ in range(n)])
    return [job.id for job in jobs]


def _reports(site: Site, n: int) -> list[str]:
    """Write n pending reports (as the API does), then enqueue each as the API does after its commit."""
    from listings.models import Listing

    ids = []
    with transaction(site.rt.sessions) as session:
        listings = [session.get(Listing, listing_id) for listing_id, _ in site.listings]
        for i in range(n):
            listing = listings[i % len(listings)]
            assert listing is not None
            # Unkeyed: the bench queues many reports of one listing and stage on purpose.
            report = write_report(session, site.rt, listing=listing, stage="signing", requested_by="bench", key=None)
            ids.append(report.id)
    for report_id in ids:  # as the API enqueues them
        if not enqueue_report(site.rt, report_id):
            raise BenchError(f"report {report_id} could not be enqueued")
    return [f"report-{i}" for i in ids]


def drain(ctx: Context, queue: Queue, workers: int, enqueue: Callable[[], list[str]]) -> dict[str, Any]:
    """Fill the queue behind `workers` held workers, release them, time the drain from RQ's timestamps."""
    key = f"bench:release:{uuid.uuid4().hex}"
    with holding(queue, workers, key) as holds:
        ids = enqueue()
    n = len(ids)
    deadline = 120 + n / 5
    wait_until(lambda: _progress(ctx, queue, n) == 0, deadline, f"draining {n} jobs", every=0.1)
    jobs = _fetch(queue, ids)
    if len(jobs) != n:
        raise BenchError(f"{n - len(jobs)} of {n} jobs vanished from Redis")
    for job in jobs:
        if job.get_status(refresh=False) != JobStatus.FINISHED:
            wait_finished(job, 60, ctx.failures)  # the last ones still running, or a retry RQ scheduled
    jobs = _fetch(queue, ids)
    for hold in holds:
        hold.refresh()
    released = min(h.ended_at for h in holds if h.ended_at is not None)
    ended = sorted(j.ended_at for j in jobs if j.ended_at is not None)
    seconds = (ended[-1] - released).total_seconds()
    ctx.advance(0)
    return {"rate": n / seconds, "seconds": seconds, "jobs": n, "ids": ids, "released": released, "ended": ended}


def _fetch(queue: Queue, ids: list[str]) -> list[Job]:
    jobs: list[Job] = []
    for start in range(0, len(ids), 500):
        jobs += [j for j in Job.fetch_many(ids[start : start + 500], connection=queue.connection) if j is not None]
    return jobs


def _progress(ctx: Context, queue: Queue, n: int) -> int:
    left = queue.count
    if ctx.progress is not None and ctx._task is not None:
        ctx.progress.update(ctx._task, completed=n - left)
    return left


def _check_complete(site: Site, job_ids: list[str]) -> None:
    report_ids = [j.removeprefix("report-") for j in job_ids]
    with site.rt.sessions() as session:
        done = session.scalar(
            select(func.count()).select_from(Report).where(Report.id.in_(report_ids), Report.status == "complete")
        )
    if done != len(report_ids):
        raise BenchError(f"only {done} of {len(report_ids)} reports are complete after their jobs finished")


class RssSampler:
    """Samples a process's resident memory every few milliseconds, from /proc."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        self.pid, self.every = pid, every
        self.samples: list[tuple[datetime, float]] = []  # (when, RSS MB)
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="rss-sampler")

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.peak_mb = max(self.peak_mb, _status_mb(self.pid, "VmHWM"))

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss = _status_mb(self.pid, "VmRSS")
            if rss:
                self.samples.append((datetime.now(UTC), rss))
            time.sleep(self.every)


def _status_mb(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _memory_rows(ctx: Context, sampler: RssSampler, ended: list[datetime], since: datetime) -> None:
    """Peak RSS over the run, and the mean RSS while the first reports ran (from `since`, the first
    block's release) against the mean while the last ones ran."""
    n = len(ended)
    window = max(1, min(100, n // 10))
    first = [mb for when, mb in sampler.samples if since <= when <= ended[window - 1]]
    last = [mb for when, mb in sampler.samples if ended[n - window] <= when <= ended[-1]]
    if not first or not last:
        ctx.run.skipped.append("worker memory (too few samples: the run was too short)")
        return
    first_mb, last_mb = sum(first) / len(first), sum(last) / len(last)
    growth = last_mb - first_mb
    ctx.run.data["memory"] = {
        "peak_mb": sampler.peak_mb,
        "first_window_mb": first_mb,
        "last_window_mb": last_mb,
        "window_reports": window,
        "samples": [(w.isoformat(), mb) for w, mb in sampler.samples],
    }
    ctx.run.add(
        Row(SECTION_MEMORY, f"worker peak RSS over {n} reports", sampler.peak_mb, "MB", None,
            f"< {RSS_LIMIT_MB:.0f} MB", f"< {RSS_LIMIT_MB:.0f} MB", sampler.peak_mb < RSS_LIMIT_MB),
        Row(SECTION_MEMORY, f"RSS growth, first {window} reports → last {window}", growth, "MB", None,
            f"flat: ≤ {FLAT_TOLERANCE_MB:g} MB", f"≤ {FLAT_TOLERANCE_MB:g} MB", growth <= FLAT_TOLERANCE_MB,
            note=f"mean RSS {first_mb:.1f} MB during the first {window} reports, {last_mb:.1f} MB during the last"),
    )  # fmt: skip
