"""The gate's answer, from the database alone (it never calls a provider).

It answers from the newest complete report of the stage — asked by deal: that deal's reports or the
listing's reports with no deal; asked by listing: any of the listing's reports. Fresh means
`completed_at` + the stage's window is still ahead. With no fresh report the answer is BLOCK with
REPORT_STALE (or REPORT_PENDING while one runs), and a refresh is started unless one is in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from risk.commitments.rules import CheckView, DealDates, applicable
from risk.db import new_id
from risk.gate.models import GateAnswer, Override
from risk.reports.models import Report
from risk.reports.operations import request_report

if TYPE_CHECKING:
    from listings.models import Listing
    from risk.auth.models import ApiClient
    from risk.deals.models import Deal
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


def _scope(stmt: Any, listing_id: str, deal_id: str | None, stage: str) -> Any:
    stmt = stmt.where(Report.listing_id == listing_id, Report.stage == stage)
    if deal_id is not None:
        stmt = stmt.where(or_(Report.deal_id == deal_id, Report.deal_id.is_(None)))
    return stmt


def newest_complete(session: Session, listing_id: str, deal_id: str | None, stage: str) -> Report | None:
    stmt = _scope(select(Report), listing_id, deal_id, stage).where(Report.status == "complete")
    return session.scalars(stmt.order_by(Report.completed_at.desc(), Report.id.desc()).limit(1)).first()


def in_flight(session: Session, listing_id: str, deal_id: str | None, stage: str) -> Report | None:
    stmt = _scope(select(Report), listing_id, deal_id, stage).where(Report.status.in_(("pending", "running")))
    return session.scalars(stmt.order_by(Report.created_at.desc()).limit(1)).first()


def refresh_key(listing_id: str, deal_id: str | None, stage: str) -> str:
    return f"{listing_id}|{deal_id or '-'}|{stage}"


def start_refresh(
    session: Session, rt: Runtime, *, listing: Listing, deal: Deal | None, stage: str, client_id: str
) -> tuple[Report, bool]:
    """The report in flight for this listing/deal and stage, starting one if none is.

    Returns (report, started). Concurrent callers start exactly one: the refresh key is unique, so
    the loser's insert fails inside a savepoint and it answers with the winner's report.
    """
    deal_id = deal.id if deal is not None else None
    running = in_flight(session, listing.id, deal_id, stage)
    if running is not None:
        return running, False
    try:
        with session.begin_nested():
            report = request_report(
                session,
                rt,
                listing=listing,
                stage=stage,
                requested_by=client_id,
                deal_id=deal_id,
                deal_snapshot=deal.snapshot() if deal is not None else None,
            )
            report.refresh_key = refresh_key(listing.id, deal_id, stage)
            session.flush()
    except IntegrityError:
        running = in_flight(session, listing.id, deal_id, stage)
        if running is None:
            raise
        return running, False
    return report, True


def deal_dates(deal: Deal) -> DealDates:
    return DealDates(
        deposit_at=deal.deposit_at,
        signing_at=deal.signing_at,
        online_signing_at=deal.online_signing_at,
        transfer_at=deal.transfer_at,
    )


def deposit_seizure_free(session: Session, deal: Deal, including: Report | None = None) -> bool | None:
    """Whether the deal's newest complete `deposit` report had no TITLE_SEIZURE (None: no such report).

    `including` is a deposit report being completed right now, which is then the newest.
    """
    report: Report | None
    if including is not None and including.stage == "deposit":
        report = including
    else:
        report = session.scalars(
            select(Report)
            .options(selectinload(Report.checks))
            .where(Report.deal_id == deal.id, Report.stage == "deposit", Report.status == "complete")
            .order_by(Report.completed_at.desc())
            .limit(1)
        ).first()
    if report is None:
        return None
    return not any(f["code"] == "TITLE_SEIZURE" for c in report.checks for f in c.findings)


def commitments_for(session: Session, report: Report, deal: Deal | None, *, when: datetime) -> list[dict[str, Any]]:
    """A report's commitments: as stored, or recomputed from the deal's current dates."""
    if deal is None:
        return list(report.commitments or [])
    return applicable(
        city=report.subject["city"],
        report_date=report.completed_at or when,
        checks={c.check: CheckView(c.status, c.facts or {}) for c in report.checks},
        build_year=report.subject.get("build_year"),
        deal=deal_dates(deal),
        deposit_seizure_free=deposit_seizure_free(session, deal, including=report),
    )


def compute(
    session: Session,
    rt: Runtime,
    *,
    listing: Listing,
    deal: Deal | None,
    stage: str,
    client_id: str,
    start: bool,
) -> Answer:
    """The gate answer; with `start`, a stale answer starts the refresh (the caller commits, then enqueues)."""
    now = rt.clock.now()
    deal_id = deal.id if deal is not None else None
    report = newest_complete(session, listing.id, deal_id, stage)
    fresh_until = report.completed_at + WINDOWS[stage] if report and report.completed_at else None
    if report is not None and fresh_until is not None and fresh_until > now:
        override = session.scalars(select(Override).where(Override.report_id == report.id)).first()
        decision = report.decision or "BLOCK"
        if override is not None and decision == "REVIEW":
            decision = override.decision
        body = {
            "decision": decision,
            "stage": stage,
            "report_id": report.id,
            "reasons": list(report.reasons or []),
            "commitments": commitments_for(session, report, deal, when=now),
            "fresh_until": fresh_until.isoformat(),
            "override": override.to_dict() if override is not None and report.decision == "REVIEW" else None,
            "refresh_report_id": None,
        }
        return Answer(body, fresh=True)

    refresh: Report | None
    if start:
        refresh, started = start_refresh(session, rt, listing=listing, deal=deal, stage=stage, client_id=client_id)
    else:
        refresh, started = in_flight(session, listing.id, deal_id, stage), False
    # PENDING: a refresh was already running before this call; STALE: none was (this call may have started one).
    pending = refresh is not None and not started
    code = "REPORT_PENDING" if pending else "REPORT_STALE"
    message = (
        "核验报告正在生成，请稍后再问" if pending else "没有足够新的核验报告"
    ) + f"（{stage} 阶段的报告有效期 {_hours(WINDOWS[stage])}）"
    reasons = [{"code": code, "rule": GATE_RULE, "check": "gate", "message": message}]
    if report is not None:
        reasons += list(report.reasons or [])
    body = {
        "decision": "BLOCK",
        "stage": stage,
        "report_id": report.id if report is not None else None,
        "reasons": reasons,
        "commitments": [],
        "fresh_until": fresh_until.isoformat() if fresh_until else None,
        "override": None,
        "refresh_report_id": refresh.id if refresh is not None else None,
    }
    return Answer(body, started_report_id=refresh.id if started and refresh is not None else None)


def _hours(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours // 24} 天" if hours % 24 == 0 and hours >= 24 else f"{hours} 小时"


def record(
    session: Session, rt: Runtime, client: ApiClient, listing: Listing, deal: Deal | None, answer: Answer
) -> None:
    body = answer.body
    session.add(
        GateAnswer(
            id=new_id("gta"),
            company=listing.company,
            client_id=client.id,
            listing_id=listing.id,
            deal_id=deal.id if deal is not None else None,
            stage=body["stage"],
            decision=body["decision"],
            report_id=body["report_id"],
            override_id=body["override"]["id"] if body["override"] else None,
            refresh_report_id=body["refresh_report_id"],
            answer=body,
            answered_at=rt.clock.now(),
        )
    )
