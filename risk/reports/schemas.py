"""The report as the API shows it. The digest is computed over exactly this dump (minus `digest`)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from risk.reports.models import CHECK_STATUSES, DECISIONS, REPORT_STATUSES, SEVERITIES, STAGES
from risk.requirements.schemas import ExceptionSchema, RequirementSchema
from risk.web.fields import Text
from risk.web.pagination import PageArgsSchema


class ReasonSchema(ma.Schema):
    code = ma.fields.String(required=True)
    rule = ma.fields.String(required=True)
    check = ma.fields.String(required=True)
    message = ma.fields.String(required=True)
    decision = ma.fields.String(metadata={"description": "what the reason's rule decided: BLOCK or REVIEW"})
    overridable = ma.fields.Boolean(metadata={"description": "whether the policy lets reviewers open it"})
    requirement_id = ma.fields.String(metadata={"description": "REQUIREMENT_OPEN: the open requirement"})


class FindingSchema(ma.Schema):
    code = ma.fields.String(required=True)
    severity = ma.fields.String(required=True, validate=ma.validate.OneOf(SEVERITIES))
    message = ma.fields.String(required=True)
    evidence = ma.fields.Dict(required=True)


class CheckResultSchema(ma.Schema):
    check = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(CHECK_STATUSES))
    findings = ma.fields.List(ma.fields.Nested(FindingSchema), required=True)
    source = ma.fields.String(required=True)
    retrieved_at = ma.fields.AwareDateTime(required=True, format="iso")
    evidence = ma.fields.Dict(metadata={"description": "what the check looked at, even when clear"})


class CommitmentSchema(ma.Schema):
    code = ma.fields.String(required=True)
    version = ma.fields.String(required=True)
    title = ma.fields.String(required=True)
    terms = ma.fields.String(required=True)
    valid_from = ma.fields.String(allow_none=True, metadata={"description": "ISO 8601 time, or null"})
    valid_until = ma.fields.String(allow_none=True, metadata={"description": "ISO 8601 time, or null"})


class ReportSchema(ma.Schema):
    id = ma.fields.String(required=True)
    listing_id = ma.fields.String(required=True)
    listing_revision = ma.fields.Integer(required=True, metadata={"description": "the listing's revision it checked"})
    deal_id = ma.fields.String(allow_none=True)
    stage = ma.fields.String(required=True, validate=ma.validate.OneOf(STAGES))
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(REPORT_STATUSES))
    decision = ma.fields.String(allow_none=True, validate=ma.validate.OneOf(DECISIONS))
    policy_version = ma.fields.String(allow_none=True)
    reasons = ma.fields.List(ma.fields.Nested(ReasonSchema), required=True)
    checks = ma.fields.List(ma.fields.Nested(CheckResultSchema), required=True)
    commitments = ma.fields.List(ma.fields.Nested(CommitmentSchema), required=True)
    notes = ma.fields.List(
        ma.fields.String(),
        metadata={"description": "what the report could not do (e.g. commitments left out); set once complete"},
    )
    requirements = ma.fields.List(
        ma.fields.Nested(RequirementSchema),
        metadata={"description": "a deal's report: the deal's requirements as they stood at completion"},
    )
    exceptions = ma.fields.List(
        ma.fields.Nested(ExceptionSchema), metadata={"description": "disclosed and accepted, never blocking"}
    )
    created_at = ma.fields.AwareDateTime(required=True, format="iso")
    completed_at = ma.fields.AwareDateTime(allow_none=True, format="iso")
    digest = ma.fields.String(allow_none=True)
    requested_by = ma.fields.String(
        allow_none=True, metadata={"description": "the API client whose call created it; null for re-checks"}
    )


class ReportQuerySchema(PageArgsSchema):
    listing_id = Text(40)
    deal_id = Text(40)
    stage = ma.fields.String(validate=ma.validate.OneOf(STAGES))
    status = ma.fields.String(validate=ma.validate.OneOf(REPORT_STATUSES))
    decision = ma.fields.String(validate=ma.validate.OneOf(DECISIONS))
    awaiting_review = ma.fields.Boolean(
        metadata={
            "description": "true: complete, a REVIEW or a BLOCK whose blocking reasons are all overridable, the "
            "newest of its listing, deal and stage, with no approved or declined override (the review queue); "
            "false: every other report"
        }
    )


class ReportPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ReportSchema), required=True)
    next = ma.fields.String(required=True, allow_none=True)


def report_body(report: Any) -> dict[str, Any]:
    """The public JSON body of a report (ORM object or row with `checks`), checks in registry order.

    Exactly what `ReportSchema().dump` gives (tests/test_report_pipeline.py holds them equal over every
    demo scenario), built directly: the dump was a third of finalising a report, which builds this
    body for its digest (profiled)."""
    from checks.registry import ORDER

    checks = sorted(report.checks, key=lambda c: ORDER.index(c.check) if c.check in ORDER else len(ORDER))
    body: dict[str, Any] = {
        "id": report.id,
        "listing_id": report.listing_id,
        "listing_revision": report.listing_revision,
        "deal_id": report.deal_id,
        "stage": report.stage,
        "status": report.status,
        "decision": report.decision,
        "policy_version": report.policy_version,
        "reasons": [_pick(r, _REASON_FIELDS) for r in report.reasons or []],
        "checks": [
            {
                "check": c.check,
                "status": c.status,
                "findings": [_finding(f) for f in c.findings],
                "source": c.source,
                "retrieved_at": _iso(c.retrieved_at),
                "evidence": dict(c.evidence or {}),
            }
            for c in checks
        ],
        "commitments": [_pick(c, _COMMITMENT_FIELDS) for c in report.commitments or []],
        "created_at": _iso(report.created_at),
        "completed_at": _iso(report.completed_at),
        "digest": report.digest,
        "requested_by": report.requested_by,
    }
    notes = getattr(report, "notes", None)
    if notes is not None:  # absent, as a dump leaves it, until completion (and on reports from before notes)
        body["notes"] = list(notes)
    for name in ("requirements", "exceptions"):  # likewise: set on completion, absent on older reports
        value = getattr(report, name, None)
        if value is not None:
            body[name] = [dict(item) for item in value]
    return body


_REASON_FIELDS = tuple(ReasonSchema().fields)
_FINDING_FIELDS = tuple(FindingSchema().fields)
_COMMITMENT_FIELDS = tuple(CommitmentSchema().fields)


def _pick(item: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The schema's fields of `item`, in the schema's order; a field the item lacks is left out, as a
    dump leaves it."""
    return {name: item[name] for name in names if name in item}


def _finding(finding: dict[str, Any]) -> dict[str, Any]:
    picked = _pick(finding, _FINDING_FIELDS)
    if "evidence" in picked and picked["evidence"] is not None:
        picked["evidence"] = dict(picked["evidence"])
    return picked


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()
