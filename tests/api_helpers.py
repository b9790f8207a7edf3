"""Factories for API tests: listing bodies, calls that must succeed, row counts."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import func, select

from risk.identity import resident_check_digit
from risk.runtime import Runtime

_serial = itertools.count(1)


def resident_id(first17: str) -> str:
    """A valid resident ID from its first 17 digits (GB 11643 check digit computed)."""
    return first17 + resident_check_digit(first17)


SELLER_ID = resident_id("11010519780315002")
SELLER_ID_MASKED = SELLER_ID[:6] + "********" + SELLER_ID[-4:]


def listing_body(**overrides: Any) -> dict[str, Any]:
    """A valid POST /api/v1/listings body with a fresh external_id; override what the test is about."""
    body: dict[str, Any] = {
        "external_id": f"LJ-BJ-{next(_serial):05d}",
        "unit_id": "bj-yysh-3-2-602",
        "city": "北京",
        "community": "远洋山水",
        "building": "3",
        "unit": "2",
        "room": "602",
        "floor": 6,
        "area_m2": "89.50",
        "layout": "2室1厅",
        "orientation": "南北",
        "build_year": 2004,
        "asking_price": "6265000.00",
        "entrusted_price": 6265000,
        "seller": {"name": "张建国", "id_number": SELLER_ID, "id_type": "resident_id"},
        "photos": [{"url": "https://img.example/1.jpg", "sha256": "a" * 64}],
    }
    body.update(overrides)
    return body


def create_listing(client: Any, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/v1/listings", json=listing_body(**overrides), headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def request_report(client: Any, headers: dict[str, str], listing_id: str, stage: str = "deposit") -> dict[str, Any]:
    response = client.post(f"/api/v1/listings/{listing_id}/reports", json={"stage": stage}, headers=headers)
    assert response.status_code == 202, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def count(rt: Runtime, model: Any) -> int:
    with rt.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The answer is `status` with exactly the error shape and `code`; returns the error object."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["fields"], dict)
    return body["error"]  # type: ignore[no-any-return]


def kill_pooled_connections(rt: Runtime) -> None:
    """What a database restart or failover does to the pools (PostgreSQL): every connection to the
    test database but the killer's is terminated, and gone before this returns (terminating one only
    signals its server process, which then closes it)."""
    import time

    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    admin = create_engine(rt.engine.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    try:
        with admin.connect() as conn:
            killed = conn.execute(text(f"SELECT count(pg_terminate_backend(pid)) {others}")).scalar_one()
            deadline = time.monotonic() + 10
            while conn.execute(text(f"SELECT count(*) {others}")).scalar_one() and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        admin.dispose()
    assert killed > 0  # the pools held connections: the next statements meet dead ones
