"""Running a report, top to bottom:

1. claim: one compare-and-set UPDATE marks the report running and counts the attempt (`_claim`);
2. the report's registered checks (`checks.registry.checks_for`) run concurrently on the runtime's
   thread pool, so a report takes about as long as its slowest provider (`_run_checks`); while one
   still runs after `SHOWN_AFTER` (a slow provider), the others are saved as they finish, so that a
   reader of the running report sees them;
3. one transaction saves every (other) result and finalises the report: the policy decides, the commitments
   are attached, the digest is computed over the report's API body, and a second compare-and-set
   completes it (`_save`, `_complete`);
4. the caller (the RQ job, `worker.jobs.run_report`) enqueues the webhook deliveries that transaction
   wrote (`Completed.deliveries`).

Runs are idempotent. A second run (an RQ retry, the reconciler after a lost job, two workers at once)
skips checks already saved and cannot complete a report twice. A report that keeps failing finishes
after `report_max_attempts` runs with its missing checks `unavailable`, so it always reaches `complete`.

Whatever fails after the checks finished (a check's bug, deciding, attaching commitments) never costs
a finding: the results are saved alone before the error propagates for RQ to retry, and the last
attempt completes the report with the decision its findings give, leaving out the commitments that
could not be worked out and saying so in the report's `notes`.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from checks import registry
from checks.base import Check, CheckContext, CheckOutcome, Finding, ProviderUnavailable
from checks.providers import ReportAnswers
from listings.market.data import SqlMarketData, remember_many
from listings.market.own import SqlMarket
from risk.audit.events import SYSTEM, record
from risk.commitments.inputs import deal_dates, deposit_seizure_free
from risk.commitments.rules import CheckView, applicable
from risk.db import begin_write
from risk.deals.events import notify_deal
from risk.deals.models import Deal
from risk.ops.metrics import CHECK_SECONDS, REPORT_SECONDS
from risk.policy import current_policy, report_overridable
from risk.reports.digest import digest
from risk.reports.models import Report, ReportCheck
from risk.reports.schemas import ReportSchema
from risk.requirements.operations import settle
from risk.runtime import Runtime

log = logging.getLogger(__name__)
_REPORTS = cast(Table, Report.__table__)
_CHECKS = cast(Table, ReportCheck.__table__)
_CLAIM = (
    update(_REPORTS)
    .where(_REPORTS.c.id == bindparam("report_id"), _REPORTS.c.status != "complete")
    .values(
        status="running",
        attempts=_REPORTS.c.attempts + 1,
        started_at=func.coalesce(_REPORTS.c.started_at, bindparam("now")),
        updated_at=bindparam("now"),
    )
    .returning(*_REPORTS.c)
)
_COMPLETED = (
    "status", "decision", "policy_version", "reasons", "overridable", "commitments", "notes", "completed_at",
    "updated_at", "digest", "requirements", "exceptions",
)  # fmt: skip
# A compare-and-set: only the run that completes the report changes it (and clears its refresh key).
_COMPLETE = (
    update(_REPORTS)
    .where(_REPORTS.c.id == bindparam("report_id"), _REPORTS.c.status != "complete")
    .values({**{name: bindparam(f"v_{name}", type_=_REPORTS.c[name].type) for name in _COMPLETED}, "refresh_key": None})
)
_SAVED = select(_CHECKS).where(_CHECKS.c.report_id == bindparam("report_id")).order_by(_CHECKS.c.position)
_BODY = ReportSchema()
SHOWN_AFTER = 1.0  # seconds: a report slower than this saves its finished checks first, for readers to see


@dataclass(frozen=True)
class Completed:
    """A report this run completed: its decision, the webhook events written with it, to enqueue once
    committed (`risk.queues.enqueue_deliveries`), and when it completed."""

    decision: str
    deliveries: list[str]
    completed_at: datetime


def run_report(rt: Runtime, report_id: str) -> Completed | None:
    """Run what is left of a report and complete it; None if it was complete already (or another run
    completed it first)."""
    report = _claim(rt, report_id)
    if report is None:
        return None
    checks = registry.checks_for(report.stage, report.deal_id is not None)
    if report.attempts > 1:  # only an earlier run can have saved checks
        saved = _saved_names(rt, report_id)
        checks = {name: check for name, check in checks.items() if name not in saved}
    if report.attempts > rt.settings.report_max_attempts:
        log.error("report %s: giving up on %s after %d runs", report_id, ", ".join(checks) or "-", report.attempts - 1)
        reason = f"check did not finish after {report.attempts - 1} runs"
        return _observed(report, _save(rt, report, [_unavailable(rt, name, "presign", reason) for name in checks]))
    outcomes, error = _run_checks(rt, report, checks)
    if error is not None:
        _save(rt, report, outcomes, finish=False)
        raise error
    return _observed(report, _save(rt, report, outcomes))


def _observed(report: Any, completed: Completed | None) -> Completed | None:
    """Count a completed report's latency, from its request to its completion, in the metrics."""
    if completed is not None:
        REPORT_SECONDS.labels(report.stage).observe((completed.completed_at - report.created_at).total_seconds())
    return completed


def _claim(rt: Runtime, report_id: str) -> Any:
    """Mark the report running and count the attempt, in its own transaction; its row as it now
    stands, or None if it is complete."""
    with begin_write(rt.sessions()) as session:
        report = session.execute(_CLAIM, {"report_id": report_id, "now": rt.clock.now()}).first()
        if report is None and session.get(Report, report_id) is None:
            raise LookupError(f"report {report_id} does not exist")
        session.commit()
    return report


def _saved_names(rt: Runtime, report_id: str) -> set[str]:
    with rt.sessions() as session:
        return set(session.scalars(select(_CHECKS.c.check).where(_CHECKS.c.report_id == report_id)))


def _run_checks(rt: Runtime, report: Any, checks: dict[str, Check]) -> tuple[list[CheckOutcome], BaseException | None]:
    """Every check at once, on the runtime's pool; their outcomes, and the first check's error if any
    raised anything but ProviderUnavailable (a bug: RQ retries the job, the attempt cap bounds it)."""
    ctx = CheckContext(
        stage=report.stage,
        company=report.company,
        subject=report.subject,
        providers=ReportAnswers(rt.providers().for_kind).for_kind,  # each record fetched once per report
        market=SqlMarket(rt.engine, report.company),
        market_data=SqlMarketData(rt.engine, rt.clock),
        clock=rt.clock,
        id_hash=rt.id_hash,
        pool=rt.check_pool(),
    )
    pool = rt.check_pool()
    futures = [pool.submit(_run_one, rt, ctx, name, check) for name, check in checks.items()]
    saved: set[str] = set()  # shown early, while a slow check still ran
    try:
        _, running = wait(futures, timeout=SHOWN_AFTER)
        while running:  # a slow provider: each check is saved as it finishes, for readers (API.md)
            saved = _save_finished(rt, report, futures, saved)
            _, running = wait(running, return_when=FIRST_COMPLETED)
    except BaseException:  # interrupted (the job timeout): what finished is kept for the retry
        _save_finished(rt, report, futures, saved)
        raise
    outcomes, error = [], None
    for name, future in zip(checks, futures, strict=True):
        failed = future.exception()
        if failed is None:
            if name not in saved:
                outcomes.append(future.result())
        else:
            log.error("report %s: check %s failed", report.id, name, exc_info=failed)
            error = error or failed
    return outcomes, error


def _save_finished(rt: Runtime, report: Any, futures: list[Future[CheckOutcome]], saved: set[str]) -> set[str]:
    """Save the outcomes of the checks that finished and are not saved yet; returns every check saved."""
    finished = [f.result() for f in futures if f.done() and f.exception() is None and f.result().check not in saved]
    if finished:
        _save(rt, report, finished, finish=False)
    return saved | {o.check for o in finished}


def _run_one(rt: Runtime, ctx: CheckContext, name: str, check: Check) -> CheckOutcome:
    started = time.monotonic()
    try:
        outcome = check(ctx)
    except ProviderUnavailable as exc:
        log.warning("report check %s unavailable: %s", name, exc)
        # Named as a successful check names its source: the provider's base URL (or `local`).
        outcome = _unavailable(rt, name, rt.settings.providers.get(exc.provider, exc.provider), exc.reason)
    CHECK_SECONDS.labels(name, outcome.source).observe(time.monotonic() - started)
    return outcome


def _unavailable(rt: Runtime, name: str, provider: str, reason: str) -> CheckOutcome:
    now = rt.clock.now()
    finding = Finding(
        code="CHECK_UNAVAILABLE",
        message=f"{name} 核验的数据源暂不可用（{reason}），未能完成核验",
        evidence={"provider": provider, "reason": reason, "retrieved_at": now.isoformat()},
    )
    return CheckOutcome(check=name, findings=[finding], source=provider, retrieved_at=now, unavailable=True)


def _save(rt: Runtime, report: Any, outcomes: list[CheckOutcome], *, finish: bool = True) -> Completed | None:
    """Save the outcomes (severities from the policy) and, with `finish`, complete the report, in one
    transaction. A result another run saved first stands: this run then saves only the others."""
    try:
        return _save_once(rt, report, outcomes, finish)
    except IntegrityError:
        saved = _saved_names(rt, report.id)
        log.info("report %s: %s already saved by another run", report.id, ", ".join(sorted(saved)))
        return _save_once(rt, report, [o for o in outcomes if o.check not in saved], finish)


def _save_once(rt: Runtime, report: Any, outcomes: list[CheckOutcome], finish: bool) -> Completed | None:
    rows = [_row(report, outcome) for outcome in outcomes]
    with begin_write(rt.sessions()) as session:
        if rows:
            session.execute(insert(_CHECKS), rows)
        prints = [o.fingerprint for o in outcomes if o.fingerprint is not None]
        if prints:  # the unit's fingerprint, kept with the result that found it
            remember_many(session, prints, rt.clock.now())
        if not finish:
            session.commit()
            return None
        try:
            completed = _complete(session, rt, report)
        except Exception:
            session.rollback()
            if outcomes:  # the findings are kept whatever went wrong in completing: the retry completes
                _save_once(rt, report, outcomes, finish=False)
            raise
        if completed is None:  # another run completed it: what this one worked out is not kept
            session.rollback()
        else:
            session.commit()
    if completed is not None:
        log.info("report %s complete: %s", report.id, completed.decision)
    return completed


def _row(report: Any, outcome: CheckOutcome) -> dict[str, Any]:
    policy = current_policy()
    findings = [
        {
            "code": f.code,
            "severity": policy.rule_for(f.code, report.subject["city"], report.stage).severity,
            "message": f.message,
            "evidence": f.evidence,
        }
        for f in outcome.findings
    ]
    return {
        "report_id": report.id,
        "check": outcome.check,
        "position": registry.ORDER.index(outcome.check),
        "status": _check_status(outcome, findings),
        "findings": findings,
        "source": outcome.source,
        "retrieved_at": outcome.retrieved_at,
        "evidence": outcome.evidence,
        "facts": outcome.facts,
    }


def _check_status(outcome: CheckOutcome, findings: list[dict[str, Any]]) -> str:
    if outcome.unavailable:
        return "unavailable"
    severities = {f["severity"] for f in findings}
    if "blocking" in severities:
        return "blocking"
    if "attention" in severities:
        return "attention"
    return "clear"


def _complete(session: Session, rt: Runtime, report: Any) -> Completed | None:
    """Decide, attach commitments, digest and complete, in `session`'s transaction (the caller commits).
    None if another run completed the report first: completing is a compare-and-set."""
    policy = current_policy()
    now = rt.clock.now()
    checks = session.execute(_SAVED, {"report_id": report.id}).all()
    missing = set(registry.checks_for(report.stage, report.deal_id is not None)) - {c.check for c in checks}
    if missing:
        raise RuntimeError(f"report {report.id}: cannot complete, {', '.join(sorted(missing))} not run")
    city = report.subject["city"]
    decision = policy.decide(((c.check, f) for c in checks for f in c.findings), city, report.stage)
    if any(c.status == "unavailable" for c in checks) and decision.decision == "ALLOW":
        raise RuntimeError("policy would ALLOW with an unavailable check")  # _validate forbids this
    deal = session.get(Deal, report.deal_id) if report.deal_id else None
    view = SimpleNamespace(**report._asdict(), checks=checks)
    notes: list[str] = []
    try:
        commitments = applicable(
            city=city,
            report_date=now,
            checks={c.check: CheckView(c.status, c.facts or {}) for c in checks},
            build_year=report.subject.get("build_year"),
            deal=deal_dates(deal) if deal is not None else None,
            deposit_seizure_free=deposit_seizure_free(session, deal, including=view) if deal is not None else None,
        )
    except Exception as exc:
        if report.attempts < rt.settings.report_max_attempts:
            raise  # RQ retries: the error may pass
        log.exception("report %s: commitments could not be worked out; completing without them", report.id)
        commitments = []
        notes.append(f"commitments could not be worked out ({type(exc).__name__}); none are attached")
    values: dict[str, Any] = {
        "status": "complete",
        "decision": decision.decision,
        "policy_version": policy.version,
        "reasons": decision.reasons,
        "overridable": report_overridable(decision.decision, decision.reasons, policy.version),
        "commitments": commitments,
        "notes": notes,
        "completed_at": now,
        "updated_at": now,
    }
    # The deal's requirements are raised and cleared before the digest, which covers them, and the gate.changed.
    values["requirements"], values["exceptions"] = settle(session, deal, report, list(checks), now=now)
    vars(view).update(values)
    values["digest"] = digest(_BODY.dump(view))
    done = session.execute(_COMPLETE, {"report_id": report.id, **{f"v_{name}": values[name] for name in _COMPLETED}})
    if not done.rowcount:  # type: ignore[attr-defined]
        return None
    record(session, company=report.company, type="report.completed", actor=SYSTEM, subject_kind="report",
           subject_id=report.id, data={"report_id": report.id, "listing_id": report.listing_id,
           "deal_id": report.deal_id, "stage": report.stage, "decision": decision.decision,
           "digest": values["digest"]}, at=now)  # fmt: skip
    deliveries = notify_deal(session, rt, view, deal, decision.decision) if deal is not None else []
    return Completed(decision.decision, deliveries, now)
