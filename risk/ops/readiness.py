"""Whether this process can serve: the database answers within a second; Redis's state is reported
but never makes the process unready (the API serves without Redis: reports wait in the database)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from risk.redis_conn import redis_url
from risk.settings import Settings

DATABASE_TIMEOUT = 1.0
REDIS_TIMEOUT = 0.5


@dataclass
class Probe:
    """Connections of its own, fresh for each look: a pooled connection to a database that restarted
    would answer for the old one."""

    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)
    _redis: Redis | None = field(default=None, repr=False)

    def engine(self) -> Engine:
        if self._engine is None:
            connect_args: dict[str, Any] = {}
            if self.settings.database_url.startswith("postgresql"):
                # libpq's shortest connect timeout is 2 s; the caller stops waiting after 1 s anyway.
                connect_args = {"connect_timeout": 2, "options": f"-c statement_timeout={int(DATABASE_TIMEOUT * 1000)}"}
            self._engine = create_engine(self.settings.database_url, poolclass=NullPool, connect_args=connect_args)
        return self._engine

    def database_error(self) -> str | None:
        """None when `SELECT 1` answers within DATABASE_TIMEOUT, else what went wrong."""
        outcome: list[str | None] = []

        def ask() -> None:
            try:
                with self.engine().connect() as conn:
                    conn.execute(text("SELECT 1"))
            except Exception as exc:  # any failure to answer is the answer: not ready
                outcome.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".strip(": "))
            else:
                outcome.append(None)

        # A thread, so that a database that does not answer at all costs the caller one second; the
        # thread itself ends with the driver's connect or statement timeout.
        thread = threading.Thread(target=ask, name="presign-readiness", daemon=True)
        thread.start()
        thread.join(DATABASE_TIMEOUT)
        if not outcome:
            return f"no answer within {DATABASE_TIMEOUT:g} s"
        return outcome[0]

    def redis_up(self) -> bool:
        if self._redis is None:
            self._redis = Redis.from_url(
                redis_url(self.settings), socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
            )
        try:
            return bool(self._redis.ping())
        except RedisError:
            return False

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self._redis is not None:
            self._redis.close()
