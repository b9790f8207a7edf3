"""Engine, sessions and the column types shared by every model."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_IMMEDIATE = "presign_sqlite_immediate"


class Base(DeclarativeBase):
    pass


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; stored as UTC on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_id(prefix: str) -> str:
    """A sortable, unguessable id: `lst_` + 10 chars of milliseconds + 16 random chars (Crockford base32)."""
    ms = int(time.time() * 1000)
    stamp = "".join(_CROCKFORD[(ms >> shift) & 31] for shift in range(45, -1, -5))
    rand = "".join(secrets.choice(_CROCKFORD) for _ in range(16))
    return f"{prefix}_{stamp}{rand}".lower()


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # Connections are pooled (SQLAlchemy's default QueuePool for a file): a fresh connection per unit of
        # work ran the PRAGMAs below every time, and closing the last connection to a WAL database
        # checkpoints and deletes the WAL file — together most of a report job's time in a profile.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Several processes share one file: WAL lets readers run beside the writer, the busy timeout
    # makes writers wait for each other instead of failing, and foreign keys are off by default.
    dbapi_connection.isolation_level = None  # let the "begin" hook issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # In WAL mode SQLite refuses at once, without waiting on the busy timeout, to turn a read
    # transaction into a write one after another connection wrote. A unit of work that reads and then
    # writes therefore starts with BEGIN IMMEDIATE (see `write_session`) and queues for the write lock
    # instead; read-only work keeps a plain BEGIN so that readers never wait for writers.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_IMMEDIATE) else "BEGIN")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, future=True)


def begin_write(session: Session) -> Session:
    """Mark a fresh session as one that will write: on SQLite it takes the write lock at BEGIN.

    Call it before the session's first statement; elsewhere (PostgreSQL) it changes nothing.
    """
    session.connection(execution_options={_IMMEDIATE: True})
    return session


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One short unit of work that writes: commit on success, roll back on any error."""
    session = begin_write(factory())
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_after_fork(engine: Engine) -> None:
    """A forked child must not reuse the parent's pooled connections."""
    engine.dispose(close=False)
