"""The one error handler: every 4xx/5xx body is `{"error": {"code", "message", "fields"}}`."""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
from flask import Flask, Response, jsonify, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from risk.auth import access
from risk.errors import PresignError, RateLimited
from risk.ops.metrics import RATE_LIMITED

log = logging.getLogger(__name__)

# werkzeug's HTTP errors that API.md names, by status; any other status gets its snake-cased name.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    414: "uri_too_long",
    422: "validation_error",
    429: "rate_limited",
    431: "headers_too_large",
    503: "unavailable",
}
_HTTP_MESSAGES = {
    404: "no such endpoint",
    405: "method not allowed on this endpoint",
    413: "request body too large",
}
# Errors that mean the database (or the network to it) is down or busy, not that the request is wrong.
_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, sa_exc.DisconnectionError)


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "stable error code, e.g. `validation_error`"})
    message = ma.fields.String(required=True, metadata={"description": "human-readable summary"})
    field_messages = ma.fields.Dict(
        data_key="fields",
        keys=ma.fields.String(),
        values=ma.fields.List(ma.fields.String()),
        required=True,
        metadata={"description": "field path (e.g. `seller.id_number`) to its messages; empty when none"},
    )


class ErrorSchema(ma.Schema):
    """The error body of every 4xx/5xx answer (used for the OpenAPI document)."""

    error = ma.fields.Nested(ErrorBodySchema, required=True)


def error_response(status: int, code: str, message: str, fields: dict[str, Any] | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "fields": fields or {}}})
    response.status_code = status
    return response


def _rollback() -> None:
    from risk.web.transaction import rollback

    try:
        rollback()
    except Exception:
        # Already answering an error (often: the database is gone); the session is closed at teardown.
        log.warning("rollback failed while answering an error", exc_info=True)


def handle_presign_error(exc: PresignError) -> Response:
    _rollback()
    if isinstance(exc, RateLimited):
        RATE_LIMITED.inc()
    exc = exc.shown_to(*access.caller_scope())
    response = jsonify(exc.to_dict())
    response.status_code = exc.status
    response.headers.update(exc.headers)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def handle_http_exception(exc: HTTPException) -> Response:
    _rollback()
    status = exc.code or 500
    if status >= 500:
        return handle_unexpected(exc)
    code = _HTTP_CODES.get(status) or (exc.name or "error").lower().replace(" ", "_")
    response = error_response(status, code, _HTTP_MESSAGES.get(status) or exc.name or "error")
    for name, value in exc.get_headers():  # keep werkzeug's Allow header on 405 answers
        if name.lower() == "allow":
            response.headers[name] = value
    return response


def handle_unexpected(exc: Exception) -> Response:
    _rollback()
    if isinstance(exc, _UNAVAILABLE) or isinstance(getattr(exc, "original_exception", None), _UNAVAILABLE):
        log.error("database unavailable on %s %s: %s", request.method, request.path, type(exc).__name__)
        response = error_response(503, "unavailable", "a dependency is unavailable; retry later")
        response.headers["Retry-After"] = "5"
        return response
    # Only the method and path: bodies and headers may carry ID numbers and keys.
    log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return error_response(500, "internal_error", "internal error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(PresignError, handle_presign_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
