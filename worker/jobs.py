"""RQ jobs: module-level functions taking ids. They let failures raise so that RQ retries them, and
they are idempotent, so a repeated run changes nothing."""

from __future__ import annotations

from risk.queues import enqueue_deliveries
from risk.reports import runner
from risk.runtime import current
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
    return completed.decision
