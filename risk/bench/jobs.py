"""RQ jobs that measure RQ itself: the floors a report job is compared with. Nothing of Presign's runs
in them but the HTTP session its provider adapter calls through, so a report's figures minus these
are what Presign adds."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from rq import get_current_job

from checks.providers.http import session

_sessions: dict[str, requests.Session] = {}  # by base URL: a session pools its provider's connections
_pool: ThreadPoolExecutor | None = None
_pid: int | None = None
_lock = threading.Lock()


def noop() -> None:
    """RQ's own per-job cost."""


def hold(key: str, timeout: float) -> bool:
    """Keep this worker busy until `key` is pushed (or `timeout` passes): the queue fills up behind it."""
    job = get_current_job()
    assert job is not None
    return job.connection.blpop([key], timeout=timeout) is not None


def _http(base_url: str) -> tuple[requests.Session, ThreadPoolExecutor]:
    # Made in the job's process on first use, never inherited across a fork (a forked one deadlocks).
    global _pool, _pid
    with _lock:
        if _pid != os.getpid():
            _sessions.clear()
            _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="floor")
            _pid = os.getpid()
        if base_url not in _sessions:
            _sessions[base_url] = session(pool_size=16, base_url=base_url)
        assert _pool is not None
        return _sessions[base_url], _pool


def concurrent_calls(base_url: str, paths: list[str], timeout: float = 10.0) -> int:
    """The same concurrent provider calls a report makes, from a thread pool as a report's checks make
    them, through the same session as the HTTP adapter, and nothing else: RQ's floor for a report."""
    http, pool = _http(base_url)
    base = base_url.rstrip("/")

    def call(path: str) -> bool:
        try:
            return http.get(base + path, timeout=(timeout, timeout), allow_redirects=False).status_code < 500
        except requests.RequestException:
            return False  # counted as not answered

    return sum(pool.map(call, paths))
