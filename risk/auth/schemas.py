"""Key schemas: what the admin endpoints accept and show. A key or secret is shown only when it is made."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import marshmallow as ma

from risk.auth.models import ROLES
from risk.auth.operations import MAX_OVERLAP
from risk.errors import ConfigError
from risk.settings import parse_duration
from risk.web.fields import Text


class Overlap(ma.fields.Field):
    """A duration such as `24h` (s, m, h or d), at most 30 days."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> timedelta:
        if not isinstance(value, str):
            raise ma.ValidationError("a duration such as 24h")
        text = value
        if len(text) > 20:
            raise ma.ValidationError("a duration such as 24h")
        try:
            overlap = parse_duration(text)
        except ConfigError:
            raise ma.ValidationError("a duration such as 24h (a number and s, m, h or d)") from None
        if overlap > MAX_OVERLAP:
            raise ma.ValidationError("at most 30d")
        return overlap


class KeyInputSchema(ma.Schema):
    role = ma.fields.String(required=True, validate=ma.validate.OneOf(ROLES))
    name = Text(200, required=True, validate=ma.validate.Length(min=1))
    store = Text(100, load_default="default", validate=ma.validate.Length(min=1))


class RotateInputSchema(ma.Schema):
    overlap = Overlap(
        metadata={"description": "how long the previous ones keep working; default 24h", "type": "string"},
    )


class HeldKeySchema(ma.Schema):
    prefix = ma.fields.String(required=True, metadata={"description": "the key's first characters"})
    created_at = ma.fields.DateTime(required=True)
    expires_at = ma.fields.DateTime(required=True, allow_none=True)


class ClientSchema(ma.Schema):
    id = ma.fields.String(required=True)
    role = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    company = ma.fields.String(required=True)
    store = ma.fields.String(required=True)
    created_at = ma.fields.DateTime(required=True)
    revoked_at = ma.fields.DateTime(required=True, allow_none=True)
    keys = ma.fields.List(ma.fields.Nested(HeldKeySchema), required=True)


class NewClientSchema(ClientSchema):
    key = ma.fields.String(required=True, metadata={"description": "shown this once"})
    webhook_secret = ma.fields.String(required=True, metadata={"description": "shown this once"})


class ClientPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ClientSchema), required=True)
    next = ma.fields.String(required=True, allow_none=True)


class NewKeySchema(ma.Schema):
    id = ma.fields.String(required=True)
    key = ma.fields.String(required=True, metadata={"description": "shown this once"})


class NewSecretSchema(ma.Schema):
    id = ma.fields.String(required=True)
    webhook_secret = ma.fields.String(required=True, metadata={"description": "shown this once"})
