"""What a bench run found: one row per target, each a measurement, the limit it is held against
(measured in the same run), their ratio and the target; rendered as a table, JSON and markdown."""

from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any


@dataclass
class Row:
    section: str
    name: str
    measured: float
    unit: str
    limit: float | None  # the same-run limit (None: the target is absolute)
    limit_name: str
    target: str  # e.g. "≤ 1.3 ×" or "< 5 s"
    ok: bool | None  # None: informational, no target
    ratio: float | None = None  # measured / limit, unless given
    note: str = ""

    def __post_init__(self) -> None:
        if self.ratio is None and self.limit:
            self.ratio = self.measured / self.limit

    @property
    def verdict(self) -> str:
        return "—" if self.ok is None else ("pass" if self.ok else "MISS")


@dataclass
class Run:
    command: str
    quick: bool
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    seconds: float = 0.0
    machine: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # raw figures per section
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *rows: Row) -> None:
        self.rows.extend(rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "quick": self.quick,
            "started": self.started.isoformat(),
            "seconds": round(self.seconds, 1),
            "machine": self.machine,
            "rows": [{**asdict(r), "verdict": r.verdict} for r in self.rows],
            "skipped": self.skipped,
            "notes": self.notes,
            "data": self.data,
        }

    def write(self, folder: Path) -> tuple[Path, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        stamp = self.started.strftime("%Y%m%dT%H%M%SZ")
        json_path, md_path = folder / f"{stamp}.json", folder / f"{stamp}.md"
        json_path.write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False, default=str) + "\n")
        md_path.write_text(markdown(self))
        return json_path, md_path


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def table_rows(run: Run) -> list[list[str]]:
    return [
        [r.section, r.name, fmt(r.measured, r.unit), f"{fmt(r.limit, r.unit)} ({r.limit_name})" if r.limit else
         r.limit_name, fmt(r.ratio, "×") if r.ratio is not None else "—", r.target, r.verdict]
        for r in run.rows
    ]  # fmt: skip


HEADERS = ["section", "figure", "measured", "limit (same run)", "ratio", "target", "result"]


def print_table(run: Run) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"presign bench{' --quick' if run.quick else ''} — {run.started:%Y-%m-%d %H:%M} UTC")
    for header in HEADERS:
        table.add_column(header, justify="right" if header in ("measured", "ratio") else "left")
    colours = {"pass": "green", "MISS": "red"}
    for cells in table_rows(run):
        verdict = cells[-1]
        table.add_row(*cells[:-1], f"[{colours[verdict]}]{verdict}[/]" if verdict in colours else verdict)
    console = Console(width=200)
    console.print(table)
    for row in run.rows:
        if row.note:
            console.print(f"  {row.name}: {row.note}")
    for skipped in run.skipped:
        console.print(f"  skipped: {skipped}")
    for text in run.notes:
        console.print(f"  note: {text}")


def markdown(run: Run) -> str:
    lines = [
        f"# presign bench — {run.started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{run.command}` ({run.seconds:.0f} s)",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "| " + " | ".join("---" for _ in HEADERS) + " |",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in table_rows(run)]
    notes = [f"- {r.name}: {r.note}" for r in run.rows if r.note] + [f"- skipped: {s}" for s in run.skipped]
    notes += [f"- note: {n}" for n in run.notes]
    if notes:
        lines += ["", *notes]
    lines += ["", "## Machine", "", "| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in run.machine.items()]
    return "\n".join(lines) + "\n"


def machine(redis_url: str | None, pg_url: str | None) -> dict[str, Any]:
    info: dict[str, Any] = {"nproc": os.cpu_count()}
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        total_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        info["memory"] = f"{total_kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor() or platform.machine()
    info["os"] = f"{platform.system()} {platform.release()}"
    info["python"] = platform.python_version()
    info["sqlite"] = sqlite3.sqlite_version
    for package in ("rq", "redis", "gunicorn", "flask", "sqlalchemy", "psycopg", "requests"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    if redis_url:
        try:
            from redis import Redis

            conn = Redis.from_url(redis_url, socket_timeout=2)
            info["redis server"] = f"{conn.info('server')['redis_version']} ({redis_url.split('://')[0]})"
            conn.close()
        except Exception as exc:  # the version is decoration; the run goes on without it
            info["redis server"] = f"unknown ({type(exc).__name__})"
    if pg_url:
        try:
            from sqlalchemy import create_engine, text

            engine = create_engine(pg_url)
            with engine.connect() as pg:
                info["postgresql"] = str(pg.execute(text("SHOW server_version")).scalar())
            engine.dispose()
        except Exception as exc:  # as above
            info["postgresql"] = f"unknown ({type(exc).__name__})"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).resolve().parents[2])  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
        if head.returncode == 0:
            info["commit"] = head.stdout.strip() + (" (work tree has changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        info["load average at start"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        pass
    return info


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values; nan for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]
