"""RQ jobs that measure RQ itself: the floors a report job is compared with. Nothing Presign-specific
runs in them, so a report's figures minus these are what Presign adds."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from rq import get_current_job

_session: requests.Session | None = None
_session_pid: int | None = None
_lock = threading.Lock()


def noop() -> None:
    """RQ's own per-job cost."""


def hold(key: str, timeout: float) -> bool:
    """Keep this worker busy until `key` is pushed (or `timeout` passes): the queue fills up behind it."""
    job = get_current_job()
    assert job is not None
    return job.connection.blpop([key], timeout=timeout) is not None


def _http() -> requests.Session:
    # Made in the job's process on first use, never inherited across a fork (a forked session deadlocks).
    global _session, _session_pid
    with _lock:
        if _session is None or _session_pid != os.getpid():
            _session = requests.Session()
            _session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=16, max_retries=0))
            _session_pid = os.getpid()
        return _session


def concurrent_calls(base_url: str, paths: list[str], timeout: float = 10.0) -> int:
    """The same concurrent provider calls a report makes, and nothing else: RQ's floor for a report."""
    session = _http()

    def get(path: str) -> int:
        response = session.get(base_url + path, timeout=timeout)
        response.content  # noqa: B018 - read the body, as an adapter does
        return response.status_code

    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        return sum(1 for status in pool.map(get, paths) if status < 500)
