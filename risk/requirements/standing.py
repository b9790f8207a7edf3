"""A deal's requirements as they stand, and what they make the gate answer (asked by deal)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from risk.reports.models import STAGES
from risk.requirements.models import Requirement
from risk.requirements.table import STAGE_LABELS

_REQUIREMENTS = cast(Table, Requirement.__table__)
BODY_FIELDS = ("id", "code", "finding_code", "subject", "what", "who", "due_stage", "status", "satisfied_by")
_OF_DEAL = (
    select(*(_REQUIREMENTS.c[name] for name in (*BODY_FIELDS, "table_version")))
    .where(_REQUIREMENTS.c.deal_id == bindparam("deal_id"))
    .order_by(_REQUIREMENTS.c.created_at, _REQUIREMENTS.c.id)
)
REASON_CODE = "REQUIREMENT_OPEN"
Db = Session | Connection  # the gate reads in a session or on its `each_statement` connection


def rows_of(db: Db, deal_id: str) -> list[Any]:
    """The deal's requirements, oldest first, on whichever connection the caller reads with."""
    return list(db.execute(_OF_DEAL, {"deal_id": deal_id}).all())


def body(requirement: Any) -> dict[str, Any]:
    """A requirement as the API shows it (a Requirement or a row of `rows_of`)."""
    return {name: getattr(requirement, name) for name in BODY_FIELDS}


def of_deal(db: Db, deal_id: str) -> list[dict[str, Any]]:
    return [body(r) for r in rows_of(db, deal_id)]


def with_requirements(db: Db, deal_id: str, stage: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The gate's answer asked by deal, with the deal's requirements; BLOCK with a REQUIREMENT_OPEN reason
    for each open one due at or before `stage`, whatever the report or an override said."""
    rows = rows_of(db, deal_id)
    blocking = [r for r in rows if r.status == "open" and STAGES.index(stage) >= STAGES.index(r.due_stage)]
    answer = {**answer, "requirements": [body(r) for r in rows]}
    if blocking:
        answer["decision"] = "BLOCK"
        answer["reasons"] = [*answer["reasons"], *(reason(r) for r in blocking)]
    return answer


def reason(requirement: Any) -> dict[str, Any]:
    """The gate reason an open requirement gives, naming it; `rule` names the table version that raised it."""
    stage = STAGE_LABELS[requirement.due_stage]
    return {
        "code": REASON_CODE,
        "rule": f"requirements.{requirement.table_version}",
        "check": "requirements",
        "message": f"{stage}前须完成的要求 {requirement.code}（{requirement.id}）尚未完成：{requirement.what}",
        "decision": "BLOCK",
        "overridable": False,
        "requirement_id": requirement.id,
    }
