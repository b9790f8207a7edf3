"""Background re-checks before online signing (网签) and transfer (过户).

Creating a deal or changing its dates plans a re-check at each PRESIGN_RECHECK_BEFORE offset before
`online_signing_at` and before `transfer_at`. Plans live in the database under deterministic ids, so
re-planning replaces and never duplicates; an offset already passed (but before the date itself)
is due at once. The worker's sweep (`start_due_rechecks`, under a database lease) starts every due
plan as a refresh report — exactly one in flight per deal and stage — and enqueues it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from listings.models import Listing
from risk.db import begin_write
from risk.deals.models import RECHECK_STAGES, Deal, RecheckPlan
from risk.runtime import Runtime

log = logging.getLogger(__name__)
SWEEP_BATCH = 200


def plan_id(deal_id: str, stage: str, offset_seconds: int) -> str:
    return f"rck_{deal_id}_{stage}_{offset_seconds}"


def desired_plans(rt: Runtime, deal: Deal, now: datetime) -> dict[str, tuple[str, int, datetime]]:
    """plan id -> (stage, offset, run_at) for an open deal; dates already reached get no plan."""
    if deal.status != "open":
        return {}
    out: dict[str, tuple[str, int, datetime]] = {}
    for stage, field in RECHECK_STAGES.items():
        date: datetime | None = getattr(deal, field)
        if date is None or date <= now:
            continue
        for offset in rt.settings.recheck_before:
            seconds = int(offset.total_seconds())
            # The nominal time, even if already past: then it is due at once, and stays the same on re-plans.
            out[plan_id(deal.id, stage, seconds)] = (stage, seconds, date - offset)
    return out


def replan(session: Session, rt: Runtime, deals: Iterable[Deal]) -> int:
    """Bring the deals' plans in line with their dates, in a few bulk statements. Returns plans written.

    A plan whose run time did not move is left as it is (started or not); a moved one is planned
    again; plans no longer wanted (date passed, offset removed, deal closed) are dropped unless started.
    """
    deals = list(deals)
    if not deals:
        return 0
    now = rt.clock.now()
    ids = [d.id for d in deals]
    # Plain rows and executemany statements, since loading and flushing plans as ORM objects was most
    # of a large re-plan's time.
    existing = {
        pid: (run_at, status)
        for pid, run_at, status in session.execute(
            select(RecheckPlan.id, RecheckPlan.run_at, RecheckPlan.status).where(RecheckPlan.deal_id.in_(ids))
        )
    }
    wanted: dict[str, tuple[str, str, int, datetime]] = {}
    for deal in deals:
        for pid, (stage, offset, run_at) in desired_plans(rt, deal, now).items():
            wanted[pid] = (deal.id, stage, offset, run_at)
    stale = [pid for pid, (_run_at, status) in existing.items() if pid not in wanted and status == "planned"]
    if stale:
        session.execute(delete(RecheckPlan).where(RecheckPlan.id.in_(stale)))
    inserts = []
    moved = []
    for pid, (deal_id, stage, offset, run_at) in wanted.items():
        plan = existing.get(pid)
        if plan is None:
            inserts.append(
                {"id": pid, "deal_id": deal_id, "stage": stage, "offset_seconds": offset, "run_at": run_at,
                 "status": "planned", "report_id": None, "updated_at": now}
            )  # fmt: skip
        elif plan[0] != run_at:
            moved.append({"id": pid, "run_at": run_at, "status": "planned", "report_id": None, "updated_at": now})
    if inserts:
        session.execute(insert(RecheckPlan), inserts)
    if moved:
        session.execute(update(RecheckPlan), moved)  # bulk UPDATE by primary key: one executemany
    session.flush()
    return len(moved) + len(inserts)


def start_due_rechecks(rt: Runtime, deal_id: str | None = None) -> list[str]:
    """Start every due plan as a refresh report (one in flight per deal and stage) and enqueue them.

    Returns the ids of reports started. Safe to run from several processes: each plan is claimed with
    a compare-and-set update, and the refresh key makes a second start answer with the first.
    """
    from risk.gate.operations import start_refresh
    from risk.queues import enqueue_report

    now = rt.clock.now()
    started: list[str] = []
    with begin_write(rt.sessions()) as session:
        stmt = (
            select(RecheckPlan, Deal, Listing)
            .join(Deal, Deal.id == RecheckPlan.deal_id)
            .join(Listing, Listing.id == Deal.listing_id)
            .where(RecheckPlan.status == "planned", RecheckPlan.run_at <= now, Deal.status == "open")
            .order_by(RecheckPlan.run_at)
            .limit(SWEEP_BATCH)
        )
        if deal_id is not None:
            stmt = stmt.where(RecheckPlan.deal_id == deal_id)
        for plan, deal, listing in session.execute(stmt).all():
            # A plan overdue past the date itself (the workers were down) has nothing left to protect.
            date = getattr(deal, RECHECK_STAGES[plan.stage])
            status = "started" if date is not None and date > now else "expired"
            claimed = session.execute(
                update(RecheckPlan)
                .where(RecheckPlan.id == plan.id, RecheckPlan.status == "planned", RecheckPlan.run_at == plan.run_at)
                .values(status=status, updated_at=now)
            ).rowcount  # type: ignore[attr-defined]
            if not claimed or status == "expired":
                continue
            report_id, new = start_refresh(
                session, rt, listing=listing, deal=deal, stage=plan.stage, client_id=None
            )
            session.execute(update(RecheckPlan).where(RecheckPlan.id == plan.id).values(report_id=report_id))
            if new:
                started.append(report_id)
            log.info("re-check %s for deal %s at %s: report %s", plan.stage, deal.id, plan.run_at, report_id)
        session.commit()
    for report_id in started:
        enqueue_report(rt, report_id)
    return started
