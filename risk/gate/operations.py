"""The gate's answer, from the database alone (it never calls a provider).

It answers from the newest complete report of the stage — asked by deal: that deal's reports or the
listing's reports with no deal; asked by listing: any of the listing's reports. Fresh means
`completed_at` + the stage's window is still ahead and the report checked the listing's current
revision. With no fresh report the answer is BLOCK with REPORT_STALE (or REPORT_PENDING while a report
of the current revision runs), and a refresh is started unless one is in flight.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Select, Table, and_, bindparam, insert, or_, select
from sqlalchemy.orm import Session

from listings.models import Listing
from risk.audit.models import AuditEvent
from risk.commitments.inputs import deal_dates, seizure_free
from risk.commitments.rules import CheckView, applicable
from risk.db import JsonText
from risk.deals.models import Deal
from risk.gate.driver import run_on_driver
from risk.gate.models import Override, OverrideApproval
from risk.reports.models import Report, ReportCheck
from risk.reports.operations import request_report
from risk.requirements.standing import with_requirements

if TYPE_CHECKING:
    from risk.auth.models import ApiClient
    from risk.runtime import Runtime

WINDOWS = {
    "listing": timedelta(days=7),
    "deposit": timedelta(hours=24),
    "signing": timedelta(hours=24),
    "online_signing": timedelta(hours=4),
    "transfer": timedelta(hours=4),
}
GATE_RULE = "gate.freshness"


@dataclass
class Answer:
    body: dict[str, Any]
    started_report_id: str | None = None  # a refresh this call created; enqueue it after commit
    fresh: bool = False  # answered from a fresh report (nothing to start)


_reports, _overrides, _checks = Report.__table__, Override.__table__, ReportCheck.__table__
_approvals = OverrideApproval.__table__
_listings, _deals = Listing.__table__, Deal.__table__
Db = Session | Connection  # a unit of work's session, or an `each_statement` connection


# Core statements built once, since the gate is on the contract system's signing path. The newest
# complete report comes with its override and its approvals in one read: one row per approval.
def _scoped(*columns: Any, by_deal: bool, status: Any) -> Any:
    scope = [_reports.c.listing_id == bindparam("listing_id"), _reports.c.stage == bindparam("stage")]
    if by_deal:
        scope.append(or_(_reports.c.deal_id == bindparam("deal_id"), _reports.c.deal_id.is_(None)))
    return select(*columns).where(*scope, status)


_REPORT_COLUMNS = (
    _reports.c.id,
    _reports.c.decision,
    _reports.c.reasons,
    _reports.c.commitments,
    _reports.c.completed_at,
    _overrides.c.id.label("override_id"),
    _overrides.c.decision.label("override_decision"),
    _overrides.c.status.label("override_status"),
    _overrides.c.required_approvals.label("override_required"),
    _overrides.c.created_at.label("override_created_at"),
    _approvals.c.reviewer_name.label("approval_reviewer"),
    _approvals.c.reviewer_id.label("approval_reviewer_id"),
    _approvals.c.reason.label("approval_reason"),
    _approvals.c.evidence_ref.label("approval_evidence_ref"),
    _approvals.c.at.label("approval_at"),
    _reports.c.listing_revision,  # the bench's floor reads the columns before it by position
    _reports.c.created_at,  # against the deal's parties_changed_at (transfer reports)
)


_NEWEST_FIRST = (_reports.c.completed_at.desc(), _reports.c.id.desc())
# The listing's revision now, beside the report's: a report of an older revision is never fresh.
_CURRENT_REVISION = _listings.c.revision.label("current_revision")


def _with_override(joined: Any) -> Any:
    # A settled-or-pending override only: a declined one answers as none (API.md), so it is not read.
    shown = and_(_overrides.c.report_id == _reports.c.id, _overrides.c.status != "declined")
    return joined.outerjoin(_overrides, shown).outerjoin(_approvals, _approvals.c.override_id == _overrides.c.id)


def _newest_id(by_deal: bool) -> Any:
    newest = _scoped(_reports.c.id, by_deal=by_deal, status=_reports.c.status == "complete")
    return newest.order_by(*_NEWEST_FIRST).limit(1).scalar_subquery()


def _newest_statement(by_deal: bool) -> Select[Any]:
    stmt = select(*_REPORT_COLUMNS, _CURRENT_REVISION).where(_reports.c.id == _newest_id(by_deal))
    joined = _with_override(_reports.join(_listings, _listings.c.id == _reports.c.listing_id))
    return stmt.select_from(joined).order_by(_approvals.c.number)


def _in_flight_statement(by_deal: bool) -> Select[Any]:
    """The newest pending or running report in scope that checks the listing's current revision."""
    stmt = _scoped(
        _reports.c.id, by_deal=by_deal, status=or_(_reports.c.status == "pending", _reports.c.status == "running")
    )
    stmt = stmt.select_from(_reports.join(_listings, _listings.c.id == _reports.c.listing_id)).where(
        _reports.c.listing_revision == _listings.c.revision
    )
    return stmt.order_by(_reports.c.created_at.desc(), _reports.c.id.desc()).limit(1)


def _subject_statement(by_deal: bool) -> Select[Any]:
    """The listing's id, company, store_id and revision with its newest complete report in scope (report
    columns null when there is none): the gate's one read besides the key's."""
    joined = _with_override(_listings.outerjoin(_reports, _reports.c.id == _newest_id(by_deal)))
    columns = (
        _listings.c.id.label("listing_id"), _listings.c.company, _listings.c.store_id, *_REPORT_COLUMNS,
        _CURRENT_REVISION,
    )  # fmt: skip
    stmt = select(*columns).select_from(joined).where(_listings.c.id == bindparam("listing_id"))
    return stmt.order_by(_approvals.c.number)


_NEWEST = {False: _newest_statement(False), True: _newest_statement(True)}
_SUBJECT_AND_NEWEST = {False: _subject_statement(False), True: _subject_statement(True)}
_IN_FLIGHT = {False: _in_flight_statement(False), True: _in_flight_statement(True)}
_DEAL = select(
    _deals.c.id,
    _deals.c.listing_id,
    _deals.c.company,
    _deals.c.store_id,
    _deals.c.status,
    *(_deals.c[name] for name in ("deposit_at", "signing_at", "online_signing_at", "transfer_at")),
    _deals.c.parties_changed_at,
).where(_deals.c.id == bindparam("id"))
_SUBJECT = select(_reports.c.subject).where(_reports.c.id == bindparam("id"))
_CHECKS = select(_checks.c.check, _checks.c.status, _checks.c.facts, _checks.c.findings).where(
    _checks.c.report_id == bindparam("id")
)
_NEWEST_DEPOSIT = (
    select(_reports.c.id)
    .where(_reports.c.deal_id == bindparam("deal_id"), _reports.c.stage == "deposit", _reports.c.status == "complete")
    .order_by(*_NEWEST_FIRST)
    .limit(1)
)
_EVENTS = cast(Table, AuditEvent.__table__)
# An unchained `gate.answered` event: the chainer links it later, so the gate takes no chain lock.
_RECORDED = [c.name for c in _EVENTS.c if c.name not in ("id", "seq", "prev_hash", "hash")]
_RECORD = insert(_EVENTS).inline().values({c: bindparam(c, type_=_EVENTS.c[c].type) for c in _RECORDED})


def floor_statements() -> tuple[Any, Any]:
    """The gate's read (asked by listing) and its record, as Core statements: what `presign bench`
    runs on a plain driver connection as the gate's floor (`risk.bench.floor`)."""
    return _SUBJECT_AND_NEWEST[False], _RECORD


def listing_and_newest(db: Db, listing_id: str, deal_id: str | None, stage: str) -> Any:
    """The listing (listing_id, company, store_id) with the newest complete report in scope and its
    override, as `newest_complete` gives them (`id` null: no such report); None: no such listing."""
    params = {"listing_id": listing_id, "stage": stage, "deal_id": deal_id}
    statement = _SUBJECT_AND_NEWEST[deal_id is not None]
    if isinstance(db, Connection):
        return _folded(run_on_driver(db, statement, params))
    return _folded(db.execute(statement, params).all())


def deal_row(db: Db, deal_id: str) -> Any:
    """The deal's id, listing_id, company, store_id, status and dates (None if there is none)."""
    return db.execute(_DEAL, {"id": deal_id}).first()


def newest_complete(db: Db, listing_id: str, deal_id: str | None, stage: str) -> Any:
    """The newest complete report in scope, with its override's columns (null when it has none, or
    when it was declined), with an override its `approvals` in order, and the listing's
    `current_revision`."""
    params = {"listing_id": listing_id, "stage": stage, "deal_id": deal_id}
    return _folded(db.execute(_NEWEST[deal_id is not None], params).all())


def _folded(rows: Sequence[Any]) -> Any:
    """The first row; with an override, as a namespace that also holds every row's approval."""
    if not rows:
        return None
    first = rows[0]
    if first.override_id is None:
        return first
    approvals = [
        {
            "reviewer": r.approval_reviewer,
            "reviewer_id": r.approval_reviewer_id,
            "reason": r.approval_reason,
            "evidence_ref": r.approval_evidence_ref,
            "at": r.approval_at.isoformat(),
        }
        for r in rows
    ]
    return SimpleNamespace(**first._asdict(), approvals=approvals)


def in_flight(db: Db, listing_id: str, deal_id: str | None, stage: str) -> str | None:
    """The id of the newest pending or running report in scope of the listing's current revision."""
    params = {"listing_id": listing_id, "stage": stage, "deal_id": deal_id}
    return db.execute(_IN_FLIGHT[deal_id is not None], params).scalar()


def start_refresh(
    session: Session, rt: Runtime, *, listing: Listing, deal: Deal | None, stage: str, client_id: str | None
) -> tuple[str, bool]:
    """The id of the report in flight in scope for the listing's current revision and stage, starting
    one if none is (`client_id`: who asked; None for a re-check).

    Returns (report id, started). Concurrent callers, and report requests, start exactly one: they all
    take the same unique request key (`risk.reports.operations.request_report`).
    """
    deal_id = deal.id if deal is not None else None
    running = in_flight(session, listing.id, deal_id, stage)
    if running is not None:
        return running, False
    report, started = request_report(session, rt, listing=listing, stage=stage, requested_by=client_id, deal=deal)
    return report.id, started


def commitments_for(db: Db, report: Any, deal: Any, *, when: datetime) -> list[dict[str, Any]]:
    """A report's commitments (`report`: a row of `newest_complete`): as stored, or recomputed from the
    deal's current dates."""
    if deal is None:
        return list(report.commitments or [])
    subject = db.execute(_SUBJECT, {"id": report.id}).scalar_one()
    checks = db.execute(_CHECKS, {"id": report.id}).all()
    newest = db.execute(_NEWEST_DEPOSIT, {"deal_id": deal.id}).scalar()  # the deal's deposit report
    return applicable(
        city=subject["city"],
        report_date=report.completed_at or when,
        checks={c.check: CheckView(c.status, c.facts or {}) for c in checks},
        build_year=subject.get("build_year"),
        deal=deal_dates(deal),
        deposit_seizure_free=None if newest is None else seizure_free(db.execute(_CHECKS, {"id": newest}).all()),
    )


def _override(report: Any) -> dict[str, Any] | None:
    """The report's pending or approved override as the answer shows it (`OverrideSchema`'s shape)."""
    if report.override_id is None:
        return None
    first = report.approvals[0]
    return {
        "id": report.override_id,
        "report_id": report.id,
        "decision": report.override_decision,
        "status": report.override_status,
        "approvals": report.approvals,
        "required_approvals": report.override_required,
        "reason": first["reason"],
        "reviewer": first["reviewer"],
        "created_at": report.override_created_at.isoformat(),
    }


def _decision(report: Any, override: dict[str, Any] | None) -> str:
    """ALLOW only once the override is approved; BLOCK while it waits for its second approval."""
    if override is not None:
        return "ALLOW" if override["status"] == "approved" else "BLOCK"
    return report.decision or "BLOCK"


def compute(
    db: Db, rt: Runtime, *, listing_id: str, deal: Any, stage: str, newest: Any = None,
    start_in: Session | None = None, client_id: str | None = None, commitments: bool = True,
) -> Answer:  # fmt: skip
    """The gate answer for a listing (and deal: a Deal, a row of `deal_row`, or None).

    `newest`: a row of `listing_and_newest` already read (else the newest report is read here). With
    `start_in` (`db` itself, holding the write lock), a stale answer starts the refresh; the caller
    commits, then enqueues `started_report_id`. `commitments=False` leaves them out (the answer's
    decision is all that is wanted)."""
    now = rt.clock.now()
    deal_id = deal.id if deal is not None else None
    if newest is not None:
        report = newest if newest.id is not None else None
    else:
        report = newest_complete(db, listing_id, deal_id, stage)
    revised = report is not None and report.listing_revision != report.current_revision
    parties_revised = report is not None and not revised and _parties_changed_since(deal, stage, report)
    revised = revised or parties_revised
    fresh_until = report.completed_at + WINDOWS[stage] if report is not None and report.completed_at else None
    if report is not None and not revised and fresh_until is not None and fresh_until > now:
        override = _override(report)
        body = {
            "decision": _decision(report, override),
            "stage": stage,
            "report_id": report.id,
            "reasons": list(report.reasons or []),
            "commitments": commitments_for(db, report, deal, when=now) if commitments else [],
            "fresh_until": fresh_until.isoformat(),
            "override": override,
            "refresh_report_id": None,
        }
        return Answer(_required(db, deal_id, stage, body), fresh=True)

    refresh: str | None
    if start_in is not None:
        listing = start_in.get(Listing, listing_id)
        deal_obj = start_in.get(Deal, deal_id) if deal_id is not None else None
        if listing is None or (deal_id is not None and deal_obj is None):
            raise LookupError(f"listing {listing_id} or deal {deal_id} vanished while answering")
        refresh, started = start_refresh(start_in, rt, listing=listing, deal=deal_obj, stage=stage, client_id=client_id)
    else:
        refresh, started = in_flight(db, listing_id, deal_id, stage), False
    # PENDING: a refresh was already running before this call; STALE: none was (this call may have started one).
    pending = refresh is not None and not started
    code = "REPORT_PENDING" if pending else "REPORT_STALE"
    if parties_revised:
        why = "交易的网签备案号或共同买方在报告之后已修改"
    elif revised:
        assert report is not None
        versions = f"报告核验的是第 {report.listing_revision} 版，现为第 {report.current_revision} 版"
        why = f"房源在报告之后已修改（{versions}）"
    else:
        why = f"{stage} 阶段的报告有效期 {_hours(WINDOWS[stage])}"
    message = ("核验报告正在生成，请稍后再问" if pending else "没有足够新的核验报告") + f"（{why}）"
    reasons = [
        {"code": code, "rule": GATE_RULE, "check": "gate", "message": message, "decision": "BLOCK",
         "overridable": False}
    ]  # fmt: skip
    if report is not None:
        reasons += list(report.reasons or [])
    body = {
        "decision": "BLOCK",
        "stage": stage,
        "report_id": report.id if report is not None else None,
        "reasons": reasons,
        "commitments": [],
        "fresh_until": fresh_until.isoformat() if fresh_until and not revised else None,
        "override": None,
        "refresh_report_id": refresh,
    }
    return Answer(_required(db, deal_id, stage, body), started_report_id=refresh if started else None)


def _required(db: Db, deal_id: str | None, stage: str, body: dict[str, Any]) -> dict[str, Any]:
    """Requirements hook: asked by deal, an open requirement due by `stage` BLOCKs; by listing, none apply."""
    return body if deal_id is None else with_requirements(db, deal_id, stage, body)


def _parties_changed_since(deal: Any, stage: str, report: Any) -> bool:
    """A transfer report made before the deal's filing_no or co_buyers last changed checked another filing."""
    changed = getattr(deal, "parties_changed_at", None) if stage == "transfer" else None
    return changed is not None and report.created_at < changed


def _hours(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24} 天" if hours % 24 == 0 and hours >= 24 else f"{hours} 小时"


def record(
    db: Db, rt: Runtime, client: ApiClient, *, company: str, listing_id: str, deal_id: str | None, answer: Answer,
    sent: JsonText,
) -> None:  # fmt: skip
    """Keep the answer given as a `gate.answered` audit event, by the client that asked, about the deal
    (asked by deal) or the listing: one insert in `db`'s transaction, committed before the answer is
    sent. `sent`: the answer's body exactly as it is sent, kept as those bytes."""
    event = {
        "company": company,
        "type": "gate.answered",
        "at": rt.clock.now(),
        "actor_client_id": client.id,
        "actor_role": client.role,
        "actor_name": client.name,
        "subject_kind": "listing" if deal_id is None else "deal",
        "subject_id": listing_id if deal_id is None else deal_id,
        "data": sent,
    }
    if isinstance(db, Connection):
        run_on_driver(db, _RECORD, event)
    else:
        db.execute(_RECORD, event)
