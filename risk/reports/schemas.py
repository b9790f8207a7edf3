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

    @ma.post_dump
    def _evidence_always(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        if data.get("evidence") is None:
            data["evidence"] = {}
        return data


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

    @ma.post_dump
    def _until_complete(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        # A pending or running report shows empty reasons and commitments and leaves out notes,
        # requirements and exceptions, as does one completed before those fields existed (its digest).
        for name in ("reasons", "commitments"):
            if data.get(name) is None:
                data[name] = []
        for name in ("notes", "requirements", "exceptions"):
            if data.get(name) is None:
                data.pop(name, None)
        return data


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
