"""`gate.changed` (API v1.1): it fires when the gate decision a deal gets for a stage differs from the
last `gate.changed` sent for that stage, whatever changed it: a report, a listing revision, an override."""

from __future__ import annotations

from typing import Any

from risk.audit.models import AuditEvent
from risk.db import transaction
from risk.reports.models import Report
from tests import factories as f
from tests.api_helpers import count
from tests.deal_helpers import create_deal, drain, world

# Nothing listens there: the events are read from the deal's webhook log, not received.
HOOK = "http://127.0.0.1:18399/hooks/presign"


def events(client: Any, headers: dict[str, str], deal_id: str, type: str = "gate.changed") -> list[dict[str, Any]]:
    """The deal's events of `type`, oldest first, as its webhook log shows them."""
    items = client.get(f"/api/v1/deals/{deal_id}/webhooks", query_string={"limit": 200}, headers=headers)
    assert items.status_code == 200, items.get_json()
    found = [e for e in items.get_json()["items"] if e["type"] == type]
    return sorted(found, key=lambda e: (e["created_at"], e["id"]))


def changes(client: Any, headers: dict[str, str], deal_id: str) -> list[tuple[str, str | None, str]]:
    return [(e["data"]["stage"], e["data"]["previous_decision"], e["data"]["decision"])
            for e in events(client, headers, deal_id)]  # fmt: skip


def deal_report(client: Any, headers: dict[str, str], rt: Any, deal: dict[str, Any], stage: str) -> dict[str, Any]:
    body = {"stage": stage, "deal_id": deal["id"]}
    response = client.post(f"/api/v1/listings/{deal['listing_id']}/reports", json=body, headers=headers)
    assert response.status_code == 202, response.get_json()
    drain(rt)
    return client.get(response.headers["Location"], headers=headers).get_json()  # type: ignore[no-any-return]


def test_a_listing_revision_fires_gate_changed_for_the_stages_whose_answer_it_changes(client, agent, cs, rt, listing):
    world(rt)
    deal = create_deal(client, cs, listing["id"], webhook_url=HOOK)
    report = deal_report(client, cs, rt, deal, "signing")
    assert changes(client, cs, deal["id"]) == [("signing", None, "ALLOW")]

    response = client.patch(f"/api/v1/listings/{listing['id']}", json={"asking_price": "6100000.00"}, headers=agent)
    assert response.status_code == 200
    assert changes(client, cs, deal["id"]) == [("signing", None, "ALLOW"), ("signing", "ALLOW", "BLOCK")]
    data = events(client, cs, deal["id"])[-1]["data"]
    assert data["deal_id"] == deal["id"] and data["listing_id"] == listing["id"]
    assert data["report_id"] == report["id"]
    assert data["reasons"][0]["code"] == "REPORT_STALE"


def test_a_report_of_the_new_revision_fires_the_change_back(client, agent, cs, rt, listing):
    world(rt)
    deal = create_deal(client, cs, listing["id"], webhook_url=HOOK)
    deal_report(client, cs, rt, deal, "signing")
    photos = [{"url": "https://img.example/new.jpg", "sha256": "d" * 64}]
    client.patch(f"/api/v1/listings/{listing['id']}", json={"photos": photos}, headers=agent)
    again = deal_report(client, cs, rt, deal, "signing")
    assert again["decision"] == "ALLOW"
    assert changes(client, cs, deal["id"])[-1] == ("signing", "BLOCK", "ALLOW")
    assert events(client, cs, deal["id"])[-1]["data"]["report_id"] == again["id"]


def test_a_patch_that_adds_no_revision_fires_nothing(client, agent, cs, rt, listing):
    world(rt)
    deal = create_deal(client, cs, listing["id"], webhook_url=HOOK)
    deal_report(client, cs, rt, deal, "signing")
    client.patch(f"/api/v1/listings/{listing['id']}", json={"agent_id": "agent-2"}, headers=agent)
    client.patch(f"/api/v1/listings/{listing['id']}", json={"asking_price": 6265000}, headers=agent)
    assert changes(client, cs, deal["id"]) == [("signing", None, "ALLOW")]


def test_a_closed_deal_hears_nothing_of_a_listing_revision(client, agent, cs, rt, listing):
    world(rt)
    deal = create_deal(client, cs, listing["id"], webhook_url=HOOK)
    deal_report(client, cs, rt, deal, "signing")
    client.patch(f"/api/v1/deals/{deal['id']}", json={"status": "cancelled"}, headers=cs)
    client.patch(f"/api/v1/listings/{listing['id']}", json={"floor": 9}, headers=agent)
    assert changes(client, cs, deal["id"]) == [("signing", None, "ALLOW")]


def test_a_completed_report_with_the_same_gate_decision_fires_no_gate_changed(client, cs, rt, listing):
    world(rt)
    deal = create_deal(client, cs, listing["id"], webhook_url=HOOK)
    deal_report(client, cs, rt, deal, "deposit")
    deal_report(client, cs, rt, deal, "deposit")
    assert len(events(client, cs, deal["id"], "report.completed")) == 2
    assert changes(client, cs, deal["id"]) == [("deposit", None, "ALLOW")]


def test_a_completed_report_that_changes_the_gate_decision_fires_gate_changed(client, cs, rt, listing):
    world(rt)
    deal = create_deal(client, cs, listing["id"], webhook_url=HOOK)
    deal_report(client, cs, rt, deal, "deposit")
    world(rt, fees=f.fee_account_record([f.fee_item(amount_paid="0.00")]))
    review = deal_report(client, cs, rt, deal, "deposit")
    assert changes(client, cs, deal["id"]) == [("deposit", None, "ALLOW"), ("deposit", "ALLOW", "REVIEW")]
    data = events(client, cs, deal["id"])[-1]["data"]
    assert data["report_id"] == review["id"] and [r["code"] for r in data["reasons"]] == ["FEES_ARREARS"]


def test_an_approved_override_fires_gate_changed_once(client, cs, auth, rt, listing):
    from risk.deals.events import gate_changes

    world(rt, fees=f.fee_account_record([f.fee_item(amount_paid="0.00")]))
    deal = create_deal(client, cs, listing["id"], webhook_url=HOOK)
    report = deal_report(client, cs, rt, deal, "signing")
    body = {"decision": "ALLOW", "reason": "卖方已出具全部缴费凭证，复核无误"}
    response = client.post(f"/api/v1/reports/{report['id']}/overrides", json=body, headers=auth(role="reviewer"))
    assert response.status_code == 201
    assert changes(client, cs, deal["id"]) == [("signing", None, "REVIEW"), ("signing", "REVIEW", "ALLOW")]
    with transaction(rt.sessions) as session:
        again = gate_changes(session, rt, deal["id"])
    assert again == []  # the approval announced it; nothing is left to announce


def test_working_out_gate_changes_starts_no_refresh_and_records_no_answer(client, agent, cs, rt, listing):
    world(rt)
    deal = create_deal(client, cs, listing["id"], webhook_url=HOOK)
    deal_report(client, cs, rt, deal, "signing")
    client.patch(f"/api/v1/listings/{listing['id']}", json={"floor": 9}, headers=agent)
    gate_answers = AuditEvent.__table__.select().where(AuditEvent.type == "gate.answered").subquery()
    assert count(rt, Report) == 1 and count(rt, gate_answers) == 0


def test_a_deal_without_a_webhook_still_shows_the_change_through_changed_since(client, agent, cs, rt, listing, clock):
    from datetime import timedelta

    world(rt)
    deal = create_deal(client, cs, listing["id"])
    deal_report(client, cs, rt, deal, "signing")
    clock.advance(timedelta(minutes=5))
    since = clock.now().isoformat()
    client.patch(f"/api/v1/listings/{listing['id']}", json={"floor": 9}, headers=agent)
    changed = client.get("/api/v1/deals", query_string={"changed_since": since}, headers=cs).get_json()["items"]
    assert [d["id"] for d in changed] == [deal["id"]]
