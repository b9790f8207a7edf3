"""The authenticity check on Presign's market data (imported Lianjia-layout exports): communities found
by fuzzy name, profiles, market prices with their fallbacks, re-posted units by fingerprint."""

import json
from dataclasses import asdict
from datetime import date
from decimal import Decimal

import pytest

from checks import authenticity
from listings.market.importer import import_market_files
from listings.market.own import SqlMarket
from risk.db import transaction
from tests.factories import as_stored, context, listing_row, subject, unit_record
from tests.market_factories import LISTINGS_2021, listing_2021, write_csv

RIVAL = "lianjia-rival"


@pytest.fixture
def market(rt, tmp_path):
    """A small Beijing market: one well-known community, thin ones, a bizcircle, a district, apartments."""
    rows = [
        listing_2021(
            "远洋山水", area=80 + i * 1.5, unit_price=66_000 + i * 900, floors=6 if i < 4 else 18, year=2003 + i % 3
        )
        for i in range(10)
    ]
    rows += [listing_2021("鲁谷大院", unit_price=50_000 + i * 800, area=70.0) for i in range(15)]
    rows += [listing_2021("小众家园", unit_price=60_000, area=75.0, floors=6) for _ in range(2)]
    rows += [listing_2021("北京城建琨廷南区", unit_price=62_000) for _ in range(3)]
    rows += [listing_2021("华润公寓", layout="1房间1卫", unit_price=35_000, area=45.0) for _ in range(4)]
    rows += [
        listing_2021("门头沟大院", district="门头沟", bizcircle="城子", unit_price=30_000 + i * 100) for i in range(20)
    ]
    rows += [listing_2021("孤岛小区", district="门头沟", bizcircle="孤岛", unit_price=31_000)]
    path = write_csv(tmp_path / "bj.csv", LISTINGS_2021, rows)
    import_market_files(rt, [(path, date(2021, 11, 6))], "北京")
    return SqlMarket(rt.engine, "default")


def codes(outcome):
    return [f.code for f in outcome.findings]


def only(outcome, code):
    # The export's rows of a flat like the listing's are its history too (`which: history`), not asked here.
    found = [f for f in outcome.findings if f.code == code and f.evidence.get("which") != "history"]
    assert len(found) == 1, codes(outcome)
    return found[0]


def check(market, *, unit=None, company="default", **fields):
    """Run the check on a listing of the given fields; unit None: the dictionary does not know it."""
    return authenticity.run(context(subject(entrusted_price=None, **fields), unit=unit, market=market, company=company))


# -- a unit the dictionary does not know, in a community the market knows ---------------------------


def saved(rt, outcome):
    """What the runner does with a result: keeps the unit's fingerprint in the saving transaction."""
    from listings.market.data import SqlMarketData
    from risk.db import transaction

    assert outcome.fingerprint is not None
    with transaction(rt.sessions) as session:
        SqlMarketData(rt.engine, rt.clock).remember(session, outcome.fingerprint)
    return outcome


def test_unit_missing_from_the_dictionary_in_a_known_community_is_judged_not_unit_not_found(market):
    outcome = check(market, asking_price="6265000.00")  # 70,000 per m², 2室1厅 89.50 m² on floor 6
    assert outcome.findings == []
    assert outcome.evidence["unit_found"] is False
    assert outcome.evidence["community"]["match"] == "exact"
    assert outcome.evidence["community_profile"]["homes"] == 10
    assert outcome.facts == {
        "unit_found": False,
        "community_price_judged": True,
        "community_matched": True,
        "price_level": "community",
    }


def test_a_floor_higher_than_any_building_of_the_community_is_a_mismatch(market):
    finding = only(check(market, floor=40), "LISTING_MISMATCH")
    assert finding.evidence["which"] == "community_profile"
    assert finding.evidence["differences"] == [
        {"field": "floor", "listing": 40, "community": "小区楼栋最高 18 层", "limit": 30}
    ]
    assert "远洋山水" in finding.message and "依据该小区 10 套房源" in finding.message


def test_rooms_and_an_area_the_community_cannot_have_are_mismatches(market):
    finding = only(check(market, layout="6室2厅", area_m2="300.00", asking_price="21000000.00"), "LISTING_MISMATCH")
    assert [d["field"] for d in finding.evidence["differences"]] == ["layout", "area_m2"]
    assert finding.evidence["differences"][0]["community"] == "小区最多 2 室"


def test_a_thin_profile_is_judged_with_wide_margins(market):
    # 小众家园: two homes seen, both 6 floors. 14 floors may be a building not seen yet; 40 may not.
    assert check(market, community="小众家园", floor=14, asking_price="5370000.00").findings == []
    finding = only(check(market, community="小众家园", floor=40, asking_price="5370000.00"), "LISTING_MISMATCH")
    assert finding.evidence["differences"][0]["limit"] == 18
    # Two rooms more than any seen may be a flat not seen yet; three more may not.
    assert check(market, community="小众家园", layout="4室1厅", asking_price="5370000.00").findings == []
    finding = only(check(market, community="小众家园", layout="5室1厅", asking_price="5370000.00"), "LISTING_MISMATCH")
    assert finding.evidence["differences"][0]["community"] == "小区最多 2 室"


def test_a_thin_profile_is_also_held_against_what_its_bizcircle_has(market):
    # 160 m² is within 2.5 times 小众家园's two homes of 75 m², but 1.5 times anything in 鲁谷.
    outcome = check(market, community="小众家园", area_m2="160.00", asking_price="9600000.00")
    finding = only(outcome, "LISTING_MISMATCH")
    assert finding.evidence["differences"][0] == {
        "field": "area_m2",
        "listing": "160.00",
        "community": "商圈「鲁谷」99% 的房屋不超过 93 m²",
    }
    assert outcome.evidence["community_profile"]["bizcircle"] == {"name": "鲁谷", "homes": 34}


def test_a_thin_profile_is_also_held_against_the_citys_homes_of_its_room_count(market):
    # 50 m² is within 2.5 times 小众家园's two homes of 75 m², but no 2室 of the city is near it (70–93 m²).
    outcome = check(market, community="小众家园", area_m2="50.00", asking_price="3000000.00")
    finding = only(outcome, "LISTING_MISMATCH")
    assert finding.evidence["differences"] == [
        {"field": "layout", "listing": "2室1厅，50.00 m²", "community": "全市 2 室的房屋 99% 在 70–93.12 m²"}
    ]
    assert outcome.evidence["community_profile"]["city"] == {"name": "北京", "homes": 55}
    # A community seen often enough is judged on its own homes only.
    assert check(market, area_m2="62.00", asking_price="4340000.00").findings == []


def test_a_layout_too_small_for_its_rooms_is_a_mismatch_in_any_community(market):
    finding = only(check(market, community="孤岛小区", layout="5室1厅", area_m2="30.00"), "LISTING_MISMATCH")
    assert finding.evidence["differences"][0]["community"] == "30 m² 容不下 5 室"


# -- names written differently ----------------------------------------------------------------------


def test_a_community_written_slightly_differently_is_matched_and_the_score_reported(market):
    outcome = check(market, community="北京城建昆廷南区", asking_price="5549000.00")
    assert "LISTING_UNIT_NOT_FOUND" not in codes(outcome)
    assert outcome.evidence["community"] == {
        "community_as_listed": "北京城建昆廷南区",
        "matched": True,
        "match": "fuzzy",
        "best_match": "北京城建琨廷南区",
        "score": 87.5,
        "min_score": 85.0,
        "sibling": False,
    }


def test_neither_unit_nor_community_is_unit_not_found_with_the_closest_name_and_its_score(market):
    finding = only(check(market, community="远洋山川"), "LISTING_UNIT_NOT_FOUND")
    assert finding.evidence["community"]["best_match"] == "远洋山水"
    assert (finding.evidence["community"]["score"], finding.evidence["community"]["matched"]) == (75.0, False)
    assert "最接近的是「远洋山水」（相似度 75，需 ≥ 85）" in finding.message


def test_a_name_nothing_resembles_is_unit_not_found_saying_so(market):
    finding = only(check(market, community="完全不存在的花园"), "LISTING_UNIT_NOT_FOUND")
    assert finding.evidence["community"] == {
        "community_as_listed": "完全不存在的花园",
        "matched": False,
        "match": "none",
        "best_match": None,
        "score": 0.0,
        "min_score": 85.0,
        "sibling": False,
    }
    assert finding.message.endswith("市场数据中也没有小区「完全不存在的花园」：没有相近的小区")


# -- prices against the market ----------------------------------------------------------------------


def test_a_price_far_below_the_community_is_an_anomaly_judged_on_the_community(market):
    finding = only(check(market, asking_price="3580000.00"), "LISTING_PRICE_ANOMALY")  # 40,000 per m²
    ev = finding.evidence
    assert (ev["which"], ev["level"], ev["level_name"], ev["fallback"]) == (
        "market_range",
        "community",
        "远洋山水",
        False,
    )
    assert (ev["unit_price"], ev["median"], ev["sample_size"], ev["property_type"]) == (
        "40000.00",
        "70050.00",
        10,
        "home",
    )
    assert ev["reference"] == "presign:market/北京/远洋山水"
    assert "低于小区「远洋山水」正常区间" in finding.message


def test_a_thin_community_falls_back_to_its_bizcircle_and_says_so(market):
    outcome = check(market, community="小众家园", area_m2="75.00", asking_price="1875000.00")  # 25,000 per m²
    ev = only(outcome, "LISTING_PRICE_ANOMALY").evidence
    assert (ev["level"], ev["level_name"], ev["fallback"]) == ("bizcircle", "鲁谷", True)
    assert ev["levels_tried"][0] == {"level": "community", "name": "小众家园", "n": 2}
    assert ev["fallback_reason"] == "小区「小众家园」近期样本仅 2 套，改按商圈判断"
    assert "改按商圈判断" in only(outcome, "LISTING_PRICE_ANOMALY").message


def test_a_thin_community_in_a_thin_bizcircle_falls_back_to_the_district(market):
    outcome = check(market, community="孤岛小区", area_m2="89.50", asking_price="2730000.00")  # 30,500 per m²
    assert outcome.findings == []
    looked = outcome.evidence["community_prices"]
    assert (looked["level"], looked["level_name"], looked["judged"]) == ("district", "门头沟", True)
    assert [t["level"] for t in looked["levels_tried"]] == ["community", "bizcircle", "district"]


def test_a_dictionary_unit_in_a_community_the_market_does_not_know_is_priced_on_its_district(market):
    unit = unit_record(district="门头沟区", community="无名小区")
    fields = {"community": "无名小区", "asking_price": "1000000.00", "entrusted_price": None}  # 11,173 per m²
    outcome = authenticity.run(context(subject(**fields), unit=unit, community_prices=None, market=market))
    ev = only(outcome, "LISTING_PRICE_ANOMALY").evidence
    assert (ev["level"], ev["level_name"], ev["fallback"]) == ("district", "门头沟", True)
    assert ev["fallback_reason"] == "小区「无名小区」不在市场数据中，改按区县判断"


def test_a_room_type_listing_is_priced_against_apartments_not_homes(market):
    as_room = check(market, community="华润公寓", layout="2房间", area_m2="60.00", asking_price="2040000.00")
    assert as_room.findings == []
    looked = as_room.evidence["community_prices"]
    assert (looked["property_type"], looked["level"], looked["median"]) == ("room", "community", "35000.00")
    as_home = check(market, community="华润公寓", layout="2室1厅", area_m2="60.00", asking_price="2040000.00")
    ev = only(as_home, "LISTING_PRICE_ANOMALY").evidence  # 34,000 against the bizcircle's homes
    assert (ev["property_type"], ev["level"]) == ("home", "bizcircle")


def test_the_dictionary_providers_community_prices_stay_authoritative(market):
    outcome = authenticity.run(context(subject(asking_price="3580000.00", entrusted_price=None), market=market))
    ev = only(outcome, "LISTING_PRICE_ANOMALY").evidence
    assert ev["which"] == "community_range"
    assert ev["reference"] == "memory:community_prices/bj-yysh"


def test_without_dictionary_prices_the_market_judges_and_the_evidence_says_what_the_dictionary_had(market):
    outcome = authenticity.run(
        context(subject(asking_price="3580000.00", entrusted_price=None), community_prices=None, market=market)
    )
    ev = only(outcome, "LISTING_PRICE_ANOMALY").evidence
    assert (ev["which"], ev["level"]) == ("market_range", "community")
    assert outcome.evidence["community_prices"]["dictionary_prices"]["judged"] is False


# -- the same unit posted again ---------------------------------------------------------------------


def add(rt, *rows):
    with transaction(rt.sessions) as session:
        session.add_all(rows)


def posted(listing_id, **fields):
    """A stored listing and its snapshot (unit 3-2-602 of 远洋山水, floor 6, 2室1厅 89.50 m², 南北)."""
    row = listing_row(listing_id, **fields)
    return row, row.snapshot()


def test_a_unit_posted_again_with_its_text_written_differently_is_a_duplicate(rt, market):
    first, first_snapshot = posted("lst_first", company=RIVAL, unit_id="bj-yysh-3-2-602")
    again, again_snapshot = posted(
        "lst_again",
        unit_id="YYSH-3-2-602-B",
        community="远洋山水 小区",
        building="3号楼",
        unit="2单元",
        room="602室",
        layout="两室一厅",
        area_m2=Decimal("89.30"),
        orientation="北 南",
        asking_price=Decimal("5900000.00"),
    )
    add(rt, first, again)
    saved(rt, authenticity.run(context(first_snapshot, unit=None, market=SqlMarket(rt.engine, RIVAL), company=RIVAL)))
    outcome = authenticity.run(context(again_snapshot, unit=None, market=market))
    finding = only(outcome, "LISTING_DUPLICATE")
    assert finding.evidence["others"] == [
        {
            "same_company": False,
            "brokerage": "another brokerage",
            "brokerage_zh": "另一家经纪机构",
            "matched_by": "attributes",
            "matched_on": [
                "community",
                "rooms",
                "area_m2",
                "halls",
                "room_type",
                "orientation",
                "floor",
                "building_room",
            ],
        }
    ]
    assert "按小区、户型、面积、楼层、朝向判断为同一房屋" in finding.message
    text = json.dumps(asdict(outcome), default=str, ensure_ascii=False)
    assert "lst_first" not in text and RIVAL not in text


def test_the_same_flat_in_another_building_or_room_is_not_a_duplicate(rt, market):
    first, first_snapshot = posted("lst_first", unit_id="u-1")
    other, other_snapshot = posted("lst_other", unit_id="u-2", building="5")
    add(rt, first, other)
    authenticity.run(context(first_snapshot, unit=None, market=market))
    assert "LISTING_DUPLICATE" not in codes(authenticity.run(context(other_snapshot, unit=None, market=market)))


def test_a_withdrawn_posting_of_the_unit_is_not_a_duplicate(rt, market):
    first, first_snapshot = posted("lst_first", unit_id="u-1", status="withdrawn")
    again, again_snapshot = posted("lst_again", unit_id="u-2", community="远洋山水小区")
    add(rt, first, again)
    authenticity.run(context(first_snapshot, unit=None, market=market))
    assert "LISTING_DUPLICATE" not in codes(authenticity.run(context(again_snapshot, unit=None, market=market)))


def test_a_duplicate_by_unit_id_is_not_listed_twice(rt, market):
    first, first_snapshot = posted("lst_first", asking_price=Decimal("6300000.00"))
    again, again_snapshot = posted("lst_again")
    add(rt, first, again)
    authenticity.run(context(first_snapshot, market=market))
    finding = only(authenticity.run(context(again_snapshot, market=market)), "LISTING_DUPLICATE")
    assert finding.evidence["others"] == [
        {"same_company": True, "listing_id": "lst_first", "status": "active", "asking_price": "6300000.00"}
    ]


def test_market_evidence_and_facts_are_json_safe(rt, market):
    outcome = check(market, community="小众家园", floor=40, area_m2="75.00", asking_price="1875000.00")
    # The range's finding and the flat's history (the export's homes like it, at 60,000 per m²).
    assert codes(outcome) == ["LISTING_MISMATCH", "LISTING_PRICE_ANOMALY", "LISTING_PRICE_ANOMALY"]
    assert as_stored(outcome)["evidence"] == json.loads(json.dumps(outcome.evidence, ensure_ascii=False))


# -- through the report runner, as in production ------------------------------------------------------


def test_a_report_run_judges_the_listing_on_the_imported_market_and_remembers_its_fingerprint(rt, market):
    from sqlalchemy import select

    from listings.market.models import ListingFingerprint
    from risk.reports.models import ReportCheck
    from risk.reports.operations import request_report
    from risk.reports.runner import run_report

    row = listing_row("lst_bait", unit_id="bj-nowhere-1", asking_price=Decimal("3580000.00"), entrusted_price=None)
    with transaction(rt.sessions) as session:
        session.add(row)
        session.flush()
        report_id = request_report(session, rt, listing=row, stage="listing", requested_by="test")[0].id
    run_report(rt, report_id)
    with rt.sessions() as session:
        checked = session.scalars(
            select(ReportCheck).where(ReportCheck.report_id == report_id, ReportCheck.check == "authenticity")
        ).one()
        remembered = session.get(ListingFingerprint, "lst_bait")
    assert [(f["code"], f["evidence"]["which"]) for f in checked.findings] == [
        ("LISTING_PRICE_ANOMALY", "market_range"),
        ("LISTING_PRICE_ANOMALY", "history"),  # the export's own row of an 89.5 m² flat there, at 70,000+
    ]
    assert checked.evidence["community_prices"]["level"] == "community"
    assert checked.facts["community_matched"] is True
    assert (remembered.community_key, remembered.rooms, remembered.floor) == ("远洋山水", 2, 6)


def test_a_long_name_written_differently_is_matched_whatever_its_bigram_count(rt, tmp_path, market):
    from listings.market.data import SqlMarketData

    long_name = "北京城建琨廷南区东门外九号院国际公寓"  # 18 bigrams: the search is built for 32
    path = write_csv(tmp_path / "long.csv", LISTINGS_2021, [listing_2021(long_name, unit_price=61_000)])
    import_market_files(rt, [(path, date(2021, 11, 7))], "北京")
    data = SqlMarketData(rt.engine, rt.clock)

    lookup = data.community("北京", "北京城建琨廷南区东门外九号院国际公寓楼")
    short = data.community("北京", "北京城建昆廷南区")

    assert (lookup.match and lookup.match.name, lookup.exact, round(lookup.score, 1)) == (long_name, False, 97.3)
    assert short.match is not None and short.match.name == "北京城建琨廷南区"
