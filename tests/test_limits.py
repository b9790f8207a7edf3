"""Limits: report requests and (when configured) every other request per key, counted in Redis across API
processes; the gate never limited; bodies, request lines and headers bounded, refused in the error shape;
the headers every answer carries."""

from __future__ import annotations

import http.client
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.api_helpers import assert_error, create_listing

REPO = Path(__file__).resolve().parents[1]
PORTS = (18631, 18632)


def reports_url(listing_id: str) -> str:
    return f"/api/v1/listings/{listing_id}/reports"


@pytest.fixture
def agent(auth):
    return auth(role="agent")


def test_report_requests_over_the_limit_get_429_rate_limited_with_retry_after(rt, client, agent):
    rt.settings = replace(rt.settings, rate_limit=1.0)  # bursts of 2
    listing = create_listing(client, agent)
    answers = [client.post(reports_url(listing["id"]), json={"stage": "deposit"}, headers=agent) for _ in range(3)]

    assert [a.status_code for a in answers[:2]] == [202, 202]
    assert_error(answers[2], 429, "rate_limited")
    assert int(answers[2].headers["Retry-After"]) >= 1


def test_the_limit_is_per_key(rt, client, auth):
    rt.settings = replace(rt.settings, rate_limit=0.5)  # one request, then one every 2 s
    first, second = auth(role="agent"), auth(role="agent")
    listing = create_listing(client, first)
    assert client.post(reports_url(listing["id"]), json={"stage": "deposit"}, headers=first).status_code == 202
    assert client.post(reports_url(listing["id"]), json={"stage": "deposit"}, headers=second).status_code == 202
    assert_error(client.post(reports_url(listing["id"]), json={"stage": "deposit"}, headers=first), 429, "rate_limited")


def test_other_requests_are_not_limited_by_default(rt, client, agent):
    rt.settings = replace(rt.settings, rate_limit=0.5)
    for _ in range(10):
        assert client.get("/api/v1/listings", headers=agent).status_code == 200


def test_other_requests_are_limited_when_configured_but_the_gate_never_is(rt, client, agent):
    rt.settings = replace(rt.settings, api_rate_limit=0.5)
    listing = create_listing(client, agent)  # takes the one token
    assert_error(client.get("/api/v1/listings", headers=agent), 429, "rate_limited")
    for _ in range(10):
        gate = client.post("/api/v1/gate", json={"listing_id": listing["id"], "stage": "listing"}, headers=agent)
        assert gate.status_code == 200


def test_nothing_is_limited_while_redis_is_unreachable_and_that_is_logged_once(rt, client, agent, caplog, monkeypatch):
    from redis import Redis

    monkeypatch.setattr(rt, "_redis", Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2))
    monkeypatch.setattr("risk.web.limits.OUTAGE_SKIP_SECONDS", 0.0)  # ask Redis every time
    rt.settings = replace(rt.settings, rate_limit=0.5)
    listing = create_listing(client, agent)
    caplog.set_level(logging.WARNING, logger="risk.web.limits")
    for _ in range(4):
        assert client.post(reports_url(listing["id"]), json={"stage": "deposit"}, headers=agent).status_code == 202
    assert len([r for r in caplog.records if r.name == "risk.web.limits"]) == 1


# -- headers ---------------------------------------------------------------------------------------


def test_every_answer_says_nosniff_and_personal_data_is_never_cached(client, agent):
    listing = create_listing(client, agent)
    for response in (
        client.get(f"/api/v1/listings/{listing['id']}", headers=agent),
        client.get("/api/v1/listings"),  # 401
        client.get("/api/v1/docs"),
        client.get("/healthz"),
    ):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(f"/api/v1/listings/{listing['id']}", headers=agent).headers["Cache-Control"] == "no-store"


def test_the_docs_page_has_a_content_security_policy_without_scripts(client):
    policy = client.get("/api/v1/docs").headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy


def test_an_over_long_request_line_is_414_in_the_error_shape(client, agent):
    assert_error(client.get("/api/v1/listings?community=" + "a" * 9000, headers=agent), 414, "uri_too_long")


def test_headers_over_32_kib_are_431_in_the_error_shape(client, agent):
    headers = {**agent, **{f"X-Pad-{i}": "b" * 4000 for i in range(9)}}
    assert_error(client.get("/api/v1/listings", headers=headers), 431, "headers_too_large")


# -- through real gunicorn processes sharing one Redis --------------------------------------------


def _wait_for(port: int, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn on {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"gunicorn on {port} did not start")


@pytest.fixture
def two_apis(rt) -> Iterator[tuple[int, int]]:
    from risk.web.gunicorn_worker import LIMIT_REQUEST_FIELD_SIZE, LIMIT_REQUEST_FIELDS, LIMIT_REQUEST_LINE

    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESIGN_")}
    env.update(
        PRESIGN_INSTANCE=str(rt.settings.instance),
        PRESIGN_DATABASE_URL=rt.settings.database_url,
        PRESIGN_REDIS_URL=str(rt.settings.redis_url),
        PRESIGN_SECRET_KEY=rt.settings.secret_key,
        PRESIGN_RATE_LIMIT="0.5",  # one request, then one every 2 s
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "--worker-class", "risk.web.gunicorn_worker.JsonErrorWorker",
             "--limit-request-line", str(LIMIT_REQUEST_LINE),
             "--limit-request-field_size", str(LIMIT_REQUEST_FIELD_SIZE),
             "--limit-request-fields", str(LIMIT_REQUEST_FIELDS),
             "risk.app:create_app()"],
            env=env, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for port in PORTS
    ]
    try:
        deadline = time.monotonic() + 60
        for port, process in zip(PORTS, processes, strict=True):
            _wait_for(port, process, deadline)
        yield PORTS
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _send(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
          chunked: bool = False) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        if chunked:
            connection.putrequest(method, path)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            step = 64 * 1024
            try:
                for start in range(0, len(body or b""), step):
                    piece = (body or b"")[start : start + step]
                    connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                connection.send(b"0\r\n\r\n")
            except OSError:
                pass  # the server may answer and close before the whole body is sent
        else:
            connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.slow
def test_the_report_limit_holds_across_two_api_processes_sharing_redis(rt, client, agent, two_apis):
    import json

    listing = create_listing(client, agent)
    body = json.dumps({"stage": "deposit"}).encode()
    headers = {**agent, "Content-Type": "application/json"}
    started = time.monotonic()
    statuses = [_send(port, "POST", reports_url(listing["id"]), body, headers)[0] for port in two_apis * 3]
    elapsed = time.monotonic() - started

    assert elapsed < 1.5, "too slow to say anything about a 2-second refill"
    assert statuses.count(202) == 1 and statuses.count(429) == 5, statuses


@pytest.mark.slow
def test_gunicorn_refuses_bodies_lines_and_headers_in_the_error_shape(rt, client, agent, two_apis):
    import json

    port = two_apis[0]
    headers = {**agent, "Content-Type": "application/json"}
    big = b'{"external_id": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    small = json.dumps({"stage": "deposit", "pad": "y" * 1000}).encode()
    listing = create_listing(client, agent)
    cases = [
        (_send(port, "POST", "/api/v1/listings", big, headers), 413, "payload_too_large"),
        (_send(port, "POST", "/api/v1/listings", big, headers, chunked=True), 413, "payload_too_large"),
        (_send(port, "GET", "/api/v1/listings?community=" + "a" * 9000, None, agent), 414, "uri_too_long"),
        (_send(port, "GET", "/api/v1/listings", None, {**agent, "X-Pad": "b" * 40000}), 431, "headers_too_large"),
        (_send(port, "GET", "/api/v1/listings", None, {**agent, **{f"X-P{i}": "c" * 4000 for i in range(9)}}),
         431, "headers_too_large"),
    ]  # fmt: skip
    for (status, got_headers, raw), want_status, code in cases:
        assert status == want_status, (want_status, raw[:200])
        assert got_headers["content-type"] == "application/json"
        assert json.loads(raw)["error"]["code"] == code
    # a chunked body under the limit is read whole: the report request validates it (422 on the extra field)
    status, _, raw = _send(port, "POST", reports_url(listing["id"]), small, headers, chunked=True)
    assert status in (202, 422), raw


@pytest.mark.slow
def test_a_revoked_key_is_refused_by_every_api_process_within_5_seconds(rt, client, auth, two_apis):
    from risk.auth.keys import KEY_CACHE_SECONDS

    admin = auth(role="admin")
    made = client.post("/api/v1/keys", json={"role": "agent", "name": "leaving"}, headers=admin).get_json()
    headers = {"Authorization": f"Bearer {made['key']}"}
    assert [_send(port, "GET", "/api/v1/listings", None, headers)[0] for port in two_apis] == [200, 200]

    assert client.post(f"/api/v1/keys/{made['id']}/revoke", headers=admin).status_code == 200
    time.sleep(KEY_CACHE_SECONDS + 0.5)

    assert [_send(port, "GET", "/api/v1/listings", None, headers)[0] for port in two_apis] == [401, 401]
