"""State changes of requirements: raised and satisfied by a deal's reports as they complete, or
satisfied by a reviewer. Services flush; the caller commits."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from checks.codes import CODES
from risk.audit.events import Actor, record
from risk.db import new_id
from risk.deals.events import gate_changes
from risk.deals.models import Deal
from risk.errors import Conflict, NotFound
from risk.requirements import standing
from risk.requirements.models import Requirement
from risk.requirements.table import PARTY_LABELS, STAGE_LABELS, Row, Table, current_table
from risk.web.ids import looks_like_id

if TYPE_CHECKING:
    from risk.auth.models import ApiClient
    from risk.runtime import Runtime


def what(row: Row, finding: dict[str, Any]) -> str:
    """What to do, by whom, before which stage, with the finding's own specifics (its message names
    the holder, reference and amount, or the fees by category and period)."""
    return f"{PARTY_LABELS[row.who]}须在{STAGE_LABELS[row.due_stage]}前{row.what}。依据：{finding['message']}"


def subject(row: Row, finding: dict[str, Any], report_subject: dict[str, Any]) -> str:
    """Which instance of the finding the requirement is about: the evidence's field the row names, else the unit."""
    named = (finding.get("evidence") or {}).get(row.subject) if row.subject else None
    return str(named) if named else f"unit:{report_subject.get('unit_id')}"


def settle(
    session: Session, deal: Deal | None, report: Any, checks: list[Any], *, now: datetime, table: Table | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A completing report's effect on its deal's requirements; returns what the report carries:
    the deal's `requirements` as they then stand and the report's `exceptions`.

    A finding the table names raises its requirement (once per subject); an open requirement whose
    finding's check completed in this report without that finding for its subject is satisfied by the
    report. `report`: its id and `subject`; `checks`: rows with check, status and findings."""
    table = table or current_table()
    found: dict[tuple[str, str], tuple[Row, dict[str, Any]]] = {}
    for check in checks:
        for finding in check.findings:
            row = table.for_finding(finding["code"])
            if row is not None:
                found.setdefault((row.code, subject(row, finding, report.subject)), (row, finding))
    if deal is None:
        return [], _exceptions(checks, table, accepted=set(), report_subject=report.subject)
    # The deal's row first, as `gate_changes` locks it: two reports completing at once raise one requirement.
    session.scalars(select(Deal.id).where(Deal.id == deal.id).with_for_update(key_share=True)).one()
    of_deal = session.scalars(select(Requirement).where(Requirement.deal_id == deal.id))
    existing = {(r.code, r.subject): r for r in of_deal}
    completed = {c.check for c in checks if c.status != "unavailable"}
    for key, (row, finding) in found.items():
        requirement = existing.get(key)
        if requirement is None:
            requirement = Requirement(
                id=new_id("req"), deal_id=deal.id, code=row.code, finding_code=row.finding_code, subject=key[1],
                what=what(row, finding), who=row.who, due_stage=row.due_stage, table_version=table.version,
                status="open", satisfied_by=None, opened_by_report=report.id, created_at=now, updated_at=now,
            )  # fmt: skip
            session.add(requirement)
            existing[key] = requirement
        elif requirement.status == "satisfied" and isinstance(requirement.satisfied_by, str):
            # Found again after a report had cleared it: open until cleared again (a reviewer's word stands).
            requirement.status, requirement.satisfied_by, requirement.updated_at = "open", None, now
    for key, requirement in existing.items():
        check = CODES[requirement.finding_code].check if requirement.finding_code in CODES else None
        if requirement.status == "open" and key not in found and check in completed:
            requirement.status, requirement.satisfied_by, requirement.updated_at = "satisfied", report.id, now
    session.flush()
    ordered = sorted(existing.values(), key=lambda r: (r.created_at, r.id))
    accepted = {
        key for key, r in existing.items()
        if r.status == "satisfied" and isinstance(r.satisfied_by, dict) and _then_exception(table, r.code)
    }  # fmt: skip
    return [standing.body(r) for r in ordered], _exceptions(checks, table, accepted, report.subject)


def _then_exception(table: Table, code: str) -> bool:
    row = table.by_code(code)
    return row is not None and row.then_exception


def _exceptions(
    checks: list[Any], table: Table, accepted: set[tuple[str, str]], report_subject: dict[str, Any]
) -> list[dict[str, Any]]:
    """Disclosed and accepted, never blocking: `info` findings, and findings whose requirement a reviewer
    recorded as accepted (the buyer's written acknowledgement)."""
    exceptions = []
    for check in checks:
        for finding in check.findings:
            row = table.for_finding(finding["code"])
            key = (row.code, subject(row, finding, report_subject)) if row is not None else None
            if finding.get("severity") == "info" or key in accepted:
                exceptions.append({"finding_code": finding["code"], "what": finding["message"]})
    return exceptions


def satisfy(
    session: Session, rt: Runtime, client: ApiClient, deal: Deal, requirement_id: str, *, evidence_ref: str,
    note: str | None,
) -> tuple[Requirement, list[str]]:  # fmt: skip
    """A reviewer records a requirement of the deal as met; flushes. Returns it and the deal's
    `gate.changed` events to deliver after commit. 409 if it is satisfied already."""
    requirement = session.get(Requirement, requirement_id) if looks_like_id(requirement_id) else None
    if requirement is None or requirement.deal_id != deal.id:
        raise NotFound("no such requirement")
    now = rt.clock.now()
    approval = {"reviewer": client.name, "reviewer_id": client.id, "evidence_ref": evidence_ref, "note": note,
                "at": now.isoformat()}  # fmt: skip
    # A compare-and-set: of two reviewers at once, one records it and the other gets 409.
    done = session.execute(
        update(Requirement)
        .where(Requirement.id == requirement.id, Requirement.status == "open")
        .values(status="satisfied", satisfied_by=approval, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(requirement)
        raise Conflict(f"requirement {requirement.id} is already satisfied", fields={"status": [requirement.status]})
    session.refresh(requirement)
    data = {"deal_id": deal.id, "code": requirement.code, "evidence_ref": evidence_ref, "note": note}
    record(session, company=deal.company, type="requirement.satisfied", actor=Actor.of(client),
           subject_kind="requirement", subject_id=requirement.id, data=data, at=now)  # fmt: skip
    events = gate_changes(session, rt, deal.id)
    return requirement, events
