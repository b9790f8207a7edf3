import json
from dataclasses import asdict
from decimal import Decimal

import pytest

from checks import authenticity
from checks.base import ProviderUnavailable
from listings.market.own import SqlMarket
from risk.db import transaction
from tests.factories import (
    MemoryMarket,
    as_stored,
    community_prices_record,
    context,
    listing_row,
    subject,
    unit_record,
)

OTHER_FIRM = "lianjia-rival"
THIS_ID = subject()["listing_id"]


def codes(outcome):
    return [f.code for f in outcome.findings]


def only(outcome, code):
    found = [f for f in outcome.findings if f.code == code]
    assert len(found) == 1, codes(outcome)
    return found[0]


def dump(outcome):
    return json.dumps(asdict(outcome), default=str, ensure_ascii=False)


def test_listing_matching_dictionary_price_and_market_is_clear():
    outcome = authenticity.run(context())
    assert outcome.findings == []
    assert outcome.evidence["unit_found"] is True
    assert outcome.evidence["reference"] == "memory:unit/bj-yysh-3-2-602"
    assert outcome.evidence["community_prices"]["judged"] is True
    assert outcome.facts == {"unit_found": True, "community_price_judged": True}


# -- the building dictionary --------------------------------------------------------------------


def test_unit_missing_from_dictionary_is_listing_unit_not_found():
    outcome = authenticity.run(context(unit=None))
    assert codes(outcome) == ["LISTING_UNIT_NOT_FOUND"]
    assert outcome.findings[0].evidence["unit_id"] == "bj-yysh-3-2-602"


def test_unit_not_found_skips_attribute_and_community_price_judgements():
    subj = subject(area_m2="20.00", layout="5室3厅", asking_price="100000.00", entrusted_price=None)
    outcome = authenticity.run(context(subj, unit=None))
    assert codes(outcome) == ["LISTING_UNIT_NOT_FOUND"]
    assert "community_prices" not in outcome.evidence


def test_unit_not_found_still_judges_entrusted_price_and_the_market():
    market = MemoryMarket(active=[{"listing_id": "lst_x", "same_company": True, "store_id": "store-1",
                                   "status": "active"}])  # fmt: skip
    subj = subject(asking_price="7000000.00")
    outcome = authenticity.run(context(subj, unit=None, market=market))
    assert codes(outcome) == ["LISTING_UNIT_NOT_FOUND", "LISTING_PRICE_ANOMALY", "LISTING_DUPLICATE"]


def test_area_more_than_3_percent_off_is_listing_mismatch():
    outcome = authenticity.run(context(subject(area_m2="92.25", entrusted_price=None)))
    finding = only(outcome, "LISTING_MISMATCH")
    assert finding.evidence["differences"] == [
        {"field": "area_m2", "listing": "92.25", "dictionary": "89.50", "off": "3.1%"}
    ]


def test_area_within_3_percent_is_no_mismatch():
    assert authenticity.run(context(subject(area_m2="92.18"))).findings == []


def test_every_differing_attribute_is_listed_in_one_mismatch_finding():
    subj = subject(layout="3室1厅", floor=16, build_year=2010, orientation="南")
    finding = only(authenticity.run(context(subj)), "LISTING_MISMATCH")
    assert finding.evidence["differences"] == [
        {"field": "layout", "listing": "3室1厅", "dictionary": "2室1厅"},
        {"field": "floor", "listing": 16, "dictionary": 6},
        {"field": "build_year", "listing": 2010, "dictionary": 2004},
        {"field": "orientation", "listing": "南", "dictionary": "南北"},
    ]
    assert "户型：房源 3室1厅，楼盘字典 2室1厅" in finding.message


def test_full_width_characters_and_spaces_are_not_mismatches():
    subj = subject(layout="２室　1厅", orientation=" 南 北 ")
    assert authenticity.run(context(subj)).findings == []


def test_dictionary_values_are_normalised_the_same_way():
    unit = unit_record(layout="2室1厅 ", orientation="南北", floor="6", area_m2=89.5)
    assert authenticity.run(context(unit=unit)).findings == []


# -- prices -----------------------------------------------------------------------------------------


def test_asking_price_more_than_1_percent_from_entrusted_is_price_anomaly():
    outcome = authenticity.run(context(subject(asking_price="6200000.00", entrusted_price="6400000.00")))
    finding = only(outcome, "LISTING_PRICE_ANOMALY")
    assert finding.evidence["which"] == "entrusted_price"
    assert finding.evidence["asking_price"] == "6200000.00"
    assert finding.evidence["entrusted_price"] == "6400000.00"
    assert "6400000.00" in finding.message


def test_asking_price_within_1_percent_of_entrusted_is_fine():
    assert authenticity.run(context(subject(entrusted_price="6327650.00"))).findings == []


def test_no_entrusted_price_means_no_entrusted_judgement():
    assert authenticity.run(context(subject(entrusted_price=None))).findings == []


def test_unit_price_far_below_the_community_is_price_anomaly_with_the_range():
    # 3,580,000 / 89.50 = 40,000 per m²; low bound min(58,000, 0.7 × 70,000) = 49,000.
    subj = subject(asking_price="3580000.00", entrusted_price=None)
    finding = only(authenticity.run(context(subj)), "LISTING_PRICE_ANOMALY")
    ev = finding.evidence
    assert ev["which"] == "community_range"
    assert (ev["unit_price"], ev["median"], ev["p10"], ev["p90"], ev["sample_size"]) == (
        "40000.00",
        "70000.00",
        "58000.00",
        "84000.00",
        40,
    )
    assert ev["low"] == "49000.00" and ev["high"] == "105000.00"
    assert ev["reference"] == "memory:community_prices/bj-yysh"
    assert "低于" in finding.message


def test_unit_price_far_above_the_community_is_price_anomaly():
    subj = subject(asking_price="9845000.00", entrusted_price=None)  # 110,000 per m² > max(84,000, 105,000)
    assert only(authenticity.run(context(subj)), "LISTING_PRICE_ANOMALY").evidence["which"] == "community_range"


def test_unit_price_below_p10_but_above_70_percent_of_median_is_not_far_outside():
    subj = subject(asking_price="4475000.00", entrusted_price=None)  # 50,000 per m²: under p10, over 49,000
    assert authenticity.run(context(subj)).findings == []


def test_p10_lower_than_70_percent_of_median_widens_the_range():
    prices = community_prices_record(median="70000.00", p10="45000.00", p90="84000.00")
    subj = subject(asking_price="4117000.00", entrusted_price=None)  # 46,000 per m²
    assert authenticity.run(context(subj, community_prices=prices)).findings == []


def test_fewer_than_5_community_deals_are_not_judged():
    prices = community_prices_record(sample_size=4)
    subj = subject(asking_price="3580000.00", entrusted_price=None)
    outcome = authenticity.run(context(subj, community_prices=prices))
    assert outcome.findings == []
    assert outcome.evidence["community_prices"]["judged"] is False


def test_unknown_community_is_not_judged():
    subj = subject(asking_price="3580000.00", entrusted_price=None)
    outcome = authenticity.run(context(subj, community_prices=None))
    assert outcome.findings == []
    assert outcome.evidence["community_prices"]["judged"] is False


def test_both_price_anomalies_are_reported_separately():
    subj = subject(asking_price="3580000.00", entrusted_price="6265000.00")
    outcome = authenticity.run(context(subj))
    assert [f.evidence["which"] for f in outcome.findings] == ["entrusted_price", "community_range"]


# -- Presign's own listings and deals (in memory) ----------------------------------------------------


def test_another_active_listing_of_the_same_unit_is_listing_duplicate():
    market = MemoryMarket(active=[{"listing_id": "lst_mine2", "same_company": True, "store_id": "store-1",
                                   "status": "active"}])  # fmt: skip
    finding = only(authenticity.run(context(market=market)), "LISTING_DUPLICATE")
    assert finding.evidence["others"] == [{"same_company": True, "listing_id": "lst_mine2", "status": "active"}]
    assert "lst_mine2" in finding.message


def test_duplicate_at_another_brokerage_is_not_named():
    market = MemoryMarket(
        active=[{"listing_id": "lst_rival1", "same_company": False, "status": "active", "asking_price": "6000000.00"}]
    )
    outcome = authenticity.run(context(market=market))
    finding = only(outcome, "LISTING_DUPLICATE")
    assert finding.evidence["others"] == [
        {"same_company": False, "brokerage": "another brokerage", "brokerage_zh": "另一家经纪机构"}
    ]
    assert "另一家经纪机构" in finding.message
    assert "lst_rival1" not in dump(outcome)


def test_a_photo_used_by_another_listing_is_listing_photo_reused():
    old = {"listing_id": "lst_old", "same_company": True, "store_id": "store-1", "status": "sold"}
    market = MemoryMarket(photos={"a" * 64: [old]})
    finding = only(authenticity.run(context(market=market)), "LISTING_PHOTO_REUSED")
    assert finding.evidence["photos"] == [
        {
            "sha256": "a" * 64,
            "url": "https://img.example/1.jpg",
            "used_by": [{"same_company": True, "listing_id": "lst_old", "status": "sold"}],
        }
    ]


def test_photo_reused_by_another_brokerage_is_not_named():
    market = MemoryMarket(photos={"b" * 64: [{"listing_id": "lst_rival9", "same_company": False}]})
    outcome = authenticity.run(context(market=market))
    assert only(outcome, "LISTING_PHOTO_REUSED").evidence["photos"][0]["used_by"][0]["brokerage"] == "another brokerage"
    assert "lst_rival9" not in dump(outcome)


def test_an_open_deal_on_the_unit_for_another_listing_is_listing_not_for_sale():
    market = MemoryMarket(deals=[{"listing_id": "lst_rival3", "deal_id": "deal_r", "same_company": False}])
    outcome = authenticity.run(context(market=market))
    finding = only(outcome, "LISTING_NOT_FOR_SALE")
    assert finding.evidence["deals"] == [
        {"same_company": False, "brokerage": "another brokerage", "brokerage_zh": "另一家经纪机构"}
    ]
    assert "lst_rival3" not in dump(outcome) and "deal_r" not in dump(outcome)


def test_an_open_deal_of_this_listing_is_not_listing_not_for_sale():
    own = {"listing_id": THIS_ID, "deal_id": "deal_own", "same_company": True, "store_id": "store-1"}
    market = MemoryMarket(deals=[own])
    assert authenticity.run(context(market=market)).findings == []


@pytest.mark.parametrize("kind", ["unit", "community_prices"])
def test_dictionary_failure_propagates_to_the_runner(kind):
    with pytest.raises(ProviderUnavailable):
        authenticity.run(context(failing=[kind]))


# -- SqlMarket over Presign's own tables ---------------------------------------------------------------


def add(rt, *rows):
    with transaction(rt.sessions) as session:
        session.add_all(rows)


def test_sql_market_finds_other_active_listings_of_the_unit_in_any_company(rt):
    add(
        rt,
        listing_row(THIS_ID),
        listing_row("lst_mine2", asking_price=Decimal("6300000")),
        listing_row("lst_rival1", company=OTHER_FIRM),
        listing_row("lst_gone", status="withdrawn"),
        listing_row("lst_sold", status="sold"),
        listing_row("lst_elsewhere", unit_id="bj-other-1-1-101"),
    )
    found = SqlMarket(rt.engine, "default").other_active_listings("bj-yysh-3-2-602", THIS_ID)
    assert found == [
        {"listing_id": "lst_mine2", "same_company": True, "store_id": "store-1", "status": "active",
         "asking_price": "6300000.00"},  # fmt: skip
        {"listing_id": "lst_rival1", "same_company": False, "store_id": "store-1", "status": "active",
         "asking_price": "6265000.00"},  # fmt: skip
    ]


def test_sql_market_finds_listings_of_any_status_with_a_photo_but_not_this_one(rt):
    add(
        rt,
        listing_row(THIS_ID, photos=["a" * 64, "b" * 64]),
        listing_row("lst_old", status="sold", unit_id="bj-other-1-1-101", photos=["a" * 64, "c" * 64]),
        listing_row("lst_rival2", company=OTHER_FIRM, status="withdrawn", photos=["a" * 64, "a" * 64]),
    )
    found = SqlMarket(rt.engine, "default").listings_with_photos(["a" * 64, "b" * 64, "c" * 64], THIS_ID)
    assert found == {
        "a" * 64: [
            {"listing_id": "lst_old", "same_company": True, "store_id": "store-1", "status": "sold"},
            {"listing_id": "lst_rival2", "same_company": False, "store_id": "store-1", "status": "withdrawn"},
        ],
        "c" * 64: [{"listing_id": "lst_old", "same_company": True, "store_id": "store-1", "status": "sold"}],
    }


def test_the_check_looks_up_every_photo_of_a_listing_in_one_statement(rt):
    from sqlalchemy import event

    hashes = [f"{n:064x}" for n in range(50)]
    add(rt, listing_row(THIS_ID, photos=hashes), listing_row("lst_old", status="sold", photos=hashes[-1:]))
    photos = [{"url": f"https://img.example/{n}.jpg", "sha256": sha} for n, sha in enumerate(hashes)]
    statements = []

    def seen(_conn, _cursor, statement, *_rest):
        statements.append(statement)

    event.listen(rt.engine, "before_cursor_execute", seen)
    try:
        outcome = authenticity.run(context(subject(photos=photos), market=SqlMarket(rt.engine, "default")))
    finally:
        event.remove(rt.engine, "before_cursor_execute", seen)
    reused = only(outcome, "LISTING_PHOTO_REUSED").evidence["photos"]
    assert [p["sha256"] for p in reused] == hashes[-1:] and reused[0]["url"] == photos[-1]["url"]
    assert len([s for s in statements if "listing_photos" in s]) == 1


def test_sql_market_has_no_open_deals_on_a_unit_without_deals(rt):
    add(rt, listing_row(THIS_ID), listing_row("lst_mine2"))
    assert SqlMarket(rt.engine, "default").open_deals_on_unit("bj-yysh-3-2-602", THIS_ID) == []


def test_sql_market_is_seen_from_the_asking_company(rt):
    add(rt, listing_row(THIS_ID, company=OTHER_FIRM), listing_row("lst_default"))
    found = SqlMarket(rt.engine, OTHER_FIRM).other_active_listings("bj-yysh-3-2-602", THIS_ID)
    assert found[0]["same_company"] is False


def test_check_over_the_database_reports_another_brokerages_duplicate_and_photo_unnamed(rt):
    add(
        rt,
        listing_row(THIS_ID, photos=["a" * 64, "b" * 64]),
        listing_row("lst_rival1", company=OTHER_FIRM, store_id="rival-store-7", photos=["b" * 64]),
    )
    outcome = authenticity.run(context(market=SqlMarket(rt.engine, "default")))
    assert codes(outcome) == ["LISTING_DUPLICATE", "LISTING_PHOTO_REUSED"]
    text = dump(outcome)
    for secret in ("lst_rival1", OTHER_FIRM, "rival-store-7"):
        assert secret not in text
    assert "另一家经纪机构" in only(outcome, "LISTING_DUPLICATE").message


def test_findings_evidence_and_facts_are_json_safe_for_storage():
    market = MemoryMarket(
        active=[{"listing_id": "lst_a", "same_company": True, "store_id": "store-1", "status": "active",
                 "asking_price": "1.00"}],  # fmt: skip
        photos={"a" * 64: [{"listing_id": "lst_b", "same_company": False}]},
        deals=[{"listing_id": "lst_c", "same_company": True, "store_id": "store-1", "deal_id": "deal_c"}],
    )
    subj = subject(asking_price="3580000.00", layout="3室1厅", area_m2="95.00")
    outcome = authenticity.run(context(subj, market=market))
    assert len(outcome.findings) == 6
    assert as_stored(outcome)["facts"] == outcome.facts
