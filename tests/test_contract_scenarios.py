"""The contract system's seed scenarios, from the published cases, end to end: the API, the real queue
and a real worker on the real Redis, the re-check sweep, and signed webhooks to a real receiver.
The clock is moved instead of slept through."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from risk.auth.operations import create_client
from risk.db import transaction
from risk.deals.rechecks import start_due_rechecks
from tests import factories as f
from tests.api_helpers import create_listing, request_report
from tests.deal_helpers import create_deal, drain, gate, world
from tests.webhook_receiver import Receiver
from worker.webhooks import requeue_due_webhooks


@pytest.fixture
def agent(auth):
    return auth(role="agent")


@pytest.fixture
def contracts(rt, receiver: Receiver):
    """The contract system's key; the receiver checks signatures with its webhook secret."""
    with transaction(rt.sessions) as session:
        new = create_client(session, rt.clock, rt.secret_box, role="contract_system", name="contracts")
    receiver.secret = new.webhook_secret
    return {"Authorization": f"Bearer {new.key}"}


def events(receiver: Receiver, type: str) -> list[dict]:
    return [json.loads(r.body) for r in receiver.received if json.loads(r.body)["type"] == type]


def run_until_quiet(rt) -> None:
    """Start due re-checks, run reports, deliver webhooks."""
    start_due_rechecks(rt)
    drain(rt)
    requeue_due_webhooks(rt)
    drain(rt)


def test_a_seizure_registered_after_a_clean_deposit_is_caught_before_online_signing(
    client, agent, contracts, rt, clock, receiver
):
    world(rt)
    listing = create_listing(client, agent)
    deal = create_deal(client, contracts, listing["id"], webhook_url=receiver.url, deposit_amount="200000.00")
    body = {"stage": "deposit", "deal_id": deal["id"]}
    response = client.post(f"/api/v1/listings/{listing['id']}/reports", json=body, headers=contracts)
    assert response.status_code == 202
    drain(rt)
    assert gate(client, contracts, "deposit", deal_id=deal["id"])["decision"] == "ALLOW"

    # Two weeks later a court seizes the flat; the re-check 24 h before online signing finds it.
    world(rt, title=f.title_record(encumbrances=[f.encumbrance("seizure")]))
    clock.set(datetime.fromisoformat(deal["online_signing_at"]) - timedelta(hours=24))
    run_until_quiet(rt)

    answer = gate(client, contracts, "online_signing", deal_id=deal["id"])
    assert answer["decision"] == "BLOCK"
    assert [r["code"] for r in answer["reasons"]] == ["TITLE_SEIZURE"]
    changed = [e for e in events(receiver, "gate.changed") if e["data"]["stage"] == "online_signing"]
    assert len(changed) == 1
    assert changed[0]["data"]["decision"] == "BLOCK" and changed[0]["data"]["previous_decision"] is None
    assert all(r.signature_ok for r in receiver.received)
    seizure = {c["code"]: c for c in answer["commitments"]}["SEIZURE_ADVANCE"]
    assert (seizure["valid_from"], seizure["valid_until"]) == (deal["deposit_at"], deal["online_signing_at"])
    deal_now = client.get(f"/api/v1/deals/{deal['id']}", headers=contracts).get_json()
    assert "SEIZURE_ADVANCE" in {c["code"] for c in deal_now["gate"]["online_signing"]["commitments"]}


def test_sixty_thousand_yuan_of_old_fees_need_review_and_an_override_allows(client, agent, auth, contracts, rt):
    items = [f.fee_item("property", f"{y}-01-01", f"{y}-12-31", "6000.00", "0.00") for y in range(2005, 2015)]
    world(rt, fees=f.fee_account_record(items))
    listing = create_listing(client, agent)
    deal = create_deal(client, contracts, listing["id"])
    report = request_report(client, agent, listing["id"], stage="signing")
    drain(rt)
    answer = gate(client, contracts, "signing", deal_id=deal["id"])
    assert answer["decision"] == "REVIEW"
    fees = client.get(f"/api/v1/reports/{report['id']}", headers=agent).get_json()["checks"][1]
    assert fees["findings"][0]["evidence"]["total_owed"] == "60000.00"
    fee_commitment = {c["code"]: c for c in answer["commitments"]}["FEE_ARREARS_ADVANCE"]
    assert fee_commitment["valid_from"] == deal["transfer_at"]

    response = client.post(f"/api/v1/reports/{report['id']}/overrides",
                           json={"decision": "ALLOW", "reason": "卖方已结清2005-2014年物业费"},
                           headers=auth(role="reviewer"))  # fmt: skip
    assert response.status_code == 201
    answer = gate(client, contracts, "signing", deal_id=deal["id"])
    assert answer["decision"] == "ALLOW" and answer["override"]["id"] == response.get_json()["id"]


@pytest.mark.parametrize("signed,eligible", [("2025-03-01T02:00:00+00:00", True), ("2023-05-01T02:00:00+00:00", False)])
def test_a_1995_building_with_a_clean_inspection_gets_the_2024_leak_warranty_only_when_signed_after_it(
    client, agent, contracts, rt, clock, signed, eligible
):
    signed_at = datetime.fromisoformat(signed)
    clock.set(signed_at)
    inspections = f.inspections_record([f.inspection((signed_at - timedelta(days=10)).isoformat())])
    world(rt, inspections=inspections, build_year=1995)
    listing = create_listing(client, agent, build_year=1995)
    times = {
        name: (signed_at + timedelta(days=d)).isoformat()
        for name, d in (("deposit_at", -3), ("signing_at", 0), ("online_signing_at", 7), ("transfer_at", 30))
    }
    deal = create_deal(client, contracts, listing["id"], **times)
    request_report(client, agent, listing["id"], stage="signing")
    drain(rt)
    commitments = {c["code"]: c for c in gate(client, contracts, "signing", deal_id=deal["id"])["commitments"]}
    if eligible:
        leak = commitments["LEAK_WARRANTY"]
        assert leak["version"] == "2024-09"
        assert leak["valid_from"] == times["transfer_at"]
        assert leak["valid_until"] == (signed_at + timedelta(days=30)).replace(year=signed_at.year + 1).isoformat()
    else:
        assert "LEAK_WARRANTY" not in commitments


def test_the_title_provider_down_at_online_signing_blocks_until_it_answers_clean(
    client, agent, contracts, rt, clock, receiver
):
    world(rt)
    listing = create_listing(client, agent)
    deal = create_deal(client, contracts, listing["id"], webhook_url=receiver.url)
    clock.set(datetime.fromisoformat(deal["online_signing_at"]) - timedelta(hours=24))
    local = rt.settings.providers
    rt.settings = replace(rt.settings, providers={**local, "title": "http://127.0.0.1:9"})
    rt._providers = None
    run_until_quiet(rt)
    answer = gate(client, contracts, "online_signing", deal_id=deal["id"])
    assert answer["decision"] == "BLOCK"
    assert [r["code"] for r in answer["reasons"]] == ["CHECK_UNAVAILABLE"]

    rt.settings = replace(rt.settings, providers=local)
    rt._providers = None
    clock.advance(timedelta(hours=22))  # the 2 h re-check
    run_until_quiet(rt)
    assert gate(client, contracts, "online_signing", deal_id=deal["id"])["decision"] == "ALLOW"
    changes = [(e["data"]["previous_decision"], e["data"]["decision"]) for e in events(receiver, "gate.changed")]
    assert changes == [(None, "BLOCK"), ("BLOCK", "ALLOW")]
    assert len(events(receiver, "report.completed")) == 2


def test_an_agent_sees_which_of_their_deals_changed_answer(client, agent, contracts, rt, clock):
    world(rt)
    listing = create_listing(client, agent)
    quiet = create_deal(client, contracts, listing["id"])
    busy = create_deal(client, contracts, listing["id"])
    clock.advance(timedelta(minutes=10))
    since = clock.now().isoformat()
    body = {"stage": "signing", "deal_id": busy["id"]}
    response = client.post(f"/api/v1/listings/{listing['id']}/reports", json=body, headers=contracts)
    assert response.status_code == 202
    drain(rt)
    changed = client.get("/api/v1/deals", query_string={"changed_since": since}, headers=agent).get_json()["items"]
    assert [d["id"] for d in changed] == [busy["id"]]
    assert quiet["id"] not in [d["id"] for d in changed]
