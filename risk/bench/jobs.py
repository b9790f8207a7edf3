"""RQ jobs that measure RQ itself: the floors a report job is compared with. Nothing of Presign's runs
in them but the HTTP transport its provider adapter calls through, so a report's figures minus these
are what Presign adds."""

from __future__ import annotations

import os
import threading

from rq import get_current_job
from urllib3.exceptions import HTTPError

from checks.providers.http import Transport

_transports: dict[str, Transport] = {}  # by base URL: a transport is bound to its provider's host
_transports_pid: int | None = None
_lock = threading.Lock()


def noop() -> None:
    """RQ's own per-job cost."""


def hold(key: str, timeout: float) -> bool:
    """Keep this worker busy until `key` is pushed (or `timeout` passes): the queue fills up behind it."""
    job = get_current_job()
    assert job is not None
    return job.connection.blpop([key], timeout=timeout) is not None


def _http(base_url: str) -> Transport:
    # Made in the job's process on first use, never inherited across a fork (a forked one deadlocks).
    global _transports_pid
    with _lock:
        if _transports_pid != os.getpid():
            _transports.clear()
            _transports_pid = os.getpid()
        transport = _transports.get(base_url)
        if transport is None:
            transport = _transports[base_url] = Transport(base_url, pool_size=16)
        return transport


def concurrent_calls(base_url: str, paths: list[str], timeout: float = 10.0) -> int:
    """The same concurrent provider calls a report makes, made as a report makes them (every request
    sent, then every answer read, from the job's thread) through the same transport as the HTTP
    adapter, and nothing else: RQ's floor for a report."""
    transport = _http(base_url)
    sent = [transport.send(path, (timeout, timeout)) for path in paths]
    ok = 0
    for exchange in sent:
        try:
            response = exchange.response()
            response.read()  # the body, as the adapter reads it
            ok += response.status < 500
        except (HTTPError, OSError):
            pass  # counted as not answered
        finally:
            exchange.done()
    return ok
