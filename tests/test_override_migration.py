"""Migration 0003: v1 overrides become approved overrides with one approval; complete reports learn
whether they are overridable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, text

from risk.schema import alembic_config
from tests.conftest import PG_ADMIN_URL

AT = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def empty_engine(tmp_path: Any, pg_url: str | None) -> Iterator[Engine]:
    """An engine on an empty database of the backend under test."""
    if pg_url is None:
        engine = create_engine(f"sqlite:///{tmp_path / 'migrate.db'}")
        yield engine
        engine.dispose()
        return
    name = f"presign_test_{os.getpid()}_migrate"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = create_engine(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    with engine.connect() as conn:
        (command.downgrade if down else command.upgrade)(alembic_config(conn), revision)
        conn.commit()


def test_a_v1_override_becomes_an_approved_override_with_its_one_approval(empty_engine):
    migrate(empty_engine, "0001")
    with empty_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO listings (id, company, store_id, created_by, external_id, unit_id, city, community,"
                " building, unit, room, floor, area_m2, layout, orientation, build_year, asking_price, seller_name,"
                " seller_id_type, seller_id_hash, seller_id_masked, status, created_at, updated_at)"
                " VALUES ('lst_1', 'default', 'default', 'cli_a', 'LJ-1', 'u', '北京', 'c', 'b', 'u', 'r', 1, 80,"
                " '2室1厅', '南', 2000, 1000000, '张', 'resident_id', 'h', 'm', 'active', :at, :at)"
            ),
            {"at": AT},
        )
        for report_id, status, decision in [("rpt_r", "complete", "REVIEW"), ("rpt_b", "complete", "BLOCK"),
                                            ("rpt_p", "running", None)]:  # fmt: skip
            conn.execute(
                text(
                    "INSERT INTO reports (id, company, listing_id, stage, status, decision, subject, requested_by,"
                    " attempts, created_at, updated_at) VALUES (:id, 'default', 'lst_1', 'signing', :status,"
                    " :decision, '{}', 'cli_a', 0, :at, :at)"
                ),
                {"id": report_id, "status": status, "decision": decision, "at": AT},
            )
        conn.execute(
            text(
                "INSERT INTO overrides (id, company, report_id, decision, reason, reviewer_id, reviewer_name,"
                " created_at) VALUES ('ovr_1', 'default', 'rpt_r', 'ALLOW', '卖方已结清物业费', 'cli_r', '王审核', :at)"
            ),
            {"at": AT},
        )

    migrate(empty_engine, "head")
    with empty_engine.connect() as conn:
        override = conn.execute(text("SELECT decision, status, required_approvals FROM overrides")).one()
        approvals = conn.execute(
            text(
                "SELECT override_id, number, decision, reviewer_id, reviewer_name, reason, evidence_ref"
                " FROM override_approvals"
            )  # fmt: skip
        ).all()
        overridable = dict(conn.execute(text("SELECT id, overridable FROM reports")).all())
    assert tuple(override) == ("ALLOW", "approved", 1)
    assert [tuple(a) for a in approvals] == [("ovr_1", 1, "ALLOW", "cli_r", "王审核", "卖方已结清物业费", None)]
    assert {k: (None if v is None else bool(v)) for k, v in overridable.items()} == {
        "rpt_r": True, "rpt_b": False, "rpt_p": None}  # fmt: skip

    migrate(empty_engine, "0001", down=True)  # and back: the approved override keeps its reviewer
    with empty_engine.connect() as conn:
        row = conn.execute(text("SELECT reason, reviewer_id, reviewer_name FROM overrides")).one()
    assert tuple(row) == ("卖方已结清物业费", "cli_r", "王审核")
