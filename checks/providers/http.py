"""The HTTP adapter: calls a provider that speaks PROVIDERS.md.

A `requests.Session` per process: its `HTTPAdapter` pools connections and reconnects (urllib3's `Retry`,
for connection errors only); proxies and CA bundles come from the environment as requests reads them.
Every attempt has a connect and a read timeout, and this adapter's own loop retries timeouts, dropped
connections, 429 (honouring Retry-After) and 5xx with exponential backoff and jitter, all within one time
budget per call; a body still arriving when the budget runs out is cut off. 404 means "none on record";
a redirect (not followed), any other 4xx, or a body that is not the contract's shape, is a failure. A
failure after the retries raises `ProviderUnavailable`, never a finding. A breaker per provider fails
fast once the provider keeps failing.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import random
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from marshmallow import ValidationError
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError
from urllib3.util import Retry

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
    "listing_verification": "/listing-verifications/{key}",
    "contract_filing": "/contract-filings/{key}",
}
MAX_BODY_BYTES = 4 * 1024 * 1024
_HEADERS = {"Accept": "application/json", "User-Agent": "presign-provider-client/1"}
# Reconnects only: a read error or a status is this adapter's to retry, against its budget.
_RECONNECTS = Retry(total=None, connect=2, read=False, redirect=False, status=False, other=0, backoff_factor=0.05)


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
        parsed = urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"a provider URL is http(s)://host[:port][/path], not {base_url!r}")
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
        self._session: requests.Session | None = None
        self._session_pid: int | None = None

    # -- the session ------------------------------------------------------------------------------

    def _http(self) -> requests.Session:
        """The session, made on first use in this process; a forked child makes its own."""
        with self._lock:
            if self._session is None or self._session_pid != os.getpid():
                # One inherited across a fork shares its sockets with the parent: drop it unclosed.
                self._session = session(self.pool_size, self.base_url)
                self._session_pid = os.getpid()
            return self._session

    def close(self) -> None:
        with self._lock:
            if self._session is not None and self._session_pid == os.getpid():
                self._session.close()
            self._session = None
            self._session_pid = None

    # -- calls ------------------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> Fetched | None:
        """The validated record of `kind` under `key`, None on 404, or ProviderUnavailable."""
        try:
            permit = self.breaker.acquire()
        except CircuitOpen as exc:
            PROVIDER_ERRORS.labels(self.name, "circuit_open").inc()
            raise ProviderUnavailable(self.name, exc.reason) from None
        try:
            result = self._get_with_retries(kind, key, permit)
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

    def _get_with_retries(self, kind: str, key: str, permit: Permit) -> Fetched | None:
        path = request_path(kind, key)
        started = time.monotonic()
        deadline = started + self.budget_seconds
        # A half-open breaker's trial makes a single attempt: it only asks whether the provider is back.
        attempts_allowed = 1 if permit.trial else self.max_attempts
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(kind, key, path, deadline)
            except _Fatal as exc:
                PROVIDER_ERRORS.labels(self.name, error_kind(exc.reason)).inc()
                raise ProviderUnavailable(self.name, f"GET {path}: {exc.reason}") from None
            except _Retryable as exc:
                PROVIDER_ERRORS.labels(self.name, error_kind(exc.reason)).inc()
                reason = exc.reason
                retry_after = exc.retry_after
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

    def _attempt(self, kind: str, key: str, path: str, deadline: float) -> Fetched | None:
        """One GET: the validated record, None on 404, or _Retryable / _Fatal."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Retryable("no time left")
        timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
        try:
            # Streamed, so the body is read here against the budget; closing gives the connection back
            # only when it was read to the end (unread bytes would be the next request's answer).
            with self._http().get(self.base_url + path, timeout=timeout, stream=True, allow_redirects=False) as answer:
                body = self._receive(answer, deadline)
        except requests.ConnectTimeout:  # before ConnectionError, its base class
            raise _Retryable(f"connect timed out after {timeout[0]:.3g} s") from None
        except requests.ReadTimeout:
            raise _Retryable(f"no answer within {timeout[1]:.3g} s") from None
        except requests.RequestException as exc:
            raise _Retryable(f"connection failed ({_short(exc)})") from None
        if body is None:
            return None
        return Fetched(
            kind=kind,
            key=key,
            payload=self._parse(kind, key, body),
            source=self.base_url,
            reference=path,
            retrieved_at=self._clock.now(),
        )

    def _receive(self, answer: requests.Response, deadline: float) -> bytes | None:
        status = answer.status_code
        if status != 200:
            _drain(answer, deadline)
        if status == 404:
            return None
        if status == 429:
            raise _Retryable("HTTP 429 rate limited", _retry_after(answer.headers.get("Retry-After")))
        if status >= 500:
            raise _Retryable(f"HTTP {status}", _retry_after(answer.headers.get("Retry-After")))
        if 300 <= status < 400:
            raise _Fatal(f"HTTP {status} (redirects are not followed)")
        if status != 200:
            raise _Fatal(f"HTTP {status} (not retried)")
        return _read_body(answer, deadline, self.read_timeout)

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


def session(pool_size: int, base_url: str) -> requests.Session:
    """A session for one provider's host: pooled keep-alive connections, reconnects, no redirects."""
    made = requests.Session()
    # The environment's proxies and CA bundle for this host, read once as requests reads them: not per call.
    found = made.merge_environment_settings(base_url, {}, None, None, None)
    made.proxies, made.verify, made.trust_env = found["proxies"], found["verify"], False
    made.headers.update(_HEADERS)
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=_RECONNECTS)
    made.mount("http://", adapter)
    made.mount("https://", adapter)
    return made


def _read_body(answer: requests.Response, deadline: float, read_timeout: float) -> bytes:
    length = answer.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise _Fatal(f"answer larger than {MAX_BODY_BYTES} bytes")
    connection = answer.raw.connection
    # None when the server closes the connection after this answer: its reads keep the attempt's timeout.
    sock = connection.sock if connection is not None else None
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Retryable("answer still arriving when the budget ran out")
            if sock is not None:
                sock.settimeout(min(read_timeout, left))  # no wait for the next piece outlasts the budget
            # read1 returns what has arrived, so a body trickling in is seen against the clock.
            chunk = answer.raw.read1(65536, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise _Fatal(f"answer larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
    except (HTTPError, OSError) as exc:
        if time.monotonic() >= deadline:
            raise _Retryable("answer still arriving when the budget ran out") from None
        # A read timeout or a dropped connection in the middle of the body.
        raise _Retryable(f"answer cut off ({_short(exc)})") from None


def _drain(answer: requests.Response, deadline: float) -> None:
    """Read a short error body so its connection goes back to the pool instead of being closed."""
    length = answer.headers.get("Content-Length", "")
    if not length.isdigit() or int(length) > 65536 or time.monotonic() >= deadline:
        return
    try:
        answer.content  # noqa: B018 -- reading it is the point
    except requests.RequestException:
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
