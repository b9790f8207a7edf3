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
from risk.queues import REPORTS
from risk.reports.models import Report

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
    report_phases: dict[str, list[float]] = {name: [] for name in REPORT_PHASES}
    floor_phases: dict[str, list[float]] = {name: [] for name in FLOOR_PHASES}
    for n in range(sizes.latency_reports):
        listing_id, scenario = site.listings[n % len(site.listings)]
        floors.append(_floor(queue, provider_url, first_round_paths(scenario.unit_id), floor_phases))
        reports.append(_report(site, http, api_url, redis, listing_id, ctx.failures, report_phases))
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
        "report_phases_ms": report_phases,
        "rq_floor_phases_ms": floor_phases,
    }
    p50s = {name: percentile(values, 50) for name, values in {**report_phases, **floor_phases}.items()}
    ctx.run.add(
        Row(SECTION, "L: one provider call (p50)", limit_l, "ms", sizes.latency_ms, "provider's latency_ms",
            "—", None, note=f"providers answer after {sizes.latency_ms:g} ms"),
        Row(SECTION, "four concurrent calls, plain Python (p50)", percentile(plain, 50), "ms", limit_l, "L", "—",
            None),
        Row(SECTION, "RQ floor: the four calls in an empty SimpleWorker job (p50)", floor_p50, "ms", limit_l, "L",
            "—", None),
        Row(SECTION, "report p50 vs L", p50, "ms", limit_l, "L", "≤ 1.25 ×", p50 <= 1.25 * limit_l),
        Row(SECTION, "report p50 vs RQ floor", p50, "ms", floor_p50, "RQ floor p50", "—", None,
            note="phases, p50 of each: the report's created → queued {created_to_queued:.1f} ms, queued → job "
                 "started {queued_to_started:.1f} ms (the floor job's {floor_queued_to_started:.1f}), job started → "
                 "complete {started_to_complete:.1f} ms (the floor job's started → ended "
                 "{floor_started_to_ended:.1f})".format(**p50s)),
        Row(SECTION, "report p95 vs L", p95, "ms", limit_l, "L", "≤ 1.5 ×", p95 <= 1.5 * limit_l,
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


# Where a report's and a floor job's time goes, from the report's and RQ's own timestamps.
REPORT_PHASES = ("created_to_queued", "queued_to_started", "started_to_complete")
FLOOR_PHASES = ("floor_queued_to_started", "floor_started_to_ended")


def _ms(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() * 1000


def _floor(queue: Queue, provider_url: str, paths: list[str], phases: dict[str, list[float]] | None = None) -> float:
    """RQ's floor: enqueue → end of a job that makes the same four calls and nothing else."""
    job = queue.enqueue("risk.bench.jobs.concurrent_calls", provider_url, paths, job_timeout=60, result_ttl=600)
    job = wait_finished(job, 30)  # the floor job cannot fail but by a broken harness
    assert job.enqueued_at is not None and job.started_at is not None and job.ended_at is not None
    if phases is not None:
        phases["floor_queued_to_started"].append(_ms(job.enqueued_at, job.started_at))
        phases["floor_started_to_ended"].append(_ms(job.started_at, job.ended_at))
    return _ms(job.enqueued_at, job.ended_at)


def _report(site: Site, http: requests.Session, api_url: str, redis: Any, listing_id: str,
            failures: list[str] | None = None, phases: dict[str, list[float]] | None = None) -> float:  # fmt: skip
    """Request accepted (the report row's created_at) → report complete (its completed_at)."""
    response = http.post(f"{api_url}/api/v1/listings/{listing_id}/reports", json={"stage": "signing"}, timeout=30)
    if response.status_code != 202:
        raise BenchError(f"report request answered {response.status_code}: {response.text[:300]}")
    report_id = response.json()["id"]
    job = wait_finished(Job.fetch(f"report-{report_id}", connection=redis), 60, failures)
    with site.rt.sessions() as session:
        report = session.get(Report, report_id)
        if report is None or report.status != "complete" or report.completed_at is None:
            raise BenchError(f"report {report_id} is not complete after its job finished")
        if phases is not None and job.enqueued_at is not None and job.started_at is not None:
            phases["created_to_queued"].append(_ms(report.created_at, job.enqueued_at))
            phases["queued_to_started"].append(_ms(job.enqueued_at, job.started_at))
            phases["started_to_complete"].append(_ms(job.started_at, report.completed_at))
        return _ms(report.created_at, report.completed_at)
