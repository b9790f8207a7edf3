"""`presign bench`'s building blocks with tiny counts, so the harness cannot rot. Structure only: these
tests never assert anything about speed."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from checks.providers.schemas import record_key, validate
from risk.bench.context import Context, Sizes
from risk.bench.infra import Scratch
from risk.bench.results import Row, Run, markdown, percentile

TINY = replace(Sizes.quick(latency_ms=5), latency_reports=2, latency_calls=2, drain_jobs=5, replan_deals=12,
               import_records=40, gate_seconds=0.3, gate_open_seconds=0.3, gate_warmup=0.1)  # fmt: skip


@pytest.fixture
def bench(tmp_path: Path, redis_url: str, redis: object) -> Context:
    scratch = Scratch()
    ctx = Context(scratch=scratch, run=Run("presign bench --quick", quick=True), sizes=TINY, redis_url=redis_url,
                  pg=False)  # fmt: skip
    yield ctx
    scratch.close()
    assert not scratch.root.exists()


def _rows(ctx: Context, section: str) -> list[Row]:
    rows = [r for r in ctx.run.rows if r.section.startswith(section)]
    assert rows, f"section {section} added no rows"
    for row in rows:
        assert row.measured == row.measured and row.measured >= 0  # a number, not nan
        assert row.ok in (True, False, None)
    return rows


def test_percentile_is_nearest_rank() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0
    assert percentile([3.0, 1.0, 2.0, 4.0], 100) == 4.0
    assert percentile([], 50) != percentile([], 50)  # nan


def test_a_run_renders_as_markdown_and_json(tmp_path: Path) -> None:
    run = Run("presign bench", quick=False, machine={"nproc": 2})
    run.add(Row("1 x", "figure", 65.0, "ms", 50.0, "L", "≤ 1.3 ×", True))
    json_path, md_path = run.write(tmp_path)
    data = json.loads(json_path.read_text())
    assert data["rows"][0]["ratio"] == pytest.approx(1.3)
    assert data["rows"][0]["verdict"] == "pass"
    assert "| 1 x | figure | 65.0 ms | 50.0 ms (L) | 1.30 × | ≤ 1.3 × | pass |" in md_path.read_text()
    assert "## Machine" in markdown(run)


def test_bulk_import_records_are_valid_and_distinct() -> None:
    from datetime import UTC, datetime

    from risk.bench.importing import bulk_records
    from risk.demo.world import records as world

    now = datetime.now(UTC)
    n = 3 * len(world(now))  # every kind's templates used thrice: each copy needs a key of its own
    records = bulk_records(n, now)
    keys = {(r["kind"], record_key(r["kind"], validate(r["kind"], r))) for r in records}
    assert len(keys) == n


def test_scratch_stops_its_processes_and_removes_its_folder() -> None:
    import sys

    scratch = Scratch()
    proc = scratch.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], {})
    root = scratch.root
    scratch.close()
    assert proc.popen.poll() is not None
    assert not root.exists()


@pytest.mark.slow
def test_load_generator_measures_hello_world_under_gunicorn(bench: Context) -> None:
    from risk.bench.gate import load
    from risk.bench.infra import clean_env

    url = bench.scratch.gunicorn("hello", "risk.bench.hello:create_app()", clean_env(), workers=1)
    closed = load(url + "/api/v1/gate", "{}", [], concurrency=2, seconds=0.3, warmup=0.1)
    opened = load(url + "/api/v1/gate", "{}", [], rate=50, seconds=0.3)
    for result in (closed, opened):
        assert result["requests"] > 0 and result["ok"] == result["requests"] and result["errors"] == 0
        assert set(result["latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert closed["mode"] == "closed" and opened["mode"] == "open"


@pytest.mark.slow
def test_latency_section_runs_reports_and_floor_jobs_and_plots(bench: Context, tmp_path: Path) -> None:
    from risk.bench import latency
    from risk.bench.plot import latency_plot

    latency.run(bench)
    rows = _rows(bench, "1")
    assert {r.target for r in rows if r.ok is not None} == {"≤ 1.25 ×", "≤ 1.5 ×"}
    data = bench.run.data["latency"]
    assert len(data["report_ms"]) == len(data["rq_floor_ms"]) == TINY.latency_reports
    phases = {**data["report_phases_ms"], **data["rq_floor_phases_ms"]}
    assert {len(values) for values in phases.values()} == {TINY.latency_reports}
    for n, total in enumerate(data["report_ms"]):  # the three phases add up to the report's latency
        parts = [data["report_phases_ms"][name][n] for name in latency.REPORT_PHASES]
        assert all(part >= 0 for part in parts[1:]) and sum(parts) == pytest.approx(total, abs=0.01)
    (against_floor,) = [r for r in rows if r.name == "report p50 vs RQ floor"]
    assert "created → queued" in against_floor.note and "nan" not in against_floor.note
    path = latency_plot(bench.run, tmp_path / "latency.png")
    assert path is None or path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_throughput_section_drains_noops_and_reports_with_a_real_worker(bench: Context) -> None:
    from risk.bench import throughput

    bench.sizes = replace(bench.sizes, drain_jobs=8)
    throughput.run(bench)
    names = [r.name for r in _rows(bench, "2")]
    assert any("no-op" in n for n in names) and any("reports/s" in n for n in names)
    data = bench.run.data["throughput"]
    assert data["worker_class"] == "rq.SimpleWorker"
    # Two blocks of 4 reports, each between two no-op drains; the figure is the median of their ratios.
    assert len(data["reports_sqlite_blocks"]) == 2 and len(data["noop"]) == 3
    row = next(r for r in _rows(bench, "2") if r.name.startswith("reports/s, one worker, SQLite"))
    assert row.ratio == pytest.approx(sorted(data["block_ratios"])[0] / 2 + sorted(data["block_ratios"])[1] / 2)


def test_memory_rows_compare_the_first_reports_from_the_release_with_the_last(bench: Context) -> None:
    from datetime import UTC, datetime, timedelta

    from risk.bench.throughput import RssSampler, _memory_rows

    t0 = datetime(2026, 11, 22, tzinfo=UTC)
    sampler = RssSampler(pid=0)
    # Idle before the release at 100 MB (not counted), 90 MB while the first reports run, 91 at the end.
    sampler.samples = [(t0 + timedelta(seconds=s), mb) for s, mb in [(0, 100.0), (11, 90.0), (12, 90.0), (29, 91.0)]]
    sampler.peak_mb = 100.0
    ended = [t0 + timedelta(seconds=10 + s) for s in range(20)]  # 20 reports: windows of 2

    _memory_rows(bench, sampler, ended, since=t0 + timedelta(seconds=10))

    growth = next(r for r in bench.run.rows if r.name.startswith("RSS growth"))
    assert growth.measured == pytest.approx(1.0) and growth.ok
    assert bench.run.data["memory"]["first_window_mb"] == pytest.approx(90.0)


def test_drain_blocks_split_the_jobs_evenly() -> None:
    from risk.bench.throughput import _blocks

    assert _blocks(1000) == [200] * 5 and _blocks(1001) == [201, 200, 200, 200, 200]
    assert _blocks(8) == [4, 4] and _blocks(5) == [5] and _blocks(1) == [1]


@pytest.mark.slow
def test_gate_section_answers_from_a_fresh_report(bench: Context) -> None:
    from risk.bench import gate

    gate.run(bench)
    rows = _rows(bench, "3")
    assert len(rows) == 5  # hello-world; the gate, its floor, the gate against its floor, p99
    measured = bench.run.data["gate"]["SQLite"]
    assert len(measured["gate"]) == len(measured["floor"]) == gate.GATE_ROUNDS
    assert len(measured["hello"]) == gate.GATE_ROUNDS + 1
    peak = next(r for r in rows if r.name.startswith("POST /api/v1/gate (fresh report)"))
    assert peak.ratio == pytest.approx(sorted(measured["ratios"])[1])  # the median of three
    floor = next(r for r in rows if r.name.startswith("the gate's floor"))
    assert floor.ratio == pytest.approx(sorted(measured["floor_ratios"])[1])
    against = next(r for r in rows if r.name.startswith("POST /api/v1/gate against its floor"))
    assert against.ratio == pytest.approx(peak.ratio / floor.ratio)


def _gate_windows(gate_rate: float, floor_rate: float, p99: float) -> dict[str, Any]:
    def window(rate: float) -> dict[str, Any]:
        return {"rate": rate, "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": p99, "max": p99}, "requests": 100}

    hello = [window(1000.0) for _ in range(4)]
    return {"hello": hello, "gate": [window(gate_rate)] * 3, "floor": [window(floor_rate)] * 3,
            "ratios": [gate_rate / 1000.0] * 3, "floor_ratios": [floor_rate / 1000.0] * 3,
            "gate_open": window(gate_rate / 2), "hello_open": window(500.0)}  # fmt: skip


@pytest.mark.parametrize(
    ("gate_rate", "p99", "verdicts"),
    [(350.0, 8.0, (True, True)), (340.0, 8.0, (False, True)), (400.0, 21.0, (True, False))],
)
def test_the_gate_is_held_to_seven_tenths_of_its_floor_and_20_ms_at_half_its_peak(
    bench: Context, gate_rate: float, p99: float, verdicts: tuple[bool, bool]
) -> None:
    from risk.bench import gate

    gate._rows(bench, "SQLite", _gate_windows(gate_rate, 500.0, p99))
    targets = {r.target: r.ok for r in _rows(bench, "3") if r.ok is not None}
    assert targets == {"≥ 0.7 ×": verdicts[0], "≤ 20 ms": verdicts[1]}  # hello-world is informative only


def test_the_gates_floor_answers_from_the_gates_report_and_records_what_it_sent(
    bench: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import select

    from risk.app import create_app
    from risk.audit.models import AuditEvent
    from risk.bench import floor, gate
    from risk.bench.site import Site
    from risk.db import transaction
    from risk.demo.world import SCENARIOS

    site = Site.create(bench.scratch, "floor", redis_url=bench.redis_url)
    site.import_world()
    listing_id = site.add_listings(1, [next(s for s in SCENARIOS if s.key == "clean")])[0]
    report_id = gate.fresh_report(site, listing_id)
    asked = {"listing_id": listing_id, "stage": gate.STAGE}
    answer = (
        create_app(runtime=site.rt)
        .test_client()
        .post("/api/v1/gate", json=asked, headers={"Authorization": f"Bearer {site.key}"})
    )
    monkeypatch.setenv("PRESIGN_DATABASE_URL", site.env["PRESIGN_DATABASE_URL"])
    client = floor.create_app().test_client()

    floored = client.post("/api/v1/gate", json=asked)
    assert floored.status_code == 200 and answer.status_code == 200
    body, expected = floored.get_json(), answer.get_json()
    assert body["report_id"] == report_id == expected["report_id"]
    assert (body["decision"], body["reasons"], body["commitments"]) == (
        expected["decision"], expected["reasons"], expected["commitments"]
    )  # fmt: skip
    with transaction(site.rt.sessions) as session:
        (kept,) = session.scalars(select(AuditEvent).where(AuditEvent.actor_client_id == "floor")).all()
        assert kept.data == body and kept.data["report_id"] == report_id and kept.subject_id == listing_id
        assert (kept.type, kept.subject_kind, kept.seq) == ("gate.answered", "listing", None)
    assert client.post("/api/v1/gate", json={**asked, "listing_id": "lst_nothing"}).status_code == 404


def test_replan_section_leaves_no_duplicate_plans(bench: Context) -> None:
    from risk.bench import replan

    replan.run(bench)
    (row,) = _rows(bench, "4")
    assert row.ok is None  # quick runs judge no absolute times
    assert bench.run.data["replan"]["SQLite"]["duplicates"] == 0


@pytest.mark.slow
def test_import_section_runs_presign_import(bench: Context) -> None:
    from risk.bench import importing

    importing.run(bench)
    (row,) = _rows(bench, "5")
    assert bench.run.data["import"]["SQLite"]["records"] == TINY.import_records


@pytest.mark.parametrize("pg", [False, True])
def test_a_run_says_why_it_has_no_postgresql_figures(monkeypatch: pytest.MonkeyPatch, redis: object, pg: bool) -> None:
    from risk.bench import cli

    monkeypatch.setattr(cli, "port_open", lambda host, port: False)  # as if no server were listening
    monkeypatch.setattr(cli, "machine", lambda *args: {})
    run = cli.run_bench([], TINY, quick=True, out=None, plot=None, pg=pg, show_progress=False)
    reason = "no server on 127.0.0.1:5432" if pg else "--no-postgres"
    assert run.skipped == [f"PostgreSQL figures ({reason})"]
