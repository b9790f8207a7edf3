"""The report as the API shows it. The digest is computed over exactly this dump (minus `digest`)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from risk.reports.models import CHECK_STATUSES, DECISIONS, REPORT_STATUSES, SEVERITIES, STAGES


class ReasonSchema(ma.Schema):
    code = ma.fields.String(required=True)
    rule = ma.fields.String(required=True)
    check = ma.fields.String(required=True)
    message = ma.fields.String(required=True)


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
    deal_id = ma.fields.String(allow_none=True)
    stage = ma.fields.String(required=True, validate=ma.validate.OneOf(STAGES))
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(REPORT_STATUSES))
    decision = ma.fields.String(allow_none=True, validate=ma.validate.OneOf(DECISIONS))
    policy_version = ma.fields.String(allow_none=True)
    reasons = ma.fields.List(ma.fields.Nested(ReasonSchema), required=True)
    checks = ma.fields.List(ma.fields.Nested(CheckResultSchema), required=True)
    commitments = ma.fields.List(ma.fields.Nested(CommitmentSchema), required=True)
    created_at = ma.fields.AwareDateTime(required=True, format="iso")
    completed_at = ma.fields.AwareDateTime(allow_none=True, format="iso")
    digest = ma.fields.String(allow_none=True)


def report_body(report: Any) -> dict[str, Any]:
    """The public JSON body of a report (ORM object), checks in registry order."""
    from checks.registry import ORDER

    checks = sorted(report.checks, key=lambda c: ORDER.index(c.check) if c.check in ORDER else len(ORDER))
    data = {
        "id": report.id,
        "listing_id": report.listing_id,
        "deal_id": report.deal_id,
        "stage": report.stage,
        "status": report.status,
        "decision": report.decision,
        "policy_version": report.policy_version,
        "reasons": report.reasons or [],
        "checks": [
            {
                "check": c.check,
                "status": c.status,
                "findings": c.findings,
                "source": c.source,
                "retrieved_at": c.retrieved_at,
                "evidence": c.evidence or {},
            }
            for c in checks
        ],
        "commitments": report.commitments or [],
        "created_at": report.created_at,
        "completed_at": report.completed_at,
        "digest": report.digest,
    }
    return _REPORT.dump(data)  # type: ignore[no-any-return]


_REPORT = ReportSchema()  # dumping is stateless; a schema per call built five (nested ones included)
