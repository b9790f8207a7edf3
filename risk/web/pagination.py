"""Cursor pagination: newest first by id (ids sort by creation time), or oldest first by an integer key
(an audit chain's `seq`); an opaque cursor, a bounded limit."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import marshmallow as ma
from sqlalchemy import Integer, Select
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


def encode_cursor(last: str | int) -> str:
    return base64.urlsafe_b64encode(f"v1:{last}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, integer: bool = False) -> Any:
    """The id (or, with `integer`, the integer key) a cursor points after; 422 naming `cursor` when it
    is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        text = ""
    version, _, last = text.partition(":")
    if version == "v1" and integer and last.isdigit() and len(last) <= 18:
        return int(last)
    if version != "v1" or integer or not looks_like_id(last):
        raise ValidationFailed("invalid cursor", fields={"cursor": ["not a cursor from this API"]})
    return last


def paginate(
    session: Session, stmt: Select[Any], id_column: Any, args: dict[str, Any], *, oldest_first: bool = False
) -> tuple[Sequence[Any], str | None]:
    """One page of `stmt` (a select of one entity) newest first by `id_column`, or oldest first, and the
    cursor of the next page or None. `id_column` is an id, or an integer column such as a `seq`."""
    limit: int = args.get("limit", DEFAULT_LIMIT)
    integer = isinstance(id_column.type, Integer)
    if args.get("cursor"):
        after = decode_cursor(args["cursor"], integer=integer)
        stmt = stmt.where(id_column > after if oldest_first else id_column < after)
    order = id_column.asc() if oldest_first else id_column.desc()
    rows = session.scalars(stmt.order_by(order).limit(limit + 1)).all()
    if len(rows) > limit:
        return rows[:limit], encode_cursor(getattr(rows[limit - 1], id_column.key))
    return rows, None
