"""3. The gate: `POST /api/v1/gate` with a fresh report present, its audit event written, under the
production WSGI server, against its floor (risk.bench.floor: a plain Flask endpoint under the same
server and settings that makes the gate's one read and commits one record row). Load comes from a
second process on loopback (risk.bench.load): closed loop for the peak, open loop at half of it for p99.

A hello-world JSON endpoint under the same server is measured between the windows: the machine's
speed drifts, and every window is held against the hello-world windows around it."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from typing import Any

import requests

from risk.bench.context import Context
from risk.bench.infra import BenchError, clean_env
from risk.bench.results import Row
from risk.bench.site import Site
from risk.db import transaction
from risk.demo.world import SCENARIOS

SECTION = "3 gate"
GATE_ROUNDS = 3  # closed-loop gate windows, each between two hello-world windows
P99_LIMIT_MS = 20.0
FLOOR_SHARE = 0.7  # the share of its floor's rate the gate keeps
STAGE = "signing"
FLOOR_APP = "risk.bench.floor:create_app()"
WARM_SECONDS = 0.5  # untimed load on each server before its windows


def run(ctx: Context) -> None:
    scratch = ctx.scratch
    ctx.step("gate: a listing with a fresh report; the API and hello-world under gunicorn")
    site = Site.create(scratch, "gate", redis_url=ctx.redis_url)
    api_url, body, auth = _serve(ctx, site, "api-gate")
    hello_url = scratch.gunicorn("hello", "risk.bench.hello:create_app()", site.env)
    floor_url = scratch.gunicorn("floor", FLOOR_APP, site.env)
    sqlite = _measure(ctx, api_url, hello_url, floor_url, body, auth, "SQLite")
    ctx.run.data["gate"] = {"SQLite": sqlite}
    hello = _median(sqlite["hello"])
    conc, seconds = ctx.sizes.gate_concurrency, ctx.sizes.gate_seconds
    ctx.run.add(
        Row(SECTION, "hello-world JSON, gunicorn (2 sync workers), peak req/s", hello, "req/s", None,
            f"{conc} clients, closed loop, {len(sqlite['hello'])} × {seconds:g} s", "—", None,
            note="the median of its windows: " + ", ".join(f"{r['rate']:.0f}" for r in sqlite["hello"])),
    )  # fmt: skip
    _rows(ctx, "SQLite", sqlite)

    if not ctx.pg:
        return
    url = scratch.postgres("gate")
    if url is None:
        ctx.run.skipped.append("the gate on PostgreSQL (could not create a database)")
        return
    pg_site = Site.create(scratch, "gate-pg", redis_url=ctx.redis_url, database_url=url)
    pg_url, pg_body, pg_auth = _serve(ctx, pg_site, "api-gate-pg")
    pg_floor_url = scratch.gunicorn("floor-pg", FLOOR_APP, pg_site.env)
    pg = _measure(ctx, pg_url, hello_url, pg_floor_url, pg_body, pg_auth, "PostgreSQL")
    ctx.run.data["gate"]["PostgreSQL"] = pg
    _rows(ctx, "PostgreSQL", pg)


def _serve(ctx: Context, site: Site, name: str) -> tuple[str, str, str]:
    """The site's API under gunicorn, with one listing whose report is fresh: (url, body, auth header)."""
    site.import_world()
    clean = next(s for s in SCENARIOS if s.key == "clean")
    listing_id = site.add_listings(1, [clean])[0]
    report_id = fresh_report(site, listing_id)
    api_url = ctx.scratch.gunicorn(name, "risk.app:create_app()", site.env)
    body = json.dumps({"listing_id": listing_id, "stage": STAGE})
    headers = {"Authorization": f"Bearer {site.key}", "Content-Type": "application/json"}
    answer = requests.post(api_url + "/api/v1/gate", data=body, headers=headers, timeout=10)
    if answer.status_code != 200 or answer.json().get("report_id") != report_id:
        raise BenchError(f"the gate did not answer from the fresh report: {answer.status_code} {answer.text[:300]}")
    return api_url, body, f"Authorization: Bearer {site.key}"


def _measure(ctx: Context, api_url: str, hello_url: str, floor_url: str, body: str, auth: str,
             db: str) -> dict[str, Any]:  # fmt: skip
    """The peaks in closed loop, windows alternated: hello-world, then the floor, the gate and
    hello-world again, GATE_ROUNDS times; then the gate and hello-world in open loop at half the
    gate's peak.

    The machine's speed drifts between windows, so each gate (and floor) window is compared with the
    hello-world windows just before and after it, and the figure is the median of those ratios."""
    seconds, warmup, conc = ctx.sizes.gate_seconds, ctx.sizes.gate_warmup, ctx.sizes.gate_concurrency
    gate_url, hello_url, floor_url = (url + "/api/v1/gate" for url in (api_url, hello_url, floor_url))
    hello, floor, gate = [], [], []
    # Each server's workers first answer untimed (a sync worker imports and connects on its first
    # request, which the short windows of `--quick` on a slow machine once caught whole).
    for name, url in (
        ("hello-world", hello_url),
        (f"the gate's floor on {db}", floor_url),
        (f"the gate on {db}", gate_url),
    ):
        ctx.step(f"gate: warming {name}")
        load(url, body, [auth], concurrency=conc, seconds=WARM_SECONDS)

    def window(name: str, url: str, i: int, of: int) -> dict[str, Any]:
        ctx.step(f"gate: {name}, closed loop ({conc} clients, {seconds:g} s; {i + 1} of {of})")
        return _ok(name, load(url, body, [auth], concurrency=conc, seconds=seconds, warmup=warmup))

    for i in range(GATE_ROUNDS + 1):
        hello.append(window("hello-world", hello_url, i, GATE_ROUNDS + 1))
        if i == GATE_ROUNDS:
            break
        floor.append(window(f"the gate's floor on {db}", floor_url, i, GATE_ROUNDS))
        gate.append(window(f"POST /api/v1/gate on {db}", gate_url, i, GATE_ROUNDS))
    ratios, floor_ratios = (
        [w["rate"] / ((hello[i]["rate"] + hello[i + 1]["rate"]) / 2) for i, w in enumerate(windows)]
        for windows in (gate, floor)
    )
    half = _median(gate) / 2
    ctx.step(f"gate: open loop at half the gate's peak ({half:.0f}/s) on {db}, gate then hello-world")
    open_seconds = ctx.sizes.gate_open_seconds
    gate_open = _ok(f"gate open loop ({db})", load(gate_url, body, [auth], rate=half, seconds=open_seconds))
    hello_open = load(hello_url, body, [auth], rate=half, seconds=open_seconds)
    return {"hello": hello, "gate": gate, "ratios": ratios, "floor": floor, "floor_ratios": floor_ratios,
            "gate_open": gate_open, "hello_open": hello_open}  # fmt: skip


def _median(windows: list[dict[str, Any]]) -> float:
    return float(statistics.median(w["rate"] for w in windows))


def _ok(name: str, result: dict[str, Any]) -> dict[str, Any]:
    if result["errors"] or result["ok"] != result["requests"] or not result["requests"]:
        raise BenchError(f"{name}: {result['errors']} errors, statuses {result['statuses']}")
    return result


def _rows(ctx: Context, db: str, measured: dict[str, Any]) -> None:
    gate_open, hello_open = measured["gate_open"], measured["hello_open"]
    ratio, peak, hello = statistics.median(measured["ratios"]), _median(measured["gate"]), _median(measured["hello"])
    floor_ratio, floor = statistics.median(measured["floor_ratios"]), _median(measured["floor"])
    middle = sorted(measured["gate"], key=lambda w: w["rate"])[len(measured["gate"]) // 2]
    p99, half = gate_open["latency_ms"]["p99"], peak / 2
    against = ratio / floor_ratio if floor_ratio else 0.0
    ctx.run.add(
        Row(SECTION, f"POST /api/v1/gate (fresh report), {db}, peak req/s", peak, "req/s", hello,
            "hello-world", "—", None, ratio=ratio,
            note=f"closed loop, the median of {len(measured['gate'])} windows, each against the hello-world windows "
                 f"before and after it (ratios {', '.join(f'{r:.2f}' for r in measured['ratios'])}); median "
                 f"window p50 {middle['latency_ms']['p50']:.1f} ms, p99 {middle['latency_ms']['p99']:.1f} ms"),
        Row(SECTION, f"the gate's floor (its read and record, plain driver), {db}, peak req/s", floor, "req/s",
            hello, "hello-world", "—", None, ratio=floor_ratio,
            note="risk.bench.floor, in the same rounds (ratios "
                 f"{', '.join(f'{r:.2f}' for r in measured['floor_ratios'])}): a plain endpoint with the gate's one "
                 "read and one committed record row; what any gate that records each answer before sending it can "
                 "reach"),
        Row(SECTION, f"POST /api/v1/gate against its floor, {db}", peak, "req/s", floor, "the gate's floor",
            f"≥ {FLOOR_SHARE:g} ×", against >= FLOOR_SHARE, ratio=against,
            note="the share of the floor's rate the gate keeps, its audit event written: what Presign's own code "
                 "costs"),
        Row(SECTION, f"gate p99 at half the peak, {db} ({half:.0f} req/s, open loop)", p99, "ms",
            hello_open["latency_ms"]["p99"], "hello-world p99, same rate", f"≤ {P99_LIMIT_MS:g} ms",
            p99 <= P99_LIMIT_MS,
            note=f"{gate_open['requests']} requests at {gate_open['rate']:.0f}/s, "
                 f"p50 {gate_open['latency_ms']['p50']:.1f} ms"),
    )  # fmt: skip


def fresh_report(site: Site, listing_id: str) -> str:
    """Request a report and run it here (local providers): the gate then answers from it."""
    from listings.models import Listing
    from risk.reports import runner
    from risk.reports.operations import request_report

    with transaction(site.rt.sessions) as session:
        listing = session.get(Listing, listing_id)
        assert listing is not None
        report_id = request_report(session, site.rt, listing=listing, stage=STAGE, requested_by="bench")[0].id
    site.rt.activate()
    if runner.run_report(site.rt, report_id) is None:
        raise BenchError(f"report {report_id} did not complete")
    return report_id


def load(url: str, body: str, headers: list[str], *, concurrency: int = 4, rate: float | None = None,
         seconds: float = 5.0, warmup: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """Run the load generator as its own process and return what it measured."""
    args = [sys.executable, "-m", "risk.bench.load", "--url", url, "--body", body, "--concurrency", str(concurrency),
            "--seconds", str(seconds), "--warmup", str(warmup)]  # fmt: skip
    for header in headers:
        args += ["--header", header]
    if rate is not None:
        args += ["--rate", f"{rate:.3f}"]
    done = subprocess.run(args, capture_output=True, text=True, env=clean_env(), timeout=seconds + warmup + 60)
    if done.returncode != 0:
        raise BenchError(f"the load generator failed ({done.returncode}): {done.stderr[-500:]}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]
