"""Logging an outage without flooding the log: once when it starts, then every 30 seconds, and once
when it ends."""

from __future__ import annotations

import logging
import time

REPEAT_EVERY = 30.0


class OutageLog:
    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.since: float | None = None
        self._last = 0.0

    def failed(self, exc: BaseException, retry_in: float) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since, self._last = now, now
            self.log.warning("%s failed (%s); retrying in %.1fs", self.what, exc, retry_in)
        elif now - self._last >= REPEAT_EVERY:
            self._last = now
            self.log.warning("%s still failing after %.0fs (%s)", self.what, now - self.since, exc)

    def succeeded(self) -> None:
        if self.since is not None:
            self.log.warning("%s works again after %.0fs", self.what, time.monotonic() - self.since)
            self.since = None
