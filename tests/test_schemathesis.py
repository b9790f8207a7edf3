"""Schemathesis against the app's own OpenAPI document, through the Flask app (no server): every
documented operation gets generated requests, valid and not, with an admin key, and must answer
without a 500, with a documented status and content type, in its documented schema.

Bounded: a few examples per operation, no deadline per example, derandomised so CI runs the same
cases every time. Dates are generated inside the bounds the document states (`x-minimum` /
`x-maximum`), since a date outside them is a 422 the document already promises."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi import formats

from risk.web.fields import EARLIEST_MOMENT, LATEST_MOMENT

pytestmark = pytest.mark.schemathesis

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]


def _moments() -> st.SearchStrategy[str]:
    inside = st.datetimes(
        min_value=EARLIEST_MOMENT.astimezone(UTC).replace(tzinfo=None),
        max_value=LATEST_MOMENT.astimezone(UTC).replace(tzinfo=None),
        timezones=st.just(UTC),
    )
    return inside.map(datetime.isoformat)


@pytest.fixture
def bounded_dates() -> Iterator[None]:
    schemathesis.openapi.format("date-time", _moments())
    yield
    formats.unregister_string_format("date-time")  # back to schemathesis's own


@pytest.fixture
def admin(make_key: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(role='admin')}"}


def _failures(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> list[str]:
    """Run one operation's generated cases; the first failure hypothesis shrinks to, if any."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the failure is reported as found
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        run()
    except Exception as failure:  # a check failed: named with its operation, every operation still run
        return [f"{operation.label} ({mode}): {failure}"]
    return []


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_generated_requests_as_documented(app, admin, bounded_dates, mode):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures = [text for operation in operations for text in _failures(operation, mode, admin)]
    assert not failures, "\n\n".join(failures)
