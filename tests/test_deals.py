"""Deals through the API: creation, validation, tenancy, listing, changes."""

from datetime import timedelta

import pytest

from risk.deals.models import Deal, RecheckPlan
from tests.api_helpers import assert_error, count
from tests.deal_helpers import at, create_deal, deal_body
from tests.factories import BUYER_ID


def test_a_deal_is_created_with_its_buyer_masked(client, cs, listing):
    response = client.post("/api/v1/deals", json=deal_body(listing["id"]), headers=cs)
    body = response.get_json()
    assert response.status_code == 201
    assert response.headers["Location"] == f"/api/v1/deals/{body['id']}"
    assert body["status"] == "open" and body["listing_id"] == listing["id"]
    assert body["buyer"]["id_number"] == BUYER_ID[:6] + "********" + BUYER_ID[-4:]
    assert BUYER_ID not in response.get_data(as_text=True)
    assert body["deposit_amount"] == "200000.00"


def test_the_deal_shows_a_gate_answer_for_every_stage(client, cs, listing):
    body = create_deal(client, cs, listing["id"])
    assert set(body["gate"]) == {"listing", "deposit", "signing", "online_signing", "transfer"}
    assert all(answer["decision"] == "BLOCK" for answer in body["gate"].values())


@pytest.mark.parametrize(
    "field,overrides",
    [
        ("signing_at", {"signing_at": at(0)}),
        ("online_signing_at", {"online_signing_at": at(2)}),
        ("transfer_at", {"transfer_at": at(3)}),
    ],
)
def test_dates_that_go_backwards_are_422_naming_the_field(client, cs, listing, rt, field, overrides):
    response = client.post("/api/v1/deals", json=deal_body(listing["id"], **overrides), headers=cs)
    assert field in assert_error(response, 422, "validation_error")["fields"]
    assert count(rt, Deal) == 0


def test_past_dates_are_allowed(client, cs, listing):
    body = create_deal(client, cs, listing["id"], deposit_at=at(-100), signing_at=at(-90), online_signing_at=at(-80),
                       transfer_at=at(-70))  # fmt: skip
    assert body["transfer_at"] == at(-70)


def test_a_buyer_id_with_a_wrong_check_digit_is_422(client, cs, listing):
    bad = BUYER_ID[:-1] + ("0" if BUYER_ID[-1] != "0" else "1")
    response = client.post("/api/v1/deals", json=deal_body(listing["id"], buyer={"name": "李明", "id_number": bad}),
                           headers=cs)  # fmt: skip
    assert "buyer.id_number" in assert_error(response, 422, "validation_error")["fields"]


def test_an_unknown_listing_is_422(client, cs):
    response = client.post("/api/v1/deals", json=deal_body("lst_00000000000000000000000000"), headers=cs)
    assert "listing_id" in assert_error(response, 422, "validation_error")["fields"]


def test_an_external_id_used_twice_is_409_naming_the_deal(client, cs, listing):
    first = create_deal(client, cs, listing["id"], external_id="HT-SAME")
    response = client.post("/api/v1/deals", json=deal_body(listing["id"], external_id="HT-SAME"), headers=cs)
    assert first["id"] in assert_error(response, 409, "conflict")["message"]


def test_agents_cannot_create_deals(client, agent, listing):
    assert_error(client.post("/api/v1/deals", json=deal_body(listing["id"]), headers=agent), 403, "forbidden")


def test_agents_read_their_own_stores_deals_only(client, cs, auth, listing):
    deal = create_deal(client, cs, listing["id"])
    assert client.get(f"/api/v1/deals/{deal['id']}", headers=auth(role="agent")).status_code == 200
    other_store = auth(role="agent", store="another-store")
    assert_error(client.get(f"/api/v1/deals/{deal['id']}", headers=other_store), 404, "not_found")
    assert client.get("/api/v1/deals", headers=other_store).get_json()["items"] == []


def test_another_companys_deal_is_404(client, cs, auth, listing):
    deal = create_deal(client, cs, listing["id"])
    other = auth(role="contract_system", company="another")
    assert_error(client.get(f"/api/v1/deals/{deal['id']}", headers=other), 404, "not_found")


def test_deals_are_listed_with_filters(client, cs, listing):
    a = create_deal(client, cs, listing["id"], external_id="HT-A")
    create_deal(client, cs, listing["id"], external_id="HT-B")
    items = client.get("/api/v1/deals?external_id=HT-A", headers=cs).get_json()["items"]
    assert [d["id"] for d in items] == [a["id"]]
    assert len(client.get(f"/api/v1/deals?listing_id={listing['id']}", headers=cs).get_json()["items"]) == 2


def test_changed_since_lists_only_deals_changed_after(client, cs, listing, clock):
    create_deal(client, cs, listing["id"], external_id="HT-OLD")
    clock.advance(timedelta(minutes=5))
    since = clock.now().isoformat()
    changed = create_deal(client, cs, listing["id"], external_id="HT-NEW")
    items = client.get("/api/v1/deals", query_string={"changed_since": since}, headers=cs).get_json()["items"]
    assert [d["id"] for d in items] == [changed["id"]]


def test_changing_dates_replans_without_duplicates(client, cs, listing, rt):
    deal = create_deal(client, cs, listing["id"])
    assert count(rt, RecheckPlan) == 4
    response = client.patch(f"/api/v1/deals/{deal['id']}", json={"online_signing_at": at(24 * 20)}, headers=cs)
    assert response.status_code == 200, response.get_json()
    assert count(rt, RecheckPlan) == 4
    with rt.sessions() as session:
        runs = sorted(p.run_at.isoformat() for p in session.query(RecheckPlan).filter_by(stage="online_signing"))
    assert runs == [at(24 * 20 - 24), at(24 * 20 - 2)]


def test_a_patch_whose_dates_go_backwards_is_422_and_changes_nothing(client, cs, listing):
    deal = create_deal(client, cs, listing["id"])
    response = client.patch(f"/api/v1/deals/{deal['id']}", json={"signing_at": at(24 * 40)}, headers=cs)
    assert "online_signing_at" in assert_error(response, 422, "validation_error")["fields"]
    assert client.get(f"/api/v1/deals/{deal['id']}", headers=cs).get_json()["signing_at"] == at(24)


def test_a_cancelled_deal_drops_its_plans_and_no_longer_changes(client, cs, listing, rt):
    deal = create_deal(client, cs, listing["id"])
    assert client.patch(f"/api/v1/deals/{deal['id']}", json={"status": "cancelled"}, headers=cs).status_code == 200
    assert count(rt, RecheckPlan) == 0
    response = client.patch(f"/api/v1/deals/{deal['id']}", json={"signing_at": at(30)}, headers=cs)
    assert_error(response, 409, "conflict")


def test_a_private_webhook_url_is_refused_unless_allowed(client, cs, listing, app, rt):
    from dataclasses import replace

    rt.settings = replace(rt.settings, webhook_allow_private=False)
    response = client.post("/api/v1/deals", json=deal_body(listing["id"], webhook_url="http://127.0.0.1:9/hook"),
                           headers=cs)  # fmt: skip
    assert "webhook_url" in assert_error(response, 422, "validation_error")["fields"]
