"""A report's first provider calls, sent together from one thread (`checks.providers.FirstRound`),
against the reference server on loopback: the answers `get` would give, with the same retries."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from checks.base import ProviderUnavailable
from checks.providers import SHARED_KINDS_TTL, FirstRound, ProviderSet, SharedAnswers
from checks.providers.http import HttpProvider, request_path
from checks.providers.local import LocalProvider
from checks.providers.reference_server import Fault, ReferenceServer
from risk.clock import FrozenClock
from risk.runtime import Runtime
from tests.factories import (
    COMMUNITY_ID,
    UNIT_ID,
    community_prices_record,
    fee_account_record,
    inspections_record,
    title_record,
    unit_record,
)

FIRST = ["title", "fee_account", "inspections", "unit"]
RECORDS = [
    {"kind": "title", **title_record()},
    {"kind": "unit", **unit_record()},
    {"kind": "fee_account", **fee_account_record()},
    {"kind": "inspections", **inspections_record()},
    {"kind": "community_prices", **community_prices_record()},
]


@pytest.fixture
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(RECORDS) as running:
        yield running


@pytest.fixture
def providers(server: ReferenceServer, clock: FrozenClock) -> Iterator[ProviderSet]:
    made = ProviderSet(
        by_name={
            name: SharedAnswers(
                HttpProvider(
                    name=name,
                    base_url=server.url,
                    clock=clock,
                    connect_timeout=1.0,
                    read_timeout=1.0,
                    budget_seconds=3.0,
                    backoff_base=0.05,
                    breaker_threshold=1,
                )  # fmt: skip
            )
            for name in ("dictionary", "title", "fees", "leak")
        }
    )
    yield made
    made.close()


def adapter(providers: ProviderSet, name: str) -> HttpProvider:
    shared = providers.by_name[name]
    assert isinstance(shared, SharedAnswers) and isinstance(shared.inner, HttpProvider)
    return shared.inner


def test_the_first_calls_wait_for_the_slowest_answer_not_for_their_sum(
    providers: ProviderSet, server: ReferenceServer
) -> None:
    server.latency_ms = 200
    for kind in FIRST:  # connections open, so that only the answers' latency is timed
        providers.get(kind, UNIT_ID)

    started = time.monotonic()
    first = FirstRound.ask(providers, FIRST, UNIT_ID)
    sent = time.monotonic() - started
    first.settle(FIRST, UNIT_ID)
    elapsed = time.monotonic() - started

    assert sent < 0.1 and 0.2 <= elapsed < 0.3  # one after another would be 0.8 s
    assert first.answered(FIRST, UNIT_ID)


def test_checks_find_the_answers_get_would_give_without_asking_again(
    providers: ProviderSet, server: ReferenceServer
) -> None:
    expected = {kind: providers.get(kind, UNIT_ID) for kind in FIRST}
    seen = server.requests_seen

    first = FirstRound.ask(providers, FIRST, UNIT_ID)
    first.settle(FIRST, UNIT_ID)
    asked = server.requests_seen - seen
    answers = {kind: first.for_kind(kind).get(kind, UNIT_ID) for kind in FIRST}

    assert asked == 4 and server.requests_seen - seen == 4
    for kind, fetched in answers.items():
        assert fetched is not None and expected[kind] is not None
        assert (fetched.payload, fetched.source, fetched.reference) == (
            expected[kind].payload, expected[kind].source, expected[kind].reference,  # type: ignore[union-attr]
        )  # fmt: skip
    assert first.for_kind("title").name == "title"


def test_an_answer_not_read_yet_is_read_by_the_check_that_takes_it(
    providers: ProviderSet, server: ReferenceServer
) -> None:
    server.latency_ms = 100
    first = FirstRound.ask(providers, ["title", "unit"], UNIT_ID)
    results: dict[str, Any] = {}
    reader = threading.Thread(target=lambda: results.update(unit=first.for_kind("unit").get("unit", UNIT_ID)))

    reader.start()
    first.settle(["title"], UNIT_ID)
    reader.join(5)

    assert results["unit"] is not None and results["unit"].payload["unit_id"] == UNIT_ID
    assert first.answered(["title"], UNIT_ID) and server.requests_seen == 2


def test_an_answer_is_taken_once_then_calls_go_to_the_provider(providers: ProviderSet, server: ReferenceServer) -> None:
    first = FirstRound.ask(providers, ["title"], UNIT_ID)
    title = first.for_kind("title")

    title.get("title", UNIT_ID)
    title.get("title", UNIT_ID)
    title.get("title", "no-such-unit")

    assert server.hits(request_path("title", UNIT_ID)) == 2 and server.requests_seen == 3


def test_only_kinds_asked_by_the_unit_are_asked_first(providers: ProviderSet, server: ReferenceServer) -> None:
    first = FirstRound.ask(providers, ["community_prices", "title"], UNIT_ID)
    first.settle(["community_prices", "title"], UNIT_ID)

    assert server.requests_seen == 1 and server.hits(request_path("title", UNIT_ID)) == 1
    assert first.for_kind("community_prices").get("community_prices", COMMUNITY_ID) is not None
    assert "community_prices" in SHARED_KINDS_TTL  # kept answers: asked when needed, once a while


def test_none_on_record_is_an_answer(providers: ProviderSet, server: ReferenceServer) -> None:
    first = FirstRound.ask(providers, ["title"], "no-such-unit")
    assert not first.answered(["title"], "no-such-unit")  # not read yet
    first.settle(["title"], "no-such-unit")

    assert first.answered(["title"], "no-such-unit")
    assert first.for_kind("title").get("title", "no-such-unit") is None and server.requests_seen == 1


def test_a_failed_first_attempt_is_retried_by_the_check_that_asks(
    providers: ProviderSet, server: ReferenceServer, caplog: pytest.LogCaptureFixture
) -> None:
    path = request_path("title", UNIT_ID)
    server.script(path, Fault(503))

    first = FirstRound.ask(providers, ["title", "unit"], UNIT_ID)
    first.settle(["title", "unit"], UNIT_ID)
    assert not first.answered(["title"], UNIT_ID) and first.answered(["unit"], UNIT_ID)
    with caplog.at_level(logging.WARNING):
        fetched = first.for_kind("title").get("title", UNIT_ID)

    assert fetched is not None and server.hits(path) == 2
    assert "HTTP 503 (attempt 1" in caplog.text
    assert adapter(providers, "title").breaker.state == "closed"


def test_a_malformed_first_answer_is_a_failure_and_not_retried(providers: ProviderSet, server: ReferenceServer) -> None:
    path = request_path("title", UNIT_ID)
    server.script(path, Fault(body={"unit_id": UNIT_ID}))

    first = FirstRound.ask(providers, ["title"], UNIT_ID)
    with pytest.raises(ProviderUnavailable) as caught:
        first.for_kind("title").get("title", UNIT_ID)

    assert "malformed answer" in caught.value.reason and server.hits(path) == 1
    assert adapter(providers, "title").breaker.state == "open"  # told of the failure, as `get` tells it


def test_a_refused_first_connection_is_retried_by_the_check(clock: FrozenClock, server: ReferenceServer) -> None:
    with socket_closed_then_open() as (port, opened):
        provider = HttpProvider(
            name="title", base_url=f"http://127.0.0.1:{port}", clock=clock, connect_timeout=1.0,
            read_timeout=1.0, budget_seconds=3.0, backoff_base=0.2,
        )  # fmt: skip
        first = FirstRound.ask(ProviderSet(by_name={"title": provider}), ["title"], UNIT_ID)
        first.settle(["title"], UNIT_ID)
        assert first.asked(["title"], UNIT_ID) and not first.answered(["title"], UNIT_ID)
        opened.set()
        fetched = first.for_kind("title").get("title", UNIT_ID)
        provider.close()

    assert fetched is not None and fetched.payload["unit_id"] == UNIT_ID


def test_an_open_breaker_is_not_asked_ahead(providers: ProviderSet, server: ReferenceServer) -> None:
    path = request_path("title", UNIT_ID)
    server.script(path, Fault(400))
    with pytest.raises(ProviderUnavailable):
        providers.get("title", UNIT_ID)  # threshold 1: open now
    seen = server.requests_seen

    first = FirstRound.ask(providers, ["title", "unit"], UNIT_ID)
    first.settle(["title", "unit"], UNIT_ID)
    with pytest.raises(ProviderUnavailable) as caught:
        first.for_kind("title").get("title", UNIT_ID)

    assert server.requests_seen - seen == 1 and server.hits(path) == 1  # only the unit was asked
    assert caught.value.reason.startswith("circuit open")


def test_local_providers_are_asked_by_the_checks(rt: Runtime, server: ReferenceServer) -> None:
    local = ProviderSet(by_name={"title": LocalProvider(rt.sessions, rt.clock)})

    first = FirstRound.ask(local, ["title"], UNIT_ID)

    assert not first.asked(["title"], UNIT_ID)
    assert first.for_kind("title").get("title", UNIT_ID) is None  # nothing imported: none on record


def test_an_abandoned_call_gives_its_connection_up(providers: ProviderSet, server: ReferenceServer) -> None:
    server.latency_ms = 100
    asked = adapter(providers, "title").ask("title", UNIT_ID)
    assert asked is not None

    asked.abandon()

    deadline = time.monotonic() + 2
    while server._httpd.connections and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.01)
    assert not server._httpd.connections  # type: ignore[union-attr]


def test_an_interrupted_round_abandons_what_it_asked(
    providers: ProviderSet, server: ReferenceServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from checks.providers import http

    abandoned: list[str] = []
    settle, abandon = http.Asked.settle, http.Asked.abandon

    def interrupted(self: Any) -> None:
        if self.kind == "fee_account":
            raise KeyboardInterrupt
        settle(self)

    def recorded(self: Any) -> None:
        abandoned.append(self.kind)
        abandon(self)

    monkeypatch.setattr(http.Asked, "settle", interrupted)
    monkeypatch.setattr(http.Asked, "abandon", recorded)
    first = FirstRound.ask(providers, FIRST, UNIT_ID)
    with pytest.raises(KeyboardInterrupt):
        first.settle(FIRST, UNIT_ID)

    assert sorted(abandoned) == sorted(FIRST)
    assert not first.asked(["title"], UNIT_ID)  # nothing is left to take: the checks ask their providers


class socket_closed_then_open:
    """A loopback port that refuses connections until `opened` is set, then serves RECORDS."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.server = ReferenceServer(RECORDS)

    def __enter__(self) -> tuple[int, threading.Event]:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.server._address = ("127.0.0.1", self.port)
        self._thread = threading.Thread(target=self._open_when_told, daemon=True)
        self._thread.start()
        return self.port, self.opened

    def _open_when_told(self) -> None:
        self.opened.wait(10)
        self.server.start()

    def __exit__(self, *exc: Any) -> None:
        self.opened.set()
        self._thread.join(5)
        self.server.stop()
