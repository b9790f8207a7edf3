"""API.md v1.1, Operations: /healthz, /readyz and /metrics, in the app."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from checks.providers.importer import import_records
from risk.app import create_app
from risk.demo.world import SCENARIOS, listing_body, records
from risk.runtime import Runtime
from risk.settings import Settings
from tests.tcp_proxy import TcpProxy
from worker.main import make_worker

BY_KEY = {s.key: s for s in SCENARIOS}


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def app_with(settings: Settings, rt: Runtime) -> Iterator[Callable[..., Any]]:
    """app_with(**settings changes) -> a test client of an app on another Runtime."""
    built: list[Runtime] = []

    def make(**changes: Any) -> Any:
        runtime = Runtime.build(replace(settings, **changes))
        built.append(runtime)
        return create_app(runtime=runtime).test_client()

    yield make
    for runtime in built:
        runtime.close()
    rt.activate()


def sample(text: str, name: str, **labels: str) -> float:
    """A sample's value in Prometheus text, 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if labels else ''} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_healthz_answers_ok_without_a_key(client):
    response = client.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_answers_ok_with_database_and_redis_up(client):
    response = client.get("/readyz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok", "database": "ok", "redis": "ok"})


def test_readyz_stays_ready_and_says_redis_down_while_redis_is_down(app_with):
    down = app_with(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    response = down.get("/readyz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok", "database": "ok", "redis": "down"})


@pytest.fixture
def cuttable_database(settings: Settings, tmp_path: Path) -> Iterator[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """(database URL, cut, restore): the test database behind something a test can take away."""
    if settings.is_sqlite:
        folder = tmp_path / "db"
        folder.mkdir()
        url = f"sqlite:///{folder / 'presign.db'}"
        aside = tmp_path / "db-aside"
        yield url, lambda: folder.rename(aside), lambda: aside.rename(folder)
        return
    parsed = make_url(settings.database_url)
    proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432)).start()
    url = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    try:
        yield url, proxy.cut, proxy.start
    finally:
        proxy.cut()


def test_readyz_answers_503_naming_the_database_while_it_is_unreachable_and_200_once_it_is_back(
    app_with, cuttable_database
):
    url, cut, restore = cuttable_database
    client = app_with(database_url=url)
    assert client.get("/readyz").status_code == 200
    cut()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"]["code"] == "unavailable" and set(body["error"]["fields"]) == {"database"}
    restore()
    response = client.get("/readyz")
    assert (response.status_code, response.get_json()["database"]) == (200, "ok")


def test_metrics_are_prometheus_text_with_queue_depth_by_queue(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = response.get_data(as_text=True)
    for queue in ("reports", "maintenance", "webhooks"):
        assert f'presign_queue_depth{{queue="{queue}"}} 0.0' in text
    for name in ("presign_provider_errors", "presign_webhook_deliveries", "presign_rate_limited_total"):
        assert f"# TYPE {name}" in text


def test_metrics_count_a_report_its_checks_and_a_gate_answer(client, auth, rt, clock):
    import_records(rt, records(clock.now()))
    agent = auth(role="agent")
    before = client.get("/metrics").get_data(as_text=True)
    listing = client.post("/api/v1/listings", json=listing_body(BY_KEY["clean"], "m"), headers=agent)
    listing_id = listing.get_json()["id"]
    client.post(f"/api/v1/listings/{listing_id}/reports", json={"stage": "signing"}, headers=agent)
    assert sample(client.get("/metrics").get_data(as_text=True), "presign_queue_depth", queue="reports") == 1
    make_worker(rt).work(burst=True)
    gate = client.post("/api/v1/gate", json={"listing_id": listing_id, "stage": "signing"}, headers=agent)
    assert gate.get_json()["decision"] == "ALLOW"

    after = client.get("/metrics").get_data(as_text=True)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("presign_report_seconds_count", stage="signing") == 1
    assert grew("presign_check_seconds_count", check="title", provider="local") == 1
    assert grew("presign_gate_answers_total", decision="ALLOW") == 1
    assert sample(after, "presign_queue_depth", queue="reports") == 0


def test_a_rate_limited_answer_is_counted(app, client):
    from risk.errors import RateLimited

    def limited() -> Any:
        raise RateLimited("too many requests")

    app.add_url_rule("/limited-for-test", "limited_for_test", limited)
    before = sample(client.get("/metrics").get_data(as_text=True), "presign_rate_limited_total")
    assert client.get("/limited-for-test").status_code == 429
    assert sample(client.get("/metrics").get_data(as_text=True), "presign_rate_limited_total") == before + 1

