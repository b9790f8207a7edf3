"""RQ jobs: module-level functions taking ids. They let failures raise so that RQ retries them, and
they are idempotent, so a repeated run changes nothing."""

from __future__ import annotations

from sqlalchemy import select

from risk.ops.metrics import REPORT_SECONDS
from risk.queues import enqueue_deliveries
from risk.reports import runner
from risk.reports.models import Report
from risk.runtime import Runtime, current
from worker.heartbeat import running


def run_report(report_id: str) -> str | None:
    """Run a report's remaining checks and complete it, then hand over the webhook deliveries that
    completing it wrote; returns the decision (None: it was complete already)."""
    rt = current()
    with running(report_id):
        completed = runner.run_report(rt, report_id)
    if completed is None:
        return None
    enqueue_deliveries(rt, completed.deliveries)
    _observe_latency(rt, report_id)
    return completed.decision


def _observe_latency(rt: Runtime, report_id: str) -> None:
    with rt.sessions() as session:
        row = session.execute(
            select(Report.stage, Report.created_at, Report.completed_at).where(Report.id == report_id)
        ).one()
    if row.completed_at is not None:
        REPORT_SECONDS.labels(row.stage).observe((row.completed_at - row.created_at).total_seconds())
