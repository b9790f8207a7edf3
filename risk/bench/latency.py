"""1. Report latency against the slowest provider (L) and RQ's own floor, through the API, the real
queue, a real worker and the database. The providers answer after L ms each."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import requests
from rq import Queue
from rq.job import Job

from checks.providers.http import request_path
from risk.bench.context import Context, wait_finished
from risk.bench.infra import BenchError
from risk.bench.results import Row, percentile
from risk.bench.site import Site, write_records
from risk.demo.world import SCENARIOS, records
from risk.reports.models import Report
from worker.queues import REPORTS

SECTION = "1 report latency"
FIRST_ROUND = ("title", "fee_account", "inspections", "unit")  # a report's concurrent provider calls


def first_round_paths(unit_id: str) -> list[str]:
    return [request_path(kind, unit_id) for kind in FIRST_ROUND]


def run(ctx: Context) -> None:
    sizes, scratch = ctx.sizes, ctx.scratch
    ctx.step(f"report latency: starting a provider ({sizes.latency_ms:g} ms), the API and a worker")
    world = write_records(scratch.root / "latency-world.jsonl", records(datetime.now(UTC)))
    _, provider_url = scratch.provider(world, sizes.latency_ms)
    site = Site.create(scratch, "latency", redis_url=ctx.redis_url, provider_url=provider_url)
    site.add_listings(len(SCENARIOS))
    api_url = scratch.gunicorn("api-latency", "risk.app:create_app()", site.env)
    scratch.worker("worker-latency", site.env)
    redis = ctx.redis()
    queue = Queue(REPORTS, connection=redis)
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {site.key}"

    ctx.step("report latency: the limits (one provider call; four at once in plain Python)")
    unit = SCENARIOS[0].unit_id
    single = [_timed(http.get, provider_url + request_path("title", unit)) for _ in range(sizes.latency_calls)]
    paths = first_round_paths(unit)
    with ThreadPoolExecutor(max_workers=4) as pool:
        plain = [_timed_round(pool, http, provider_url, paths) for _ in range(sizes.latency_calls)]

    ctx.step("report latency: warming up (one report per listing, two floor jobs)", total=len(site.listings) + 2)
    cold = []
    for listing_id, _scenario in site.listings:
        cold.append(_report(site, http, api_url, redis, listing_id, ctx.failures))
        ctx.advance()
    for _ in range(2):
        _floor(queue, provider_url, paths)
        ctx.advance()

    ctx.step("report latency: reports and floor jobs, interleaved", total=sizes.latency_reports)
    reports, floors = [], []
    for n in range(sizes.latency_reports):
        listing_id, scenario = site.listings[n % len(site.listings)]
        floors.append(_floor(queue, provider_url, first_round_paths(scenario.unit_id)))
        reports.append(_report(site, http, api_url, redis, listing_id, ctx.failures))
        ctx.advance()
    ctx.finish_step()

    limit_l = percentile(single, 50)
    floor_p50 = percentile(floors, 50)
    p50, p95 = percentile(reports, 50), percentile(reports, 95)
    ctx.run.data["latency"] = {
        "latency_ms": sizes.latency_ms,
        "provider_call_ms": single,
        "plain_python_four_ms": plain,
        "rq_floor_ms": floors,
        "report_ms": reports,
        "warmup_report_ms": cold,
    }
    ctx.run.add(
        Row(SECTION, "L: one provider call (p50)", limit_l, "ms", sizes.latency_ms, "provider's latency_ms",
            "—", None, note=f"providers answer after {sizes.latency_ms:g} ms"),
        Row(SECTION, "four concurrent calls, plain Python (p50)", percentile(plain, 50), "ms", limit_l, "L", "—",
            None),
        Row(SECTION, "RQ floor: the four calls in an empty SimpleWorker job (p50)", floor_p50, "ms", limit_l, "L",
            "—", None),
        Row(SECTION, "report p50 vs L", p50, "ms", limit_l, "L", "≤ 1.3 ×", p50 <= 1.3 * limit_l),
        Row(SECTION, "report p50 vs RQ floor", p50, "ms", floor_p50, "RQ floor p50", "≤ 1.1 ×",
            p50 <= 1.1 * floor_p50),
        Row(SECTION, "report p95 vs L", p95, "ms", limit_l, "L", "≤ 1.6 ×", p95 <= 1.6 * limit_l,
            note=f"{len(reports)} reports, one at a time; sequential calls would be 4 × L = {4 * limit_l:.0f} ms"),
    )  # fmt: skip


def _timed(call: Any, *args: Any) -> float:
    started = time.perf_counter()
    response = call(*args, timeout=10)
    response.content  # noqa: B018
    return (time.perf_counter() - started) * 1000


def _timed_round(pool: ThreadPoolExecutor, http: requests.Session, base: str, paths: list[str]) -> float:
    started = time.perf_counter()
    for response in pool.map(lambda p: http.get(base + p, timeout=10), paths):
        response.content  # noqa: B018
    return (time.perf_counter() - started) * 1000


def _floor(queue: Queue, provider_url: str, paths: list[str]) -> float:
    """RQ's floor: enqueue → end of a job that makes the same four calls and nothing else."""
    job = queue.enqueue("risk.bench.jobs.concurrent_calls", provider_url, paths, job_timeout=60, result_ttl=600)
    job = wait_finished(job, 30)  # the floor job cannot fail but by a broken harness
    assert job.enqueued_at is not None and job.ended_at is not None
    return (job.ended_at - job.enqueued_at).total_seconds() * 1000


def _report(site: Site, http: requests.Session, api_url: str, redis: Any, listing_id: str,
            failures: list[str] | None = None) -> float:  # fmt: skip
    """Request accepted (the report row's created_at) → report complete (its completed_at)."""
    response = http.post(f"{api_url}/api/v1/listings/{listing_id}/reports", json={"stage": "signing"}, timeout=30)
    if response.status_code != 202:
        raise BenchError(f"report request answered {response.status_code}: {response.text[:300]}")
    report_id = response.json()["id"]
    wait_finished(Job.fetch(f"report-{report_id}", connection=redis), 60, failures)
    with site.rt.sessions() as session:
        report = session.get(Report, report_id)
        if report is None or report.status != "complete" or report.completed_at is None:
            raise BenchError(f"report {report_id} is not complete after its job finished")
        return (report.completed_at - report.created_at).total_seconds() * 1000
