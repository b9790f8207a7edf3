"""risk.db's fast path: compiled statements on a raw connection give what the ORM gives, on SQLite and
PostgreSQL alike, and fail the way the ORM fails."""

import re
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import JSON, Column, MetaData, String, Table, bindparam, insert, select
from sqlalchemy.exc import DBAPIError, OperationalError

from risk.db import InSession, Prepared, Raw, UTCDateTime, WriterQueue, checkout, new_id, transaction
from tests.api_helpers import kill_pooled_connections

# A table of this module's own, shaped like a recorded answer (string id, JSON, an aware time).
ANSWERS = Table(
    "prepared_probe",
    MetaData(),
    Column("id", String(40), primary_key=True),
    *(Column(name, String(40), nullable=True) for name in ("company", "client_id", "listing_id", "deal_id")),
    *(Column(name, String(40), nullable=True) for name in ("stage", "decision", "report_id", "override_id")),
    Column("refresh_report_id", String(40), nullable=True),
    Column("answer", JSON),
    Column("answered_at", UTCDateTime()),
)
BY_ID = Prepared(select(ANSWERS).where(ANSWERS.c.id == bindparam("id")))
BY_DEAL = Prepared(select(ANSWERS.c.id).where(ANSWERS.c.deal_id == bindparam("deal_id")).order_by(ANSWERS.c.id))
RECORD = Prepared(insert(ANSWERS))


@pytest.fixture
def rt(rt):
    ANSWERS.create(rt.engine, checkfirst=True)
    yield rt
    ANSWERS.drop(rt.engine, checkfirst=True)


def stored(session, answer_id):
    return session.execute(select(ANSWERS).where(ANSWERS.c.id == answer_id)).first()


def raw(rt):
    return checkout(rt.engine)


def answer(**overrides):
    row = {
        "id": new_id("gta"),
        "company": "c1",
        "client_id": "cli_1",
        "listing_id": "lst_1",
        "deal_id": "del_1",
        "stage": "signing",
        "decision": "ALLOW",
        "report_id": None,
        "override_id": None,
        "refresh_report_id": None,
        "answer": {"decision": "ALLOW", "reasons": [{"message": "房屋 ✓"}], "n": 1.5},
        "answered_at": datetime(2026, 11, 22, 8, 30, 15, 123456, tzinfo=UTC),
    }
    return row | overrides


def test_a_raw_write_reads_back_through_a_session_and_raw_alike(rt):
    row = answer()
    db = raw(rt)
    try:
        db.write(RECORD, row)
        fetched = db.first(BY_ID, {"id": row["id"]})
    finally:
        db.close()
    with rt.sessions() as session:
        orm = stored(session, row["id"])
        in_session = InSession(session).first(BY_ID, {"id": row["id"]})
    assert orm is not None
    assert orm.answer == fetched.answer == in_session.answer == row["answer"]
    assert orm.answered_at == fetched.answered_at == in_session.answered_at == row["answered_at"]
    assert fetched.answered_at.tzinfo is not None and fetched.deal_id == "del_1" and fetched.report_id is None


def test_a_raw_read_is_none_when_nothing_matches_and_all_keeps_order(rt):
    db = raw(rt)
    try:
        ids = sorted(new_id("gta") for _ in range(3))
        for answer_id in reversed(ids):
            db.write(RECORD, answer(id=answer_id))
        assert db.first(BY_ID, {"id": "gta_none"}) is None
        assert [r.id for r in db.all(BY_DEAL, {"deal_id": "del_1"})] == ids
    finally:
        db.close()


def test_a_database_error_surfaces_as_sqlalchemys_so_the_api_answers_it_as_usual(rt):
    db = raw(rt)
    try:
        with pytest.raises(DBAPIError):
            db.write(RECORD, answer(id="gta_dup"))
            db.write(RECORD, answer(id="gta_dup"))  # primary key taken
    finally:
        db.close()


def test_statements_compiled_per_call_are_refused():
    with pytest.raises(ValueError, match="expanding"):
        Prepared(select(ANSWERS.c.id).where(ANSWERS.c.stage.in_(["a", "b"])))._for(_sqlite_dialect())


def _sqlite_dialect():
    from sqlalchemy.dialects import sqlite

    return sqlite.dialect()


def test_ids_keep_their_shape_and_sort_by_time():
    ids = [new_id("gta") for _ in range(200)]
    assert all(re.fullmatch(r"gta_[0-9a-hjkmnp-tv-z]{26}", i) for i in ids)
    assert len(set(ids)) == 200
    assert [i[:14] for i in ids] == sorted(i[:14] for i in ids)  # the millisecond stamp leads


def _hold_and_log(path: str, log: str, rounds: int) -> None:
    import os
    import time

    for _ in range(rounds):
        with WriterQueue.held(path):
            with open(log, "a") as fh:
                fh.write(f"in {os.getpid()}\n")
            time.sleep(0.002)
            with open(log, "a") as fh:
                fh.write(f"out {os.getpid()}\n")


def test_the_writers_queue_lets_one_process_at_a_time_in(tmp_path):
    import multiprocessing

    path, log = str(tmp_path / "x.db"), str(tmp_path / "log")
    with WriterQueue.held(path):  # the parent's own file: children forked now must open their own
        pass
    ctx = multiprocessing.get_context("fork")
    children = [ctx.Process(target=_hold_and_log, args=(path, log, 30)) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)
    assert all(child.exitcode == 0 for child in children)
    lines = open(log).read().split("\n")[:-1]
    assert len(lines) == 180
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):  # strictly in, out, in, out …
        assert enter.startswith("in ") and leave == "out " + enter[3:]


@pytest.fixture
def sqlite_rt(settings, tmp_path):
    """A runtime on SQLite even when the suite runs on PostgreSQL: its single writer is the point."""
    from dataclasses import replace

    from risk.runtime import Runtime
    from risk.schema import upgrade

    runtime = Runtime.build(replace(settings, database_url=f"sqlite:///{tmp_path / 'own.db'}"))
    upgrade(runtime.engine)
    ANSWERS.create(runtime.engine)
    yield runtime
    runtime.close()


def test_a_raw_write_waits_for_a_session_holding_the_write_lock(sqlite_rt):
    rt = sqlite_rt
    done = threading.Event()
    row = answer()

    def write() -> None:
        db = raw(rt)
        try:
            db.write(RECORD, row)
        finally:
            db.close()
        done.set()

    with transaction(rt.sessions) as session:
        session.execute(insert(ANSWERS), [answer()])  # holds SQLite's write lock until the commit
        thread = threading.Thread(target=write)
        thread.start()
        assert not done.wait(0.3)  # queued behind the session, not failed
    thread.join(10)
    assert done.is_set()
    with rt.sessions() as session:
        assert stored(session, row["id"]) is not None


def test_operational_errors_are_sqlalchemys(tmp_path):
    from risk.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    db = Raw(engine.raw_connection(), engine.dialect, engine.url.database)
    try:
        with pytest.raises(OperationalError, match="no such table"):
            db.first(BY_ID, {"id": "x"})
    finally:
        db.close()
        engine.dispose()


# -- connections the server dropped (PostgreSQL) -------------------------------------------------


@pytest.fixture
def pg(rt):
    if rt.settings.is_sqlite:
        pytest.skip("PostgreSQL only: a server that drops its connections")
    return rt


def _pooled(rt, count=3):
    """Leave `count` raw connections in the pool, each having answered once."""
    held = [raw(rt) for _ in range(count)]
    for db in held:
        db.first(BY_DEAL, {"deal_id": "none"})
    for db in held:
        db.close()


def test_a_read_on_a_connection_dropped_in_the_pool_runs_again_on_a_fresh_one(pg):
    row = answer()
    db = raw(pg)
    db.write(RECORD, row)
    db.close()
    _pooled(pg)
    kill_pooled_connections(pg)

    db = raw(pg)
    try:
        assert db.first(BY_ID, {"id": row["id"]}).id == row["id"]
        assert [r.id for r in db.all(BY_DEAL, {"deal_id": "del_1"})] == [row["id"]]
    finally:
        db.close()
    db = raw(pg)  # the rest of the pool was replaced: the next checkout answers too
    try:
        assert db.first(BY_ID, {"id": row["id"]}) is not None
    finally:
        db.close()


def test_a_write_first_on_a_dropped_connection_pings_first_and_is_written_once(pg):
    _pooled(pg)
    kill_pooled_connections(pg)
    row = answer()

    db = raw(pg)
    try:
        db.write(RECORD, row)
    finally:
        db.close()

    with pg.sessions() as session:
        assert stored(session, row["id"]) is not None


def test_a_connection_lost_after_it_answered_is_an_error_not_a_retry(pg):
    db = raw(pg)
    try:
        db.first(BY_DEAL, {"deal_id": "none"})
        kill_pooled_connections(pg)
        with pytest.raises(DBAPIError) as caught:
            db.first(BY_DEAL, {"deal_id": "none"})
        assert caught.value.connection_invalidated
    finally:
        db.close()


def test_new_id_is_milliseconds_then_random_bits_in_crockford_base32(monkeypatch):
    import risk.db

    crockford = "0123456789abcdefghjkmnpqrstvwxyz"
    for millis, random_bytes in [
        (0, bytes(10)),
        (1_795_000_000_123, bytes(range(246, 256))),
        (2**50 - 1, b"\xff" * 10),
        (1_795_000_000_124, bytes.fromhex("0123456789abcdef0f1e")),
    ]:
        monkeypatch.setattr(risk.db.time, "time", lambda m=millis: m / 1000 + 0.0004)
        monkeypatch.setattr(risk.db.secrets, "token_bytes", lambda n, r=random_bytes: r)
        value = (millis << 80) | int.from_bytes(random_bytes)
        expected = "".join(crockford[(value >> shift) & 31] for shift in range(125, -1, -5))
        assert new_id("gta") == f"gta_{expected}"
    monkeypatch.undo()
    ids = [new_id("rpt") for _ in range(50)]
    assert all(re.fullmatch(r"rpt_[0-9a-hjkmnp-tv-z]{26}", made) for made in ids)
    assert len(set(ids)) == 50
