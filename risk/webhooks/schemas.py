"""A deal's webhook events as the API shows them: what was sent and how each attempt went."""

from __future__ import annotations

import marshmallow as ma

from risk.webhooks.models import EVENT_STATUSES, EVENT_TYPES


class WebhookAttemptSchema(ma.Schema):
    number = ma.fields.Integer(required=True)
    attempted_at = ma.fields.AwareDateTime(required=True, format="iso")
    status_code = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "the receiver's HTTP status; null if none came"}
    )
    error = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "why the attempt failed without a 2xx, if it did"}
    )
    duration_ms = ma.fields.Integer(
        required=True, allow_none=True, metadata={"description": "null when the attempt never reported back"}
    )
    response_snippet = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "the start of the receiver's answer, truncated"}
    )


class WebhookEventSchema(ma.Schema):
    id = ma.fields.String(required=True, metadata={"description": "the `id` in the body; the same on every attempt"})
    type = ma.fields.String(required=True, validate=ma.validate.OneOf(EVENT_TYPES))
    deal_id = ma.fields.String(required=True)
    created_at = ma.fields.String(required=True, metadata={"description": "ISO 8601 time, as in the body"})
    data = ma.fields.Dict(required=True)
    status = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(EVENT_STATUSES),
        metadata={"description": "`pending` (being retried), `delivered` (a 2xx came back) or `failed` (gave up)"},
    )
    attempts = ma.fields.List(ma.fields.Nested(WebhookAttemptSchema), required=True)
    next_attempt_at = ma.fields.AwareDateTime(required=True, allow_none=True, format="iso")
    delivered_at = ma.fields.AwareDateTime(required=True, allow_none=True, format="iso")
    failed_at = ma.fields.AwareDateTime(required=True, allow_none=True, format="iso")


class WebhookEventPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(WebhookEventSchema), required=True)
    next = ma.fields.String(
        required=True, allow_none=True, metadata={"description": "opaque cursor for the next page; null on the last"}
    )
