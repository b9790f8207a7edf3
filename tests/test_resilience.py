"""Real processes under faults: a worker through a Redis restart, `presign serve` with its embedded
Redis killed, a worker killed with SIGKILL in the middle of a report."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from redis import Redis
from rq import SimpleWorker
from rq.job import Job
from sqlalchemy import func, select

from checks import registry
from checks.providers.importer import import_records
from checks.providers.reference_server import ReferenceServer
from risk.app import create_app
from risk.clock import SystemClock
from risk.demo.world import SCENARIOS, listing_body, records
from risk.embedded_redis import EmbeddedRedis
from risk.queues import report_job_id
from risk.reports.models import Report, ReportCheck
from risk.runtime import Runtime
from risk.settings import PROVIDER_NAMES, Settings
from tests.test_processes import (
    PRESIGN,
    alive,
    answers,
    children_of,
    command_of,
    presign_env,
    run,
    wait_for,
    write_world,
)
from tests.test_processes import served as served  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow
BY_KEY = {s.key: s for s in SCENARIOS}
LISTING_CHECKS = registry.checks_for("signing", False)  # a listing's report runs these
_runs = itertools.count(1)
RECOVERY_TARGET = 30.0  # seconds from a worker's SIGKILL to its report complete (the target)


@pytest.fixture
def live(settings: Settings, rt: Runtime, tmp_path: Path) -> Iterator[Callable[..., Runtime]]:
    """live(**changes) -> a Runtime on the test database with the real clock (worker processes
    compare the database's times with theirs), its registry world imported."""
    built: list[Runtime] = []

    def make(**changes: Any) -> Runtime:
        runtime = Runtime.build(replace(settings, clock=SystemClock(), **changes))
        built.append(runtime)
        return runtime

    import_records(make(), records(datetime.now(UTC)))
    yield make
    for runtime in built:
        runtime.close()
    rt.activate()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """start(settings, name, **env) -> a `presign worker` process; all are stopped afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(settings: Settings, name: str, **extra: str) -> subprocess.Popen[bytes]:
        env = presign_env(
            settings.instance,
            PRESIGN_DATABASE_URL=settings.database_url,
            PRESIGN_REDIS_URL=settings.redis_url or "",
            PRESIGN_SECRET_KEY=settings.secret_key,
            **extra,
        )
        with (tmp_path / f"{name}.log").open("ab") as log:
            process = subprocess.Popen([*PRESIGN, "worker"], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def ask_report(client: Any, headers: dict[str, str], scenario: str = "clean") -> str:
    body = listing_body(BY_KEY[scenario], f"r{next(_runs)}")
    response = client.post("/api/v1/listings", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    listing_id = response.get_json()["id"]
    response = client.post(f"/api/v1/listings/{listing_id}/reports", json={"stage": "signing"}, headers=headers)
    assert response.status_code == 202, response.get_json()
    return str(response.get_json()["id"])


def report_row(rt: Runtime, report_id: str) -> Any:
    with rt.sessions() as session:
        return session.execute(select(Report.status, Report.attempts).where(Report.id == report_id)).one()


def check_rows(rt: Runtime, report_id: str) -> int:
    with rt.sessions() as session:
        query = select(func.count()).select_from(ReportCheck).where(ReportCheck.report_id == report_id)
        return int(session.scalar(query) or 0)


def registered_workers(redis_url: str) -> list[Any]:
    conn = Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return list(SimpleWorker.all(connection=conn))
    except Exception:
        return []
    finally:
        conn.close()


def test_a_worker_survives_a_redis_restart_in_the_middle_of_a_report_and_finishes_that_and_the_next(
    live, workers, auth, tmp_path
):
    redis = EmbeddedRedis(tmp_path / "redis").start()
    with ReferenceServer(records(datetime.now(UTC)), latency_ms=1500) as server:
        providers = dict.fromkeys(PROVIDER_NAMES, server.url)
        runtime = live(redis_url=redis.url, providers=providers)
        env = {f"PRESIGN_{name.upper()}_PROVIDER": server.url for name in PROVIDER_NAMES}
        try:
            worker = workers(runtime.settings, "worker", **env)
            wait_for(lambda: registered_workers(redis.url), 30, "the worker registered")
            client = create_app(runtime=runtime).test_client()
            agent = auth(role="agent")
            first = ask_report(client, agent)
            wait_for(lambda: report_row(runtime, first).status == "running", 20, "the report running")
            redis.stop()  # while the job runs: RQ cannot record its end
            time.sleep(2)
            second = ask_report(client, agent, "leak")  # 202 while Redis is down: it waits in the database
            redis.start()
            for report_id in (first, second):
                wait_for(lambda r=report_id: report_row(runtime, r).status == "complete", 40, f"{report_id} complete")
                assert check_rows(runtime, report_id) == len(LISTING_CHECKS)
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        finally:
            redis.stop()


def test_serve_keeps_answering_while_its_embedded_redis_is_killed_and_the_report_completes(served, tmp_path):
    process, base, env = served
    wait_for(lambda: answers(f"{base}/api/v1/openapi.json"), 30, "the API answering")
    assert run(["import", str(write_world(tmp_path / "world.jsonl"))], env).returncode == 0
    key = run(["keys", "create", "--role", "agent", "--name", "e2e"], env).stdout.splitlines()[0]
    headers = {"Authorization": f"Bearer {key}"}
    redis_pid = next(pid for pid in children_of(process.pid) if "redis-server" in command_of(pid))
    os.kill(redis_pid, signal.SIGKILL)

    response = requests.post(f"{base}/api/v1/listings", json=listing_body(BY_KEY["clean"], "k"), headers=headers)
    assert response.status_code == 201, response.text
    listing_id = response.json()["id"]
    response = requests.post(
        f"{base}/api/v1/listings/{listing_id}/reports", json={"stage": "signing"}, headers=headers, timeout=10
    )
    assert response.status_code == 202, response.text
    location = base + response.headers["Location"]
    deadline = time.monotonic() + 60
    status = "pending"
    while time.monotonic() < deadline and status != "complete":
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200  # the API answers throughout
        assert requests.get(f"{base}/readyz", timeout=5).status_code == 200
        status = requests.get(location, headers=headers, timeout=5).json()["status"]
        time.sleep(0.5)
    assert status == "complete"
    assert process.poll() is None
    assert any("redis-server" in command_of(pid) for pid in children_of(process.pid))  # restarted
    assert requests.get(f"{base}/readyz", timeout=5).json()["redis"] == "ok"


def test_a_worker_killed_mid_report_leaves_no_child_and_its_report_completes_once_within_the_target(
    live, workers, auth, redis_url, tmp_path
):
    with ReferenceServer(records(datetime.now(UTC)), latency_ms=1500) as server:
        providers = dict.fromkeys(PROVIDER_NAMES, server.url)
        runtime = live(providers=providers)
        env = {f"PRESIGN_{name.upper()}_PROVIDER": server.url for name in PROVIDER_NAMES}
        started = [workers(runtime.settings, f"worker-{n}", **env) for n in (1, 2)]
        wait_for(lambda: len(registered_workers(redis_url)) == 2, 30, "both workers registered")
        client = create_app(runtime=runtime).test_client()
        report_id = ask_report(client, auth(role="agent"))
        wait_for(lambda: report_row(runtime, report_id).status == "running", 20, "the report running")
        job = Job.fetch(report_job_id(report_id), connection=runtime.redis())
        holder = SimpleWorker.find_by_key(f"rq:worker:{job.worker_name}", connection=runtime.redis())
        assert holder is not None and holder.pid in {p.pid for p in started}
        victim = next(p for p in started if p.pid == holder.pid)
        descendants = children_of(victim.pid)

        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait(10)
        wait_for(lambda: report_row(runtime, report_id).status == "complete", RECOVERY_TARGET + 5, "the report")
        took = time.monotonic() - killed_at
        assert took <= RECOVERY_TARGET, took
        assert not [pid for pid in descendants if alive(pid)], [command_of(pid) for pid in descendants]
        assert check_rows(runtime, report_id) == len(LISTING_CHECKS)  # each check saved once
        assert report_row(runtime, report_id).attempts == 2
