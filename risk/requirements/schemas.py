"""Requirements and exceptions as the API takes and shows them (API.md v1.1, "Requirements")."""

from __future__ import annotations

import marshmallow as ma

from risk.reports.models import STAGES
from risk.requirements.models import REQUIREMENT_STATUSES
from risk.requirements.table import PARTIES
from risk.web.fields import Text


class RequirementSchema(ma.Schema):
    id = ma.fields.String(required=True)
    code = ma.fields.String(required=True, metadata={"description": "the requirement table's code"})
    finding_code = ma.fields.String(required=True)
    subject = ma.fields.String(required=True, metadata={"description": "which instance (e.g. the encumbrance's id)"})
    what = ma.fields.String(required=True, metadata={"description": "what to do, by whom, before which stage"})
    who = ma.fields.String(required=True, validate=ma.validate.OneOf(PARTIES))
    due_stage = ma.fields.String(required=True, validate=ma.validate.OneOf(STAGES))
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(REQUIREMENT_STATUSES))
    satisfied_by = ma.fields.Raw(
        required=True,
        allow_none=True,
        metadata={"description": "null, the id of the report that cleared it, or the reviewer's approval"},
    )


class ExceptionSchema(ma.Schema):
    finding_code = ma.fields.String(required=True)
    what = ma.fields.String(required=True)


class SatisfyInputSchema(ma.Schema):
    evidence_ref = Text(
        200, required=True, validate=ma.validate.Length(min=1),
        metadata={"description": "what shows it done (e.g. the mortgage discharge certificate's number)"},
    )  # fmt: skip
    note = Text(2000, load_default=None, allow_none=True)
