"""The signing gate: fresh reports, staleness, exactly one refresh, the record (overrides: test_overrides.py)."""

import threading
from datetime import timedelta

import pytest

from risk.audit.models import AuditEvent
from risk.reports.models import Report
from tests import factories as f
from tests.api_helpers import assert_error, count, kill_pooled_connections, request_report
from tests.deal_helpers import create_deal, drain, gate, world


def complete_report(client, headers, rt, listing_id, stage):
    report = request_report(client, headers, listing_id, stage=stage)
    drain(rt)
    return client.get(f"/api/v1/reports/{report['id']}", headers=headers).get_json()


def test_a_fresh_clean_report_allows(client, agent, rt, listing):
    world(rt)
    report = complete_report(client, agent, rt, listing["id"], "signing")
    answer = gate(client, agent, "signing", listing_id=listing["id"])
    assert answer["decision"] == "ALLOW" and report["decision"] == "ALLOW"
    assert answer["report_id"] == report["id"] and answer["refresh_report_id"] is None
    assert answer["override"] is None and answer["reasons"] == []
    assert answer["fresh_until"] == (f.at(report["completed_at"]) + timedelta(hours=24)).isoformat()


def test_a_report_of_another_stage_does_not_count(client, agent, rt, listing):
    world(rt)
    complete_report(client, agent, rt, listing["id"], "deposit")
    assert gate(client, agent, "signing", listing_id=listing["id"])["decision"] == "BLOCK"


def test_no_report_blocks_as_stale_and_starts_one_refresh(client, agent, rt, listing):
    answer = gate(client, agent, "deposit", listing_id=listing["id"])
    assert answer["decision"] == "BLOCK"
    assert [r["code"] for r in answer["reasons"]] == ["REPORT_STALE"]
    assert answer["report_id"] is None and answer["refresh_report_id"]
    again = gate(client, agent, "deposit", listing_id=listing["id"])
    assert [r["code"] for r in again["reasons"]] == ["REPORT_PENDING"]
    assert again["refresh_report_id"] == answer["refresh_report_id"]
    assert count(rt, Report) == 1


def test_a_stale_report_blocks_with_its_reasons_after_the_window(client, agent, rt, listing, clock):
    world(rt, fees=f.fee_account_record([f.fee_item(amount_paid="0.00")]))
    report = complete_report(client, agent, rt, listing["id"], "online_signing")
    assert gate(client, agent, "online_signing", listing_id=listing["id"])["decision"] == "REVIEW"
    clock.advance(timedelta(hours=4, seconds=1))
    answer = gate(client, agent, "online_signing", listing_id=listing["id"])
    assert answer["decision"] == "BLOCK" and answer["report_id"] == report["id"]
    assert [r["code"] for r in answer["reasons"]] == ["REPORT_STALE", "FEES_ARREARS"]
    assert answer["refresh_report_id"] not in (None, report["id"])


def test_the_refresh_completes_and_the_gate_answers_from_it(client, agent, rt, listing, clock):
    world(rt)
    stale = gate(client, agent, "listing", listing_id=listing["id"])
    drain(rt)
    answer = gate(client, agent, "listing", listing_id=listing["id"])
    assert answer["decision"] == "ALLOW" and answer["report_id"] == stale["refresh_report_id"]


def test_concurrent_calls_start_exactly_one_refresh(app, make_key, rt, listing):
    key = make_key(role="agent")
    answers = []

    def ask():
        with app.test_client() as c:
            answers.append(gate(c, {"Authorization": f"Bearer {key}"}, "signing", listing_id=listing["id"]))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8
    assert len({a["refresh_report_id"] for a in answers}) == 1
    assert count(rt, Report) == 1


def test_the_gate_never_calls_a_provider(client, agent, rt, listing, settings):
    from dataclasses import replace

    world(rt)
    complete_report(client, agent, rt, listing["id"], "signing")
    rt.settings = replace(rt.settings, providers={k: "http://127.0.0.1:9" for k in rt.settings.providers})
    rt._providers = None
    assert gate(client, agent, "signing", listing_id=listing["id"])["decision"] == "ALLOW"


@pytest.mark.parametrize("fresh", [False, True])
def test_every_answer_is_recorded_as_a_gate_answered_event(client, agent, rt, listing, clock, fresh):
    if fresh:
        world(rt)
        complete_report(client, agent, rt, listing["id"], "signing")
    answer = gate(client, agent, "signing", listing_id=listing["id"])
    with rt.sessions() as session:
        row = session.query(AuditEvent).filter_by(type="gate.answered").one()
    assert (row.subject_kind, row.subject_id, row.company) == ("listing", listing["id"], "default")
    assert row.data == answer and (row.data["refresh_report_id"] is None) is fresh
    assert row.actor_client_id.startswith("cli_") and row.actor_role == "agent" and row.at == clock.now()


def test_a_fresh_answer_that_cannot_be_recorded_is_not_sent(client, agent, rt, listing):
    from sqlalchemy import text

    world(rt)
    complete_report(client, agent, rt, listing["id"], "signing")
    with rt.engine.begin() as connection:
        connection.execute(text("ALTER TABLE audit_events RENAME TO audit_events_away"))
    try:
        response = client.post("/api/v1/gate", json={"stage": "signing", "listing_id": listing["id"]}, headers=agent)
    finally:
        with rt.engine.begin() as connection:
            connection.execute(text("ALTER TABLE audit_events_away RENAME TO audit_events"))
    # No answer without its record; SQLite calls a missing table an OperationalError, PostgreSQL a ProgrammingError.
    expected = (503, "unavailable") if rt.settings.is_sqlite else (500, "internal_error")
    assert (response.status_code, response.get_json()["error"]["code"]) == expected


_RECORDED_ANSWER = "SELECT {data} FROM audit_events WHERE type = 'gate.answered'"


@pytest.mark.parametrize(("fresh", "debug"), [(True, False), (False, False), (True, True)])
def test_the_record_holds_the_answer_as_the_very_bytes_sent(client, agent, rt, listing, fresh, debug):
    from sqlalchemy import text

    client.application.debug = debug  # jsonify indents in debug mode; the gate's answer must too
    if fresh:
        world(rt)
        complete_report(client, agent, rt, listing["id"], "signing")
    response = client.post("/api/v1/gate", json={"stage": "signing", "listing_id": listing["id"]}, headers=agent)
    assert response.status_code == 200 and response.mimetype == "application/json"
    with rt.engine.connect() as connection:
        stored = connection.execute(text(_RECORDED_ANSWER.format(data="data"))).scalar_one()
    if not isinstance(stored, str):  # psycopg hands a json column over parsed; ask for its text
        with rt.engine.connect() as connection:
            stored = connection.execute(text(_RECORDED_ANSWER.format(data="data::text"))).scalar_one()
    assert stored + "\n" == response.get_data(as_text=True)
    assert (response.get_json()["decision"] == "ALLOW") is fresh
    with client.application.app_context():  # written as every other endpoint's JSON is (`jsonify`)
        from flask import jsonify

        assert response.get_data() == jsonify(response.get_json()).get_data()


def test_the_gate_needs_exactly_one_subject(client, agent, listing):
    response = client.post("/api/v1/gate", json={"stage": "deposit"}, headers=agent)
    assert_error(response, 422, "validation_error")
    response = client.post("/api/v1/gate", json={"stage": "deposit", "listing_id": listing["id"], "deal_id": "x"},
                           headers=agent)  # fmt: skip
    assert_error(response, 422, "validation_error")


def test_an_unknown_stage_is_422(client, agent, listing):
    response = client.post("/api/v1/gate", json={"stage": "handover", "listing_id": listing["id"]}, headers=agent)
    assert "stage" in assert_error(response, 422, "validation_error")["fields"]


def test_another_companys_listing_is_404(client, auth, listing):
    other = auth(role="contract_system", company="another")
    response = client.post("/api/v1/gate", json={"stage": "deposit", "listing_id": listing["id"]}, headers=other)
    assert_error(response, 404, "not_found")


def test_reviewers_cannot_ask_the_gate(client, auth, listing):
    response = client.post("/api/v1/gate", json={"stage": "deposit", "listing_id": listing["id"]},
                           headers=auth(role="reviewer"))  # fmt: skip
    assert_error(response, 403, "forbidden")


# -- by deal -----------------------------------------------------------------------------------


def test_by_deal_the_gate_uses_the_deals_reports_and_the_listings_dealless_ones(client, agent, cs, rt, listing):
    world(rt)
    deal = create_deal(client, cs, listing["id"])
    other = create_deal(client, cs, listing["id"])
    response = client.post(f"/api/v1/listings/{listing['id']}/reports", json={"stage": "signing",
                           "deal_id": other["id"]}, headers=cs)  # fmt: skip
    assert response.status_code == 202
    drain(rt)
    assert gate(client, cs, "signing", deal_id=deal["id"])["decision"] == "BLOCK"  # the other deal's report
    assert gate(client, cs, "signing", deal_id=other["id"])["decision"] == "ALLOW"


def test_deal_commitments_follow_the_deals_current_dates(client, agent, cs, rt, listing):
    world(rt)
    deal = create_deal(client, cs, listing["id"])
    complete_report(client, agent, rt, listing["id"], "deposit")
    answer = gate(client, cs, "deposit", deal_id=deal["id"])
    fee = {c["code"]: c for c in answer["commitments"]}["FEE_ARREARS_ADVANCE"]
    assert fee["valid_from"] == deal["transfer_at"]
    new_transfer = f.at(deal["transfer_at"]) + timedelta(days=10)
    client.patch(f"/api/v1/deals/{deal['id']}", json={"transfer_at": new_transfer.isoformat()}, headers=cs)
    answer = gate(client, cs, "deposit", deal_id=deal["id"])
    assert {c["code"]: c for c in answer["commitments"]}["FEE_ARREARS_ADVANCE"][
        "valid_from"
    ] == new_transfer.isoformat()


def test_a_deals_gate_answers_are_readable_newest_first(client, agent, cs, rt, listing):
    deal = create_deal(client, cs, listing["id"])
    first = gate(client, cs, "deposit", deal_id=deal["id"])
    second = gate(client, cs, "signing", deal_id=deal["id"])
    items = client.get(f"/api/v1/deals/{deal['id']}/gate-answers", headers=cs).get_json()["items"]
    assert [i["answer"] for i in items] == [second, first]
    assert all(i["client_id"].startswith("cli_") for i in items)


def test_gate_answers_refuse_bad_input(client, cs, listing):
    assert_error(client.get("/api/v1/deals/dea_nope/gate-answers", headers=cs), 404, "not_found")
    deal = create_deal(client, cs, listing["id"])
    url = f"/api/v1/deals/{deal['id']}/gate-answers"
    assert "limit" in assert_error(client.get(f"{url}?limit=0", headers=cs), 422, "validation_error")["fields"]
    assert_error(client.get(f"{url}?cursor=zzz", headers=cs), 422, "validation_error")


def test_a_gate_body_that_is_not_an_object_is_400(client, cs):
    response = client.post("/api/v1/gate", data="[1]", headers={**cs, "Content-Type": "application/json"})
    assert_error(response, 400, "bad_request")


def test_the_gate_and_a_report_survive_the_database_dropping_its_connections(client, agent, rt, listing):
    if rt.settings.is_sqlite:
        pytest.skip("PostgreSQL only: a server that drops its connections")
    world(rt)
    report = complete_report(client, agent, rt, listing["id"], "signing")
    assert gate(client, agent, "signing", listing_id=listing["id"])["report_id"] == report["id"]

    kill_pooled_connections(rt)
    answer = gate(client, agent, "signing", listing_id=listing["id"])
    assert answer["decision"] == "ALLOW" and answer["report_id"] == report["id"]

    kill_pooled_connections(rt)
    again = complete_report(client, agent, rt, listing["id"], "signing")
    assert again["status"] == "complete" and again["decision"] == "ALLOW"


def test_a_fresh_gate_answer_asks_the_database_nothing_but_its_read_and_record(client, agent, rt, listing, monkeypatch):
    world(rt)
    report = complete_report(client, agent, rt, listing["id"], "signing")
    pings = []
    monkeypatch.setattr(rt.engine.dialect, "do_ping", lambda connection: pings.append(connection) or True)

    answers = [gate(client, agent, "signing", listing_id=listing["id"]) for _ in range(3)]

    assert [a["report_id"] for a in answers] == [report["id"]] * 3 and pings == []  # no pre-ping round trip
