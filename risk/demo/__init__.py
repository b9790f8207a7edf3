"""`presign demo`: a small sample world checked end to end through the real API, queue and workers.

It uses its own instance folder (`<instance>/demo`), so it never touches a real instance's data, and
starts fresh on every run unless `--keep` is given.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select, update

from checks.codes import label
from listings.models import Listing
from risk.children import die_with_parent
from risk.db import transaction
from risk.deals.models import Deal
from risk.demo.world import DEAL_SCENARIOS, SCENARIOS, DealScenario, deal_body, listing_body, records
from risk.embedded_redis import EmbeddedRedis
from risk.reports.models import Report
from risk.runtime import Runtime
from risk.schema import upgrade
from risk.serve import Child, child_env
from risk.settings import Settings

log = logging.getLogger(__name__)
STAGE = "signing"
TIMEOUT_SECONDS = 180


def run_demo(settings: Settings, *, workers: int = 2, keep: bool = False) -> int:
    console = Console(stderr=True)
    folder = settings.instance / "demo"
    if folder.exists() and not keep:
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # Its own SQLite file unless a database is configured; then earlier demo listings are withdrawn
    # first, so that they do not show up as duplicates of this run's.
    database_url = os.environ.get("PRESIGN_DATABASE_URL") or f"sqlite:///{folder / 'presign.db'}"
    settings = replace(settings, instance=folder, database_url=database_url)
    rt = Runtime.build(settings)
    upgrade(rt.engine)
    redis = None if settings.redis_url else EmbeddedRedis(folder).start()
    redis_url = settings.redis_url or (redis.url if redis else "")
    rt = replace(rt, settings=replace(rt.settings, redis_url=redis_url)).activate()
    children = [Child(f"worker-{n}", _worker(child_env(rt, redis_url), folder / f"worker-{n}.log"))
                for n in range(1, workers + 1)]  # fmt: skip
    try:
        console.print(f"[bold]Presign demo[/] — instance {folder}")
        _import_world(rt, console)
        for child in children:
            child.start()
        report_ids = _post_listings(rt, console)
        deals = _post_deals(rt, report_ids, console)
        deal_reports = {f"{d.scenario.key}:{stage}": rid for d in deals for stage, rid in d.reports.items()}
        if not _wait(rt, {**report_ids, **deal_reports}, console):
            console.print(f"[red]reports did not complete within {TIMEOUT_SECONDS}s; see {folder}/worker-*.log[/]")
            return 1
        return _print_results(rt, report_ids) | _print_deals(deals)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(30)
        if redis is not None:
            redis.stop()
        rt.close()


def _worker(env: dict[str, str], log_path: Path) -> Callable[[], subprocess.Popen[bytes]]:
    def launch() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log_file:
            return subprocess.Popen(
                [sys.executable, "-m", "risk.cli", "worker"], env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log_file, preexec_fn=die_with_parent(),
            )  # fmt: skip

    return launch


def _import_world(rt: Runtime, console: Console) -> None:
    from checks.providers.importer import import_records

    result = import_records(rt, records(rt.clock.now()), progress=True)
    console.print(f"imported the sample registries: {result.summary()}")


def _post_listings(rt: Runtime, console: Console) -> dict[str, str]:
    """Create an agent key and, through the real API, one listing and one report per scenario."""
    from risk.app import create_app
    from risk.auth.operations import create_client

    with transaction(rt.sessions) as session:
        session.execute(
            update(Listing)
            .where(Listing.external_id.like("DEMO-%"), Listing.status == "active")
            .values(status="withdrawn", updated_at=rt.clock.now())
        )
        # Likewise earlier demo deals: an open one would put this run's listing of its unit under contract.
        session.execute(
            update(Deal)
            .where(Deal.external_id.like("DEMO-%"), Deal.status == "open")
            .values(status="cancelled", updated_at=rt.clock.now())
        )
        key = create_client(session, rt.clock, rt.secret_box, role="agent", name="demo agent", store="demo-store").key
    client = create_app(runtime=rt).test_client()
    headers = {"Authorization": f"Bearer {key}"}
    run = uuid.uuid4().hex[:6]
    report_ids: dict[str, str] = {}
    for scenario in SCENARIOS:
        response = client.post("/api/v1/listings", json=listing_body(scenario, run), headers=headers)
        _expect(response, 201, f"listing {scenario.key}")
        listing_id = response.get_json()["id"]
        response = client.post(f"/api/v1/listings/{listing_id}/reports", json={"stage": STAGE}, headers=headers)
        _expect(response, 202, f"report for {scenario.key}")
        report_ids[scenario.key] = response.get_json()["id"]
    console.print(f"posted {len(report_ids)} listings and asked for a [bold]{STAGE}[/] report on each")
    return report_ids


@dataclass
class _Deal:
    scenario: DealScenario
    deal_id: str
    reports: dict[str, str]  # stage -> report id
    client: Any
    headers: dict[str, str]


def _post_deals(rt: Runtime, report_ids: dict[str, str], console: Console) -> list[_Deal]:
    """As the contract system: a deal on each deal scenario's listing and a report of the deal per stage."""
    from risk.app import create_app
    from risk.auth.operations import create_client

    with transaction(rt.sessions) as session:
        key = create_client(session, rt.clock, rt.secret_box, role="contract_system", name="demo contracts").key
        listing_ids = {d.key: session.get(Report, report_ids[d.listing]).listing_id for d in DEAL_SCENARIOS}  # type: ignore[union-attr]
    client = create_app(runtime=rt).test_client()
    headers = {"Authorization": f"Bearer {key}"}
    run = uuid.uuid4().hex[:6]
    deals = []
    for scenario in DEAL_SCENARIOS:
        body = deal_body(scenario, run, listing_ids[scenario.key], rt.clock.now())
        response = client.post("/api/v1/deals", json=body, headers=headers)
        _expect(response, 201, f"deal {scenario.key}")
        deal = _Deal(scenario, response.get_json()["id"], {}, client, headers)
        for stage in scenario.expect:
            asked = {"stage": stage, "deal_id": deal.deal_id}
            response = client.post(f"/api/v1/listings/{body['listing_id']}/reports", json=asked, headers=headers)
            _expect(response, 202, f"{stage} report for deal {scenario.key}")
            deal.reports[stage] = response.get_json()["id"]
        deals.append(deal)
    console.print(f"posted {len(deals)} deal(s) as the contract system, with a report of each at its stages")
    return deals


def _print_deals(deals: list[_Deal]) -> int:
    """The gate asked by deal at each stage, with the deal's requirements."""
    console = Console()
    table = Table(title="Presign demo — the gate asked by deal", show_lines=True)
    for column in ("deal", "stage", "gate", "reasons", "requirements"):
        table.add_column(column, overflow="fold")
    mismatches = 0
    for deal in deals:
        for stage, expected in deal.scenario.expect.items():
            response = deal.client.post("/api/v1/gate", json={"deal_id": deal.deal_id, "stage": stage},
                                        headers=deal.headers)  # fmt: skip
            _expect(response, 200, f"gate for deal {deal.scenario.key} at {stage}")
            answer = response.get_json()
            open_ids = {r["requirement_id"] for r in answer["reasons"] if r["code"] == "REQUIREMENT_OPEN"}
            blocking = [r["code"] for r in answer["requirements"] if r["id"] in open_ids]
            blocking += [r["code"] for r in answer["reasons"] if r["decision"] == "BLOCK"]
            # A BLOCK must come from what the deal was built for (an open requirement, a finding).
            ok = answer["decision"] == expected and (deal.scenario.because in blocking) == (expected == "BLOCK")
            mismatches += not ok
            reasons = "\n".join(f"{r['code']} {label(r['code'])}" for r in answer["reasons"])
            shown = [
                f"{r['code']}（{r['status']}，{r['who']}，{r['due_stage']} 前）\n{r['what']}"
                for r in answer["requirements"]
            ]
            requirements = "\n".join(shown) or "—"
            mark = "" if ok else f"\n[red](expected {expected})[/]"
            colour = {"ALLOW": "green", "REVIEW": "yellow", "BLOCK": "red"}[answer["decision"]]
            table.add_row(deal.scenario.title, stage, f"[{colour}]{answer['decision']}[/]{mark}", reasons, requirements)
    console.print(table)
    if mismatches:
        console.print(f"[red]{mismatches} deal stage(s) did not get the gate answer the deal was built for[/]")
        return 1
    return 0


def _expect(response: Any, status: int, what: str) -> None:
    if response.status_code != status:
        raise RuntimeError(f"{what}: HTTP {response.status_code} {response.get_data(as_text=True)}")


def _wait(rt: Runtime, report_ids: dict[str, str], console: Console) -> bool:
    ids = list(report_ids.values())
    deadline = time.monotonic() + TIMEOUT_SECONDS
    with Progress(
        TextColumn("checking listings"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("reports", total=len(ids))
        while time.monotonic() < deadline:
            with rt.sessions() as session:
                done = session.scalar(
                    select(func.count()).select_from(Report).where(Report.id.in_(ids), Report.status == "complete")
                )
            progress.update(task, completed=done or 0)
            if done == len(ids):
                return True
            time.sleep(0.2)
    return False


def _print_results(rt: Runtime, report_ids: dict[str, str]) -> int:
    from risk.reports.schemas import ReportSchema

    console = Console()
    table = Table(title=f"Presign demo — {STAGE} reports", show_lines=True)
    for column in ("listing", "scenario", "decision", "reasons", "commitments"):
        table.add_column(column, overflow="fold")  # codes wrap rather than lose their ends
    mismatches = 0
    colours = {"ALLOW": "green", "REVIEW": "yellow", "BLOCK": "red"}
    with rt.sessions() as session:
        for scenario in SCENARIOS:
            body = ReportSchema().dump(session.get(Report, report_ids[scenario.key]))
            decision = body["decision"]
            ok = decision == scenario.expect
            mismatches += not ok
            reasons = "\n".join(f"{r['code']} {label(r['code'])}" for r in body["reasons"]) or "—"
            commitments = "\n".join(f"{c['code']} v{c['version']}" for c in body["commitments"]) or "—"
            where = f"{scenario.info.city} {scenario.info.name}\n{scenario.building}号楼 {scenario.room}"
            mark = "" if ok else f"\n[red](expected {scenario.expect})[/]"
            table.add_row(where, scenario.title, f"[{colours[decision]}]{decision}[/]{mark}", reasons, commitments)
    console.print(table)
    if mismatches:
        console.print(f"[red]{mismatches} scenario(s) did not get the decision the world was built for[/]")
        return 1
    console.print("[green]every scenario got the decision its world was built for[/]")
    return 0
