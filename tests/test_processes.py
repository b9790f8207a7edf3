"""Real processes: `presign demo`, `presign serve` (gunicorn, worker and embedded Redis under one
supervisor) over real HTTP, and `presign worker --burst` against the test Redis."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from rq import Queue

from checks.providers.importer import import_records
from risk.demo.world import SCENARIOS, listing_body, records
from risk.queues import REPORTS
from risk.runtime import Runtime
from risk.settings import Settings

pytestmark = pytest.mark.slow

BY_KEY = {s.key: s for s in SCENARIOS}
_SCRIPT = Path(sys.executable).with_name("presign")
PRESIGN = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "risk.cli"]


# -- helpers ----------------------------------------------------------------------------------------


def presign_env(instance: Path, **extra: str) -> dict[str, str]:
    """This environment without any PRESIGN_ setting, on `instance`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESIGN_")}
    env.update(PRESIGN_INSTANCE=str(instance), **extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def children_of(pid: int) -> set[int]:
    """Every live descendant of `pid`, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")


def digest_of(body: dict[str, Any]) -> str:
    without = {k: v for k, v in body.items() if k != "digest"}
    canonical = json.dumps(without, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(canonical).hexdigest()


def run(args: list[str], env: dict[str, str], timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PRESIGN, *args], env=env, capture_output=True, text=True, timeout=timeout)


def write_world(path: Path) -> Path:
    """The demo's registry records, as of now, in the `presign import` format."""
    lines = (json.dumps(r, ensure_ascii=False) for r in records(datetime.now(UTC)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# -- presign demo -----------------------------------------------------------------------------------


def test_demo_exits_0_and_prints_the_expected_decision_for_every_scenario(tmp_path):
    env = presign_env(tmp_path / "instance", COLUMNS="250")
    done = run(["demo"], env, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for scenario in SCENARIOS:
        row = [line for line in lines if scenario.title in line]
        assert len(row) == 1, (scenario.key, done.stdout)
        assert f" {scenario.expect} " in row[0], (scenario.key, row[0])
    assert "every scenario got the decision its world was built for" in done.stdout
    # The deal whose mortgage is still active: the transfer gate is blocked by the requirement.
    assert "REQUIREMENT_OPEN" in done.stdout and "MORTGAGE_DISCHARGED" in done.stdout


def test_demo_run_twice_on_one_configured_database_gets_the_expected_decisions_both_times(tmp_path):
    # The second run's listings must not be judged against the first run's (withdrawn) ones.
    env = presign_env(tmp_path / "instance", PRESIGN_DATABASE_URL=f"sqlite:///{tmp_path / 'kept.db'}")
    for attempt in (1, 2):
        done = run(["demo", "--workers", "1"], env, timeout=60)
        assert done.returncode == 0, (attempt, done.stdout[-4000:])


# -- presign serve ----------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, dict[str, str]]]:
    """`presign serve` on the embedded defaults and a free port; (process, base URL, env)."""
    env = presign_env(tmp_path / "instance")
    port = free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [*PRESIGN, "serve", "--host", "127.0.0.1", "--port", str(port), "--api-workers", "1"],
        env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        yield process, base, env
    finally:
        leftovers = children_of(process.pid) if process.poll() is None else set()
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        for pid in leftovers:  # the embedded Redis runs in its own session
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_serve_runs_a_report_over_http_and_stops_every_child_on_sigterm(served, tmp_path):
    process, base, env = served
    wait_for(lambda: answers(f"{base}/api/v1/openapi.json"), 20, "the API answering")
    imported = run(["import", str(write_world(tmp_path / "world.jsonl"))], env)
    assert imported.returncode == 0, imported.stderr
    created = run(["keys", "create", "--role", "agent", "--name", "e2e"], env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.splitlines()[0]
    headers = {"Authorization": f"Bearer {key}"}

    response = requests.post(f"{base}/api/v1/listings", json=listing_body(BY_KEY["clean"], "e2e"), headers=headers)
    assert response.status_code == 201, response.text
    listing_id = response.json()["id"]
    response = requests.post(f"{base}/api/v1/listings/{listing_id}/reports", json={"stage": "signing"}, headers=headers)
    assert response.status_code == 202, response.text
    location = base + response.headers["Location"]

    def complete() -> dict[str, Any] | None:
        body: dict[str, Any] = requests.get(location, headers=headers, timeout=5).json()
        return body if body["status"] == "complete" else None

    report = wait_for(complete, 20, "the report completing", every=0.2)
    assert report["decision"] == "ALLOW"
    assert [c["check"] for c in report["checks"]] == ["title", "fees", "leak", "authenticity"]
    assert report["digest"] == digest_of(report)  # times from a real clock, with microseconds

    children = children_of(process.pid)
    commands = [command_of(pid) for pid in children]
    for name in ("gunicorn", "risk.cli worker", "redis-server"):
        assert any(name in command for command in commands), (name, commands)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    wait_for(lambda: not any(alive(pid) for pid in children), 10, "every child gone")
    seller_id = BY_KEY["clean"].seller[1]
    assert seller_id not in (tmp_path / "serve.log").read_text(encoding="utf-8", errors="replace")


def test_serve_answers_malformed_json_with_400_in_the_error_shape(served):
    _process, base, env = served
    wait_for(lambda: answers(f"{base}/api/v1/openapi.json"), 20, "the API answering")
    key = run(["keys", "create", "--role", "agent", "--name", "e2e"], env).stdout.splitlines()[0]
    response = requests.post(
        f"{base}/api/v1/listings",
        data=b'{"external_id": "x",',
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=5,
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == "bad_request"


# -- presign worker --burst -------------------------------------------------------------------------


def test_worker_burst_drains_a_queued_report_and_exits_0(client, auth, rt: Runtime, settings: Settings, redis_url):
    import_records(rt, records(datetime.now(UTC)))
    agent = auth(role="agent")
    response = client.post("/api/v1/listings", json=listing_body(BY_KEY["clean"], "burst"), headers=agent)
    listing_id = response.get_json()["id"]
    report_id = client.post(f"/api/v1/listings/{listing_id}/reports", json={"stage": "signing"}, headers=agent)
    report_id = report_id.get_json()["id"]
    assert Queue(REPORTS, connection=rt.redis()).count == 1

    env = presign_env(
        settings.instance,
        PRESIGN_DATABASE_URL=settings.database_url,
        PRESIGN_REDIS_URL=redis_url,
        PRESIGN_SECRET_KEY=settings.secret_key,
    )
    done = run(["worker", "--burst"], env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert Queue(REPORTS, connection=rt.redis()).count == 0
    body = client.get(f"/api/v1/reports/{report_id}", headers=agent).get_json()
    assert (body["status"], body["decision"]) == ("complete", "ALLOW"), done.stderr[-3000:]
    assert body["digest"] == digest_of(body)


def test_a_database_url_of_no_known_kind_is_refused_in_one_line_naming_the_variable(tmp_path):
    env = presign_env(tmp_path / "instance", PRESIGN_DATABASE_URL="nope://x")
    done = run(["worker"], env)
    assert done.returncode != 0
    assert "PRESIGN_DATABASE_URL" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_a_database_that_cannot_be_reached_is_refused_in_one_line_naming_the_variable(tmp_path):
    env = presign_env(tmp_path / "instance", PRESIGN_DATABASE_URL="postgresql+psycopg://nobody@127.0.0.1:1/none")
    done = run(["worker"], env)
    assert done.returncode != 0
    assert "PRESIGN_DATABASE_URL" in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]
