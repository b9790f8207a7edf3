"""Overrides with dual control (API.md v1.1, "Overrides").

A REVIEW report opens with one reviewer's approval; a BLOCK whose blocking reasons are all marked
`overridable` by the policy opens with two approvals by different reviewers; any other BLOCK never.
One reviewer's DECLINE closes the matter: the gate then answers as if there were no override.

State changes happen in two functions only: `open_override` (the first ruling, which creates the
override) and `add_ruling` (every later one). Each returns the `Ruling` it made, naming what happened
(`requested`, `approved`, `declined`), for whatever must follow the ruling in its transaction or after
its commit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from risk.audit.events import Actor, record
from risk.db import new_id
from risk.deals.events import gate_changes
from risk.errors import Conflict, ValidationFailed
from risk.gate.models import Override, OverrideApproval
from risk.policy import not_overridable
from risk.reports.models import Report

if TYPE_CHECKING:
    from risk.auth.models import ApiClient
    from risk.runtime import Runtime

# What makes reports "the same question": an override applies to the newest complete report of these.
SCOPE = ("listing_id", "listing_revision", "deal_id", "stage")
SETTLED = ("approved", "declined")
EVIDENCE_NEEDED = "CHECK_UNAVAILABLE"


@dataclass(frozen=True)
class Vote:
    """One reviewer's ruling as asked for."""

    client: ApiClient
    decision: str  # ALLOW or DECLINE
    reason: str
    evidence_ref: str | None
    at: datetime


@dataclass(frozen=True)
class Ruling:
    override: Override
    created: bool  # this ruling created the override (201), rather than adding to it (200)
    event: str  # "requested" (approved once, another approval needed), "approved" or "declined"
    webhook_events: tuple[str, ...] = ()  # the deal's gate.changed events it wrote: deliver after commit

    @property
    def settled(self) -> bool:
        return self.event in SETTLED


def newer_in_scope() -> Any:
    """SQL on Report: a complete report of the same SCOPE completed after it (newest first as the gate
    orders them) — the condition under which it is not the newest."""
    newer = aliased(Report)
    same = [getattr(newer, name).is_not_distinct_from(getattr(Report, name)) for name in SCOPE]
    later = or_(
        newer.completed_at > Report.completed_at,
        and_(newer.completed_at == Report.completed_at, newer.id > Report.id),
    )
    return exists().where(*same, newer.status == "complete", later)


def awaiting_review() -> Any:
    """SQL on Report: complete, overridable, the newest of its scope, with no approved or declined override."""
    settled = exists().where(Override.report_id == Report.id, Override.status.in_(SETTLED))
    return and_(Report.status == "complete", Report.overridable.is_(True), ~newer_in_scope(), ~settled)


def required_approvals(report: Report) -> int:
    """How many different reviewers must approve: 1 for a REVIEW, 2 for a BLOCK whose blocking reasons
    are all overridable; 409 otherwise (naming, for a BLOCK, the codes that cannot be overridden)."""
    if report.decision == "REVIEW":
        return 1
    if report.decision == "BLOCK":
        codes = not_overridable(report.reasons or [], report.policy_version)
        if codes:
            raise Conflict(
                f"this BLOCK cannot be overridden: {', '.join(codes)}",
                fields={"reasons": [f"{code} cannot be overridden" for code in codes]},
            )
        return 2
    raise Conflict(f"only a REVIEW or an overridable BLOCK report can be overridden; this one is {report.decision}")


def rule(
    session: Session, rt: Runtime, client: ApiClient, report: Report, *, decision: str, reason: str,
    evidence_ref: str | None,
) -> Ruling:  # fmt: skip
    """A reviewer's ruling (ALLOW or DECLINE) on a report, checked against every rule of API.md; flushes.

    Race-free without locks: the override is unique per report and its approvals per number, client
    and name, so of two reviewers ruling at once exactly one creates the override and the other adds
    to it, and of two adding the same number one gets 409."""
    _ensure_may_rule(session, client, report)
    required = required_approvals(report)
    if decision == "ALLOW" and not evidence_ref and any(r["code"] == EVIDENCE_NEEDED for r in report.reasons or []):
        raise ValidationFailed(
            "a check was unavailable: name the evidence seen instead",
            fields={"evidence_ref": [f"required when a reason is {EVIDENCE_NEEDED}"]},
        )
    vote = Vote(client, decision, reason, evidence_ref, rt.clock.now())
    ruling = _ruled(session, report, required, vote)
    record(session, company=report.company, type=f"override.{ruling.event}", actor=Actor.of(client),
           subject_kind="override", subject_id=ruling.override.id,
           data={"report_id": report.id, "decision": decision, "status": ruling.override.status,
                 "reason": reason, "evidence_ref": evidence_ref}, at=vote.at)  # fmt: skip
    if ruling.settled and report.deal_id is not None:
        events = gate_changes(session, rt, report.deal_id, report.stage)
        ruling = replace(ruling, webhook_events=tuple(events))
    return ruling


def _ruled(session: Session, report: Report, required: int, vote: Vote) -> Ruling:
    override = _override_of(session, report.id)
    if override is None:
        try:
            with session.begin_nested():
                return open_override(session, report, required, vote)
        except IntegrityError:
            # Another reviewer's first ruling committed first: this one is added to it.
            override = _override_of(session, report.id)
            if override is None:
                raise
    return add_ruling(session, override, vote)


def open_override(session: Session, report: Report, required: int, vote: Vote) -> Ruling:
    """The report's first ruling: creates its override, settled at once unless it needs two approvals."""
    if vote.decision == "DECLINE":
        status, event = "declined", "declined"
    else:
        status, event = ("approved", "approved") if required == 1 else ("pending", "requested")
    override = Override(
        id=new_id("ovr"),
        company=report.company,
        report_id=report.id,
        decision=vote.decision,
        status=status,
        required_approvals=required,
        created_at=vote.at,
        decided_at=vote.at if status in SETTLED else None,
        approvals=[_approval(1, vote)],
    )
    session.add(override)
    session.flush()
    return Ruling(override, created=True, event=event)


def add_ruling(session: Session, override: Override, vote: Vote) -> Ruling:
    """A later ruling on a pending override: the approval that completes it, or a decline."""
    if override.status in SETTLED:
        raise Conflict(f"the report's override {override.id} is already {override.status}")
    if any(a.reviewer_id == vote.client.id or a.reviewer_name == vote.client.name for a in override.approvals):
        raise Conflict("this reviewer already ruled on the override: another reviewer must", fields={
            "reviewer": ["the same reviewer (same key or same name) rules once"]})  # fmt: skip
    approval = _approval(len(override.approvals) + 1, vote)
    approval.override_id = override.id
    try:
        with session.begin_nested():
            session.add(approval)
            session.flush()
    except IntegrityError:
        # Another reviewer's ruling took this number (or this reviewer's other key took its name) first.
        raise Conflict(f"the report's override {override.id} changed meanwhile; read it again") from None
    session.refresh(override, ["approvals"])
    if vote.decision == "DECLINE":
        override.status, override.decision = "declined", "DECLINE"
    elif len(override.approvals) >= override.required_approvals:
        override.status = "approved"
    override.decided_at = vote.at if override.status in SETTLED else None
    session.flush()
    return Ruling(override, created=False, event=override.status if override.status in SETTLED else "requested")


def overrides_of(session: Session, report_id: str) -> list[Override]:
    return list(session.scalars(select(Override).where(Override.report_id == report_id).order_by(Override.id)))


def _ensure_may_rule(session: Session, client: ApiClient, report: Report) -> None:
    if report.requested_by == client.id:
        raise Conflict("a reviewer may not rule on a report they asked for")
    if report.status != "complete":
        raise Conflict("the report is not complete yet; rule on it once it is")
    if session.scalar(select(Report.id).where(Report.id == report.id, newer_in_scope())) is not None:
        raise Conflict("a newer complete report answers for this listing, deal and stage: rule on that one")


def _override_of(session: Session, report_id: str) -> Override | None:
    stmt = select(Override).where(Override.report_id == report_id).execution_options(populate_existing=True)
    return session.scalars(stmt).first()


def _approval(number: int, vote: Vote) -> OverrideApproval:
    return OverrideApproval(
        number=number,
        decision=vote.decision,
        reviewer_id=vote.client.id,
        reviewer_name=vote.client.name,
        reason=vote.reason,
        evidence_ref=vote.evidence_ref,
        at=vote.at,
    )
