"""`presign import FILE`: provider records (JSON Lines) into Presign's own database for the `local` providers.

One record per line, `{"kind": ..., <the fields of the provider's HTTP answer>}`. People's ID numbers
(a title's owners, a contract filing's buyers and sellers) are stored only as keyed hashes and masked
forms. Every line is validated first; one bad line and nothing from the file is written. Otherwise every record is
upserted in one transaction (INSERT … ON CONFLICT DO UPDATE, in batches): re-importing updates, and
within one file the last record for a (kind, key) wins.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, cast

import click
from marshmallow import ValidationError
from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from checks.providers import KINDS
from checks.providers.models import ProviderRecord
from checks.providers.schemas import record_key, validate
from risk.db import transaction
from risk.errors import fields_from_marshmallow
from risk.identity import protect_record

if TYPE_CHECKING:
    from rich.progress import Progress

    from risk.runtime import Runtime

BATCH_SIZE = 1000
KEEP_PROBLEMS = 1000  # problems kept on the exception; the rest are only counted
SHOW_PROBLEMS = 50  # problems the command prints
_PROGRESS_EVERY = 2000


@dataclass
class ImportResult:
    by_kind: dict[str, int] = field(default_factory=dict)  # records written per kind
    inserted: int = 0
    updated: int = 0
    duplicates: int = 0  # records overridden by a later one for the same (kind, key) in the same input
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def summary(self) -> str:
        kinds = ", ".join(f"{kind} {self.by_kind[kind]}" for kind in KINDS if self.by_kind.get(kind))
        text = f"imported {self.total} records ({kinds or 'none'}): {self.inserted} new, {self.updated} updated"
        if self.duplicates:
            text += f"; {self.duplicates} repeated keys, last one kept"
        return f"{text}; {self.seconds:.1f} s"


class ImportRejected(Exception):
    """The input had bad records; nothing was written."""

    def __init__(self, problems: list[str], problem_count: int, bad_records: int) -> None:
        super().__init__(f"{bad_records} bad records; nothing imported")
        self.problems = problems  # "line N: field.path: message", the first KEEP_PROBLEMS of them
        self.problem_count = problem_count
        self.bad_records = bad_records


class _Collector:
    """Validated records by (kind, key), last one wins, and the problems found on the way."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.records = 0
        self.problems: list[str] = []
        self.problem_count = 0
        self.bad_records = 0

    def add(self, where: str, record: Any) -> None:
        self.records += 1
        if not isinstance(record, dict):
            self._bad(where, {"_schema": ["Expected a JSON object."]})
            return
        kind = record.get("kind")
        if kind is None:
            self._bad(where, {"kind": ["Missing data for required field."]})
            return
        if not isinstance(kind, str) or kind not in KINDS:
            self._bad(where, {"kind": [f"Unknown kind {kind!r}; expected one of: {', '.join(KINDS)}."]})
            return
        try:
            payload = validate(kind, record)
        except ValidationError as exc:
            self._bad(where, exc.messages)
            return
        self.rows[(kind, record_key(kind, payload))] = payload

    def bad_line(self, where: str, message: str) -> None:
        self.records += 1
        self._bad(where, {"_schema": [message]})

    def _bad(self, where: str, messages: Any) -> None:
        self.bad_records += 1
        for path, texts in fields_from_marshmallow(messages).items():
            for text in texts:
                self.problem_count += 1
                if len(self.problems) < KEEP_PROBLEMS:
                    self.problems.append(f"{where}: {text}" if path == "_schema" else f"{where}: {path}: {text}")

    def check(self) -> None:
        if self.bad_records:
            raise ImportRejected(self.problems, self.problem_count, self.bad_records)


def import_lines(
    rt: Runtime, lines: Iterable[bytes | str], *, progress: bool = False, total_bytes: int | None = None
) -> ImportResult:
    """Validate JSON Lines, then upsert them all; ImportRejected (nothing written) on any bad line."""
    started = time.monotonic()
    collected = _Collector()
    with _progress(progress) as bar:
        task = bar.add_task("validating", total=total_bytes) if bar is not None else None
        seen_bytes = 0
        for number, line in enumerate(lines, start=1):
            seen_bytes += len(line)
            if bar is not None and task is not None and number % _PROGRESS_EVERY == 0:
                bar.update(task, completed=seen_bytes)
            if number == 1:
                line = line.removeprefix(b"\xef\xbb\xbf") if isinstance(line, bytes) else line.removeprefix("\ufeff")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                collected.bad_line(f"line {number}", f"Not JSON ({_json_error(exc)}).")
                continue
            collected.add(f"line {number}", record)
        if bar is not None and task is not None:
            bar.update(task, completed=seen_bytes, total=seen_bytes)
        collected.check()
        result = _write(rt, collected.rows, bar)
    result.duplicates = _valid_records(collected) - result.total
    result.seconds = time.monotonic() - started
    return result


def import_records(rt: Runtime, records: Iterable[dict[str, Any]], progress: bool = False) -> ImportResult:
    """Validate records (`{"kind": ..., <fields>}`), then upsert them all; ImportRejected on any bad one."""
    started = time.monotonic()
    collected = _Collector()
    with _progress(progress) as bar:
        for number, record in enumerate(records, start=1):
            collected.add(f"record {number}", record)
        collected.check()
        result = _write(rt, collected.rows, bar)
    result.duplicates = _valid_records(collected) - result.total
    result.seconds = time.monotonic() - started
    return result


def _valid_records(collected: _Collector) -> int:
    return collected.records - collected.bad_records


def _write(rt: Runtime, rows: dict[tuple[str, str], dict[str, Any]], bar: Progress | None) -> ImportResult:
    result = ImportResult(by_kind={kind: 0 for kind in KINDS})
    for kind, _key in rows:
        result.by_kind[kind] += 1
    if not rows:
        return result
    now = rt.clock.now()
    task = bar.add_task("writing", total=len(rows)) if bar is not None else None
    with transaction(rt.sessions) as session:
        statement = _upsert(session)
        before = _count(session)
        batch: list[dict[str, Any]] = []
        for (kind, key), payload in rows.items():
            # Owners' and sellers' ID numbers are kept only as keyed hashes and masked forms.
            stored = protect_record(rt.id_hash, payload)
            batch.append({"kind": kind, "key": key, "payload": stored, "imported_at": now})
            if len(batch) >= BATCH_SIZE:
                session.execute(statement, batch)
                if bar is not None and task is not None:
                    bar.advance(task, len(batch))
                batch = []
        if batch:
            session.execute(statement, batch)
            if bar is not None and task is not None:
                bar.advance(task, len(batch))
        result.inserted = _count(session) - before
    result.updated = len(rows) - result.inserted
    return result


def _upsert(session: Session) -> Any:
    table = cast(Table, ProviderRecord.__table__)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    else:
        raise click.ClickException(f"presign import does not support the {dialect} database")
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.kind, table.c.key],
        set_={"payload": statement.excluded.payload, "imported_at": statement.excluded.imported_at},
    )


def _count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(ProviderRecord.__table__)) or 0)


def _json_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc)


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description:>10}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        yield bar


def _size(stream: IO[bytes]) -> int | None:
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return info.st_size if info.st_size > 0 else None


@click.command("import")
@click.argument("file", type=click.File("rb"))
def import_command(file: IO[bytes]) -> None:
    """Import provider records from FILE (JSON Lines, `-` for stdin) for the `local` providers.

    Each line is {"kind": KIND, ...the fields of the provider's answer}, KIND one of unit,
    community_prices, title, fee_account, inspections, listing_verification, contract_filing. Nothing is written
    if any line is bad.
    """
    from risk.runtime import build_runtime

    rt = build_runtime()
    try:
        result = import_lines(rt, file, progress=True, total_bytes=_size(file))
    except ImportRejected as exc:
        for problem in exc.problems[:SHOW_PROBLEMS]:
            click.echo(problem, err=True)
        if exc.problem_count > SHOW_PROBLEMS:
            click.echo(f"… and {exc.problem_count - SHOW_PROBLEMS} more problems", err=True)
        click.echo(f"nothing imported: {exc.bad_records} bad lines", err=True)
        raise click.exceptions.Exit(1) from None
    finally:
        rt.close()
    click.echo(result.summary())
