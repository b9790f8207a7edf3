"""What the commitment rules (`risk.commitments.rules.applicable`) are given about a deal: its dates, and
whether its deposit report found the title free of seizures."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from risk.commitments.rules import DealDates
from risk.reports.models import Report, ReportCheck


def deal_dates(deal: Any) -> DealDates:
    """The dates of a deal (a Deal, or a row with its date columns)."""
    return DealDates(
        deposit_at=deal.deposit_at,
        signing_at=deal.signing_at,
        online_signing_at=deal.online_signing_at,
        transfer_at=deal.transfer_at,
    )


def seizure_free(checks: Any) -> bool:
    """A title check that completed (an unavailable one read nothing, overridden or not) without a seizure."""
    title = next((c for c in checks if c.check == "title"), None)
    if title is None or title.status == "unavailable":
        return False
    return not any(f["code"] == "TITLE_SEIZURE" for f in title.findings)


def deposit_seizure_free(session: Session, deal: Any, including: Any = None) -> bool | None:
    """Whether the deal's newest complete `deposit` report read the title and found no TITLE_SEIZURE
    (None: no such report).

    `including` is a deposit report being completed right now (with its `checks`), which is then the newest.
    """
    if including is not None and including.stage == "deposit":
        return seizure_free(including.checks)
    newest = session.scalar(
        select(Report.id)
        .where(Report.deal_id == deal.id, Report.stage == "deposit", Report.status == "complete")
        .order_by(Report.completed_at.desc(), Report.id.desc())
        .limit(1)
    )
    if newest is None:
        return None
    return seizure_free(session.scalars(select(ReportCheck).where(ReportCheck.report_id == newest)))
