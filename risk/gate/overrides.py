"""Overrides: a reviewer accepts a complete REVIEW report. A BLOCK cannot be overridden."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from risk.db import new_id
from risk.errors import Conflict
from risk.gate.models import Override
from risk.reports.models import Report

if TYPE_CHECKING:
    from risk.auth.models import ApiClient
    from risk.runtime import Runtime


def create_override(session: Session, rt: Runtime, client: ApiClient, report: Report, reason: str) -> Override:
    if report.status != "complete":
        raise Conflict("the report is not complete yet; override it once it is")
    if report.decision != "REVIEW":
        raise Conflict(f"only a REVIEW report can be overridden; this one is {report.decision}")
    existing = session.scalars(select(Override).where(Override.report_id == report.id)).first()
    if existing is not None:
        raise Conflict(f"the report already has override {existing.id}")
    override = Override(
        id=new_id("ovr"),
        company=report.company,
        report_id=report.id,
        decision="ALLOW",
        reason=reason,
        reviewer_id=client.id,
        reviewer_name=client.name,
        created_at=rt.clock.now(),
    )
    try:
        with session.begin_nested():  # the unique report_id settles two reviewers at once
            session.add(override)
            session.flush()
    except IntegrityError:
        raise Conflict("the report already has an override") from None
    return override
