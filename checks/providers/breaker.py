"""A circuit breaker for one provider, shared by every thread of a process.

Closed: calls go through; `threshold` consecutive failed calls open it. Open: calls fail fast until
`cooldown` has passed. Half-open: one trial call goes through while the others still fail fast;
its success closes the breaker, its failure opens it for another cooldown.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from risk.clock import Clock

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class Permit:
    """Leave to make one call; a trial is the single call let through a half-open breaker."""

    trial: bool


class CircuitOpen(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Breaker:
    def __init__(self, clock: Clock, *, threshold: int = 5, cooldown: float = 30.0) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self._clock = clock
        self.threshold = threshold
        self.cooldown = timedelta(seconds=cooldown)
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at: datetime | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._state == OPEN and self._cooled_down():
                return HALF_OPEN
            return self._state

    def acquire(self) -> Permit:
        """Leave for one call, or CircuitOpen when the breaker is open (or a trial is already running)."""
        with self._lock:
            if self._state == CLOSED:
                return Permit(trial=False)
            if self._state == OPEN and self._cooled_down():
                self._state = HALF_OPEN
            if self._state == HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return Permit(trial=True)
            raise CircuitOpen(self._open_reason())

    def check(self) -> None:
        """Raise CircuitOpen if the breaker opened meanwhile (a retrying call stops hammering then)."""
        with self._lock:
            if self._state == OPEN:
                raise CircuitOpen(self._open_reason())

    def success(self, permit: Permit) -> None:
        with self._lock:
            self._failures = 0
            self._state = CLOSED
            self._opened_at = None
            if permit.trial:
                self._trial_running = False

    def failure(self, permit: Permit) -> None:
        with self._lock:
            if permit.trial:
                self._trial_running = False
                self._open()
                return
            self._failures += 1
            if self._state == CLOSED and self._failures >= self.threshold:
                self._open()

    def _open(self) -> None:
        self._state = OPEN
        self._opened_at = self._clock.now()

    def _cooled_down(self) -> bool:
        return self._opened_at is not None and self._clock.now() - self._opened_at >= self.cooldown

    def _open_reason(self) -> str:
        if self._state == HALF_OPEN:
            return "circuit open (a trial call is in flight)"
        assert self._opened_at is not None
        left = (self._opened_at + self.cooldown - self._clock.now()).total_seconds()
        return f"circuit open after {self.threshold} consecutive failures; next try in {max(left, 0):.0f} s"
