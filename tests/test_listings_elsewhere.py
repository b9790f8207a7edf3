"""The same unit elsewhere, against the database: open deals on its other listings, and what a report,
a conflict or a deal shows of another store's or another brokerage's objects."""

from __future__ import annotations

import json
from typing import Any

from listings.market.own import SqlMarket
from tests.api_helpers import assert_error, create_listing
from tests.deal_helpers import create_deal, drain, world

ANOTHER_STORE, ANOTHER_BROKERAGE = "another store", "another brokerage"  # API.md's words
OTHER_PRICE = "6300000.00"  # the other listing's, so a leak of it can be seen


def report_on(client: Any, headers: dict[str, str], listing_id: str, stage: str = "deposit") -> dict[str, Any]:
    response = client.post(f"/api/v1/listings/{listing_id}/reports", json={"stage": stage}, headers=headers)
    assert response.status_code == 202, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def completed(client: Any, headers: dict[str, str], rt: Any, listing_id: str) -> dict[str, Any]:
    report_id = report_on(client, headers, listing_id)["id"]
    drain(rt)
    response = client.get(f"/api/v1/reports/{report_id}", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "complete"
    return body  # type: ignore[no-any-return]


def finding(report: dict[str, Any], code: str) -> dict[str, Any] | None:
    found = [f for c in report["checks"] for f in c["findings"] if f["code"] == code]
    assert len(found) <= 1
    return found[0] if found else None


def other_listing(client: Any, headers: dict[str, str]) -> dict[str, Any]:
    return create_listing(client, headers, asking_price=OTHER_PRICE, entrusted_price=OTHER_PRICE)


# -- LISTING_NOT_FOR_SALE from the deals table ---------------------------------------------------------


def test_a_second_listing_of_a_unit_under_an_open_deal_elsewhere_is_blocked_as_not_for_sale(
    client, agent, cs, rt, listing
):
    world(rt)
    deal = create_deal(client, cs, listing["id"])
    second = create_listing(client, agent)
    report = completed(client, agent, rt, second["id"])
    assert report["decision"] == "BLOCK"
    assert "LISTING_NOT_FOR_SALE" in [r["code"] for r in report["reasons"]]
    evidence = finding(report, "LISTING_NOT_FOR_SALE")["evidence"]  # type: ignore[index]
    assert evidence["deals"] == [
        {"same_company": True, "listing_id": listing["id"], "deal_id": deal["id"], "status": "open"}
    ]


def test_the_listing_under_the_deal_is_not_blocked_by_its_own_deal(client, agent, cs, rt, listing):
    world(rt)
    create_deal(client, cs, listing["id"])
    report = completed(client, agent, rt, listing["id"])
    assert finding(report, "LISTING_NOT_FOR_SALE") is None


def test_a_cancelled_or_completed_deal_no_longer_holds_the_unit(client, agent, cs, rt, listing):
    world(rt)
    for status in ("cancelled", "completed"):
        deal = create_deal(client, cs, create_listing(client, agent)["id"])
        response = client.patch(f"/api/v1/deals/{deal['id']}", json={"status": status}, headers=cs)
        assert response.status_code == 200, response.get_json()
    report = completed(client, agent, rt, listing["id"])
    assert finding(report, "LISTING_NOT_FOR_SALE") is None


def test_another_brokerages_open_deal_blocks_without_naming_it(client, agent, auth, rt, listing):
    world(rt)
    rival_agent, rival_cs = auth(role="agent", company="rival"), auth(role="contract_system", company="rival")
    rival_listing = other_listing(client, rival_agent)
    rival_deal = create_deal(client, rival_cs, rival_listing["id"])
    report = completed(client, agent, rt, listing["id"])
    assert report["decision"] == "BLOCK"
    evidence = finding(report, "LISTING_NOT_FOR_SALE")["evidence"]  # type: ignore[index]
    assert [d.get("brokerage") for d in evidence["deals"]] == [ANOTHER_BROKERAGE]
    text = json.dumps(report, ensure_ascii=False)
    for secret in (rival_listing["id"], rival_deal["id"], rival_deal["external_id"], "rival", OTHER_PRICE):
        assert secret not in text


def test_the_market_finds_open_deals_on_the_units_other_listings_only(client, agent, cs, rt, listing):
    elsewhere = create_listing(client, agent, unit_id="bj-other-1-1-101")
    second = create_listing(client, agent)
    create_deal(client, cs, elsewhere["id"])
    create_deal(client, cs, listing["id"])
    found = SqlMarket(rt.engine, "default").open_deals_on_unit("bj-yysh-3-2-602", second["id"])
    assert [(d["listing_id"], d["same_company"], d["status"]) for d in found] == [(listing["id"], True, "open")]
    assert SqlMarket(rt.engine, "default").open_deals_on_unit("bj-yysh-3-2-602", listing["id"]) == []


# -- another store of the same company, as the listing's agents read it --------------------------------


def test_an_agent_reads_another_stores_duplicate_listing_only_as_another_store(client, agent, auth, rt, listing):
    world(rt)
    elsewhere = other_listing(client, auth(role="agent", store="store-2"))
    report = completed(client, agent, rt, listing["id"])
    evidence = finding(report, "LISTING_DUPLICATE")["evidence"]  # type: ignore[index]
    assert [o.get("store") for o in evidence["others"]] == [ANOTHER_STORE]
    text = json.dumps(report, ensure_ascii=False)
    for secret in (elsewhere["id"], elsewhere["external_id"], OTHER_PRICE, "store-2"):
        assert secret not in text


def test_an_agent_reads_another_stores_open_deal_only_as_another_store(client, agent, cs, auth, rt, listing):
    world(rt)
    elsewhere = other_listing(client, auth(role="agent", store="store-2"))
    deal = create_deal(client, cs, elsewhere["id"])
    report = completed(client, agent, rt, listing["id"])
    assert report["decision"] == "BLOCK"
    evidence = finding(report, "LISTING_NOT_FOR_SALE")["evidence"]  # type: ignore[index]
    assert [d.get("store") for d in evidence["deals"]] == [ANOTHER_STORE]
    text = json.dumps(report, ensure_ascii=False)
    for secret in (elsewhere["id"], deal["id"], deal["external_id"], "store-2"):
        assert secret not in text


def test_a_duplicate_in_the_listings_own_store_is_named(client, agent, rt, listing):
    world(rt)
    mine = other_listing(client, agent)
    report = completed(client, agent, rt, listing["id"])
    evidence = finding(report, "LISTING_DUPLICATE")["evidence"]  # type: ignore[index]
    assert evidence["others"] == [
        {"same_company": True, "listing_id": mine["id"], "status": "active", "asking_price": OTHER_PRICE}
    ]


# -- a used external_id --------------------------------------------------------------------------------


def test_an_agents_external_id_conflict_with_another_stores_listing_names_no_id(client, agent, auth):
    elsewhere = create_listing(client, auth(role="agent", store="store-2"), external_id="LJ-SHARED-1")
    response = client.post("/api/v1/listings", json=_listing(external_id="LJ-SHARED-1"), headers=agent)
    error = assert_error(response, 409, "conflict")
    text = json.dumps(error, ensure_ascii=False)
    assert elsewhere["id"] not in text and "lst_" not in text
    assert ANOTHER_STORE in text


def test_an_agents_external_id_conflict_names_no_id_even_in_its_own_store(client, agent):
    mine = create_listing(client, agent, external_id="LJ-SHARED-2")
    response = client.post("/api/v1/listings", json=_listing(external_id="LJ-SHARED-2"), headers=agent)
    text = json.dumps(assert_error(response, 409, "conflict"), ensure_ascii=False)
    assert mine["id"] not in text and "lst_" not in text


def test_an_agents_patch_to_another_stores_external_id_names_no_id(client, agent, auth, listing):
    elsewhere = create_listing(client, auth(role="agent", store="store-2"), external_id="LJ-SHARED-3")
    response = client.patch(f"/api/v1/listings/{listing['id']}", json={"external_id": "LJ-SHARED-3"}, headers=agent)
    text = json.dumps(assert_error(response, 409, "conflict"), ensure_ascii=False)
    assert elsewhere["id"] not in text and "lst_" not in text


def test_a_contract_systems_external_id_conflict_still_names_the_listing(client, auth):
    elsewhere = create_listing(client, auth(role="agent", store="store-2"), external_id="LJ-SHARED-4")
    response = client.post("/api/v1/listings", json=_listing(external_id="LJ-SHARED-4"),
                           headers=auth(role="contract_system"))  # fmt: skip
    assert elsewhere["id"] in assert_error(response, 409, "conflict")["message"]


def _listing(**overrides: Any) -> dict[str, Any]:
    from tests.api_helpers import listing_body

    return listing_body(**overrides)


# -- webhook_url, the contract system's own ------------------------------------------------------------


def test_agents_read_deals_without_their_webhook_url(client, agent, cs, listing):
    deal = create_deal(client, cs, listing["id"], webhook_url="http://127.0.0.1:18401/hook")
    assert deal["webhook_url"] == "http://127.0.0.1:18401/hook"
    one = client.get(f"/api/v1/deals/{deal['id']}", headers=agent)
    assert one.status_code == 200 and "webhook_url" not in one.get_json()
    page = client.get("/api/v1/deals", headers=agent)
    assert page.status_code == 200 and [d["id"] for d in page.get_json()["items"]] == [deal["id"]]
    assert all("webhook_url" not in d for d in page.get_json()["items"])
    assert "18401" not in one.get_data(as_text=True) + page.get_data(as_text=True)


def test_a_contract_system_still_reads_its_deals_webhook_url(client, cs, listing):
    deal = create_deal(client, cs, listing["id"], webhook_url="http://127.0.0.1:18401/hook")
    for response in (client.get(f"/api/v1/deals/{deal['id']}", headers=cs), client.get("/api/v1/deals", headers=cs)):
        assert "http://127.0.0.1:18401/hook" in response.get_data(as_text=True)
