"""The HTTP adapter against the reference server on loopback: real sockets, real timeouts."""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from checks.base import ProviderUnavailable
from checks.providers import SHARED_KINDS_TTL, ProviderSet
from checks.providers import http as http_adapter
from checks.providers.http import HttpProvider, request_path
from checks.providers.importer import import_records
from checks.providers.local import LocalProvider
from checks.providers.reference_server import Fault, ReferenceServer
from checks.providers.schemas import validate
from risk.clock import FrozenClock
from risk.identity import protect_record
from risk.ops.metrics import OWN
from risk.runtime import Runtime
from risk.settings import Settings
from tests.factories import (
    COMMUNITY_ID,
    UNIT_ID,
    community_prices_record,
    inspections_record,
    title_record,
    unit_record,
)

TITLE = request_path("title", UNIT_ID)
GARBAGE = Fault(body=b"<html>502 Bad Gateway</html>")


@pytest.fixture
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer([{"kind": "title", **title_record()}, {"kind": "unit", **unit_record()}]) as running:
        yield running


@pytest.fixture
def make_provider(
    server: ReferenceServer, settings: Settings, clock: FrozenClock
) -> Iterator[Callable[..., HttpProvider]]:
    made: list[HttpProvider] = []

    def make(**overrides: Any) -> HttpProvider:
        options: dict[str, Any] = {
            "name": "title",
            "base_url": server.url,
            "clock": clock,
            "connect_timeout": settings.provider_connect_timeout,
            "read_timeout": settings.provider_read_timeout,
            "budget_seconds": settings.provider_budget_seconds,
            "backoff_base": 0.05,
        }
        options.update(overrides)
        provider = HttpProvider(**options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        provider.close()


def unavailable(provider: HttpProvider, kind: str = "title", key: str = UNIT_ID) -> ProviderUnavailable:
    with pytest.raises(ProviderUnavailable) as caught:
        provider.get(kind, key)
    return caught.value


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- answers ---------------------------------------------------------------------------------------


def test_answer_is_the_validated_record(make_provider: Callable[..., HttpProvider]) -> None:
    fetched = make_provider().get("title", UNIT_ID)

    assert fetched is not None and fetched.payload == validate("title", title_record())


def test_answer_names_base_url_and_request_path(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer, clock: FrozenClock
) -> None:
    fetched = make_provider().get("title", UNIT_ID)

    assert fetched is not None
    assert (fetched.source, fetched.reference, fetched.retrieved_at) == (server.url, TITLE, clock.now())


def test_http_and_local_adapters_return_the_same_payload(
    rt: Runtime, make_provider: Callable[..., HttpProvider], clock: FrozenClock
) -> None:
    import_records(rt, [{"kind": "title", **title_record()}])

    over_http = make_provider().get("title", UNIT_ID)
    stored = LocalProvider(rt.engine, clock).get("title", UNIT_ID)

    # the same, but for owners' ID numbers, which imported records keep only hashed and masked
    assert over_http is not None and stored is not None
    assert protect_record(rt.id_hash, over_http.payload) == stored.payload


def test_not_found_answers_none(make_provider: Callable[..., HttpProvider]) -> None:
    assert make_provider().get("title", "no-such-unit") is None


def test_key_is_url_quoted(make_provider: Callable[..., HttpProvider], server: ReferenceServer) -> None:
    server.put("title", title_record(unit_id="bj/3 号楼?602"))

    fetched = make_provider().get("title", "bj/3 号楼?602")

    assert fetched is not None and fetched.reference == "/titles/bj%2F3%20%E5%8F%B7%E6%A5%BC%3F602"


def test_inspections_are_asked_by_query(make_provider: Callable[..., HttpProvider], server: ReferenceServer) -> None:
    server.put("inspections", inspections_record())

    fetched = make_provider(name="leak").get("inspections", UNIT_ID)

    assert fetched is not None and fetched.reference == f"/inspections?unit_id={UNIT_ID}"


def test_configured_base_url_builds_an_http_adapter(settings: Settings, rt: Runtime, server: ReferenceServer) -> None:
    http_settings = replace(settings, providers={**settings.providers, "title": server.url})

    providers = ProviderSet.from_settings(http_settings, rt.engine)
    try:
        fetched = providers.get("title", UNIT_ID)
    finally:
        providers.close()

    assert fetched is not None and fetched.source == server.url


# -- retries ---------------------------------------------------------------------------------------


def test_server_error_then_answer_is_retried(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    server.script(TITLE, 503)

    fetched = make_provider().get("title", UNIT_ID)

    assert fetched is not None and server.hits(TITLE) == 2


def test_failed_attempts_are_counted_by_provider_and_kind(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    def count(kind: str) -> float:
        return OWN.get_sample_value("presign_provider_errors_total", {"provider": "title", "kind": kind}) or 0.0

    before = {kind: count(kind) for kind in ("http_5xx", "http_429", "http_4xx")}
    server.script(TITLE, 503, 429, 403)

    unavailable(make_provider())

    assert {kind: count(kind) - before[kind] for kind in before} == {"http_5xx": 1, "http_429": 1, "http_4xx": 1}


def test_retry_is_logged_as_warning(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.script(TITLE, 503)

    with caplog.at_level(logging.WARNING, logger="checks.providers.http"):
        make_provider().get("title", UNIT_ID)

    assert any("HTTP 503" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_rate_limit_waits_for_retry_after(make_provider: Callable[..., HttpProvider], server: ReferenceServer) -> None:
    server.script(TITLE, Fault(429, headers={"Retry-After": "1"}))

    started = time.monotonic()
    fetched = make_provider().get("title", UNIT_ID)

    assert fetched is not None and time.monotonic() - started >= 1.0


def test_retry_after_beyond_the_budget_gives_up_at_once(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    server.script(TITLE, Fault(429, headers={"Retry-After": "60"}))

    started = time.monotonic()
    error = unavailable(make_provider())

    assert time.monotonic() - started < 0.5
    assert "Retry-After" in error.reason and server.hits(TITLE) == 1


def test_client_error_is_not_retried(make_provider: Callable[..., HttpProvider], server: ReferenceServer) -> None:
    server.script(TITLE, 403)

    error = unavailable(make_provider())

    assert "HTTP 403" in error.reason and server.hits(TITLE) == 1


def test_redirect_is_a_failure_and_not_followed(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    elsewhere = server.path_for("title", "unit-elsewhere")
    server.script(TITLE, Fault(status=302, headers={"Location": server.url + elsewhere}))

    error = unavailable(make_provider())

    assert "HTTP 302 (redirects are not followed)" in error.reason
    assert server.hits(TITLE) == 1 and server.hits(elsewhere) == 0


def test_dropped_connection_is_retried(make_provider: Callable[..., HttpProvider], server: ReferenceServer) -> None:
    server.script(TITLE, Fault(drop=True))

    assert make_provider().get("title", UNIT_ID) is not None


def test_refused_connection_fails_within_the_budget(make_provider: Callable[..., HttpProvider]) -> None:
    provider = make_provider(base_url=f"http://127.0.0.1:{closed_port()}")

    started = time.monotonic()
    error = unavailable(provider)

    assert time.monotonic() - started < provider.budget_seconds
    assert "connection failed" in error.reason and "refused" in error.reason


def test_slow_answer_beyond_read_timeout_is_retried(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    server.script(TITLE, Fault(delay_ms=1500))

    fetched = make_provider().get("title", UNIT_ID)

    assert fetched is not None and server.hits(TITLE) == 2


def test_answer_that_stays_slow_fails_within_the_budget(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    server.script(TITLE, *[Fault(delay_ms=1500)] * 10)
    provider = make_provider()

    started = time.monotonic()
    error = unavailable(provider)

    assert time.monotonic() - started < provider.budget_seconds + 0.5
    assert server.hits(TITLE) >= 2 and "no answer within" in error.reason


def test_a_body_that_trickles_past_the_budget_is_cut_off(make_provider: Callable[..., HttpProvider]) -> None:
    with _title_server(answer=_TrickledTitle) as (httpd, seen):
        provider = make_provider(base_url=f"http://127.0.0.1:{httpd.server_port}", budget_seconds=1.0)

        started = time.monotonic()
        error = unavailable(provider)
        elapsed = time.monotonic() - started

    assert elapsed < provider.budget_seconds + 0.5
    assert "still arriving when the budget ran out" in error.reason and len(seen.asked) == 1


def test_a_body_that_stalls_is_given_up_at_the_budget_not_a_read_timeout_later(
    make_provider: Callable[..., HttpProvider],
) -> None:
    with _title_server(answer=_StalledTitle) as (httpd, _seen):
        provider = make_provider(base_url=f"http://127.0.0.1:{httpd.server_port}", budget_seconds=1.0)

        started = time.monotonic()
        error = unavailable(provider)
        elapsed = time.monotonic() - started

    assert provider.read_timeout >= 1.0 and elapsed < provider.budget_seconds + 0.5
    assert "still arriving when the budget ran out" in error.reason


def test_answer_larger_than_the_limit_is_a_failure_and_not_retried(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_adapter, "MAX_BODY_BYTES", 1000)
    server.script(TITLE, Fault(body=b"x" * 2000))

    error = unavailable(make_provider())

    assert "larger than 1000 bytes" in error.reason and server.hits(TITLE) == 1


def test_a_connection_the_server_closed_while_idle_is_not_used(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer, caplog: pytest.LogCaptureFixture
) -> None:
    provider = make_provider()
    provider.get("title", UNIT_ID)
    server._httpd.close_connections()  # type: ignore[union-attr]
    time.sleep(0.05)

    with caplog.at_level(logging.WARNING):
        assert provider.get("title", UNIT_ID) is not None

    assert server.hits(TITLE) == 2 and server.connections_accepted == 2 and not caplog.records


def test_a_connection_left_with_an_unread_answer_is_not_reused(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    monkeypatch.setattr(http_adapter, "MAX_BODY_BYTES", 1000)
    server.script(TITLE, Fault(body=b"x" * 2000))
    provider = make_provider()
    unavailable(provider)  # refused by its length, unread: those bytes must not be read as the next answer

    with caplog.at_level(logging.WARNING):
        fetched = provider.get("title", UNIT_ID)

    assert fetched is not None and fetched.payload["unit_id"] == UNIT_ID
    assert server.hits(TITLE) == 2 and not caplog.records


def test_connections_are_kept_alive_between_calls(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    provider = make_provider()

    for _ in range(5):
        provider.get("title", UNIT_ID)
        provider.get("title", "no-such-unit")  # a 404 is read to the end, and its connection kept too

    assert server.requests_seen == 10 and server.connections_accepted == 1


def test_base_url_with_a_path_prefixes_every_request(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    prefixed = "/registry/v1" + TITLE
    server.script(prefixed, Fault(body=title_record()))

    fetched = make_provider(base_url=server.url + "/registry/v1/").get("title", UNIT_ID)

    assert fetched is not None and fetched.reference == TITLE and server.hits(prefixed) == 1


class _TitleAnswer(BaseHTTPRequestHandler):
    """Answers every GET with the title record, and keeps the paths it was asked (per server)."""

    asked: list[str]
    proxy_auth: list[str | None]

    def do_GET(self) -> None:
        self.asked.append(self.path)
        self.proxy_auth.append(self.headers.get("Proxy-Authorization"))
        body = json.dumps(title_record()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


class _TrickledTitle(_TitleAnswer):
    """Sends the title record's head at once, then its body a byte at a time, each before a read timeout."""

    def do_GET(self) -> None:
        self.asked.append(self.path)
        body = json.dumps(title_record()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            return  # the client hung up


class _StalledTitle(_TitleAnswer):
    """Sends the title record's head just within a read timeout, then a few bytes of its body, then
    nothing more for a while; keeps the connection open after, as providers do."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.asked.append(self.path)
        body = json.dumps(title_record()).encode()
        time.sleep(0.8)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:10])
        self.wfile.flush()
        time.sleep(3)


@contextmanager
def _title_server(
    context: ssl.SSLContext | None = None, answer: type[_TitleAnswer] = _TitleAnswer
) -> Iterator[tuple[ThreadingHTTPServer, type[_TitleAnswer]]]:
    """A server on loopback answering every GET with the title record: (server, its handler class,
    whose `asked` and `proxy_auth` list what each request asked and sent)."""
    handler: type[_TitleAnswer] = type("Answer", (answer,), {"asked": [], "proxy_auth": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield httpd, handler
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    ("variable", "userinfo", "sent"),
    [
        ("http_proxy", "", None),
        ("http_proxy", "presign:s%40cret@", "Basic cHJlc2lnbjpzQGNyZXQ="),
        ("all_proxy", "", None),
    ],
)
def test_plain_http_goes_through_the_environments_proxy(
    make_provider: Callable[..., HttpProvider], monkeypatch: pytest.MonkeyPatch, variable: str, userinfo: str,
    sent: str | None,
) -> None:  # fmt: skip
    with _title_server() as (proxy, seen):
        for name in ("http_proxy", "all_proxy", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.setenv(variable, f"http://{userinfo}127.0.0.1:{proxy.server_port}")
        monkeypatch.setenv(variable.upper(), f"http://{userinfo}127.0.0.1:{proxy.server_port}")

        fetched = make_provider(base_url="http://registry.invalid").get("title", UNIT_ID)

    assert fetched is not None and fetched.payload["unit_id"] == UNIT_ID
    assert seen.asked == ["http://registry.invalid" + TITLE] and seen.proxy_auth == [sent]


def test_a_proxy_that_refuses_is_named_in_the_failure(
    make_provider: Callable[..., HttpProvider], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{closed_port()}")
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)

    error = unavailable(make_provider(base_url="http://registry.invalid", budget_seconds=0.5))

    assert "connection failed (Unable to connect to proxy: " in error.reason
    assert "refused" in error.reason and "Error(" not in error.reason  # a message, not a repr


@pytest.fixture
def tls_server(tmp_path: Any) -> Iterator[tuple[str, str]]:
    """An HTTPS server on loopback with a self-signed certificate: (base URL, the certificate's file)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with _title_server(context) as (httpd, _seen):
        yield f"https://127.0.0.1:{httpd.server_port}", str(cert)


def test_https_answers_through_the_configured_ca_bundle(
    make_provider: Callable[..., HttpProvider], tls_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert)

    fetched = make_provider(base_url=url).get("title", UNIT_ID)

    assert fetched is not None and fetched.payload["unit_id"] == UNIT_ID and fetched.source == url


def test_https_takes_a_ca_folder_as_requests_does(
    make_provider: Callable[..., HttpProvider], tls_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:  # fmt: skip
    url, cert = tls_server
    folder = tmp_path / "cas"
    folder.mkdir()
    shutil.copy(cert, folder / "provider.pem")
    subprocess.run(["openssl", "rehash", str(folder)], check=True, capture_output=True)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(folder))

    assert make_provider(base_url=url).get("title", UNIT_ID) is not None


def test_https_with_a_certificate_nobody_vouches_for_is_a_failure(
    make_provider: Callable[..., HttpProvider], tls_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _cert = tls_server
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)

    error = unavailable(make_provider(base_url=url, budget_seconds=0.5))

    assert "CERTIFICATE_VERIFY_FAILED" in error.reason


# -- malformed answers ---------------------------------------------------------------------------


def test_garbage_body_is_a_failure_not_a_finding(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    server.script(TITLE, *[GARBAGE] * 10)

    error = unavailable(make_provider())

    assert "not JSON" in error.reason


def test_json_that_is_not_an_object_is_a_failure(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    server.script(TITLE, *[Fault(body=[1, 2, 3])] * 10)

    assert "not an object" in unavailable(make_provider()).reason


def test_answer_failing_the_schema_is_a_failure_and_not_retried(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    broken = title_record()
    del broken["encumbrances"]
    server.script(TITLE, Fault(body=broken))

    error = unavailable(make_provider())

    assert "encumbrances" in error.reason and server.hits(TITLE) == 1


def test_answer_for_another_unit_is_a_failure(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    server.script(TITLE, Fault(body=title_record(unit_id="bj-other")))

    assert "bj-other" in unavailable(make_provider()).reason


# -- breaker ---------------------------------------------------------------------------------------


def test_breaker_opens_after_consecutive_failures_and_fails_fast(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    provider = make_provider(breaker_threshold=2)
    server.script(TITLE, 400, 400)
    unavailable(provider)
    unavailable(provider)

    error = unavailable(provider)

    assert error.reason.startswith("circuit open") and server.hits(TITLE) == 2


def test_success_resets_the_failure_count(make_provider: Callable[..., HttpProvider], server: ReferenceServer) -> None:
    provider = make_provider(breaker_threshold=2)
    server.script(TITLE, 400, 200, 400)
    unavailable(provider)
    provider.get("title", UNIT_ID)
    unavailable(provider)

    assert provider.get("title", UNIT_ID) is not None


def test_breaker_half_opens_after_cooldown(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer, clock: FrozenClock
) -> None:
    provider = make_provider(breaker_threshold=1, breaker_cooldown=30)
    server.script(TITLE, 400)
    unavailable(provider)
    clock.advance(timedelta(seconds=31))

    fetched = provider.get("title", UNIT_ID)

    assert fetched is not None and provider.breaker.state == "closed"


def test_failed_trial_opens_the_breaker_again(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer, clock: FrozenClock
) -> None:
    provider = make_provider(breaker_threshold=1, breaker_cooldown=30)
    server.script(TITLE, 400, 503)
    unavailable(provider)
    clock.advance(timedelta(seconds=31))
    unavailable(provider)  # the trial makes one attempt only

    assert unavailable(provider).reason.startswith("circuit open") and server.hits(TITLE) == 2


def test_half_open_breaker_lets_one_trial_through(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer, clock: FrozenClock
) -> None:
    provider = make_provider(breaker_threshold=1, breaker_cooldown=30)
    server.script(TITLE, 400, Fault(delay_ms=300))
    unavailable(provider)
    clock.advance(timedelta(seconds=31))
    trial = threading.Thread(target=provider.get, args=("title", UNIT_ID))
    trial.start()
    time.sleep(0.1)

    error = unavailable(provider)
    trial.join()

    assert error.reason.startswith("circuit open") and server.hits(TITLE) == 2


# -- connections and concurrency ------------------------------------------------------------------------


def test_concurrent_calls_share_pooled_connections(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    provider = make_provider()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: provider.get("title", UNIT_ID), range(200)))

    assert all(a is not None for a in answers)
    assert server.requests_seen == 200 and server.connections_accepted <= 8


def test_concurrent_calls_wait_side_by_side_for_the_latency(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    server.latency_ms = 500
    provider = make_provider()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda kind: provider.get(kind, UNIT_ID), ["title", "unit", "title", "unit"]))
    elapsed = time.monotonic() - started

    # Held by the server at the same moment, not one after another (which would take 2 s).
    assert server.peak_waiting == 4 and 0.5 <= elapsed < 2.0


def _get_in_child(provider: HttpProvider, results: Any) -> None:
    fetched = provider.get("title", UNIT_ID)
    results.put(None if fetched is None else fetched.payload["unit_id"])


def test_a_forked_child_gets_answers_and_so_does_its_parent(make_provider: Callable[..., HttpProvider]) -> None:
    provider = make_provider()
    provider.get("title", UNIT_ID)
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    child = context.Process(target=_get_in_child, args=(provider, results))
    child.start()
    child.join(timeout=10)

    assert child.exitcode == 0 and results.get(timeout=1) == UNIT_ID
    assert provider.get("title", UNIT_ID) is not None


# -- the reference server itself -----------------------------------------------------------------


def test_reference_server_answers_after_its_latency(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    provider = make_provider()
    provider.get("title", UNIT_ID)  # open the connection first
    server.latency_ms = 100

    def timed() -> float:
        started = time.monotonic()
        provider.get("title", UNIT_ID)
        return time.monotonic() - started

    # The quickest of three, so a busy machine's stall is not read as the server's own delay.
    assert 0.1 <= min(timed() for _ in range(3)) < 0.15


def test_reference_server_answers_empty_inspections_when_none_on_record(
    make_provider: Callable[..., HttpProvider],
) -> None:
    fetched = make_provider(name="leak").get("inspections", "no-such-unit")

    assert fetched is not None and fetched.payload["inspections"] == []


def test_reference_server_counts_requests_per_path(
    make_provider: Callable[..., HttpProvider], server: ReferenceServer
) -> None:
    provider = make_provider()
    provider.get("title", UNIT_ID)
    provider.get("title", "no-such-unit")

    assert (server.requests_seen, server.hits(TITLE)) == (2, 1)


def test_reference_server_scripts_any_path(make_provider: Callable[..., HttpProvider], server: ReferenceServer) -> None:
    server.script("*", 404)

    assert make_provider().get("title", UNIT_ID) is None


# -- shared answers ----------------------------------------------------------------------------------


@pytest.fixture
def dictionary(settings: Settings, rt: Runtime, server: ReferenceServer) -> Iterator[ProviderSet]:
    """The configured adapters with the dictionary (units, community prices) served over HTTP."""
    server.put("community_prices", community_prices_record())
    http_settings = replace(settings, providers={**settings.providers, "dictionary": server.url})
    providers = ProviderSet.from_settings(http_settings, rt.engine)
    yield providers
    providers.close()


def test_community_prices_are_asked_once_until_their_time_to_live_passes(
    dictionary: ProviderSet, server: ReferenceServer, clock: FrozenClock
) -> None:
    prices = request_path("community_prices", COMMUNITY_ID)

    answers = [dictionary.get("community_prices", COMMUNITY_ID) for _ in range(3)]
    clock.advance(timedelta(seconds=SHARED_KINDS_TTL["community_prices"] + 1))
    later = dictionary.get("community_prices", COMMUNITY_ID)

    assert answers[0] is not None and answers == [answers[0]] * 3 and later is not None
    assert server.hits(prices) == 2


def test_a_failed_shared_answer_is_not_kept(dictionary: ProviderSet, server: ReferenceServer) -> None:
    prices = request_path("community_prices", COMMUNITY_ID)
    server.script(prices, 403)

    with pytest.raises(ProviderUnavailable):
        dictionary.get("community_prices", COMMUNITY_ID)

    assert dictionary.get("community_prices", COMMUNITY_ID) is not None and server.hits(prices) == 2


def test_answers_of_other_kinds_are_not_kept(dictionary: ProviderSet, server: ReferenceServer) -> None:
    dictionary.get("unit", UNIT_ID)
    dictionary.get("unit", UNIT_ID)

    assert server.hits(request_path("unit", UNIT_ID)) == 2
