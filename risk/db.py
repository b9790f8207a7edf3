"""Engine, sessions and the column types shared by every model."""

from __future__ import annotations

import base64
import json
import os
import secrets
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

# base32's alphabet (RFC 4648) to Crockford's, lower case: ids read without I, L, O or U.
_TO_CROCKFORD_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789abcdefghjkmnpqrstvwxyz")
_IMMEDIATE = "presign_sqlite_immediate"
EACH_STATEMENT = "presign_sqlite_each_statement"  # an execution option: no BEGIN, see `_sqlite_begin`


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
    # One read of the CSPRNG and one C encoder call, since ids are made on hot paths; the 130 bits
    # are shifted up to fill 17 bytes, which base32 writes as 26 characters and a padding tail.
    value = (int(time.time() * 1000) << 80) | int.from_bytes(secrets.token_bytes(10))
    return f"{prefix}_" + base64.b32encode((value << 6).to_bytes(17)).translate(_TO_CROCKFORD_LOWER)[:26].decode()


class JsonText(str):
    """A JSON document already serialised: a JSON column stores this text as it is, so that what was
    sent and what is recorded are the same bytes (the gate's answers), serialised once."""


def _json_serialise(value: Any) -> str:
    return value if isinstance(value, JsonText) else json.dumps(value)


def make_engine(url: str, **kwargs: Any) -> Engine:
    kwargs.setdefault("json_serializer", _json_serialise)
    if url.startswith("sqlite"):
        _private_file(url)
        # Pooled (QueuePool), since closing the last connection to a WAL database checkpoints it.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "checkout", _closed_while_idle)
    return engine


def _closed_while_idle(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """On checkout from the pool, replace a connection the server closed while it sat idle (a restart, a
    failover, pg_terminate_backend). The server's goodbye waits unread on the socket, so one poll of it
    tells, where pre-ping would add a round trip to every checkout (a gate answer's read and record are two)."""
    if getattr(dbapi_connection, "closed", False):
        raise sa_exc.DisconnectionError("closed")
    poller = select.poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN | select.POLLPRI)
    if poller.poll(0):  # an idle connection is sent nothing but a goodbye
        raise sa_exc.DisconnectionError("closed by the server while idle in the pool")


def _private_file(url: str) -> None:
    """Create the SQLite file readable by its owner only (SQLite gives its WAL and shared-memory files the
    same mode); an existing file is left as it is."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError:
        return  # SQLite reports a folder that cannot hold the file when it opens it


def sqlite_pragmas(dbapi_connection: Any, _record: Any = None) -> None:
    """The settings every SQLite connection of Presign's gets (an engine's "connect" hook; the bench's
    plain connections take them too)."""
    # Several processes share one file: WAL lets readers run beside the writer, the busy timeout
    # makes writers wait for each other instead of failing, and foreign keys are off by default.
    dbapi_connection.isolation_level = None  # let the "begin" hook issue BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Small per-connection page caches, since a worker holds one connection per check thread and the
    # OS already caches the file's pages for all of them.
    cursor.execute("PRAGMA cache_size=-256")  # KiB
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # In WAL mode SQLite refuses at once, without waiting on the busy timeout, to turn a read
    # transaction into a write one after another connection wrote. A unit of work that reads and then
    # writes therefore starts with BEGIN IMMEDIATE (see `write_session`) and queues for the write lock
    # instead; read-only work keeps a plain BEGIN so that readers never wait for writers.
    options = conn.get_execution_options()
    if options.get(EACH_STATEMENT):
        return  # the driver is in autocommit mode (`sqlite_pragmas`): each statement commits on its own
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_IMMEDIATE) else "BEGIN")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, future=True)


def begin_write(session: Session) -> Session:
    """Mark a fresh session as one that will write: on SQLite it takes the write lock at BEGIN.

    Call it before the session's first statement; elsewhere (PostgreSQL) it changes nothing.
    """
    session.connection(execution_options={_IMMEDIATE: True})
    return session


@contextmanager
def each_statement(engine: Engine) -> Iterator[Connection]:
    """A pooled connection on which each statement commits on its own, with no transaction around them:
    for one-statement reads, and for the gate's read-and-record (committed before its answer is sent)."""
    on_sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        yield connection.execution_options(**{EACH_STATEMENT: True} if on_sqlite else {"isolation_level": "AUTOCOMMIT"})


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
