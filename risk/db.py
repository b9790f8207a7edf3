"""Engine, sessions and the column types shared by every model."""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
import time
from collections import namedtuple
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event, literal_column, select
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

# base32's alphabet (RFC 4648) to Crockford's, lower case: ids read without I, L, O or U.
_TO_CROCKFORD_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789abcdefghjkmnpqrstvwxyz")
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
    # 10 chars of milliseconds then 80 random bits as 16 chars, from one read of the system's CSPRNG
    # (16 `secrets.choice` calls cost ~30 µs, a measurable share of a gate call). The 130 bits, moved
    # up to fill 17 bytes, go through base64's C encoder: 26 characters, one C call (a character at a
    # time in Python was about 1 % of a gate answer's instructions, callgrind).
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
        # Connections are pooled (SQLAlchemy's default QueuePool for a file): a fresh connection per unit of
        # work ran the PRAGMAs below every time, and closing the last connection to a WAL database
        # checkpoints and deletes the WAL file — together most of a report job's time in a profile.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


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
    # Each pooled connection keeps a page cache of its own, and a worker holds about ten (one per check
    # thread): at SQLite's default 2 MB each, a worker's RSS grew ~3 MB over a 1,000-report run as the
    # caches filled (`presign bench`, memory). The OS keeps the file's pages cached for all of them.
    cursor.execute("PRAGMA cache_size=-256")  # KiB
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


class Prepared:
    """A Core statement compiled once per dialect and run straight on a DBAPI connection.

    For the statements on the hottest paths (the API key lookup, the gate's reads and its record, a
    report's lookups): there SQLAlchemy's execution machinery cost ~50 µs a statement and a Session's
    transactions ~300 µs, several times the work itself (profiled under `presign bench`). Values still
    pass through the columns' own types (JSON, `UTCDateTime`, numerics) both ways, by the dialect's
    processors.

        BY_ID = Prepared(select(t.c.id, t.c.company).where(t.c.id == bindparam("id")))
        with reading(engine) as db:
            row = db.first(BY_ID, {"id": listing_id})  # a namedtuple, or None

    The same statements run inside a Session's transaction through `InSession`, where a unit of work
    must read and write atomically. Statements with expanding IN lists are refused (SQLAlchemy compiles
    those per call).
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _Compiled(self.statement, dialect)
        return compiled


_PING = Prepared(select(literal_column("1").label("alive")))


class _Compiled:
    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("Prepared cannot run statements with expanding parameters")
        self.sql = compiled.string
        self.compiled = compiled
        self.positional = dialect.positional
        self.order = list(compiled.positiontup or []) if dialect.positional else []
        self.binds = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect) for bind, name in compiled.bind_names.items()
        }
        self.dialect = dialect
        self.columns = list(getattr(statement, "exported_columns", []))  # a SELECT's, or what DML returns
        self.results: list[Any] | None = None  # made from the first result's column types (the driver's)
        self.row = namedtuple("Row", [c.key for c in self.columns]) if self.columns else None  # type: ignore[misc]

    def _params(self, params: dict[str, Any]) -> Any:
        values = self.compiled.construct_params(params)
        for name, process in self.binds.items():
            if process is not None and name in values:
                values[name] = process(values[name])
        return [values[name] for name in self.order] if self.positional else values

    def execute(self, raw: Any, params: dict[str, Any]) -> Any:
        cursor = raw.cursor()
        cursor.execute(self.sql, self._params(params))
        return cursor

    def _processors(self, cursor: Any) -> list[Any]:
        if self.results is None:
            # As SQLAlchemy does: a column's processor may depend on the type the driver reports for it
            # (PostgreSQL's numerics do).
            types = [d[1] for d in cursor.description]
            self.results = [
                c.type.dialect_impl(self.dialect).result_processor(self.dialect, coltype)
                for c, coltype in zip(self.columns, types, strict=True)
            ]
        return self.results

    def _rows(self, cursor: Any, rows: list[Any]) -> list[Any]:
        assert self.row is not None
        processors = self._processors(cursor)
        return [
            self.row(*(value if p is None else p(value) for p, value in zip(processors, row, strict=True)))
            for row in rows
        ]

    def first(self, raw: Any, params: dict[str, Any]) -> Any:
        cursor = self.execute(raw, params)
        try:
            row = cursor.fetchone()
            return None if row is None else self._rows(cursor, [row])[0]
        finally:
            cursor.close()

    def all(self, raw: Any, params: dict[str, Any]) -> list[Any]:
        cursor = self.execute(raw, params)
        try:
            return self._rows(cursor, cursor.fetchall())
        finally:
            cursor.close()


class WriterQueue:
    """An exclusive flock beside a SQLite file, taken around a `Raw.write` so that this host's
    single-statement writers queue in the kernel and wake the moment the writer before them is done.

    SQLite's own busy handler sleeps 1, 2, 5 … ms between tries: with two API processes recording gate
    answers, those sleeps, not the writes, bounded the gate (`presign bench`: 1,870 req/s without the
    record, 1,150 with it). SQLite's locking still decides; this only orders our own writers. The lock
    file is opened per process (a forked child must not share its parent's lock)."""

    _open: dict[tuple[int, str], int] = {}

    @classmethod
    @contextmanager
    def held(cls, database: str) -> Iterator[None]:
        import fcntl

        key = (os.getpid(), database)
        fd = cls._open.get(key)
        if fd is None:
            fd = cls._open[key] = os.open(database + ".writers", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def _dbapi_errors(prepared: Prepared, dialect: Dialect, connection: Any, *, invalidate: bool) -> Iterator[None]:
    """DBAPI errors as SQLAlchemy's (the runner catches IntegrityError, the API answers the rest with
    503); with `invalidate`, a lost connection is dropped from the pool."""
    dbapi = dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as error:
        lost = invalidate and dialect.is_disconnect(error, connection, None)
        if lost:
            connection.invalidate(error)
        raise DBAPIError.instance(
            str(prepared.statement), None, error, dbapi.Error, connection_invalidated=lost
        ) from error


class Raw:
    """`Prepared` statements on a pooled DBAPI connection, outside any Session.

    Reads see the latest committed data, statement by statement (READ COMMITTED, as on PostgreSQL);
    `write` is one statement in a transaction of its own. The connection is in autocommit mode (on
    SQLite see `sqlite_pragmas`; on PostgreSQL `raw_engine`), so a read is one round trip, with no
    BEGIN and no ROLLBACK around it. On SQLite a write queues behind this host's other `Raw` writers
    (`WriterQueue`), then waits on the busy timeout like any other writer.

    A pooled connection is not pinged when it is checked out: if the server dropped it while it sat in
    the pool (a restart, a failover), the first read on it fails as a lost connection and is run again,
    once, on a fresh one; reads are safe to repeat. A write is never repeated, so a write that would be
    the first statement on a connection is preceded by a ping."""

    def __init__(self, connection: Any, dialect: Dialect, database: str | None = None,
                 engine: Engine | None = None) -> None:  # fmt: skip
        self.connection = connection
        self.dialect = dialect
        # The database file, for the writers' queue (an in-memory database has no file and one connection).
        self.database = database if dialect.name == "sqlite" and database not in (None, "", ":memory:") else None
        # Where to get a fresh connection after a lost one; None: the connection is known to be alive.
        self._engine = engine if dialect.name != "sqlite" else None

    def _errors(self, prepared: Prepared) -> Any:
        return _dbapi_errors(prepared, self.dialect, self.connection, invalidate=True)

    def _read(self, prepared: Prepared, params: dict[str, Any], run: Any) -> Any:
        try:
            with self._errors(prepared):
                result = run(self.connection, params)
        except DBAPIError as error:
            engine = self._engine
            if engine is None or not error.connection_invalidated:
                raise
            # The pooled connection was dead on arrival: the read ran nowhere, so run it on a fresh one.
            # The rest of the pool went the same way (a restart, a failover): it is replaced, as a
            # lost connection makes SQLAlchemy invalidate a whole pool.
            with suppress(Exception):
                self.connection.close()
            engine.dispose()
            self.connection = _raw_connection(engine)
            with self._errors(prepared):
                result = run(self.connection, params)
        self._engine = None  # this connection has answered: from here on, errors are errors
        return result

    def first(self, prepared: Prepared, params: dict[str, Any]) -> Any:
        return self._read(prepared, params, prepared._for(self.dialect).first)

    def all(self, prepared: Prepared, params: dict[str, Any]) -> list[Any]:
        return self._read(prepared, params, prepared._for(self.dialect).all)  # type: ignore[no-any-return]

    def write(self, prepared: Prepared, params: dict[str, Any]) -> Any:
        """Run one INSERT/UPDATE in a transaction of its own; the first row it RETURNs (None if none)."""
        if self._engine is not None:
            self._read(_PING, {}, _PING._for(self.dialect).first)
        compiled = prepared._for(self.dialect)
        with self._errors(prepared), WriterQueue.held(self.database) if self.database else nullcontext():
            cursor = compiled.execute(self.connection, params)
            try:
                # Fetched before the commit (SQLite finishes the statement, and so its write, only then).
                rows = compiled._rows(cursor, cursor.fetchall()) if compiled.row is not None else []
            finally:
                cursor.close()
            self.connection.commit()  # a no-op in autocommit mode
        return rows[0] if rows else None

    def close(self) -> None:
        """Back to the pool, which rolls back whatever was left open."""
        self.connection.close()


_RAW_ENGINES: dict[int, tuple[Engine, Engine]] = {}  # id(engine) -> (engine, its raw_engine)
_RAW_ENGINES_LOCK = threading.Lock()


def raw_engine(engine: Engine) -> Engine:
    """The engine `Raw` connections to `engine`'s database come from: on PostgreSQL its own pool of
    autocommit connections that are not pinged at checkout (see `Raw`). A read through a session's
    engine was four round trips (the pool's ping, BEGIN, the read, the ROLLBACK at return; PostgreSQL's
    log of one report held 24 of them around 19 statements). SQLite's engine serves as it is."""
    if engine.dialect.name == "sqlite":
        return engine
    held = _RAW_ENGINES.get(id(engine))
    if held is None or held[0] is not engine:
        with _RAW_ENGINES_LOCK:
            held = _RAW_ENGINES.get(id(engine))
            if held is None or held[0] is not engine:
                url = engine.url.render_as_string(hide_password=False)
                held = (engine, make_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=False))
                _RAW_ENGINES[id(engine)] = held
    return held[1]


def dispose_raw_engine(engine: Engine, *, close: bool = True) -> None:
    """Dispose of `engine`'s raw_engine, if it has one (`close=False` after a fork, as `Engine.dispose`)."""
    with _RAW_ENGINES_LOCK:
        held = _RAW_ENGINES.get(id(engine))
        if held is not None and held[0] is engine:
            if close:
                del _RAW_ENGINES[id(engine)]
            held[1].dispose(close=close)


def _raw_connection(engine: Engine) -> Any:
    try:
        return engine.raw_connection()
    except engine.dialect.loaded_dbapi.Error as error:  # as SQLAlchemy's, which the API answers with 503
        raise DBAPIError.instance(None, None, error, engine.dialect.loaded_dbapi.Error) from error


def checkout(engine: Engine) -> Raw:
    """A pooled DBAPI connection to `engine`'s database (from its `raw_engine`) as a `Raw`; the caller
    closes it."""
    source = raw_engine(engine)
    return Raw(_raw_connection(source), source.dialect, source.url.database, source)


@contextmanager
def reading(engine: Engine) -> Iterator[Raw]:
    """A pooled connection for `Prepared` reads outside any session, for lookups a worker makes many of
    per report: a Session and its transaction per lookup cost more than the lookup (profiled)."""
    db = checkout(engine)
    try:
        yield db
    finally:
        db.close()


class InSession:
    """`Prepared` statements inside a Session's transaction, on its DBAPI connection (the session
    commits, not this). A lost connection is left to the session, which owns it.

    Use one for one transaction: the connection is looked up once (a Session's `connection()` cost
    more than a prepared statement, profiled)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._held: tuple[Any, Dialect] | None = None

    @property
    def dialect(self) -> Dialect:
        return self._connection()[1]

    def _connection(self) -> tuple[Any, Dialect]:
        if self._held is None:
            connection = self.session.connection()
            self._held = (connection.connection, connection.dialect)
        return self._held

    def first(self, prepared: Prepared, params: dict[str, Any]) -> Any:
        dbapi, dialect = self._connection()
        with _dbapi_errors(prepared, dialect, dbapi, invalidate=False):
            return prepared._for(dialect).first(dbapi, params)

    def all(self, prepared: Prepared, params: dict[str, Any]) -> list[Any]:
        dbapi, dialect = self._connection()
        with _dbapi_errors(prepared, dialect, dbapi, invalidate=False):
            return prepared._for(dialect).all(dbapi, params)

    def write(self, prepared: Prepared, params: dict[str, Any]) -> int:
        """Run one INSERT/UPDATE/DELETE; how many rows it changed."""
        return self.write_many(prepared, [params])

    def write_many(self, prepared: Prepared, rows: list[dict[str, Any]]) -> int:
        """Run one INSERT/UPDATE/DELETE once per row of parameters (executemany); rows changed in all."""
        if not rows:
            return 0
        dbapi, dialect = self._connection()
        compiled = prepared._for(dialect)
        with _dbapi_errors(prepared, dialect, dbapi, invalidate=False):
            cursor = dbapi.cursor()
            try:
                if len(rows) == 1:
                    cursor.execute(compiled.sql, compiled._params(rows[0]))
                else:
                    cursor.executemany(compiled.sql, [compiled._params(row) for row in rows])
                return int(cursor.rowcount)
            finally:
                cursor.close()
