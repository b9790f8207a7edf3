"""5. Import: N JSON Lines records through `presign import` (its own process, schema creation included)
on SQLite and on PostgreSQL. The limit is parsing the same lines and inserting the same rows with a
plain executemany, in this process, into a fresh database of the same kind."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table

from checks.providers.models import ProviderRecord
from checks.providers.schemas import key_field, record_key
from risk.bench.context import Context
from risk.bench.infra import BenchError, clean_env
from risk.bench.results import Row
from risk.db import make_engine, make_sessionmaker, transaction
from risk.demo.world import records
from risk.schema import upgrade

SECTION = "5 import"
LIMIT_SECONDS = 30.0
BATCH = 1000


def bulk_records(n: int, now: datetime) -> list[dict[str, Any]]:
    """n distinct records of every kind, made from the demo world's by giving each a key of its own."""
    templates = records(now)
    out = []
    for i in range(n):
        record = dict(templates[i % len(templates)])
        field = key_field(record["kind"])
        record[field] = f"{record[field]}-{i}"
        out.append(record)
    return out


def run(ctx: Context) -> None:
    n, scratch = ctx.sizes.import_records, ctx.scratch
    ctx.step(f"import: writing {n:,} records as JSON Lines")
    path = scratch.root / "import.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for record in bulk_records(n, datetime.now(UTC)):
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    targets: list[tuple[str, str | None, str | None]] = [
        ("SQLite", f"sqlite:///{scratch.folder('import-sqlite') / 'presign.db'}",
         f"sqlite:///{scratch.folder('import-sqlite-floor') / 'presign.db'}"),
    ]  # fmt: skip
    if ctx.pg:
        targets.append(("PostgreSQL", scratch.postgres("import"), scratch.postgres("import_floor")))
    for label, url, floor_url in targets:
        if url is None or floor_url is None:
            ctx.run.skipped.append(f"import on {label} (could not create a database)")
            continue
        ctx.step(f"import ({label}): presign import of {n:,} records")
        seconds = presign_import(ctx, path, url, n)
        ctx.step(f"import ({label}): the same rows, parsed and inserted plainly")
        floor = _floor(path, floor_url)
        ctx.run.data.setdefault("import", {})[label] = {"records": n, "seconds": seconds, "floor_seconds": floor}
        limit = LIMIT_SECONDS * n / 100_000
        ctx.run.add(
            Row(SECTION, f"presign import, {n:,} records, {label}", seconds, "s", floor,
                "json.loads + plain executemany INSERT", f"< {limit:g} s", None if ctx.run.quick else seconds < limit,
                note="wall time of the command, process start and schema creation included"),
        )  # fmt: skip


def presign_import(ctx: Context, path: Path, database_url: str, n: int) -> float:
    folder = ctx.scratch.folder(f"import-{abs(hash(database_url))}")
    env = clean_env(PRESIGN_INSTANCE=str(folder), PRESIGN_DATABASE_URL=database_url, PRESIGN_SECRET_KEY="bench")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "risk.cli", "import", str(path)], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0 or f"imported {n} records" not in done.stdout:
        raise BenchError(f"presign import failed ({done.returncode}): {done.stdout[-300:]} {done.stderr[-500:]}")
    return seconds


def _floor(path: Path, database_url: str) -> float:
    engine = make_engine(database_url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    table = cast(Table, ProviderRecord.__table__)
    try:
        started = time.perf_counter()
        now = datetime.now(UTC)
        with path.open("rb") as fh, transaction(sessions) as session:
            batch: list[dict[str, Any]] = []
            for line in fh:
                record = json.loads(line)
                kind = record.pop("kind")
                batch.append({"kind": kind, "key": record_key(kind, record), "payload": record, "imported_at": now})
                if len(batch) >= BATCH:
                    session.execute(table.insert(), batch)
                    batch = []
            if batch:
                session.execute(table.insert(), batch)
        return time.perf_counter() - started
    finally:
        engine.dispose()
