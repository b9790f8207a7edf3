"""The one source of time. Tests inject a `FrozenClock` and move it instead of sleeping."""

from __future__ import annotations

import threading
from datetime import MAXYEAR, UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    def now(self) -> datetime:  # pragma: no cover - interface
        raise NotImplementedError


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(UTC)


class FrozenClock(Clock):
    """A clock that stands still until moved; safe to share between threads."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FrozenClock needs an aware datetime")
        self._at = at.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._at += delta
            return self._at

    def set(self, at: datetime) -> None:
        with self._lock:
            self._at = at.astimezone(UTC)


def as_utc(value: datetime) -> datetime:
    """Treat a naive datetime (as SQLite returns them) as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def shanghai_date(value: datetime) -> date:
    """The Asia/Shanghai calendar date of an instant (commitment versions cut over on local dates).

    Total: an instant whose local date lies past `date`'s range (the last hours of 9999) is on its last day."""
    moment = as_utc(value)
    try:
        return moment.astimezone(SHANGHAI).date()
    except OverflowError:
        return date.max if moment.year == MAXYEAR else date.min


def isoformat(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).isoformat()
