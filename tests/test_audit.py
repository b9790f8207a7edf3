"""The audit record: every action an event in its own transaction, one gap-free hash chain per company,
readable by admins, verifiable by anyone with the export, refused any change by the database."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import time
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from risk.audit.chain import chain_pending
from risk.audit.events import SYSTEM, record
from risk.audit.models import AuditEvent
from risk.cli import _register_commands, cli
from risk.db import transaction
from risk.runtime import Runtime
from tests import factories as f
from tests.api_helpers import SELLER_ID, SELLER_ID_MASKED, assert_error, create_listing, request_report
from tests.deal_helpers import at, create_deal, drain, gate, world

ZEROS = "0" * 64


def rehash(event: dict[str, Any]) -> str:
    """API.md's rule, written out independently of risk.audit: SHA-256 of the canonical JSON without `hash`."""
    without = {k: v for k, v in event.items() if k != "hash"}
    canonical = json.dumps(without, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def all_events(client: Any, headers: dict[str, str], limit: int = 200, **filters: str) -> list[dict[str, Any]]:
    """Every page of GET /api/v1/audit-events."""
    events: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        query = {"limit": str(limit), **filters, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/audit-events", query_string=query, headers=headers)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        events += page["items"]
        cursor = page["next"]
        if cursor is None:
            return events
    raise AssertionError("more than 100 pages")


def stored(rt: Runtime, **where: Any) -> list[AuditEvent]:
    with rt.sessions() as session:
        return list(session.scalars(select(AuditEvent).filter_by(**where).order_by(AuditEvent.id)))


def run_cli(rt: Runtime, args: list[str]) -> Result:
    env = {"PRESIGN_INSTANCE": str(rt.settings.instance), "PRESIGN_DATABASE_URL": rt.settings.database_url}
    _register_commands()
    result = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    rt.activate()  # the command activated (and closed) a runtime of its own
    return result


@pytest.fixture
def admin(auth: Any) -> dict[str, str]:
    return auth(role="admin", name="审计员")  # type: ignore[no-any-return]


def _some_history(client: Any, agent: dict[str, str], cs: dict[str, str], rt: Runtime) -> None:
    world(rt)
    listing = create_listing(client, agent)
    request_report(client, agent, listing["id"], stage="signing")
    drain(rt)
    gate(client, agent, "signing", listing_id=listing["id"])
    deal = create_deal(client, cs, listing["id"])
    gate(client, cs, "deposit", deal_id=deal["id"])
    client.patch(f"/api/v1/listings/{listing['id']}", json={"asking_price": "6200000.00"}, headers=agent)


# -- the chain -----------------------------------------------------------------------------------


def test_the_chain_recomputes_from_the_api_alone(client, agent, cs, admin, rt):
    _some_history(client, agent, cs, rt)
    assert chain_pending(rt.sessions) > 0

    events = all_events(client, admin, limit=3)
    assert len(events) == len(stored(rt)) >= 8
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    previous = ZEROS
    for event in events:
        assert set(event) == {"seq", "type", "at", "actor", "subject", "data", "prev_hash", "hash"}
        assert event["prev_hash"] == previous
        assert event["hash"] == rehash(event)
        previous = event["hash"]
    assert {"listing.changed", "report.requested", "report.completed", "gate.answered", "deal.changed"} <= {
        e["type"] for e in events
    }


def test_chaining_again_changes_nothing_and_new_events_continue_the_chain(client, agent, admin, rt, listing):
    chain_pending(rt.sessions)
    before = all_events(client, admin)
    assert chain_pending(rt.sessions) == 0
    assert all_events(client, admin) == before
    gate(client, agent, "deposit", listing_id=listing["id"])
    chain_pending(rt.sessions)
    after = all_events(client, admin)
    assert after[: len(before)] == before
    assert after[len(before)]["prev_hash"] == before[-1]["hash"] and after[-1]["seq"] == len(after)


def test_verify_prints_each_chain_and_its_head(client, agent, admin, rt, listing, auth):
    other = auth(role="agent", company="链家")
    create_listing(client, other)
    gate(client, agent, "deposit", listing_id=listing["id"])
    chain_pending(rt.sessions)
    head = all_events(client, admin)[-1]

    result = run_cli(rt, ["audit", "verify"])
    assert result.exit_code == 0, result.output
    lines = sorted(result.output.splitlines())
    assert lines == sorted(
        [f"default {head['seq']} events, head {head['hash']}", f"链家 2 events, head {_head(rt, '链家')}"]
    )
    alone = run_cli(rt, ["audit", "verify", "--company", "nobody"])
    assert alone.exit_code == 0 and alone.output == f"nobody 0 events, head {ZEROS}\n"


def _head(rt: Runtime, company: str) -> str:
    key_created, listing_changed = stored(rt, company=company)  # the other company's key, then its listing
    assert (key_created.type, listing_changed.type) == ("key.created", "listing.changed")
    return str(listing_changed.hash)


def _tamper(rt: Runtime, statement: str, **params: Any) -> None:
    """What an operator with database access can do: switch the guard off, change a row, switch it on."""
    with rt.engine.begin() as conn:
        if rt.settings.is_sqlite:
            conn.execute(text("DROP TRIGGER audit_events_no_update"))
            conn.execute(text(statement), params)
        else:
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
            conn.execute(text(statement), params)
            conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))


def test_an_edited_event_makes_verify_exit_1_naming_it(client, agent, rt, listing):
    for stage in ("deposit", "signing", "transfer"):
        gate(client, agent, stage, listing_id=listing["id"])
    chain_pending(rt.sessions)
    assert run_cli(rt, ["audit", "verify"]).exit_code == 0

    target = stored(rt, type="gate.answered")[1]
    edited = dict(target.data, decision="ALLOW")
    data = json.dumps(edited)
    _tamper(rt, "UPDATE audit_events SET data = :data WHERE id = :id", data=data, id=target.id)

    result = run_cli(rt, ["audit", "verify"])
    assert result.exit_code == 1
    assert f"event seq {target.seq} " in result.output and "hash does not match" in result.output


def test_a_rewritten_link_is_named_too(client, agent, rt, listing):
    for stage in ("deposit", "signing"):
        gate(client, agent, stage, listing_id=listing["id"])
    chain_pending(rt.sessions)
    last = stored(rt)[-1]
    _tamper(rt, "UPDATE audit_events SET prev_hash = :h WHERE id = :id", h="f" * 64, id=last.id)
    result = run_cli(rt, ["audit", "verify", "--company", "default"])
    assert result.exit_code == 1 and f"event seq {last.seq} " in result.output and "prev_hash" in result.output


def _answer_the_gate(settings: Any, key: str, listing_id: str, count: int, queue: Any) -> None:
    """A second API process: its own runtime and app, `count` gate calls, chaining as it goes."""
    from risk.app import create_app

    runtime = Runtime.build(settings).activate()
    try:
        client = create_app(runtime=runtime).test_client()
        headers = {"Authorization": f"Bearer {key}"}
        answered = 0
        for n in range(count):
            response = client.post("/api/v1/gate", json={"stage": "signing", "listing_id": listing_id}, headers=headers)
            answered += response.status_code == 200
            if n % 5 == 4:
                chain_pending(runtime.sessions)  # chainers run beside the writers, as in several workers
        queue.put(answered)
    finally:
        runtime.close()


def test_gate_answers_from_two_processes_make_one_gap_free_chain(client, agent, rt, listing, make_key, settings):
    world(rt)
    request_report(client, agent, listing["id"], stage="signing")
    drain(rt)
    keys = [make_key(role="agent"), make_key(role="contract_system")]
    chain_pending(rt.sessions)
    before = len(stored(rt))
    per_process = 20
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    processes = [
        context.Process(target=_answer_the_gate, args=(settings, key, listing["id"], per_process, queue))
        for key in keys
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert [p.exitcode for p in processes] == [0, 0]
    assert [queue.get(timeout=5), queue.get(timeout=5)] == [per_process, per_process]

    chain_pending(rt.sessions)
    with rt.sessions() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    assert len(events) == before + 2 * per_process
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    answers = [e for e in events if e.type == "gate.answered"]
    assert len(answers) == 2 * per_process
    assert {e.actor_role for e in answers} == {"agent", "contract_system"}
    result = run_cli(rt, ["audit", "verify"])
    assert result.exit_code == 0 and result.output == f"default {len(events)} events, head {events[-1].hash}\n"


# -- durability and chaining lag -------------------------------------------------------------------


def test_an_event_is_durable_before_the_chainer_runs(client, agent, admin, rt, listing):
    answer = gate(client, agent, "deposit", listing_id=listing["id"])
    (event,) = stored(rt, type="gate.answered")
    assert event.data == answer and (event.seq, event.prev_hash, event.hash) == (None, None, None)
    assert all_events(client, admin, type="gate.answered") == []  # chained events only
    chain_pending(rt.sessions)
    (shown,) = all_events(client, admin, type="gate.answered")
    assert shown["data"] == answer


def test_a_workers_sweeper_chains_an_event_within_5_seconds(client, agent, rt, listing):
    from worker.reconcile import Sweeper

    sweeper = Sweeper(rt).start()
    try:
        time.sleep(0.2)  # its first pass at start is done: the event below waits for a later one
        gate(client, agent, "deposit", listing_id=listing["id"])
        written = time.monotonic()
        while time.monotonic() - written < 5 and stored(rt, type="gate.answered")[0].seq is None:
            time.sleep(0.05)
        assert stored(rt, type="gate.answered")[0].seq is not None
    finally:
        sweeper.stop()


# -- what each action writes ---------------------------------------------------------------------------


def test_creating_and_correcting_a_listing_are_listing_changed_events_with_the_id_number_masked(client, agent, rt):
    listing = create_listing(client, agent)
    client.patch(f"/api/v1/listings/{listing['id']}", json={"floor": 7, "layout": "2室1厅"}, headers=agent)
    created, corrected = stored(rt, type="listing.changed")
    assert (created.subject_kind, created.subject_id) == ("listing", listing["id"])
    assert created.data["action"] == "created" and created.data["fields"]["seller"]["id_number"] == SELLER_ID_MASKED
    assert corrected.data == {"action": "updated", "fields": {"floor": 7, "revision": 2}}  # the layout did not change
    assert corrected.actor_role == "agent" and corrected.actor_client_id.startswith("cli_")
    assert SELLER_ID not in json.dumps([e.data for e in stored(rt)])


def test_a_patch_that_changes_nothing_writes_no_event(client, agent, rt, listing):
    client.patch(f"/api/v1/listings/{listing['id']}", json={"floor": listing["floor"]}, headers=agent)
    assert len(stored(rt, type="listing.changed")) == 1


def test_creating_and_changing_a_deal_are_deal_changed_events_with_the_buyers_id_masked(client, cs, rt, listing):
    deal = create_deal(client, cs, listing["id"])
    new_date = (f.at(deal["signing_at"]) + timedelta(hours=1)).isoformat()
    client.patch(f"/api/v1/deals/{deal['id']}", json={"signing_at": new_date}, headers=cs)
    created, changed = stored(rt, type="deal.changed")
    assert (created.subject_kind, created.subject_id, created.data["action"]) == ("deal", deal["id"], "created")
    assert "*" in created.data["fields"]["buyer"]["id_number"]
    assert changed.data == {"action": "updated", "fields": {"signing_at": new_date}}
    assert deal["buyer"]["id_number"] == created.data["fields"]["buyer"]["id_number"]


def test_a_report_request_and_its_completion_are_events(client, agent, rt, listing):
    world(rt)
    report = request_report(client, agent, listing["id"], stage="signing")
    drain(rt)
    done = client.get(f"/api/v1/reports/{report['id']}", headers=agent).get_json()
    (requested,) = stored(rt, type="report.requested")
    (completed,) = stored(rt, type="report.completed")
    assert (requested.subject_kind, requested.subject_id, requested.actor_role) == ("report", report["id"], "agent")
    assert requested.data == {
        "report_id": report["id"],
        "listing_id": listing["id"],
        "deal_id": None,
        "stage": "signing",
    }
    assert (completed.actor_client_id, completed.actor_role, completed.actor_name) == (None, "system", "presign")
    assert completed.data == {
        "report_id": report["id"], "listing_id": listing["id"], "deal_id": None, "stage": "signing",
        "decision": done["decision"], "digest": done["digest"],
    }  # fmt: skip


def test_a_gate_answer_asked_by_deal_is_about_the_deal(client, cs, rt, listing):
    deal = create_deal(client, cs, listing["id"])
    answer = gate(client, cs, "deposit", deal_id=deal["id"])
    (event,) = stored(rt, type="gate.answered")
    assert (event.subject_kind, event.subject_id, event.data) == ("deal", deal["id"], answer)
    (refresh,) = stored(rt, type="report.requested")  # the stale answer started one, for the asking client
    assert refresh.subject_id == answer["refresh_report_id"] and refresh.actor_role == "contract_system"


def test_a_recheck_started_by_the_sweep_is_requested_by_the_system(client, cs, rt, listing, clock):
    from risk.deals.rechecks import start_due_rechecks

    create_deal(client, cs, listing["id"])
    clock.set(f.at(at(24 * 30 - 2)))  # two hours before the transfer: its re-checks are due
    assert start_due_rechecks(rt)
    assert {(e.actor_role, e.actor_name) for e in stored(rt, type="report.requested")} == {("system", "presign")}


def test_keys_create_is_a_key_created_event_by_the_system_without_the_key(rt):
    result = run_cli(rt, ["keys", "create", "--role", "agent", "--name", "王五", "--company", "链家", "--store", "s1"])
    key, secret = result.output.splitlines()[:2]
    (event,) = stored(rt, type="key.created")
    assert (event.company, event.subject_kind, event.actor_role, event.actor_client_id) == (
        "链家",
        "client",
        "system",
        None,
    )
    assert event.subject_id.startswith("cli_")
    assert event.data == {"role": "agent", "name": "王五", "store": "s1", "prefix": key[:12]}
    assert key not in json.dumps(event.data) and secret not in json.dumps(event.data)


def test_an_event_refuses_keys_secrets_and_full_id_numbers(rt):
    key, secret = "psk_" + "k" * 43, "whsec_" + "S" * 44
    for data in ({"key": key}, {"nested": [{"secret": secret}]}, {"buyer": {"id_number": SELLER_ID}}):
        with pytest.raises(ValueError, match="must not hold"), transaction(rt.sessions) as session:
            record(session, company="c", type="deal.changed", actor=SYSTEM, subject_kind="deal", subject_id="dea_1",
                   data=data, at=rt.clock.now())  # fmt: skip
    assert stored(rt) == []


# -- the endpoint --------------------------------------------------------------------------------------


def test_only_admins_read_audit_events(client, agent, cs, auth):
    for headers in (agent, cs, auth(role="reviewer")):
        assert_error(client.get("/api/v1/audit-events", headers=headers), 403, "forbidden")
    assert_error(client.get("/api/v1/audit-events"), 401, "unauthorized")


def test_an_admin_reads_its_own_companys_chain_only(client, agent, admin, auth, rt, listing):
    other_admin, other_agent = auth(role="admin", company="链家"), auth(role="agent", company="链家")
    theirs = create_listing(client, other_agent)
    gate(client, agent, "deposit", listing_id=listing["id"])
    chain_pending(rt.sessions)
    ours = [e for e in all_events(client, admin) if e["subject"]["kind"] != "client"]  # keys made by fixtures
    assert {e["subject"]["id"] for e in ours} == {listing["id"], stored(rt, type="report.requested")[0].subject_id}
    theirs_all = all_events(client, other_admin)  # their chain of its own: its two keys, then its listing
    assert [(e["seq"], e["subject"]["kind"]) for e in theirs_all] == [(1, "client"), (2, "client"), (3, "listing")]
    assert theirs_all[0]["prev_hash"] == ZEROS and theirs_all[2]["subject"]["id"] == theirs["id"]


def test_audit_events_filter_by_type_subject_and_time(client, agent, admin, rt, listing, clock):
    gate(client, agent, "deposit", listing_id=listing["id"])
    clock.advance(timedelta(hours=1))
    later = clock.now()
    gate(client, agent, "signing", listing_id=listing["id"])
    chain_pending(rt.sessions)

    answers = all_events(client, admin, type="gate.answered")
    assert [e["data"]["stage"] for e in answers] == ["deposit", "signing"]
    about = all_events(client, admin, subject_kind="listing", subject_id=listing["id"])
    assert {e["type"] for e in about} == {"listing.changed", "gate.answered"}
    assert [e["data"]["stage"] for e in all_events(client, admin, type="gate.answered", since=later.isoformat())] == [
        "signing"
    ]
    assert [e["data"]["stage"] for e in all_events(client, admin, type="gate.answered", until=later.isoformat())] == [
        "deposit"
    ]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=201", "type=gate.asked", "subject_kind=house", "since=yesterday", "cursor=zzz"],
)
def test_audit_events_refuse_bad_filters(client, admin, query):
    assert_error(client.get(f"/api/v1/audit-events?{query}", headers=admin), 422, "validation_error")


# -- export ----------------------------------------------------------------------------------------


def test_export_writes_the_chained_events_as_json_lines_in_seq_order(client, agent, admin, rt, listing, clock):
    gate(client, agent, "deposit", listing_id=listing["id"])
    clock.advance(timedelta(hours=1))
    later = clock.now()
    gate(client, agent, "signing", listing_id=listing["id"])
    chain_pending(rt.sessions)

    result = run_cli(rt, ["audit", "export", "--company", "default"])
    assert result.exit_code == 0
    exported = [json.loads(line) for line in result.output.splitlines()]
    assert exported == all_events(client, admin)
    since = run_cli(rt, ["audit", "export", "--company", "default", "--since", later.isoformat()])
    answers = [e for e in map(json.loads, since.output.splitlines()) if e["type"] == "gate.answered"]
    assert [e["data"]["stage"] for e in answers] == ["signing"]
    until = run_cli(rt, ["audit", "export", "--company", "default", "--until", later.isoformat()])
    assert [json.loads(line) for line in until.output.splitlines()] == [
        e for e in exported if e["at"] < later.isoformat()
    ]
    assert run_cli(rt, ["audit", "export", "--company", "default", "--since", "2026-12-01"]).exit_code == 2


# -- the database's refusal ------------------------------------------------------------------------------


def test_the_database_refuses_to_change_or_delete_an_event(client, agent, rt, listing):
    gate(client, agent, "deposit", listing_id=listing["id"])
    chain_pending(rt.sessions)
    gate(client, agent, "signing", listing_id=listing["id"])  # not chained yet
    written = stored(rt)
    unchained = written[-1]
    refused = [
        ("UPDATE audit_events SET data = :v WHERE type = 'gate.answered'", {"v": '{"decision":"ALLOW"}'}),
        ("UPDATE audit_events SET actor_name = :v WHERE seq = 1", {"v": "someone else"}),
        ("UPDATE audit_events SET hash = :v WHERE seq = 1", {"v": "f" * 64}),  # set once, never again
        ("UPDATE audit_events SET seq = 99, prev_hash = :v, hash = :v, type = 'key.created' WHERE id = :id",
         {"v": "f" * 64, "id": unchained.id}),  # a first link that changes something else too
        ("DELETE FROM audit_events WHERE seq = 1", {}),
        ("DELETE FROM audit_events", {}),
    ]  # fmt: skip
    for statement, params in refused:
        with pytest.raises(DBAPIError, match="append-only"), rt.engine.begin() as conn:
            conn.execute(text(statement), params)
    if not rt.settings.is_sqlite:
        with pytest.raises(DBAPIError, match="append-only"), rt.engine.begin() as conn:
            conn.execute(text("TRUNCATE audit_events"))
    assert [e.data for e in stored(rt)] == [e.data for e in written] and stored(rt)[-1].seq is None
    assert chain_pending(rt.sessions) == 2  # the one permitted change: the first link


# -- the migration -------------------------------------------------------------------------------------


def test_the_migration_turns_recorded_gate_answers_into_unchained_events(tmp_path):
    from alembic import command

    from risk.db import make_engine
    from risk.schema import alembic_config, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with engine.connect() as conn:
        command.upgrade(alembic_config(conn), "0001")
        conn.commit()
    answers = [
        ("gta_1", "cli_a", "lst_1", None, '{"decision":"ALLOW","stage":"signing"}', "2026-11-22 02:00:00.000000"),
        ("gta_2", "cli_gone", "lst_1", "dea_1", '{"decision":"BLOCK","stage":"deposit"}', "2026-11-22 03:00:00.000000"),
    ]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO api_clients (id, name, role, company, store, key_hash, key_prefix, webhook_secret, "
                "created_at) VALUES ('cli_a', '小王', 'agent', 'c1', 's', 'h', 'psk_', 'whsec_', '2026-11-01 00:00:00')"
            )
        )
        for id_, client_id, listing_id, deal_id, answer, answered_at in answers:
            conn.execute(
                text(
                    "INSERT INTO gate_answers (id, company, client_id, listing_id, deal_id, stage, decision, answer, "
                    "answered_at) VALUES (:id, 'c1', :client_id, :listing_id, :deal_id, 's', 'd', :answer, :at)"
                ),
                {"id": id_, "client_id": client_id, "listing_id": listing_id, "deal_id": deal_id, "answer": answer,
                 "at": answered_at},
            )  # fmt: skip
    upgrade(engine)
    with engine.connect() as conn:
        assert "gate_answers" not in {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master"))}
    with Session(engine) as session:
        first, second = session.scalars(select(AuditEvent).order_by(AuditEvent.id))
    assert (first.type, first.subject_kind, first.subject_id, first.actor_role, first.actor_name, first.seq) == (
        "gate.answered", "listing", "lst_1", "agent", "小王", None
    )  # fmt: skip
    assert (
        first.data == {"decision": "ALLOW", "stage": "signing"} and first.at.isoformat() == "2026-11-22T02:00:00+00:00"
    )
    assert (second.subject_kind, second.subject_id, second.actor_client_id, second.actor_role) == (
        "deal", "dea_1", "cli_gone", "unknown"
    )  # fmt: skip
    assert chain_pending(sessionmaker(engine)) == 2
    engine.dispose()
