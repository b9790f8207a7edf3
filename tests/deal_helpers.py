"""Helpers for deal, gate and re-check tests: a registry world, deal bodies, a worker run."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from itertools import count as counter
from typing import Any

import pytest

from checks.providers.importer import import_records
from risk.runtime import Runtime
from tests import factories as f
from tests.conftest import START

_serial = counter(1)


def world(
    rt: Runtime,
    *,
    title: dict[str, Any] | None = None,
    fees: dict[str, Any] | None = None,
    inspections: dict[str, Any] | None = None,
    filing: dict[str, Any] | None = None,
    build_year: int = 2004,
) -> None:
    """Registry records for factories.UNIT_ID that pass every check unless overridden."""
    records = [
        {"kind": "unit", **f.unit_record(build_year=build_year)},
        {"kind": "community_prices", **f.community_prices_record()},
        {"kind": "title", **(title or f.title_record())},
        {"kind": "fee_account", **(fees or f.fee_account_record())},
        {"kind": "inspections", **(inspections or f.inspections_record())},
        {"kind": "contract_filing", **(filing or f.contract_filing_record())},
    ]  # fmt: skip
    import_records(rt, records)


def at(hours: float) -> str:
    return (START + timedelta(hours=hours)).isoformat()


def deal_body(listing_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "external_id": f"HT-{next(_serial):05d}",
        "listing_id": listing_id,
        "buyer": {"name": "李明", "id_number": f.BUYER_ID},
        "deposit_amount": "200000.00",
        "deposit_at": at(1),
        "signing_at": at(24),
        "online_signing_at": at(24 * 14),
        "transfer_at": at(24 * 30),
        "webhook_url": None,
        "filing_no": f.FILING_NO,
    }
    body.update(overrides)
    return body


def create_deal(client: Any, headers: dict[str, str], listing_id: str, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/deals", json=deal_body(listing_id, **overrides), headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def gate(client: Any, headers: dict[str, str], stage: str, **subject: str) -> dict[str, Any]:
    response = client.post("/api/v1/gate", json={"stage": stage, **subject}, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def drain(rt: Runtime) -> None:
    """Run every queued job with a real RQ worker, in this thread."""
    from worker.main import make_worker

    make_worker(rt).work(burst=True)


def moment(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


# -- fixtures (a pytest plugin: see tests/conftest.py) ---------------------------------------------


@pytest.fixture
def cs(auth: Any) -> dict[str, str]:
    """Headers of a contract_system key."""
    return auth(role="contract_system")  # type: ignore[no-any-return]


@pytest.fixture
def agent(auth: Any) -> dict[str, str]:
    """Headers of an agent key (store `default`)."""
    return auth(role="agent")  # type: ignore[no-any-return]


@pytest.fixture
def listing(client: Any, agent: dict[str, str]) -> dict[str, Any]:
    """A listing created through the API by the agent."""
    from tests.api_helpers import create_listing

    return create_listing(client, agent)


@pytest.fixture
def title_down(settings: Any, rt: Any) -> Any:
    """A runtime whose title provider refuses connections: drain(title_down) makes title unavailable."""
    from tests.test_report_pipeline import closed_port

    providers = {**settings.providers, "title": f"http://127.0.0.1:{closed_port()}"}
    runtime = Runtime.build(replace(settings, providers=providers, provider_budget_seconds=1.0))
    yield runtime
    runtime.close()
    rt.activate()
