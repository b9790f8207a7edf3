"""Running a report: every registered check concurrently, each result saved as it finishes, then the
finaliser applies the policy, attaches commitments, computes the digest and completes the report.

Runs are idempotent. A second run (an RQ retry, the reconciler after a lost job, two workers at once)
skips checks already saved and cannot complete a report twice: every state change is a
compare-and-set update. A report that keeps failing finishes after `report_max_attempts` runs with
its missing checks `unavailable`, so a report always reaches `complete`.

Whatever fails after the checks finished (deciding, attaching commitments) never costs a finding:
the checks' results are saved before the error propagates for RQ to retry, and the last attempt
completes the report with the decision its findings give, leaving out the commitments that could not
be worked out and saying so in the report's `notes`.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from checks import registry
from checks.base import CheckContext, CheckOutcome, Finding, ProviderUnavailable
from checks.providers import FirstRound, ReportAnswers
from listings.market_data import SqlMarketData
from risk.audit.events import SYSTEM, record
from risk.commitments.rules import CheckView, applicable
from risk.db import InSession, Prepared, begin_write, reading
from risk.deals.events import notify_deal
from risk.deals.models import Deal
from risk.gate.operations import deal_dates, deposit_seizure_free
from risk.ops.metrics import CHECK_SECONDS
from risk.policy import current_policy, report_overridable
from risk.reports.digest import digest
from risk.reports.models import Report, ReportCheck
from risk.reports.schemas import report_body
from risk.runtime import Runtime

log = logging.getLogger(__name__)
# Threads that run checks: one pool per process, made on first use in that process (never inherited
# across a fork). Starting and joining four threads per report was a fifth of a report job's time.
_POOL_THREADS = 16
SAVE_WINDOW = 0.25  # seconds a finished check's result may wait for the others before it is saved alone
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()
_REPORTS = cast(Table, Report.__table__)
_CHECKS = cast(Table, ReportCheck.__table__)
# Statements built once: building them per report, and the ORM's execution path, cost more than the
# statements (profiled). The claim's run on a raw connection (`risk.db.Prepared`); the rest inside the
# session that saves and finalises.
_DONE = Prepared(select(_CHECKS.c.check).where(_CHECKS.c.report_id == bindparam("id")))
_EXISTS = Prepared(select(_REPORTS.c.id).where(_REPORTS.c.id == bindparam("id")))
_REPORT = Prepared(select(_REPORTS).where(_REPORTS.c.id == bindparam("id")))
_REPORT_CHECKS = Prepared(select(_CHECKS).where(_CHECKS.c.report_id == bindparam("id")))
_SAVED = ("report_id", "check", "position", "status", "findings", "source", "retrieved_at", "evidence", "facts")
_SAVE_CHECKS = Prepared(_CHECKS.insert().values({name: bindparam(name) for name in _SAVED}))
_CLAIM = Prepared(
    _REPORTS.update()
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
    "updated_at", "digest",
)  # fmt: skip
# A compare-and-set: only the run that completes the report changes it (and clears its refresh key).
_COMPLETE = Prepared(
    _REPORTS.update()
    .where(_REPORTS.c.id == bindparam("report_id"), _REPORTS.c.status != "complete")
    .values({**{name: bindparam(f"v_{name}") for name in _COMPLETED}, "refresh_key": None})
)


def run_report(rt: Runtime, report_id: str, *, unit_id: str | None = None) -> str | None:
    """Run what is left of a report and finalise it. Returns its decision, or None if already complete.

    `unit_id`: the unit the report is about, when whoever enqueued it knew (`enqueue_report`). The
    checks' first provider calls then go out before the claim, whose write and commit overlap their
    wait instead of delaying them. They are given up if the claim finds nothing to run, or another
    unit, or checks an earlier run saved (those are asked again for what is left)."""
    early = FirstRound.ask(rt.providers(), _first_kinds(registry.all_checks()), unit_id) if unit_id else None
    claimed = None
    try:
        claimed = _claim(rt, report_id)
    finally:
        if claimed is None and early is not None:  # complete already, or the claim failed
            early.abandon()
    if claimed is None:
        return None
    report, done = claimed
    names = [name for name in registry.checks_for(report.stage, report.subject) if name not in done]
    giving_up = report.attempts > rt.settings.report_max_attempts
    if early is not None and (giving_up or done or report.subject["unit_id"] != unit_id):
        early.abandon()
        early = None
    if giving_up:
        log.error("report %s: giving up on %s after %d runs", report_id, ", ".join(names) or "-", report.attempts - 1)
        reason = f"check did not finish after {report.attempts - 1} runs"
        return _save(rt, report, [_unavailable(rt, name, "presign", reason) for name in names], finish=True)
    if names:
        return _run_checks(rt, report, names, early)
    return finalise(rt, report_id)


def _first_kinds(names: Any) -> list[str]:
    return [kind for name in names for kind in registry.kinds_of(name)]


def _claim(rt: Runtime, report_id: str) -> tuple[Any, set[str]] | None:
    """Mark the report running and count the attempt, in one statement that is its own transaction;
    returns the report's row (as it now stands) and the checks already saved by earlier runs."""
    with reading(rt.engine) as db:
        report = db.write(_CLAIM, {"report_id": report_id, "now": rt.clock.now()})
        if report is None:
            if db.first(_EXISTS, {"id": report_id}) is None:
                raise LookupError(f"report {report_id} does not exist")
            return None  # complete already
        # Only an earlier run can have saved checks: the first attempt need not look.
        done = set() if report.attempts == 1 else {row.check for row in db.all(_DONE, {"id": report_id})}
        return report, done


def _context(
    rt: Runtime, report: Report, names: list[str], first: FirstRound | None = None
) -> tuple[CheckContext, FirstRound]:
    """What the checks `names` are given, and their first provider calls, made here together (or
    `first`, made before the claim)."""
    from listings.market import SqlMarket
    from listings.market_data import SqlMarketData

    if first is None:
        first = FirstRound.ask(rt.providers(), _first_kinds(names), report.subject["unit_id"])
    ctx = CheckContext(
        stage=report.stage,
        company=report.company,
        subject=report.subject,
        providers=ReportAnswers(first.for_kind).for_kind,
        market=SqlMarket(rt.sessions, report.company),
        market_data=SqlMarketData(rt.sessions, rt.clock),
        clock=rt.clock,
        id_hash=rt.id_hash,
    )
    return ctx, first


def _run_checks(rt: Runtime, report: Any, names: list[str], first: FirstRound | None = None) -> str | None:
    """Run checks concurrently: a report takes about as long as its slowest provider. The last results
    are saved in the transaction that finalises the report; returns its decision.

    The checks' first provider calls go out together from this thread (`FirstRound`); while they
    travel, this thread makes the lookups a check registered as `ahead` (authenticity's). A check whose
    first calls were all answered then runs in this thread too, making its later calls from here
    (authenticity's community prices, usually kept): a check in the pool costs its thread hand-overs
    (a quarter of a report's CPU for the four, measured). A check whose first answer needs a retry, or
    whose provider is `local`, runs in a bounded thread pool, beside the others. The pool is made
    inside the job's process, never before a worker forks. A check that raises anything other than
    ProviderUnavailable is a bug: the others are still saved, then the error propagates so that RQ
    retries the job (and the attempt cap bounds the retries). An error in the lookups made ahead
    propagates at once, before any check here has run: nothing of this run is saved, RQ retries it.
    """
    ctx, first = _context(rt, report, names, first)
    checks = registry.all_checks()
    arrivals = _Arrivals(len(names))
    unit_id = report.subject["unit_id"]
    pool = _check_pool()
    # A check whose first calls all went out in this round may run here once they are answered. The
    # others (`local` providers) start in the pool at once.
    first_kinds = {name: FirstRound.kinds_first(registry.kinds_of(name)) for name in names}
    maybe_here = [name for name in names if first_kinds[name] and first.asked(first_kinds[name], unit_id)]
    for name in names:
        if name not in maybe_here:
            pool.submit(_run_into, arrivals, rt, ctx, name, checks[name])
    # While the answers travel, this thread makes the lookups those checks need only the listing for
    # (authenticity's): they overlap the wait without a thread to hand them to.
    for name in maybe_here:
        ahead = registry.ahead_of(name)
        if ahead is not None:
            try:
                ctx.ahead[name] = ahead(ctx)
            except BaseException:
                first.abandon()
                raise
    first.settle([kind for name in maybe_here for kind in first_kinds[name]], unit_id)
    here = [name for name in maybe_here if first.answered(first_kinds[name], unit_id)]
    for name in maybe_here:
        if name not in here:  # its provider must be asked again: its retries run beside the others
            pool.submit(_run_into, arrivals, rt, ctx, name, checks[name])
    for name in here:  # an error is handed over as a pool thread's is; an interruption propagates
        try:
            answered = _run_one(rt, ctx, name, checks[name])
        except Exception as failed:
            arrivals.put(name, None, failed)
        else:
            arrivals.put(name, answered, None)
    # Results wait up to SAVE_WINDOW for the others: checks that finish close together are saved in one
    # transaction, the last ones with the finalisation. A save while other checks still run took the GIL
    # and SQLite's write lock from them (~2-3 ms of a report's latency, traced). So: wait for the first
    # result, then for the last within the window; a window that closes first saves what has arrived.
    arrivals.wait_first()
    taken = 0
    ready: list[CheckOutcome] = []
    errors: list[BaseException] = []
    while True:
        everything = arrivals.wait_last(SAVE_WINDOW)
        batch = arrivals.items[taken:]
        taken += len(batch)
        for name, outcome, error in batch:
            if error is not None:
                log.error("report %s: check %s failed", report.id, name, exc_info=error)
                errors.append(error)
            elif outcome is not None:
                ready.append(outcome)
        if everything:
            break
        if ready:
            _save(rt, report, ready)
            ready = []
    if errors:
        if ready:
            _save(rt, report, ready)
        raise errors[0]
    return _save(rt, report, ready, finish=True)


class _Arrivals:
    """A report's check results in the order they finish, with the two wake-ups the job's thread waits
    for: the first result and the last. Raw locks and an atomic counter: concurrent.futures' `wait()`
    (a waiter, an Event and a Condition per call, and locking every future) was 0.45 ms of a report
    job's CPU, about 8 % (profiled)."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.items: list[tuple[str, CheckOutcome | None, BaseException | None]] = []
        self._count = itertools.count(1)  # next() on it is atomic: one C call under the GIL
        self._first, self._last = threading.Lock(), threading.Lock()
        self._first.acquire()
        self._last.acquire()

    def put(self, name: str, outcome: CheckOutcome | None, error: BaseException | None) -> None:
        self.items.append((name, outcome, error))
        arrived = next(self._count)
        if arrived == 1:
            self._first.release()
        if arrived == self.expected:
            self._last.release()

    def wait_first(self) -> None:
        self._first.acquire()

    def wait_last(self, timeout: float) -> bool:
        """Whether every result is in, waiting up to `timeout` seconds for the last one."""
        return self._last.acquire(timeout=timeout)


def _run_into(arrivals: _Arrivals, rt: Runtime, ctx: CheckContext, name: str, check: Any) -> None:
    try:
        outcome = _run_one(rt, ctx, name, check)
    except BaseException as error:  # handed to the job's thread, which logs it and raises it there
        arrivals.put(name, None, error)
    else:
        arrivals.put(name, outcome, None)


def _check_pool() -> ThreadPoolExecutor:
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=_POOL_THREADS, thread_name_prefix="report-check")
            _pool_pid = os.getpid()
        return _pool


def _run_one(rt: Runtime, ctx: CheckContext, name: str, check: Any) -> CheckOutcome:
    started = time.monotonic()
    try:
        outcome: CheckOutcome = check(ctx)
    except ProviderUnavailable as exc:
        log.warning("report check %s unavailable: %s", name, exc)
        # Name the provider as a successful check would: its base URL (or `local`).
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


def _save(rt: Runtime, report: Any, outcomes: list[CheckOutcome], *, finish: bool = False) -> str | None:
    """Store checks' results with severities from the policy; a result saved by a concurrent run wins.

    With `finish`, the same transaction finalises the report (see `finalise`): one commit fewer per
    report. Returns the decision then, None otherwise."""
    policy = current_policy()
    city, stage = report.subject["city"], report.stage
    rows = []
    for outcome in outcomes:
        findings = []
        for f in outcome.findings:
            rule = policy.rule_for(f.code, city, stage)
            findings.append({"code": f.code, "severity": rule.severity, "message": f.message, "evidence": f.evidence})
        rows.append(
            {
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
        )
    # Plain table statements: the ORM's unit of work and its session synchronisation were most of the
    # time a report job spent saving its checks.
    events: list[str] = []
    decision: str | None = None
    with begin_write(rt.sessions()) as session:
        db = InSession(session)
        db.write_many(_SAVE_CHECKS, rows)
        prints = [o.fingerprint for o in outcomes if o.fingerprint is not None]
        for print_ in prints:
            SqlMarketData(rt.sessions, rt.clock).remember(db, print_)
        if finish:
            try:
                decision, events = _finalise_in(db, rt, report.id, report)
            except Exception:
                # The results are kept whatever went wrong in finalising: the retry finalises from them.
                session.rollback()
                if outcomes:
                    _save(rt, report, outcomes)
                raise
        elif rows:
            session.connection().execute(
                _REPORTS.update()
                .where(_REPORTS.c.id == report.id, _REPORTS.c.status == "running")
                .values(updated_at=rt.clock.now())
            )
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            if len(outcomes) > 1:  # which one was already there: save them one by one
                for outcome in outcomes:
                    _save(rt, report, [outcome])
            elif outcomes:
                log.info("report %s: %s was already saved by another run", report.id, outcomes[0].check)
            return finalise(rt, report.id) if finish else None
    _completed(rt, report.id, decision, events)
    return decision


def _check_status(outcome: CheckOutcome, findings: list[dict[str, Any]]) -> str:
    if outcome.unavailable:
        return "unavailable"
    severities = {f["severity"] for f in findings}
    if "blocking" in severities:
        return "blocking"
    if "attention" in severities:
        return "attention"
    return "clear"


def finalise(rt: Runtime, report_id: str) -> str | None:
    """Decide, attach commitments, digest and complete — once. Returns the decision (None: another run
    completed it first)."""
    with begin_write(rt.sessions()) as session:
        decision, events = _finalise_in(InSession(session), rt, report_id)
        session.commit()
    _completed(rt, report_id, decision, events)
    return decision


def _completed(rt: Runtime, report_id: str, decision: str | None, events: list[str]) -> None:
    if decision is None:
        return
    log.info("report %s complete: %s", report_id, decision)
    if events:
        from risk.webhooks.operations import enqueue_deliveries

        enqueue_deliveries(rt, events)


def _finalise_in(db: InSession, rt: Runtime, report_id: str, report: Any = None) -> tuple[str | None, list[str]]:
    """Complete the report inside `db`'s session's write transaction (the caller commits): its decision,
    and the webhook events written with it. (None, []) if it is complete already.

    `report`: its row as this run claimed it (read again if not given); the completing update is a
    compare-and-set, so a run that lost the race completes nothing."""
    policy = current_policy()
    now = rt.clock.now()
    session = db.session
    if report is None:
        report = db.first(_REPORT, {"id": report_id})
        if report is None:
            raise LookupError(f"report {report_id} does not exist")
        if report.status == "complete":
            return None, []
    ordered = db.all(_REPORT_CHECKS, {"id": report_id})
    ordered.sort(key=lambda c: c.position)
    missing = [n for n in registry.checks_for(report.stage, report.subject) if n not in {c.check for c in ordered}]
    if missing:
        raise RuntimeError(f"report {report_id}: cannot finalise, {', '.join(missing)} not run")
    city = report.subject["city"]
    decision = policy.decide(((c.check, f) for c in ordered for f in c.findings), city, report.stage)
    if any(c.status == "unavailable" for c in ordered) and decision.decision == "ALLOW":
        raise RuntimeError("policy would ALLOW with an unavailable check")  # _validate forbids this
    deal = session.get(Deal, report.deal_id) if report.deal_id else None
    view = SimpleNamespace(**report._asdict(), checks=ordered)
    seizure_free = deposit_seizure_free(db, deal, including=view) if deal is not None else None
    notes: list[str] = []
    try:
        commitments = applicable(
            city=city,
            report_date=now,
            checks={c.check: CheckView(c.status, c.facts or {}) for c in ordered},
            build_year=report.subject.get("build_year"),
            deal=deal_dates(deal) if deal is not None else None,
            deposit_seizure_free=seizure_free,
        )
    except Exception as exc:
        if report.attempts < rt.settings.report_max_attempts:
            raise  # RQ retries: the error may pass
        # The last attempt: the findings decide; the commitments are left out, and the report says so.
        log.exception("report %s: commitments could not be worked out; completing without them", report_id)
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
    values["digest"] = digest(
        report_body(SimpleNamespace(**{**report._asdict(), **values, "digest": None}, checks=ordered))
    )
    params = {"report_id": report_id, **{f"v_{name}": value for name, value in values.items()}}
    done = db.write(_COMPLETE, params)
    if not done:
        return None, []
    record(session, company=report.company, type="report.completed", actor=SYSTEM, subject_kind="report",
           subject_id=report_id, data={"report_id": report_id, "listing_id": report.listing_id,
           "deal_id": report.deal_id, "stage": report.stage, "decision": decision.decision,
           "digest": values["digest"]}, at=now)  # fmt: skip
    events = notify_deal(session, rt, view, deal, decision.decision) if deal is not None else []
    return decision.decision, events
