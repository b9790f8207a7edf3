"""The heartbeat of the reports this worker process is running, written to the database.

The sweeper tells a report abandoned by a killed worker (no heartbeat for `report_heartbeat_timeout`)
from one a live worker is still running, whatever Redis says or lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import update

from risk.db import transaction
from risk.reports.models import Report
from risk.runtime import Runtime

log = logging.getLogger(__name__)
_running: set[str] = set()
_lock = threading.Lock()


@contextmanager
def running(report_id: str) -> Iterator[None]:
    """Count `report_id` as run by this process while the block runs."""
    with _lock:
        _running.add(report_id)
    try:
        yield
    finally:
        with _lock:
            _running.discard(report_id)


def beat(rt: Runtime) -> int:
    """Write the heartbeat of every report this process runs; returns how many rows it touched."""
    with _lock:
        ids = sorted(_running)
    if not ids:
        return 0
    with transaction(rt.sessions) as session:
        result = session.execute(
            update(Report)
            .where(Report.id.in_(ids), Report.status == "running")
            .values(heartbeat_at=rt.clock.now())
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


class Heartbeat:
    """A daemon thread that calls `beat` every `report_heartbeat_interval` seconds. It dies with its
    process, which is the point: a killed worker's reports stop beating."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="presign-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        interval = self.rt.settings.report_heartbeat_interval
        failing_since: float | None = None
        while not self._stop.wait(interval):
            try:
                beat(self.rt)
            except Exception as exc:  # a database outage: beat again next tick; the sweep waits for it too
                if failing_since is None:
                    failing_since = time.monotonic()
                    log.warning("report heartbeat not written (%s); retrying every %.0fs", exc, interval)
            else:
                if failing_since is not None:
                    log.info("report heartbeat written again after %.0fs", time.monotonic() - failing_since)
                failing_since = None
