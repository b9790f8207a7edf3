"""The gate's fresh answer on the database driver: its one read and one record run under an
`each_statement` connection, compiled once per dialect and converted by the columns' own types, since on
the contract system's signing path SQLAlchemy's per-execution work costs more than the statements."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Insert, Select
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect


@dataclass(frozen=True)
class _Compiled:
    """A statement compiled for one dialect, with its columns' bind and result conversions."""

    sql: str
    params: Mapping[str, Any]  # the statement's own values (literals, LIMIT)
    positions: Sequence[str] | None  # parameter order, for a positional driver (sqlite3)
    binds: dict[str, Callable[[Any], Any]]
    results: Sequence[tuple[int, Callable[[Any], Any]]]  # (column, its conversion) where it has one
    row: Any  # a named tuple of the statement's columns


_COMPILED: dict[tuple[int, type[Dialect]], _Compiled] = {}


def _compiled_for(statement: Select[Any] | Insert, dialect: Dialect) -> _Compiled:
    key = (id(statement), type(dialect))  # the statements are this module's constants, built once
    found = _COMPILED.get(key)
    if found is None:
        compiled = statement.compile(dialect=dialect)
        columns = getattr(statement, "selected_columns", ())
        binds = {name: bind.type.dialect_impl(dialect).bind_processor(dialect) for name, bind in compiled.binds.items()}
        results = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
        found = _COMPILED[key] = _Compiled(
            sql=str(compiled),
            params=compiled.construct_params({name: None for name, bind in compiled.binds.items() if bind.required}),
            positions=compiled.positiontup,
            binds={name: process for name, process in binds.items() if process is not None},
            results=[(i, process) for i, process in enumerate(results) if process is not None],
            row=namedtuple("Row", list(columns.keys())) if columns else None,  # type: ignore[misc]
        )
    return found


def run_on_driver(connection: Connection, statement: Select[Any] | Insert, params: dict[str, Any]) -> list[Any]:
    """Run the gate's read or record on the driver connection under `connection` (an `each_statement`
    one, so it commits on its own), values and rows converted by the columns' types: the two statements
    of every fresh answer skip SQLAlchemy's per-execution work, which costs more than the statements."""
    prepared = _compiled_for(statement, connection.dialect)
    values = {**prepared.params, **params}
    for name, process in prepared.binds.items():
        values[name] = process(values[name])
    dialect, driver = connection.dialect, connection.connection.dbapi_connection
    cursor = driver.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(prepared.sql, [values[name] for name in prepared.positions] if prepared.positions else values)
        fetched = cursor.fetchall() if prepared.row is not None else []
    except dialect.loaded_dbapi.Error as error:
        # Raised as SQLAlchemy raises it (an unreachable database answers 503), a dropped connection
        # not handed out again.
        dropped = dialect.is_disconnect(error, driver, cursor)
        if dropped:
            connection.invalidate()
        raise sa_exc.DBAPIError.instance(
            prepared.sql, values, error, dialect.loaded_dbapi.Error, connection_invalidated=dropped, dialect=dialect
        ) from error
    finally:
        cursor.close()
    rows = []
    for row in fetched:
        cells = list(row)
        for i, process in prepared.results:
            cells[i] = process(cells[i])
        rows.append(prepared.row._make(cells))
    return rows
