"""Marshmallow fields shared by the API's schemas: trimmed text, money and areas as decimals, and
bounded instants."""

from __future__ import annotations

import math
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import marshmallow as ma

from risk.clock import SHANGHAI

# C0 controls and DEL: never meaningful in a listing, and PostgreSQL refuses NUL in text columns.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DECIMAL = re.compile(r"^\d{1,15}(\.\d{1,12})?$")
_CENT = Decimal("0.01")


class Text(ma.fields.String):
    """A single-line string, trimmed, non-blank, of at most `max_length` characters."""

    def __init__(self, max_length: int, **kwargs: Any) -> None:
        validators = [ma.validate.Length(min=1, max=max_length)]
        extra = kwargs.pop("validate", None)
        if extra is not None:
            validators.extend(extra if isinstance(extra, list | tuple) else [extra])
        super().__init__(validate=validators, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if _CONTROL.search(text):
            raise ma.ValidationError("must not contain control characters")
        if not text:
            raise ma.ValidationError("must not be blank")
        return text


class DecimalAmount(ma.fields.Field):
    """A positive decimal with at most two places: a JSON number or a decimal string in, a string out.

    Out, it is always a string with exactly two places (`"62350.50"`), so no client ever sees a
    float rounding artefact.
    """

    default_error_messages = {
        "invalid": "must be a number or a decimal string such as 62350.50",
        "places": "must have at most 2 decimal places",
        "positive": "must be greater than 0",
        "too_large": "must be at most {maximum}",
    }

    def __init__(self, *, maximum: Decimal, **kwargs: Any) -> None:
        metadata = {"example": "62350.50", **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)
        self.maximum = maximum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, str):
            if not _DECIMAL.match(value.strip()):
                raise self.make_error("invalid")
            number = Decimal(value.strip())
        elif isinstance(value, int):
            number = Decimal(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise self.make_error("invalid")
            number = Decimal(repr(value))  # the shortest decimal that reads back as this float
        else:
            raise self.make_error("invalid")
        if number <= 0:
            raise self.make_error("positive")
        if number > self.maximum:
            raise self.make_error("too_large", maximum=f"{self.maximum}")
        try:
            rounded = number.quantize(_CENT)
        except InvalidOperation:
            raise self.make_error("places") from None
        if rounded != number:
            raise self.make_error("places")
        return rounded

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return f"{Decimal(value):.2f}"


# API.md, Dates: every date and time in a request body lies in these Asia/Shanghai bounds.
EARLIEST_MOMENT = datetime(1990, 1, 1, tzinfo=SHANGHAI)
LATEST_MOMENT = datetime(2100, 12, 31, 23, 59, 59, 999999, tzinfo=SHANGHAI)


class Moment(ma.fields.AwareDateTime):
    """An ISO 8601 time with offset, between 1990-01-01 and 2100-12-31 in Asia/Shanghai.

    The bounds are in the OpenAPI document as `x-minimum` / `x-maximum` (OpenAPI has no range for
    strings), so that a client or a generator of test data can keep to them."""

    default_error_messages = {"out_of_range": "must be between 1990-01-01 and 2100-12-31 (Asia/Shanghai)"}

    def __init__(self, **kwargs: Any) -> None:
        metadata = {
            "description": "ISO 8601 with offset, from 1990-01-01 to 2100-12-31 (Asia/Shanghai)",
            "x-minimum": EARLIEST_MOMENT.isoformat(),
            "x-maximum": LATEST_MOMENT.isoformat(),
            **kwargs.pop("metadata", {}),
        }
        super().__init__(format="iso", metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        moment: datetime = super()._deserialize(value, attr, data, **kwargs)
        try:
            inside = EARLIEST_MOMENT <= moment <= LATEST_MOMENT
        except OverflowError:  # an offset that moves the time past datetime's range
            inside = False
        if not inside:
            raise self.make_error("out_of_range")
        return moment


class Instant(ma.fields.AwareDateTime):
    """An aware time, out as ISO 8601; one already written so (a gate answer's, built as JSON) passes as it is."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if isinstance(value, str):
            return value
        return super()._serialize(value, attr, obj, **kwargs)  # type: ignore[no-any-return,return-value]
