"""Domain exceptions. Each carries the public error code of API.md; one handler maps them to the shape

{"error": {"code": CODE, "message": "...", "fields": {...}}}
"""

from __future__ import annotations

from typing import Any


class ConfigError(Exception):
    """The operator's configuration is wrong; commands print this and exit non-zero."""


class PresignError(Exception):
    status = 500
    code = "internal_error"

    def __init__(
        self, message: str, fields: dict[str, Any] | None = None, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}  # sent with the answer (e.g. Retry-After)
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message, "fields": self.fields}
        body.update(self.extra)
        return {"error": body}

    def shown_to(self, store_scoped: bool, store: str | None) -> PresignError:
        """The error as the caller may see it: `store_scoped` for a key confined to its `store` (agents),
        and for a caller not known."""
        return self


class BadRequest(PresignError):
    status, code = 400, "bad_request"


class Unauthorized(PresignError):
    status, code = 401, "unauthorized"


class Forbidden(PresignError):
    status, code = 403, "forbidden"


class NotFound(PresignError):
    status, code = 404, "not_found"


class Conflict(PresignError):
    status, code = 409, "conflict"


class ExternalIdUsed(Conflict):
    """An `external_id` already used in the company: names the object using it, except to agents, who
    learn only whether it is their store's (API.md v1.1: a 409 on `external_id` names no id for them)."""

    def __init__(self, kind: str, existing_id: str, existing_store: str) -> None:
        super().__init__(
            f"external_id is already used by {kind} {existing_id}",
            fields={"external_id": [f"already used by {kind} {existing_id}"]},
        )
        self.kind, self.existing_store = kind, existing_store

    def shown_to(self, store_scoped: bool, store: str | None) -> PresignError:
        if not store_scoped:
            return self
        mine = store == self.existing_store
        holder = f"another {self.kind} of this store" if mine else f"a {self.kind} of another store"
        return Conflict(f"external_id is already used by {holder}", {"external_id": [f"already used by {holder}"]})


class IdempotencyKeyReused(PresignError):
    status, code = 409, "idempotency_key_reused"


class PayloadTooLarge(PresignError):
    status, code = 413, "payload_too_large"


class ValidationFailed(PresignError):
    status, code = 422, "validation_error"


class RateLimited(PresignError):
    status, code = 429, "rate_limited"


class Unavailable(PresignError):
    status, code = 503, "unavailable"


def fields_from_marshmallow(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Flatten marshmallow's nested messages into `{"seller.id_number": ["..."]}`."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema" and prefix:
                path = prefix
            if isinstance(value, dict):
                out.update(fields_from_marshmallow(value, path))
            elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                out.setdefault(path, []).extend(value)
            elif isinstance(value, list):
                for item in value:
                    out.update(fields_from_marshmallow(item, path))
            else:
                out.setdefault(path, []).append(str(value))
    elif isinstance(messages, list):
        out.setdefault(prefix or "_schema", []).extend(str(m) for m in messages)
    else:
        out.setdefault(prefix or "_schema", []).append(str(messages))
    return out
