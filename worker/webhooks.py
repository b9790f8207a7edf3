"""Webhook delivery on the `webhooks` queue.

One job makes one attempt: it claims the event in the database (a stale or duplicate job finds nothing
to claim), POSTs the stored body signed with the deal creator's secret, records the attempt and, on
failure, plans the next one in the event row and schedules a job for it. Each attempt has its own job
id, `webhook-<event id>-<attempt number>`, derived from the row, so the sweep (`requeue_due_webhooks`,
run by every worker's Sweeper) can tell whether the job for a due event is still alive in Redis and
enqueue it again when Redis lost it.

The POST goes through urllib3 to an address resolved and checked just before (urls.delivery_target),
not through a client that resolves the name again: a DNS answer that changes between the check and the
connection cannot point a delivery at a private address. Redirects are never followed and no proxy from
the environment is used.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import certifi
import urllib3
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.util.ssl_match_hostname import CertificateError

from risk.clock import Clock
from risk.ops.metrics import WEBHOOK_DELIVERIES
from risk.queues import WEBHOOK_JOB_TIMEOUT, enqueue_webhook, webhook_job_id
from risk.runtime import Runtime, current
from risk.webhooks import operations, signing, urls

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0  # for each wait on the receiver's bytes
TOTAL_TIMEOUT = 30.0  # for the request and the answer, whatever trickles in
MAX_ADDRESSES = 3  # addresses of one host tried in turn when a connection cannot be made
SNIPPET_BYTES = 512
USER_AGENT = "Presign-Webhooks/1"
# What a receiver can make a request fail with (http.client's parse errors are not OSErrors).
_RECEIVER_ERRORS = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)


# -- the job --------------------------------------------------------------------------------------


def deliver_webhook(event_id: str) -> str:
    """RQ job: one delivery attempt of an event; returns the event's status after it (or `skipped`)."""
    return deliver(current(), event_id)


def deliver(rt: Runtime, event_id: str) -> str:
    delivery = operations.claim(rt.sessions, rt.clock, event_id, rt.secret_box)
    if delivery is None:
        return "skipped"
    outcome = send(delivery, allow_private=rt.settings.webhook_allow_private, clock=rt.clock)
    recorded = operations.record_attempt(rt.sessions, rt.clock, delivery, outcome)
    if recorded is None:
        return "skipped"
    WEBHOOK_DELIVERIES.labels(recorded.status).inc()
    log.info(
        "webhook %s attempt %d: %s -> %s",
        event_id,
        delivery.number,
        outcome.status_code or outcome.error,
        recorded.status,
    )
    if recorded.status == "pending" and recorded.next_attempt_at is not None:
        delay = max(recorded.next_attempt_at - rt.clock.now(), timedelta(0))
        enqueue_webhook(rt, event_id, recorded.attempt_count + 1, delay)
    return recorded.status


def send(delivery: operations.Delivery, *, allow_private: bool, clock: Clock) -> operations.Outcome:
    """POST the event's body once and say what happened; never raises for the receiver's failures."""
    attempted_at = clock.now()
    started = time.monotonic()
    answer = _attempt(delivery, allow_private, int(attempted_at.timestamp()))
    return operations.Outcome(
        attempted_at=attempted_at,
        duration_ms=int((time.monotonic() - started) * 1000),
        status_code=answer.status_code,
        error=answer.error,
        snippet=answer.snippet,
        permanent=answer.permanent,
        retry_after=answer.retry_after,
    )


@dataclass(frozen=True)
class _Answer:
    status_code: int | None = None
    error: str | None = None
    snippet: str | None = None
    permanent: bool = False  # trying again cannot help
    retry_after: timedelta | None = None


def _attempt(delivery: operations.Delivery, allow_private: bool, timestamp: int) -> _Answer:
    def failed(error: str, *, permanent: bool = False) -> _Answer:
        return _Answer(error=error, permanent=permanent)

    if delivery.disabled:
        return failed(operations.DISABLED_ERROR, permanent=True)
    if not delivery.secrets:
        return failed("the deal's creator key no longer exists; nothing can sign this event", permanent=True)
    if delivery.url is None:
        return failed("the deal no longer has a webhook URL", permanent=True)
    try:
        target = urls.delivery_target(delivery.url, allow_private)
    except urls.RefusedURL as exc:
        return failed(str(exc), permanent=True)
    except OSError as exc:
        return failed(f"DNS lookup failed: {exc}")
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        **signing.headers([(s.value, s.standard) for s in delivery.secrets], delivery.event_id, timestamp,
                          delivery.body),
    }  # fmt: skip
    error = "no address to connect to"
    for address in target.addresses[:MAX_ADDRESSES]:
        try:
            status, snippet, retry_after = _post(target, address, delivery.body, headers)
        except urllib3.exceptions.NewConnectionError as exc:
            error = f"connection to {address} failed: {_reason(exc)}"
            continue  # another address of the host may answer
        except urllib3.exceptions.ConnectTimeoutError:
            error = f"connection to {address} timed out after {CONNECT_TIMEOUT:g} s"
            continue
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            return failed(f"no answer within {READ_TIMEOUT:g} s")
        except _TooSlow:
            return failed(f"no complete answer within {TOTAL_TIMEOUT:g} s")
        except (urllib3.exceptions.SSLError, ssl.SSLError, CertificateError) as exc:
            return failed(f"TLS error: {exc}")
        except _RECEIVER_ERRORS as exc:
            return failed(f"{type(exc).__name__}: {exc}")
        error_text = "redirects are not followed" if 300 <= status < 400 else None
        wait = parse_retry_after(retry_after, attempted_at=timestamp) if status in (429, 503) else None
        return _Answer(status_code=status, error=error_text, snippet=snippet, retry_after=wait)
    return failed(error)


def _reason(exc: urllib3.exceptions.NewConnectionError) -> str:
    # urllib3 prefixes the connection's repr; the OS reason after it is what a reader needs.
    text = str(exc)
    return text.split(": ", 1)[1] if ": " in text else text


class _TooSlow(Exception):
    """The receiver did not finish answering within TOTAL_TIMEOUT."""


def parse_retry_after(value: str | None, *, attempted_at: int) -> timedelta | None:
    """A Retry-After header (seconds, or an HTTP date) as a wait; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value[:9]))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(timedelta(seconds=when.timestamp() - attempted_at), timedelta(0))


def _post(
    target: urls.Target, address: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str | None, str | None]:
    """One POST to `address`, speaking to it as `target.hostname` (TLS name checked against that name).

    A watchdog cuts the connection after TOTAL_TIMEOUT: the read timeout bounds each wait for bytes, not
    an answer that trickles in, and an attempt must end (and be recorded) well inside the job's timeout.
    """
    connection: HTTPConnection
    if target.scheme == "https":
        connection = HTTPSConnection(
            address,
            target.port,
            timeout=CONNECT_TIMEOUT,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            assert_hostname=target.hostname,
            server_hostname=target.hostname,
        )
    else:
        connection = HTTPConnection(address, target.port, timeout=CONNECT_TIMEOUT)
    cut = threading.Event()

    def watchdog() -> None:
        cut.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                # The plain socket's shutdown, also under TLS: it wakes the blocked read without
                # touching the TLS object that thread is using.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    timer = threading.Timer(TOTAL_TIMEOUT, watchdog)
    timer.daemon = True
    timer.start()
    try:
        connection.connect()
        connection.timeout = READ_TIMEOUT
        connection.request("POST", target.path, body=body, headers=headers, preload_content=False)
        response = connection.getresponse()
        try:
            raw = response.read(SNIPPET_BYTES, decode_content=False)
        except _RECEIVER_ERRORS:
            raw = b""  # the status is the answer; an unreadable body does not change it
        status = response.status
        retry_after = response.headers.get("Retry-After")
    except (*_RECEIVER_ERRORS, CertificateError):
        if cut.is_set():
            raise _TooSlow() from None
        raise
    finally:
        timer.cancel()
        connection.close()
    if cut.is_set():  # a cut answer may parse as a short one: it is not an answer
        raise _TooSlow()
    snippet = raw.decode("utf-8", errors="replace").strip() or None
    return status, snippet, retry_after


def requeue_due_webhooks(rt: Runtime, limit: int = 500) -> int:
    """Enqueue every due event whose job is not queued or running (Redis flushed, a job lost, a worker
    killed, or a retry RQ holds for later than the database says). Returns how many were enqueued. Safe
    to run anywhere, any time: an extra job finds nothing to claim."""
    redis = rt.redis()
    # A job claims its event as soon as it starts: one still "started" whose claim lapsed, or that never
    # claimed long after the event fell due, belongs to a worker that died (killed hard, RQ never
    # marked it failed). It is not alive, whatever Redis says.
    unclaimed_too_long = rt.clock.now() - timedelta(seconds=WEBHOOK_JOB_TIMEOUT + 30)
    count = 0
    for due in operations.due_events(rt.sessions, rt.clock, limit):
        attempt = due.attempt_count + 1
        try:
            job: Job | None = Job.fetch(webhook_job_id(due.event_id, attempt), connection=redis)
        except NoSuchJobError:
            job = None
        status = job.get_status(refresh=False) if job else None
        if status == JobStatus.QUEUED:
            continue
        if status == JobStatus.STARTED and not due.lapsed_claim and due.due_at > unclaimed_too_long:
            continue
        if job is not None:
            job.delete()  # dead, finished early, failed, or scheduled later than the database says
        if enqueue_webhook(rt, due.event_id, attempt):
            count += 1
            if status not in (JobStatus.SCHEDULED, JobStatus.FINISHED):  # those are only early or late
                log.warning("webhook %s attempt %d: job %s; enqueued again", due.event_id, attempt, status or "missing")
    return count
