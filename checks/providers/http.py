"""The HTTP adapter: calls a provider that speaks PROVIDERS.md.

Every call has a connect and a read timeout. Idempotent GETs are retried with exponential backoff
and jitter on connection errors, timeouts, 429 (honouring Retry-After) and 5xx, all within one time
budget per call; 404 means "none on record"; a redirect (not followed), any other 4xx, or a body
that is not the contract's shape, is a failure. A failure after the retries raises
`ProviderUnavailable`, never a finding. A breaker per provider fails fast once the provider keeps
failing.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import certifi
import urllib3
from marshmallow import ValidationError
from requests.utils import get_auth_from_url, get_environ_proxies, select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, HTTPError, NewConnectionError, ProtocolError, ReadTimeoutError

from checks.base import Fetched, ProviderUnavailable
from checks.providers.breaker import Breaker, CircuitOpen, Permit
from checks.providers.schemas import record_key, validate
from risk.clock import Clock
from risk.errors import fields_from_marshmallow
from risk.ops.metrics import PROVIDER_ERRORS

log = logging.getLogger(__name__)

_PATHS = {
    "unit": "/units/{key}",
    "community_prices": "/communities/{key}/prices",
    "title": "/titles/{key}",
    "fee_account": "/fee-accounts/{key}",
    "inspections": "/inspections?unit_id={key}",
    "contract_filing": "/contract-filings/{key}",
}
MAX_BODY_BYTES = 4 * 1024 * 1024
_USER_AGENT = "presign-provider-client/1"


def request_path(kind: str, key: str) -> str:
    """The path (and query) PROVIDERS.md gives for a record of `kind` under `key`."""
    return _PATHS[kind].format(key=quote(key, safe=""))


def error_kind(reason: str) -> str:
    """The metrics label of a failed attempt's reason: timeout, connection, http_429, http_4xx,
    http_5xx, malformed or too_large."""
    if reason.startswith("HTTP "):
        status = reason[5:8]
        return "http_429" if status == "429" else f"http_{status[:1]}xx"
    for words, kind in _ERROR_KINDS:
        if any(word in reason for word in words):
            return kind
    return "other"


_ERROR_KINDS = (
    (("timed out", "no answer within", "no time left", "still arriving"), "timeout"),
    (("connection failed", "cut off"), "connection"),
    (("malformed",), "malformed"),
    (("larger than",), "too_large"),
)


class _Retryable(Exception):
    """One attempt failed in a way that another attempt may fix."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class _Fatal(Exception):
    """One attempt failed in a way that repeating it will not fix."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HttpProvider:
    """One provider's HTTP adapter; one per process, shared by the threads that run a report's checks."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        clock: Clock,
        connect_timeout: float,
        read_timeout: float,
        budget_seconds: float,
        max_attempts: int = 5,
        backoff_base: float = 0.2,
        backoff_max: float = 4.0,
        breaker_threshold: int = 5,
        breaker_cooldown: float = 30.0,
        pool_size: int = 16,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.budget_seconds = budget_seconds
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.pool_size = pool_size
        self.breaker = Breaker(clock, threshold=breaker_threshold, cooldown=breaker_cooldown)
        self._clock = clock
        self._lock = threading.Lock()
        self._transport: Transport | None = None
        self._transport_pid: int | None = None

    # -- the transport ----------------------------------------------------------------------------

    def _http(self) -> Transport:
        """The transport, made on first use in this process; a forked child makes its own."""
        transport = self._transport
        if transport is not None and self._transport_pid == os.getpid():
            return transport
        with self._lock:
            if self._transport is None or self._transport_pid != os.getpid():
                # One inherited across a fork shares its sockets with the parent: drop it unclosed.
                self._transport = Transport(self.base_url, self.pool_size)
                self._transport_pid = os.getpid()
            return self._transport

    def close(self) -> None:
        with self._lock:
            if self._transport is not None and self._transport_pid == os.getpid():
                self._transport.close()
            self._transport = None
            self._transport_pid = None

    # -- calls ------------------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> Fetched | None:
        """The validated record of `kind` under `key`, None on 404, or ProviderUnavailable."""
        path = request_path(kind, key)
        try:
            permit = self.breaker.acquire()
        except CircuitOpen as exc:
            PROVIDER_ERRORS.labels(self.name, "circuit_open").inc()
            raise ProviderUnavailable(self.name, exc.reason) from None
        return self._call(kind, key, path, permit, time.monotonic(), None)

    def ask(self, kind: str, key: str) -> Asked | None:
        """Send the first attempt of `get(kind, key)` now and return without waiting: `Asked.settle()`
        reads its answer, `Asked.answer()` gives what `get` would have. None while the breaker is not
        closed: a trial call, or failing fast, is left to `get`."""
        permit = self.breaker.closed_permit()
        if permit is None:
            return None
        path = request_path(kind, key)
        started = time.monotonic()
        deadline = started + self.budget_seconds
        sent: Exchange | _Retryable
        try:
            sent = self._send(path, deadline)
        except _Retryable as exc:
            sent = exc
        return Asked(self, kind, key, path, permit, started, sent)

    def _call(
        self, kind: str, key: str, path: str, permit: Permit, started: float, first: Callable[[], Fetched | None] | None
    ) -> Fetched | None:
        """The call with its retries (`first`: its first attempt, made already), the breaker told how it went."""
        try:
            result = self._get_with_retries(kind, key, path, permit, started, first)
        except ProviderUnavailable:
            self.breaker.failure(permit)
            raise
        except BaseException:
            # Not the provider's fault (e.g. interrupted), but a trial must not hold the breaker half-open.
            if permit.trial:
                self.breaker.failure(permit)
            raise
        self.breaker.success(permit)
        return result

    def _get_with_retries(
        self, kind: str, key: str, path: str, permit: Permit, started: float, first: Callable[[], Fetched | None] | None
    ) -> Fetched | None:
        deadline = started + self.budget_seconds
        # A half-open breaker's trial makes a single attempt: it only asks whether the provider is back.
        attempts_allowed = 1 if permit.trial else self.max_attempts
        attempt = 0
        while True:
            attempt += 1
            try:
                if first is not None:
                    return first()
                return self._attempt(kind, key, path, deadline)
            except _Fatal as exc:
                PROVIDER_ERRORS.labels(self.name, error_kind(exc.reason)).inc()
                raise ProviderUnavailable(self.name, f"GET {path}: {exc.reason}") from None
            except _Retryable as exc:
                PROVIDER_ERRORS.labels(self.name, error_kind(exc.reason)).inc()
                reason = exc.reason
                retry_after = exc.retry_after
            first = None
            elapsed = time.monotonic() - started
            summary = f"GET {path}: {reason} (attempt {attempt}, {elapsed:.1f} s)"
            if attempt >= attempts_allowed:
                raise ProviderUnavailable(self.name, f"{summary}; giving up after {attempt} attempts")
            pause = self._backoff(attempt)
            if retry_after is not None:
                pause = max(pause, retry_after)
            remaining = deadline - time.monotonic()
            # Sleeping only to start an attempt with no time left to finish is pointless.
            if pause + min(self.connect_timeout, 0.05) >= remaining:
                if retry_after is not None and retry_after >= remaining:
                    detail = f"Retry-After {retry_after:.0f} s is past the {self.budget_seconds:g} s budget"
                else:
                    detail = f"the {self.budget_seconds:g} s budget is spent"
                raise ProviderUnavailable(self.name, f"{summary}; giving up: {detail}")
            log.warning("provider %s: %s; retrying in %.2f s", self.name, summary, pause)
            time.sleep(pause)
            try:
                self.breaker.check()
            except CircuitOpen as exc:
                raise ProviderUnavailable(self.name, f"{summary}; {exc.reason}") from None

    def _backoff(self, attempt: int) -> float:
        # Exponential with "equal jitter": at least half the step, so retries never bunch at zero.
        step = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return step / 2 + random.uniform(0, step / 2)

    def _timeout(self, deadline: float) -> tuple[float, float]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Retryable("no time left")
        return min(self.connect_timeout, remaining), min(self.read_timeout, remaining)

    def _attempt(self, kind: str, key: str, path: str, deadline: float) -> Fetched | None:
        return self._receive(kind, key, path, self._send(path, deadline), deadline)

    def _send(self, path: str, deadline: float) -> Exchange:
        timeout = self._timeout(deadline)
        with _connection_errors(timeout):
            return self._http().send(path, timeout)

    def _receive(self, kind: str, key: str, path: str, exchange: Exchange, deadline: float) -> Fetched | None:
        """The answer to a request sent: validated, None on 404, or _Retryable / _Fatal."""
        try:
            with _connection_errors(exchange.timeout):
                response = exchange.response()
            status = response.status
            if status != 200:
                _drain(response, deadline)
            if status == 404:
                return None
            if status == 429:
                raise _Retryable("HTTP 429 rate limited", _retry_after(response.headers.get("Retry-After")))
            if status >= 500:
                raise _Retryable(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
            if 300 <= status < 400:
                raise _Fatal(f"HTTP {status} (redirects are not followed)")
            if status != 200:
                raise _Fatal(f"HTTP {status} (not retried)")
            body = self._read_body(response, deadline)
        finally:
            exchange.done()
        payload = self._parse(kind, key, body)
        return Fetched(
            kind=kind,
            key=key,
            payload=payload,
            source=self.base_url,
            reference=path,
            retrieved_at=self._clock.now(),
        )

    def _read_body(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytes:
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            raise _Fatal(f"answer larger than {MAX_BODY_BYTES} bytes")
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.stream(65536):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _Fatal(f"answer larger than {MAX_BODY_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise _Retryable("answer still arriving when the budget ran out")
                chunks.append(chunk)
        except (HTTPError, OSError) as exc:
            # A read timeout or a dropped connection in the middle of the body.
            raise _Retryable(f"answer cut off ({_short(exc)})") from None
        return b"".join(chunks)

    def _parse(self, kind: str, key: str, body: bytes) -> dict[str, Any]:
        try:
            data = json.loads(body)
        except ValueError:
            raise _Retryable(f"malformed answer: not JSON ({_excerpt(body)})") from None
        if not isinstance(data, dict):
            raise _Retryable(f"malformed answer: a JSON {type(data).__name__}, not an object") from None
        try:
            payload = validate(kind, data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{path}: {' '.join(messages)}" for path, messages in fields_from_marshmallow(exc.messages).items()
            )
            raise _Fatal(f"malformed answer: {_clip(problems, 300)}") from None
        answered = record_key(kind, payload)
        if answered != key:
            raise _Fatal(f"malformed answer: it is for {answered!r}, not {key!r}")
        return payload


class Asked:
    """A call whose first attempt went out ahead (`HttpProvider.ask`). `settle()` reads that attempt's
    answer, in the thread that asked; `answer()` is then what `get` would have returned: the answer,
    or the retries `get` makes after a failed attempt, in the thread that calls it."""

    def __init__(
        self, provider: HttpProvider, kind: str, key: str, path: str, permit: Permit, started: float,
        sent: Exchange | _Retryable,
    ) -> None:  # fmt: skip
        self.provider, self.kind, self.key = provider, kind, key
        self._path, self._permit, self._started = path, permit, started
        self._sent: Exchange | None = sent if isinstance(sent, Exchange) else None
        self._outcome: Fetched | None | _Retryable | _Fatal = sent if isinstance(sent, _Retryable) else None
        self._answered = False
        self._lock = threading.Lock()  # one thread reads the answer; another asking meanwhile waits for it

    def settle(self) -> None:
        """Read the first attempt's answer (at once if it failed to go out)."""
        with self._lock:
            sent, self._sent = self._sent, None
            if sent is None:
                return
            try:
                self._outcome = self.provider._receive(
                    self.kind, self.key, self._path, sent, self._started + self.provider.budget_seconds
                )
            except (_Retryable, _Fatal) as exc:
                self._outcome = exc

    @property
    def answered(self) -> bool:
        """Settled with the provider's answer (a record or none on record): `answer()` will not wait."""
        return self._sent is None and not isinstance(self._outcome, (_Retryable, _Fatal))

    def abandon(self) -> None:
        """Give the connection back unread (the report stopped before it needed the answer)."""
        with self._lock:
            sent, self._sent = self._sent, None
        if sent is not None:
            sent.done()

    def answer(self) -> Fetched | None:
        """The call's result, as `get` gives it; once."""
        if self._answered:
            raise RuntimeError(f"the answer to {self.kind} {self.key} was already taken")
        self._answered = True
        self.settle()
        outcome = self._outcome

        def first() -> Fetched | None:
            if isinstance(outcome, (_Retryable, _Fatal)):
                raise outcome
            return outcome

        provider = self.provider
        return provider._call(self.kind, self.key, self._path, self._permit, self._started, first)


@contextmanager
def _connection_errors(timeout: tuple[float, float]) -> Iterator[None]:
    """A connection's failures, as an attempt that another may fix."""
    try:
        yield
    except NewConnectionError as exc:  # before ConnectTimeoutError, which urllib3 makes its base class
        raise _Retryable(f"connection failed ({_short(exc)})") from None
    except ConnectTimeoutError:
        raise _Retryable(f"connect timed out after {timeout[0]:.3g} s") from None
    except ReadTimeoutError:
        raise _Retryable(f"no answer within {timeout[1]:.3g} s") from None
    except (HTTPError, OSError) as exc:
        raise _Retryable(f"connection failed ({_short(exc)})") from None


class Exchange:
    """One GET on one connection: sent, then its answer's head awaited with `response()`, then the
    connection given back with `done()` (always called, whatever happened in between)."""

    timeout: tuple[float, float]  # (connect, read) seconds

    def response(self) -> urllib3.BaseHTTPResponse:
        raise NotImplementedError

    def done(self) -> None:
        raise NotImplementedError


class _Sent(Exchange):
    """A request already on the wire, on a connection of the transport's own."""

    def __init__(self, transport: Transport, conn: HTTPConnection, target: str, timeout: tuple[float, float]) -> None:
        self._transport = transport
        self._conn = conn
        self._target = target
        self.timeout = timeout
        self._response: urllib3.BaseHTTPResponse | None = None

    def response(self) -> urllib3.BaseHTTPResponse:
        if self._response is not None:
            return self._response
        conn = self._conn
        conn.timeout = self.timeout[1]  # getresponse() sets it on the socket before reading
        try:
            self._response = conn.getresponse()
        except TimeoutError as exc:  # as urllib3's pool names it
            message = f"Read timed out. (read timeout={self.timeout[1]})"
            raise ReadTimeoutError(None, self._target, message) from exc  # type: ignore[arg-type]
        except http.client.HTTPException as exc:  # a malformed or missing status line, as urllib3's pool wraps it
            raise ProtocolError("Connection aborted.", exc) from exc
        return self._response

    def done(self) -> None:
        # Kept alive only when its answer was read to the end and the server keeps it open: a connection
        # with unread bytes of an answer would hand them to the next request as its answer.
        response, conn = self._response, self._conn
        if response is not None and response.closed and not conn.is_closed:
            self._transport._give_back(conn)
            return
        if response is not None:
            response.close()
        conn.close()


class _Proxied(Exchange):
    """Through a proxy urllib3's pool sends the request (tunnel, proxy headers): it goes out when its
    answer is first awaited."""

    def __init__(self, transport: Transport, target: str, timeout: tuple[float, float]) -> None:
        self._transport = transport
        self._target = target
        self.timeout = timeout
        self._response: urllib3.BaseHTTPResponse | None = None

    def response(self) -> urllib3.BaseHTTPResponse:
        if self._response is None:
            self._response = self._transport._through_proxy(self._target, self.timeout)
        return self._response

    def done(self) -> None:
        # Kept alive when the body was read to the end, closed otherwise (as requests does).
        if self._response is not None:
            self._response.close()
            self._response.release_conn()


class Transport:
    """The connections to one provider, urllib3's, without requests on top.

    A provider is one host answering stateless GETs, so what requests adds on every call (a Session's
    merging of settings, environment and cookies, hooks and redirects; the adapter's Response, cookie
    jar and header copies) has nothing to do. Proxies (the environment's `HTTP(S)_PROXY`, `ALL_PROXY`
    and `NO_PROXY`, as requests reads them) and the CA bundle (`REQUESTS_CA_BUNDLE`, else certifi's)
    are resolved once, here. Profiled per call: a Session 1.5 ms of CPU against 0.87 ms for its
    adapter alone (one machine); the adapter 0.28 ms against 0.18 ms for urllib3's pool (a faster one).

    `send()` puts a request on the wire and returns at once, so one thread can have a report's first
    calls in flight together and read their answers after (`risk.reports.runner`): four calls from
    four threads cost twice the CPU, in handing the GIL over around every socket call (profiled). For
    that, a direct transport keeps its idle keep-alive connections itself (urllib3 connections, with
    their TLS; one found closed by the server is dropped before use, as urllib3's pool does). Through
    a proxy, urllib3's pool sends each request when its answer is awaited. Redirects are not followed
    and nothing is retried here: a provider answers where it is configured, and retries are the
    adapter's, within its budget.
    """

    def __init__(self, base_url: str, pool_size: int) -> None:
        parsed = urllib3.util.parse_url(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"a provider URL is http(s)://host[:port][/path], not {base_url!r}")
        self.prefix = (parsed.path or "").rstrip("/")
        self.headers = {
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": _USER_AGENT,
        }
        self.pool_size = pool_size
        tls: dict[str, Any] = {}
        if parsed.scheme == "https":
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or certifi.where()
            where = "ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"  # either, as requests takes it
            tls = {"cert_reqs": "CERT_REQUIRED", where: bundle}
        self._connect: Callable[..., HTTPConnection]
        if parsed.scheme == "https":
            self._connect = partial(HTTPSConnection, parsed.host, parsed.port or 443, **tls)
        else:
            self._connect = partial(HTTPConnection, parsed.host, parsed.port or 80)
        self._idle: list[HTTPConnection] = []
        self._closed = False
        self._lock = threading.Lock()
        self.proxy: urllib3.ProxyManager | None = None
        proxy = select_proxy(base_url, get_environ_proxies(base_url))  # as requests picks one
        if proxy:
            # A proxy URL's user and password become Proxy-Authorization, as requests sends them.
            user, password = get_auth_from_url(proxy)
            auth = urllib3.util.make_headers(proxy_basic_auth=f"{user}:{password}") if user else None
            options = {"num_pools": 1, "maxsize": pool_size, "retries": False, "headers": self.headers, **tls}
            self.proxy = urllib3.ProxyManager(proxy, proxy_headers=auth, **options)
            # Plain http is asked of the proxy with the full URL; https through a tunnel to the host.
            self._absolute = parsed.scheme == "http"
            self._origin = f"{parsed.scheme}://{parsed.netloc}"
            self._pool = self.proxy.connection_from_url(base_url)

    def send(self, path: str, timeout: tuple[float, float]) -> Exchange:
        """GET `path` (quoted, from the base URL's path on) without waiting for the answer: connection
        errors raise here (directly) or from `response()` (through a proxy)."""
        target = self.prefix + path
        if self.proxy is not None:
            return _Proxied(self, target, timeout)
        conn = self._connection(timeout[0])
        try:
            conn.request("GET", target, headers=self.headers, preload_content=False)
        except BaseException:
            conn.close()
            raise
        return _Sent(self, conn, target, timeout)

    def _connection(self, connect_timeout: float) -> HTTPConnection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect(timeout=connect_timeout)
            if conn.is_connected:  # not closed by the server while it sat idle (nothing to read on it)
                conn.timeout = connect_timeout
                return conn
            conn.close()

    def _give_back(self, conn: HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def _through_proxy(self, target: str, timeout: tuple[float, float]) -> urllib3.BaseHTTPResponse:
        assert self.proxy is not None
        options: dict[str, Any] = {
            "redirect": False, "retries": False, "preload_content": False,
            "timeout": urllib3.Timeout(connect=timeout[0], read=timeout[1]),
        }  # fmt: skip
        if self._absolute:
            return self.proxy.urlopen("GET", self._origin + target, **options)
        return self._pool.urlopen("GET", target, **options)

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._closed = self._idle, [], True
        for conn in idle:
            conn.close()
        if self.proxy is not None:
            self.proxy.clear()


def _drain(response: urllib3.BaseHTTPResponse, deadline: float) -> None:
    """Read a short error body so its connection goes back to the pool instead of being closed."""
    length = response.headers.get("Content-Length", "")
    if not length.isdigit() or int(length) > 65536 or time.monotonic() >= deadline:
        return
    try:
        response.read()
    except (HTTPError, OSError):
        return  # a failed drain only costs the connection


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _short(exc: BaseException) -> str:
    """An error's readable message. Errors may wrap others, as their reason or among their arguments
    after a message of their own (urllib3's ProxyError: "Unable to connect to proxy", then the error):
    the innermost error's message, after any such message."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException) and reason is not exc:
        return _short(reason)
    wrapped = next((a for a in exc.args if isinstance(a, BaseException)), None)
    if wrapped is None:
        return _clip(str(exc), 160)
    said = exc.args[0] if isinstance(exc.args[0], str) else ""
    return _clip(f"{said}: {_short(wrapped)}" if said else _short(wrapped), 160)


def _excerpt(body: bytes) -> str:
    text = body[:60].decode("utf-8", "replace").replace("\n", " ")
    return repr(text) + ("…" if len(body) > 60 else "")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
