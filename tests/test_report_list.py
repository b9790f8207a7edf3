"""GET /api/v1/reports: filters, newest first with a cursor, who sees which report, and the review
queue (`awaiting_review`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests import factories as f
from tests.api_helpers import assert_error, create_listing, request_report
from tests.deal_helpers import create_deal, drain, world

REASON = "已核对原件并留存复印件，同意放行"


def complete(client: Any, headers: dict[str, str], rt: Any, listing_id: str, stage: str = "signing",
             **body: Any) -> str:  # fmt: skip
    response = client.post(f"/api/v1/listings/{listing_id}/reports", json={"stage": stage, **body}, headers=headers)
    assert response.status_code == 202, response.get_json()
    drain(rt)
    return str(response.get_json()["id"])


def listed(client: Any, headers: dict[str, str], query: str = "") -> list[str]:
    response = client.get(f"/api/v1/reports{query}", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"items", "next"}
    return [item["id"] for item in body["items"]]


def test_reports_are_listed_newest_first_a_page_at_a_time(client, agent, rt, listing):
    world(rt)
    ids = [complete(client, agent, rt, listing["id"], stage) for stage in ("listing", "deposit", "signing")]
    first = client.get("/api/v1/reports?limit=2", headers=agent).get_json()
    assert [i["id"] for i in first["items"]] == ids[:0:-1] and first["next"]
    rest = client.get(f"/api/v1/reports?limit=2&cursor={first['next']}", headers=agent).get_json()
    assert ([i["id"] for i in rest["items"]], rest["next"]) == ([ids[0]], None)


def test_a_listed_report_is_the_report_as_read_alone(client, agent, rt, listing):
    world(rt)
    report_id = complete(client, agent, rt, listing["id"])
    [item] = client.get("/api/v1/reports", headers=agent).get_json()["items"]
    assert item == client.get(f"/api/v1/reports/{report_id}", headers=agent).get_json()


def test_reports_filter_by_listing_deal_stage_status_and_decision(client, agent, cs, rt, listing):
    world(rt)
    other = create_listing(client, agent)
    deal = create_deal(client, cs, listing["id"])
    plain = complete(client, agent, rt, listing["id"], "deposit")
    for_deal = complete(client, cs, rt, listing["id"], "signing", deal_id=deal["id"])
    elsewhere = complete(client, agent, rt, other["id"], "signing")
    running = request_report(client, agent, other["id"], stage="transfer")["id"]

    assert listed(client, agent, f"?listing_id={listing['id']}") == [for_deal, plain]
    assert listed(client, agent, f"?deal_id={deal['id']}") == [for_deal]
    assert listed(client, agent, "?stage=signing") == [elsewhere, for_deal]
    assert listed(client, agent, "?status=pending") == [running]
    assert listed(client, agent, "?status=complete&stage=signing&listing_id=" + other["id"]) == [elsewhere]
    # Two active listings of one unit: a REVIEW each (LISTING_DUPLICATE), and the other listing's a BLOCK
    # as well, since the unit is under the deal's contract (LISTING_NOT_FOR_SALE).
    assert set(listed(client, agent, "?decision=REVIEW")) == {plain, for_deal}
    assert listed(client, agent, "?decision=BLOCK") == [elsewhere]
    assert listed(client, agent, "?decision=ALLOW") == []


@pytest.mark.parametrize("query", ["?stage=handover", "?status=done", "?decision=MAYBE", "?awaiting_review=perhaps",
                                   "?limit=0", "?cursor=zzz"])  # fmt: skip
def test_bad_filters_are_422(client, agent, query):
    assert_error(client.get(f"/api/v1/reports{query}", headers=agent), 422, "validation_error")


# -- who sees which report ----------------------------------------------------------------------------


def test_an_agent_lists_only_its_own_stores_reports(client, agent, auth, rt, listing):
    world(rt)
    mine = complete(client, agent, rt, listing["id"])
    other_store = auth(role="agent", store="朝阳店")
    theirs = complete(client, other_store, rt, create_listing(client, other_store)["id"])
    assert listed(client, agent) == [mine]
    assert listed(client, other_store) == [theirs]


def test_another_companys_reports_are_never_listed(client, agent, auth, rt, listing):
    world(rt)
    complete(client, agent, rt, listing["id"])
    for role in ("agent", "contract_system", "reviewer", "admin"):
        assert listed(client, auth(role=role, company="another")) == []


def test_reviewers_read_their_companys_reports_and_listings_of_every_store(client, agent, auth, rt, listing):
    world(rt)
    other_store = auth(role="agent", store="朝阳店")
    theirs = create_listing(client, other_store)
    ids = [complete(client, agent, rt, listing["id"]), complete(client, other_store, rt, theirs["id"])]
    reviewer = auth(role="reviewer")
    assert listed(client, reviewer) == ids[::-1]
    assert client.get(f"/api/v1/listings/{theirs['id']}", headers=reviewer).status_code == 200
    assert client.get(f"/api/v1/reports/{ids[1]}", headers=reviewer).status_code == 200


# -- the review queue --------------------------------------------------------------------------------


def queue(client: Any, headers: dict[str, str]) -> list[str]:
    return listed(client, headers, "?awaiting_review=true")


def withdrawn_after_report(client: Any, agent: dict[str, str], rt: Any) -> str:
    """A report on a new listing of the unit, which is then withdrawn (so the next is no duplicate)."""
    listing = create_listing(client, agent, photos=[])
    report_id = complete(client, agent, rt, listing["id"])
    response = client.patch(f"/api/v1/listings/{listing['id']}", json={"status": "withdrawn"}, headers=agent)
    assert response.status_code == 200, response.get_json()
    return report_id


def test_the_queue_holds_complete_reviews_and_overridable_blocks_only(client, agent, auth, rt):
    reviewer = auth(role="reviewer")
    world(rt, title=f.title_record(unit_id="bj-elsewhere-1-1-101"))  # first: later worlds hold the unit's title
    overridable = withdrawn_after_report(client, agent, rt)
    world(rt, fees=f.fee_account_record([f.fee_item(amount_paid="0.00")]))
    review = withdrawn_after_report(client, agent, rt)
    world(rt, title=f.title_record(encumbrances=[f.encumbrance("seizure")]))
    seized = withdrawn_after_report(client, agent, rt)
    world(rt)
    allowed = withdrawn_after_report(client, agent, rt)
    running = request_report(client, agent, create_listing(client, agent)["id"])["id"]
    decisions = {i["id"]: i["decision"] for i in client.get("/api/v1/reports", headers=agent).get_json()["items"]}
    assert [decisions[i] for i in (review, overridable, seized, allowed)] == ["REVIEW", "BLOCK", "BLOCK", "ALLOW"]
    assert queue(client, reviewer) == [review, overridable]
    not_awaiting = listed(client, reviewer, "?awaiting_review=false")
    assert set(not_awaiting) == {seized, allowed, running}


def test_a_report_leaves_the_queue_once_approved_or_declined_not_while_pending(client, agent, auth, rt):
    first, second = auth(role="reviewer", name="王审核"), auth(role="reviewer", name="刘复核")
    world(rt, title=f.title_record(unit_id="bj-elsewhere-1-1-101"))
    blocked = withdrawn_after_report(client, agent, rt)
    world(rt, fees=f.fee_account_record([f.fee_item(amount_paid="0.00")]))
    review = withdrawn_after_report(client, agent, rt)
    url = "/api/v1/reports/{}/overrides"
    body = {"decision": "ALLOW", "reason": REASON}
    assert client.post(url.format(blocked), json=body, headers=first).get_json()["status"] == "pending"
    assert queue(client, first) == [review, blocked]
    assert client.post(url.format(blocked), json=body, headers=second).get_json()["status"] == "approved"
    assert queue(client, first) == [review]
    declined = client.post(url.format(review), json={**body, "decision": "DECLINE"}, headers=first)
    assert declined.get_json()["status"] == "declined"
    assert queue(client, first) == []


def test_a_newer_report_of_the_same_listing_deal_and_stage_takes_the_older_ones_place(
    client, agent, cs, auth, rt, listing, clock
):
    reviewer = auth(role="reviewer")
    world(rt, fees=f.fee_account_record([f.fee_item(amount_paid="0.00")]))
    older = complete(client, agent, rt, listing["id"])
    deal = create_deal(client, cs, listing["id"])
    for_deal = complete(client, cs, rt, listing["id"], deal_id=deal["id"])
    deposit = complete(client, agent, rt, listing["id"], "deposit")
    assert queue(client, reviewer) == [deposit, for_deal, older]
    clock.advance(timedelta(minutes=10))
    newer = complete(client, agent, rt, listing["id"])
    assert queue(client, reviewer) == [newer, deposit, for_deal]


def test_the_queue_keeps_each_callers_visibility(client, agent, auth, rt, listing):
    world(rt, fees=f.fee_account_record([f.fee_item(amount_paid="0.00")]))
    review = complete(client, agent, rt, listing["id"])
    assert queue(client, agent) == [review]
    assert queue(client, auth(role="agent", store="朝阳店")) == []
    assert queue(client, auth(role="reviewer", company="another")) == []
