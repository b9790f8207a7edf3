"""What a deal's gate tells the contract system: `report.completed` when a report of the deal completes,
and `gate.changed` whenever the gate decision the deal gets for a stage differs from the last
`gate.changed` sent for that stage (API v1.1) — after a report completes, a listing revision, an
override approved or declined, a requirement satisfied."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from risk.deals.models import Deal, DealGateDecision
from risk.gate.operations import compute
from risk.reports.models import STAGES, Report
from risk.webhooks.operations import emit

if TYPE_CHECKING:
    from risk.runtime import Runtime


def _event(session: Session, rt: Runtime, deal: Deal, type: str, data: dict[str, Any]) -> str | None:
    event = emit(
        session,
        deal_id=deal.id,
        company=deal.company,
        store_id=deal.store_id,
        creator_id=deal.created_by,
        webhook_url=deal.webhook_url,
        type=type,
        data={"deal_id": deal.id, "listing_id": deal.listing_id, **data},
        clock=rt.clock,
    )
    return None if event is None else event.id


def notify_deal(session: Session, rt: Runtime, report: Any, deal: Deal, decision: str) -> list[str]:
    """A report of the deal completed: `report.completed`, then `gate.changed` if the deal's gate
    decision for the report's stage changed. Written in the completing transaction; returns the event
    ids, to deliver after commit.

    `report`: anything with the report's id, listing_id, deal_id and stage."""
    data = {"report_id": report.id, "stage": report.stage, "decision": decision}
    completed = _event(session, rt, deal, "report.completed", data)
    changed = gate_changes(session, rt, deal, [report.stage], completing=report.id)
    return [e for e in (completed, *changed) if e is not None]


def gate_changes(
    session: Session, rt: Runtime, deal: Deal | str, stages: str | Iterable[str] | None = None, *,
    completing: str | None = None,
) -> list[str]:  # fmt: skip
    """Emit `gate.changed` for each of the deal's `stages` (default: all) whose gate decision now
    differs from the last `gate.changed` of that stage; returns the ids of the events written.

    Call it in the transaction of whatever may have changed the deal's gate (a report of the deal
    completing, a listing revision, an override approved or declined, a requirement satisfied), after
    that change is flushed; the caller commits, then hands the ids to `enqueue_deliveries`. `deal`: a
    Deal or its id. The decision is the gate's own (`risk.gate.operations.compute`, asked by deal),
    worked out without starting a refresh or recording an answer. Before any `gate.changed` of a
    stage, the change is measured against the deal's previous complete report of that stage (the one
    before `completing`, the report being completed now); a stage with neither, and no report the
    gate could answer from, has nothing to announce. The deal's row is locked first, so that two
    transactions never announce the same change twice.
    """
    deal_id = deal if isinstance(deal, str) else deal.id
    locked = session.scalars(
        select(Deal).where(Deal.id == deal_id).with_for_update(key_share=True).execution_options(populate_existing=True)
    ).one()
    wanted = list(STAGES) if stages is None else [stages] if isinstance(stages, str) else list(stages)
    announced = {
        row.stage: row
        for row in session.scalars(
            select(DealGateDecision).where(DealGateDecision.deal_id == deal_id, DealGateDecision.stage.in_(wanted))
        )
    }
    now = rt.clock.now()
    events: list[str] = []
    for stage in wanted:
        body = compute(session, rt, listing_id=locked.listing_id, deal=locked, stage=stage, commitments=False).body
        last = announced.get(stage)
        if last is not None:
            before: str | None = last.decision
        elif body["report_id"] is None:
            continue  # nothing was ever said of this stage, and there is no report to speak of
        else:
            before = _previous_decision(session, deal_id, stage, completing)
        if body["decision"] == before:
            continue
        data = {"stage": stage, "previous_decision": before, "decision": body["decision"],
                "report_id": body["report_id"], "reasons": body["reasons"]}  # fmt: skip
        event_id = _event(session, rt, locked, "gate.changed", data)
        if last is None:
            last = DealGateDecision(deal_id=deal_id, stage=stage)
            session.add(last)
        last.decision, last.report_id, last.event_id = body["decision"], body["report_id"], event_id
        last.changed_at = now
        locked.changed_at = now  # agents see it through `changed_since`
        if event_id is not None:
            events.append(event_id)
    session.flush()
    return events


def _previous_decision(session: Session, deal_id: str, stage: str, completing: str | None) -> str | None:
    """The decision of the deal's newest complete report of `stage` other than `completing`."""
    stmt = select(Report.decision).where(Report.deal_id == deal_id, Report.stage == stage, Report.status == "complete")
    if completing is not None:
        stmt = stmt.where(Report.id != completing)
    return session.scalars(stmt.order_by(Report.completed_at.desc(), Report.id.desc()).limit(1)).first()
