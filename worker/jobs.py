"""RQ jobs: module-level functions taking ids. They let failures raise so that RQ retries them, and
they are idempotent, so a repeated run changes nothing."""

from __future__ import annotations

from risk.reports import runner
from risk.runtime import current


def run_report(report_id: str, unit_id: str | None = None) -> str | None:
    """Run a report's remaining checks and complete it; returns the decision. `unit_id`: see
    `risk.reports.runner.run_report` (jobs queued without it run as they always did)."""
    return runner.run_report(current(), report_id, unit_id=unit_id)
