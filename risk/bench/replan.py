"""4. Re-check planning: re-plan N deals whose dates changed (`risk.deals.rechecks.replan` on them, then the
commit), then check that no plan is duplicated. The limit is the database's own cost of writing the
same plan rows with a plain executemany UPDATE, in the same run."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.orm import Session

from risk.bench.context import Context
from risk.bench.infra import BenchError
from risk.bench.results import Row
from risk.bench.site import Site
from risk.db import begin_write, new_id
from risk.deals.models import RECHECK_STAGES, Deal, RecheckPlan
from risk.deals.rechecks import replan

SECTION = "4 re-check planning"
LIMIT_SECONDS = 5.0
BATCH = 1000


def run(ctx: Context) -> None:
    targets: list[tuple[str, str | None]] = [("SQLite", None)]
    if ctx.pg:
        targets.append(("PostgreSQL", ctx.scratch.postgres("replan")))
    for label, url in targets:
        if label == "PostgreSQL" and url is None:
            ctx.run.skipped.append("re-check planning on PostgreSQL (could not create a database)")
            continue
        site = Site.create(ctx.scratch, f"replan-{label.lower()}", redis_url=ctx.redis_url, database_url=url)
        measure(ctx, site, label)


def measure(ctx: Context, site: Site, label: str) -> None:
    n, rt = ctx.sizes.replan_deals, site.rt
    ctx.step(f"re-check planning ({label}): {n} deals with their plans", total=n)
    listing_id = site.add_listings(1)[0]
    ids = _deals(ctx, site, listing_id, n)
    per_deal = len(RECHECK_STAGES) * len(rt.settings.recheck_before)

    ctx.step(f"re-check planning ({label}): re-planning {n} deals after their dates moved")
    with begin_write(rt.sessions()) as session:
        deals = list(session.scalars(select(Deal).where(Deal.company == "default", Deal.status == "open")))
        now = rt.clock.now()
        for deal in deals:
            deal.online_signing_at += timedelta(days=1)
            deal.transfer_at = (deal.transfer_at or deal.online_signing_at) + timedelta(days=1)
            deal.updated_at = deal.changed_at = now
        session.flush()
        # Timed: what re-planning adds once the dates have moved (the deals' own UPDATEs are flushed).
        started = time.perf_counter()
        written = replan(session, rt, deals)
        session.commit()
        seconds = time.perf_counter() - started

    with rt.sessions() as session:
        again = replan(session, rt, list(session.scalars(select(Deal).where(Deal.company == "default"))))
        session.rollback()
        plans, duplicates, wrong = _verify(session)
    scheduled = _scheduled_jobs(ctx)
    if len(deals) != n or plans != n * per_deal or duplicates or wrong:
        raise BenchError(f"re-planning {label}: {len(deals)} deals, {plans} plans (expected {n * per_deal}), "
                         f"{duplicates} duplicated, {wrong} at the wrong time")  # fmt: skip
    floor = _floor(site, ids)
    ctx.run.data.setdefault("replan", {})[label] = {"deals": n, "seconds": seconds, "plans_written": written,
                                                    "second_replan_writes": again, "plans": plans,
                                                    "duplicates": duplicates, "scheduled_rq_jobs": scheduled,
                                                    "floor_seconds": floor}  # fmt: skip
    limit = LIMIT_SECONDS * n / 10_000
    ctx.run.add(
        Row(SECTION, f"re-plan {n:,} deals, {label}", seconds, "s", floor, "plain UPDATEs of the same rows",
            f"< {limit:g} s", None if ctx.run.quick else seconds < limit,
            note=f"{written:,} plans rewritten, {duplicates} duplicated, a second re-plan wrote {again}; "
                 f"RQ holds {scheduled} scheduled jobs (plans live in the database)"),
    )  # fmt: skip


def _deals(ctx: Context, site: Site, listing_id: str, n: int) -> list[str]:
    """n open deals on one listing, inserted in bulk, then planned as creating them plans them."""
    rt = site.rt
    now = rt.clock.now()
    table = cast(Table, Deal.__table__)
    ids = []
    with begin_write(rt.sessions()) as session:
        for start in range(0, n, BATCH):
            rows = []
            for i in range(start, min(n, start + BATCH)):
                deal_id = new_id("dea")
                ids.append(deal_id)
                rows.append({
                    "id": deal_id, "company": "default", "store_id": "default", "created_by": "bench",
                    "external_id": f"BENCH-{i}", "listing_id": listing_id, "buyer_name": "买方",
                    "buyer_id_type": "passport", "buyer_id_hash": "0" * 64, "buyer_id_masked": "****1234",
                    "deposit_amount": 100_000, "deposit_at": now - timedelta(days=2),
                    "signing_at": now - timedelta(days=1), "online_signing_at": now + timedelta(days=10),
                    "transfer_at": now + timedelta(days=20), "webhook_url": None, "status": "open",
                    "created_at": now, "updated_at": now, "changed_at": now,
                })  # fmt: skip
            session.execute(table.insert(), rows)
            ctx.advance(len(rows))
        session.commit()
    for start in range(0, n, BATCH):
        with begin_write(rt.sessions()) as session:
            chunk = list(session.scalars(select(Deal).where(Deal.id.in_(ids[start : start + BATCH]))))
            replan(session, rt, chunk)
            session.commit()
    return ids


def _verify(session: Session) -> tuple[int, int, int]:
    """(plans, duplicated plan slots, plans whose run_at is not the deal's date minus the offset)."""
    plans = session.scalar(select(func.count()).select_from(RecheckPlan)) or 0
    duplicates = session.scalar(
        select(func.count()).select_from(
            select(RecheckPlan.deal_id).group_by(RecheckPlan.deal_id, RecheckPlan.stage, RecheckPlan.offset_seconds)
            .having(func.count() > 1).subquery()
        )
    ) or 0  # fmt: skip
    wrong = 0
    rows = session.execute(select(RecheckPlan, Deal).join(Deal, Deal.id == RecheckPlan.deal_id)).all()
    for plan, deal in rows:
        date = getattr(deal, RECHECK_STAGES[plan.stage])
        if plan.run_at != date - timedelta(seconds=plan.offset_seconds) or plan.status != "planned":
            wrong += 1
    return plans, duplicates, wrong


def _scheduled_jobs(ctx: Context) -> int:
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    from risk.queues import ALL_QUEUES

    redis = ctx.redis()
    ids: list[str] = []
    for name in ALL_QUEUES:
        ids += ScheduledJobRegistry(queue=Queue(name, connection=redis)).get_job_ids()
    if len(ids) != len(set(ids)):
        raise BenchError("duplicate scheduled jobs in RQ")
    return len(ids)


def _floor(site: Site, ids: list[str]) -> float:
    """The plan rows written with one plain executemany UPDATE and committed (the deals' dates go first, untimed)."""
    rt = site.rt
    deals, plans = cast(Table, Deal.__table__), cast(Table, RecheckPlan.__table__)
    with rt.sessions() as session:
        plan_rows: list[dict[str, Any]] = [
            {"pid": pid, "run_at": run_at + timedelta(days=1)}
            for pid, run_at in session.execute(select(RecheckPlan.id, RecheckPlan.run_at))
        ]
        deal_rows: list[dict[str, Any]] = [
            {"did": did, "o": o + timedelta(days=1), "t": (t or o) + timedelta(days=1)}
            for did, o, t in session.execute(select(Deal.id, Deal.online_signing_at, Deal.transfer_at))
        ]
    started = time.perf_counter()
    with begin_write(rt.sessions()) as session:
        session.execute(
            deals.update()
            .where(deals.c.id == bindparam("did"))
            .values(online_signing_at=bindparam("o"), transfer_at=bindparam("t")),
            deal_rows,
        )
        session.flush()
        started = time.perf_counter()
        session.execute(plans.update().where(plans.c.id == bindparam("pid")).values(run_at=bindparam("run_at")),
                        plan_rows)  # fmt: skip
        session.commit()
        return time.perf_counter() - started
