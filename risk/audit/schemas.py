"""Audit event schemas: the list's query, and the event as the API returns it (what its hash covers)."""

from __future__ import annotations

import marshmallow as ma

from risk.audit.events import SUBJECT_KINDS, TYPES
from risk.web.fields import Text
from risk.web.pagination import PageArgsSchema


class AuditQuerySchema(PageArgsSchema):
    type = ma.fields.String(validate=ma.validate.OneOf(TYPES))
    subject_kind = ma.fields.String(validate=ma.validate.OneOf(SUBJECT_KINDS))
    subject_id = Text(100)
    since = ma.fields.AwareDateTime(format="iso", metadata={"description": "events at or after this time"})
    until = ma.fields.AwareDateTime(format="iso", metadata={"description": "events before this time"})


class ActorSchema(ma.Schema):
    client_id = ma.fields.String(required=True, allow_none=True, metadata={"description": "null for the system"})
    role = ma.fields.String(required=True, metadata={"description": "the client's role, or `system`"})
    name = ma.fields.String(required=True)


class SubjectSchema(ma.Schema):
    kind = ma.fields.String(required=True, validate=ma.validate.OneOf(SUBJECT_KINDS))
    id = ma.fields.String(required=True)


class AuditEventSchema(ma.Schema):
    seq = ma.fields.Integer(required=True, metadata={"description": "1, 2, 3 … per company, without gaps"})
    type = ma.fields.String(required=True, validate=ma.validate.OneOf(TYPES))
    at = ma.fields.String(required=True, metadata={"description": "when the action happened (ISO 8601, UTC)"})
    actor = ma.fields.Nested(ActorSchema, required=True)
    subject = ma.fields.Nested(SubjectSchema, required=True)
    data = ma.fields.Raw(required=True, metadata={"description": "what happened; `gate.answered`: the answer sent"})
    prev_hash = ma.fields.String(required=True, metadata={"description": "the previous event's hash (64 zeros first)"})
    hash = ma.fields.String(
        required=True,
        metadata={
            "description": "hex SHA-256 of this object's canonical JSON without `hash` (keys sorted, no spaces, UTF-8)"
        },
    )


class AuditEventPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AuditEventSchema), required=True)
    next = ma.fields.String(required=True, allow_none=True)
