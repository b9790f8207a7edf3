"""`presign import-market FILE --city CITY`: a Lianjia-layout export into Presign's market data.

The file's usable rows replace whatever an earlier import of a file of the same name brought for that
city; then the city's community profiles, fuzzy-name index and bizcircle/district statistics are
rebuilt from every imported file, all in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from listings.lianjia import COLUMN_ALIASES, MarketRow, ReadReport, read_export
from listings.market.models import MarketObservation, MarketSource
from listings.profiles import BuildResult, rebuild_city
from risk.clock import Clock
from risk.db import transaction

if TYPE_CHECKING:
    from rich.progress import Progress

    from risk.runtime import Runtime

_BATCH = 2000


@dataclass
class MarketImportResult:
    reports: list[ReadReport] = field(default_factory=list)
    built: BuildResult = field(default_factory=BuildResult)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [line for report in self.reports for line in report.lines()]
        b = self.built
        newest = b.newest.isoformat() if b.newest else "undated"
        out.append(
            f"city now has {b.communities} communities ({b.priced_communities} with prices), "
            f"{b.bizcircles} bizcircles, {b.districts} districts; newest priced row {newest}; {self.seconds:.1f} s"
        )
        # Without these levels a thin community's price has no coarser yardstick: say so, loudly.
        unbuilt = [level for level, count in (("district", b.districts), ("bizcircle", b.bizcircles)) if not count]
        if b.communities and unbuilt:
            missing = " or ".join(unbuilt)
            columns = ", ".join(c for level in unbuilt for c in (level, *COLUMN_ALIASES[level]))
            out.append(
                f"WARNING: no {missing} level built for this city: no row names its {missing} "
                f"(columns read: {columns}); thin communities' prices cannot fall back to it"
            )
        return out


def import_market_files(
    rt: Runtime,
    files: Sequence[tuple[str | Path, date | None]],
    city: str,
    *,
    progress: bool = False,
    keep: Callable[[str, MarketRow], bool] | None = None,
) -> MarketImportResult:
    """Read each (file, observed date), keep the rows `keep(file name, row)` accepts, write them, rebuild the city."""
    started = time.monotonic()
    result = MarketImportResult()
    read: list[tuple[ReadReport, list[MarketRow]]] = []
    with _progress(progress) as bar:
        for path, observed in files:
            rows, report = read_export(path, city, observed)
            if keep is not None:
                kept = [r for r in rows if keep(report.path, r)]
                if len(kept) != len(rows):
                    report.notes["held out for evaluation: not imported"] += len(rows) - len(kept)
                report.used = len(kept)
                rows = kept
            read.append((report, rows))
            result.reports.append(report)
        with transaction(rt.sessions) as session:
            for report, rows in read:
                write_rows(session, rt.clock, city, report, rows, bar)
            task = bar.add_task("profiles", total=None) if bar is not None else None

            def advance(done: int, total: int) -> None:
                if bar is not None and task is not None:
                    bar.update(task, completed=done, total=total)

            result.built = rebuild_city(session, city, rt.clock, advance)
    result.seconds = time.monotonic() - started
    return result


def write_rows(
    session: Session, clock: Clock, city: str, report: ReadReport, rows: list[MarketRow], bar: Progress | None = None
) -> None:
    """Replace the rows an earlier import of this file brought for `city` with these."""
    old = session.scalar(select(MarketSource.id).where(MarketSource.city == city, MarketSource.name == report.path))
    if old is not None:
        # Explicit, not only ON DELETE CASCADE: SQLite enforces foreign keys only when told to.
        session.execute(delete(MarketObservation).where(MarketObservation.source_id == old))
        session.execute(delete(MarketSource).where(MarketSource.id == old))
    days = [r.observed_on for r in rows if r.observed_on is not None]
    source = MarketSource(
        city=city,
        name=report.path,
        kind=report.kind,
        rows=len(rows),
        first_on=min(days) if days else None,
        last_on=max(days) if days else None,
        report={"rows": report.rows, "used": report.used, "skipped": dict(report.skipped), "notes": dict(report.notes)},
        imported_at=clock.now(),
    )
    session.add(source)
    session.flush()
    task = bar.add_task(f"{report.path[:24]}", total=len(rows)) if bar is not None else None
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        session.execute(insert(MarketObservation), [_values(source.id, city, r) for r in batch])
        if bar is not None and task is not None:
            bar.advance(task, len(batch))


def _values(source_id: int, city: str, row: MarketRow) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "city": city,
        "kind": row.kind,
        "line": row.line,
        "external_id": row.external_id,
        "district": row.district,
        "bizcircle": row.bizcircle,
        "community": row.community[:200],
        "community_key": row.community_key[:200],
        "rooms": row.rooms,
        "halls": row.halls,
        "room_type": row.room_type,
        "area_m2": row.area_m2,
        "orientation": row.orientation,
        "floor_level": row.floor_level,
        "total_floors": row.total_floors,
        "build_year": row.build_year,
        "unit_price": row.unit_price,
        "total_price": row.total_price,
        "observed_on": row.observed_on,
        "samples": row.samples,
    }


@contextmanager
def _progress(enabled: bool) -> Iterator[Progress | None]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description:>24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        yield bar


@click.command("import-market")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--city", required=True, help="City of the rows to import, as in the file (北京, 上海).")
@click.option(
    "--observed",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Date a listing snapshot was taken (files without a date column); default: today.",
)
def import_market_command(file: Path, city: str, observed: Any) -> None:
    """Import a Lianjia-layout listing, deal or community export and rebuild CITY's community profiles.

    Re-importing a file of the same name replaces its rows. Prints what was used and what was skipped, and why.
    """
    from risk.clock import shanghai_date
    from risk.runtime import build_runtime

    rt = build_runtime()
    try:
        day = observed.date() if observed is not None else shanghai_date(rt.clock.now())
        try:
            result = import_market_files(rt, [(file, day)], city, progress=True)
        except (ValueError, UnicodeDecodeError) as exc:
            raise click.ClickException(f"{file}: {exc}") from exc
    finally:
        rt.close()
    for line in result.lines():
        if line.startswith("WARNING"):
            click.secho(line, fg="red", bold=True, err=True)
        else:
            click.echo(line)
