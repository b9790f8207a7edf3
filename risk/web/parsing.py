"""Request bodies and arguments: the JSON body read and checked once, validation errors in our shape.

Every API blueprint is a `risk.web.parsing.Blueprint`, so `@blp.arguments(Schema)` validates with
marshmallow and fails as 422 `validation_error` with `fields` keyed by path (`seller.id_number`).
A body with a key twice is 400 (which value counts is a reader's guess), and a query parameter an
endpoint does not declare with `@blp.arguments(..., location="query")` is 422 naming it.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import flask_smorest
import marshmallow as ma
from flask import current_app, g, request
from marshmallow import RAISE
from webargs.flaskparser import FlaskParser

from risk.errors import BadRequest, PayloadTooLarge, ValidationFailed, fields_from_marshmallow

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_BODY = "presign_json_body"
_EMPTY_OK = "presign_empty_body_ok"


def _no_constants(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


class _DuplicateKey(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return data


# One decoder for every request: `json.loads` with an option builds a decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=_object)


def _body_bytes() -> bytes:
    """The whole body, or 413 `payload_too_large` past `MAX_CONTENT_LENGTH`, with or without a length.

    werkzeug refuses a declared length over the limit before reading, but cuts a chunked body at the
    limit without saying so: a chunked body is read here to the limit and one byte more instead."""
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if request.content_length is not None or limit is None or "wsgi.input_terminated" not in request.environ:
        return request.get_data(cache=True)  # werkzeug raises 413 here past MAX_CONTENT_LENGTH
    stream = request.environ["wsgi.input"]
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        raise PayloadTooLarge(f"the request body is over {limit // 1024} KiB")
    return b"".join(chunks)


def empty_body_ok() -> None:
    """This request's POST may come without a body (it is read as `{}`): its fields are all optional."""
    setattr(g, _EMPTY_OK, True)


def json_body() -> dict[str, Any]:
    """The request body as a JSON object, parsed once; 400 `bad_request` when it is anything else."""
    cached: dict[str, Any] | None = g.get(_BODY)
    if cached is not None:
        return cached
    mimetype = request.mimetype
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise BadRequest("send a JSON object with Content-Type: application/json")
    raw = _body_bytes()
    if not raw.strip() and g.get(_EMPTY_OK):
        setattr(g, _BODY, {})
        return {}
    if not raw.strip():
        raise BadRequest("the request body must be a JSON object")
    try:
        data = _DECODER.decode(raw.decode("utf-8"))
    except _DuplicateKey as twice:
        raise BadRequest(f"the request body has a duplicate key: {str(twice)[:60]!r}") from None
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadRequest("the request body is not valid JSON (UTF-8)") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    # JSON may escape lone surrogates ("\ud800"), which no database or response can encode. Valid
    # UTF-8 holds none, so only a body with a `\u` escape can bring one.
    if b"\\u" in raw:
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, RecursionError):
            raise BadRequest("the request body is not valid UTF-8 text") from None
    setattr(g, _BODY, data)
    return data


class Parser(FlaskParser):
    """webargs, reading the body through `json_body` and raising `ValidationFailed` on bad input.

    Query parameters an endpoint does not declare are refused, as unknown body fields are: a
    misspelt filter would otherwise answer every row as if it had filtered."""

    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": RAISE, "querystring": RAISE}

    def load_json(self, req: Any, schema: ma.Schema) -> Any:
        if req.method in BODY_METHODS:
            return json_body()
        return super().load_json(req, schema)

    def handle_error(
        self,
        error: ma.ValidationError,
        req: Any,
        schema: ma.Schema,
        *,
        error_status_code: int | None,
        error_headers: Any,
    ) -> NoReturn:
        messages: Any = error.messages
        # webargs files messages under their location ({"json": {...}}); the paths are what matter.
        if isinstance(messages, dict) and len(messages) == 1:
            (location,) = messages
            if location in self.__location_map__:
                messages = messages[location]
        fields = fields_from_marshmallow(messages)
        names = ", ".join(name[:60] for name in sorted(fields)[:5]) + (", …" if len(fields) > 5 else "")
        raise ValidationFailed(f"invalid input: {names}" if names else "invalid input", fields=fields)


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = Parser()
