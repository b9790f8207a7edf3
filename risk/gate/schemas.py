"""The gate's request and answer, and overrides as the API takes and shows them (API.md v1.1)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma

from risk.gate.models import OVERRIDE_DECISIONS, OVERRIDE_STATUSES
from risk.reports.models import STAGES
from risk.reports.schemas import CommitmentSchema, ReasonSchema
from risk.requirements.schemas import RequirementSchema
from risk.web.fields import Instant, Text

REASON_MIN, REASON_MAX = 10, 2000


class OverrideInputSchema(ma.Schema):
    decision = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(OVERRIDE_DECISIONS),
        metadata={"description": "ALLOW approves (a BLOCK needs two reviewers); DECLINE closes the review"},
    )
    reason = Text(
        REASON_MAX,
        required=True,
        validate=ma.validate.Length(min=REASON_MIN),
        metadata={"description": f"why, in {REASON_MIN}–{REASON_MAX} characters"},
    )
    evidence_ref = Text(
        200,
        load_default=None,
        allow_none=True,
        metadata={
            "description": "what the reviewer saw (e.g. the number of a title search pulled at the registry "
            "counter); required to approve a report with a CHECK_UNAVAILABLE reason"
        },
    )


class OverrideApprovalSchema(ma.Schema):
    reviewer = ma.fields.String(required=True, attribute="reviewer_name", metadata={"description": "the key's name"})
    reviewer_id = ma.fields.String(required=True, metadata={"description": "the reviewer's client id"})
    reason = ma.fields.String(required=True)
    evidence_ref = ma.fields.String(required=True, allow_none=True)
    at = Instant(required=True, format="iso")


class OverrideSchema(ma.Schema):
    id = ma.fields.String(required=True)
    report_id = ma.fields.String(required=True)
    decision = ma.fields.String(required=True, validate=ma.validate.OneOf(OVERRIDE_DECISIONS))
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(OVERRIDE_STATUSES))
    approvals = ma.fields.List(ma.fields.Nested(OverrideApprovalSchema), required=True)
    required_approvals = ma.fields.Integer(required=True)
    reason = ma.fields.String(required=True, metadata={"description": "the first approval's"})
    reviewer = ma.fields.String(required=True, metadata={"description": "the first approval's reviewer"})
    created_at = Instant(required=True, format="iso", metadata={"description": "the first approval's"})


class OverrideListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(OverrideSchema), required=True)


class GateRequestSchema(ma.Schema):
    listing_id = Text(40, load_default=None)
    deal_id = Text(40, load_default=None)
    stage = ma.fields.String(required=True, validate=ma.validate.OneOf(STAGES))

    @ma.validates_schema
    def _one_subject(self, data: dict[str, Any], **kwargs: Any) -> None:
        if (data.get("listing_id") is None) == (data.get("deal_id") is None):
            raise ma.ValidationError("send exactly one of listing_id and deal_id", "listing_id")


class GateAnswerSchema(ma.Schema):
    decision = ma.fields.String(required=True)
    stage = ma.fields.String(required=True, validate=ma.validate.OneOf(STAGES))
    report_id = ma.fields.String(allow_none=True)
    reasons = ma.fields.List(ma.fields.Nested(ReasonSchema), required=True)
    commitments = ma.fields.List(ma.fields.Nested(CommitmentSchema), required=True)
    fresh_until = ma.fields.String(allow_none=True)
    override = ma.fields.Nested(OverrideSchema, allow_none=True)
    refresh_report_id = ma.fields.String(allow_none=True)
    requirements = ma.fields.List(
        ma.fields.Nested(RequirementSchema), metadata={"description": "asked by deal: the deal's requirements"}
    )


class RecordedAnswerSchema(ma.Schema):
    id = ma.fields.String(required=True, metadata={"description": "the audit event's own number"})
    client_id = ma.fields.String(required=True, metadata={"description": "the API client that asked"})
    answered_at = ma.fields.String(required=True)
    answer = ma.fields.Nested(GateAnswerSchema, required=True)


class GateAnswerPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(RecordedAnswerSchema), required=True)
    next = ma.fields.String(required=True, allow_none=True)
