"""State changes of reports. Services flush; the caller (request handler or job) commits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from risk.audit.events import actor_for, record
from risk.db import new_id
from risk.errors import ValidationFailed
from risk.reports.models import STAGES, Report

if TYPE_CHECKING:
    from listings.models import Listing
    from risk.runtime import Runtime


def request_report(
    session: Session,
    rt: Runtime,
    *,
    listing: Listing,
    stage: str,
    requested_by: str,
    deal_id: str | None = None,
    deal_snapshot: dict[str, Any] | None = None,
) -> Report:
    """Write a pending report for `listing` at `stage`. Enqueue it with `worker.queues.enqueue_report`
    only after the transaction commits."""
    if stage not in STAGES:
        raise ValidationFailed("unknown stage", fields={"stage": [f"must be one of: {', '.join(STAGES)}"]})
    now = rt.clock.now()
    subject = listing.snapshot()
    subject["deal"] = deal_snapshot
    report = Report(
        id=new_id("rpt"),
        company=listing.company,
        listing_id=listing.id,
        deal_id=deal_id,
        stage=stage,
        status="pending",
        subject=subject,
        requested_by=requested_by,
        attempts=0,
        created_at=now,
        updated_at=now,
        checks=[],  # a new report has none: its body is built without asking the database
    )
    session.add(report)
    session.flush()
    record(session, company=report.company, type="report.requested", actor=actor_for(session, requested_by),
           subject_kind="report", subject_id=report.id, data={"report_id": report.id, "listing_id": listing.id,
           "deal_id": deal_id, "stage": stage}, at=now)  # fmt: skip
    return report
