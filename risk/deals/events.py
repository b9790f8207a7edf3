"""What a deal's report completing tells the contract system: `report.completed` always, and
`gate.changed` when its decision differs from the deal's previous complete report of that stage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from risk.deals.models import Deal
from risk.reports.models import Report

if TYPE_CHECKING:
    from risk.runtime import Runtime


def previous_decision(session: Session, report: Any) -> str | None:
    """The decision of the deal's newest complete report of the same stage before this one."""
    return session.scalars(
        select(Report.decision)
        .where(
            Report.deal_id == report.deal_id,
            Report.stage == report.stage,
            Report.status == "complete",
            Report.id != report.id,
        )
        .order_by(Report.completed_at.desc(), Report.id.desc())
        .limit(1)
    ).first()


def notify_deal(
    session: Session, rt: Runtime, report: Any, deal: Deal, decision: str, reasons: list[dict[str, Any]]
) -> list[str]:
    """Write the events in the completing transaction; returns their ids, to deliver after commit.

    `report`: anything with the report's id, listing_id, deal_id and stage."""
    from risk.webhooks.models import WebhookEvent
    from risk.webhooks.operations import emit

    now = rt.clock.now()
    before = previous_decision(session, report)
    common = {"deal_id": deal.id, "listing_id": report.listing_id}

    def event(type: str, data: dict[str, Any]) -> WebhookEvent | None:
        return emit(
            session,
            deal_id=deal.id,
            company=deal.company,
            store_id=deal.store_id,
            creator_id=deal.created_by,
            webhook_url=deal.webhook_url,
            type=type,
            data={**common, **data},
            clock=rt.clock,
        )

    events = [event("report.completed", {"report_id": report.id, "stage": report.stage, "decision": decision})]
    if before != decision:
        deal.changed_at = now  # agents see it through `changed_since`
        changed = {"stage": report.stage, "previous_decision": before, "decision": decision,
                   "report_id": report.id, "reasons": reasons}  # fmt: skip
        events.append(event("gate.changed", changed))
    session.flush()
    return [e.id for e in events if e is not None]
