"""Cursor pagination: newest first by id (ids sort by creation time), an opaque cursor, a bounded limit."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import marshmallow as ma
from sqlalchemy import Select
from sqlalchemy.orm import Session

from risk.errors import ValidationFailed
from risk.web.ids import looks_like_id

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class PageArgsSchema(ma.Schema):
    cursor = ma.fields.String(
        validate=ma.validate.Length(max=200), metadata={"description": "`next` of the previous page"}
    )
    limit = ma.fields.Integer(
        load_default=DEFAULT_LIMIT,
        validate=ma.validate.Range(1, MAX_LIMIT),
        metadata={"description": f"items per page, at most {MAX_LIMIT}"},
    )


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(f"v1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The id a cursor points after; 422 naming `cursor` when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        text = ""
    version, _, last_id = text.partition(":")
    if version != "v1" or not looks_like_id(last_id):
        raise ValidationFailed("invalid cursor", fields={"cursor": ["not a cursor from this API"]})
    return last_id


def paginate(
    session: Session, stmt: Select[Any], id_column: Any, args: dict[str, Any]
) -> tuple[Sequence[Any], str | None]:
    """One page of `stmt` (a select of one entity) newest first, and the cursor of the next page or None."""
    limit: int = args.get("limit", DEFAULT_LIMIT)
    if args.get("cursor"):
        stmt = stmt.where(id_column < decode_cursor(args["cursor"]))
    rows = session.scalars(stmt.order_by(id_column.desc()).limit(limit + 1)).all()
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1].id)
    return rows, None
