"""Issue 23, item 0: what a listing writes is compared by what it means, on both sides of every comparison;
a phase, zone or group number of its own is another community; a fuzzy match and an unjudged price are said."""

from datetime import date

import pytest

from checks import authenticity
from listings.market.importer import import_market_files
from listings.market.own import SqlMarket
from tests.factories import context, subject, unit_record
from tests.market_factories import LISTINGS_2021, listing_2021, write_csv


def codes(outcome):
    return [f.code for f in outcome.findings]


@pytest.mark.parametrize(
    ("listed", "dictionary"),
    [
        ({"layout": "三室两厅"}, {"layout": "3室2厅"}),
        ({"layout": "3室2厅"}, {"layout": "三室两厅"}),
        ({"layout": "3房2客厅"}, {"layout": "3室2厅"}),
        ({"orientation": "北南"}, {"orientation": "南北"}),
        ({"orientation": "朝南"}, {"orientation": "南"}),
        ({"orientation": "南 北"}, {"orientation": "北南"}),
    ],
)
def test_the_same_layout_or_orientation_written_another_way_is_no_mismatch(listed, dictionary):
    outcome = authenticity.run(context(subject(**listed), unit=unit_record(**dictionary)))
    assert "LISTING_MISMATCH" not in codes(outcome)


@pytest.mark.parametrize(
    ("listed", "dictionary"),
    [({"layout": "三室两厅"}, {"layout": "2室1厅"}), ({"orientation": "东西"}, {"orientation": "南北"})],
)
def test_a_different_layout_or_orientation_is_still_a_mismatch(listed, dictionary):
    outcome = authenticity.run(context(subject(**listed), unit=unit_record(**dictionary)))
    assert codes(outcome) == ["LISTING_MISMATCH"]


@pytest.fixture
def market(rt, tmp_path):
    rows = [listing_2021("砚北B区", unit_price=60_000 + i * 500) for i in range(8)]
    rows += [listing_2021("天通苑北区二组团", unit_price=45_000 + i * 500) for i in range(8)]
    rows += [listing_2021("北京城建琨廷南区", unit_price=62_000 + i * 500) for i in range(8)]
    path = write_csv(tmp_path / "bj.csv", LISTINGS_2021, rows)
    import_market_files(rt, [(path, date(2021, 11, 6))], "北京")
    return SqlMarket(rt.engine, "default")


def check(market, **fields):
    return authenticity.run(context(subject(entrusted_price=None, **fields), unit=None, market=market))


@pytest.mark.parametrize(("listed", "sibling"), [("砚北C区", "砚北B区"), ("天通苑北区五组团", "天通苑北区二组团")])
def test_a_phase_zone_or_group_of_its_own_is_not_its_sibling(market, listed, sibling):
    outcome = check(market, community=listed)
    assert codes(outcome) == ["LISTING_UNIT_NOT_FOUND"]
    assert outcome.evidence["community"]["matched"] is False
    assert outcome.evidence["community"]["best_match"] == sibling


def test_the_same_phase_written_another_way_still_matches(market):
    outcome = check(market, community="砚北b区", asking_price="5400000.00")
    assert outcome.evidence["community"]["match"] == "exact"


def test_a_fuzzy_match_is_said_in_the_message(market):
    outcome = check(market, community="城建琨廷南区", floor=60, asking_price="5600000.00")
    assert outcome.evidence["community"]["match"] == "fuzzy"
    (finding,) = outcome.findings
    assert "「城建琨廷南区」按「北京城建琨廷南区」核对" in finding.message


def test_a_price_not_judged_says_why(market):
    outcome = authenticity.run(context(subject(entrusted_price=None), unit=None, market=market))
    # 远洋山水 is not in this market: no community, so no level to judge the price by.
    assert codes(outcome) == ["LISTING_UNIT_NOT_FOUND"]
    outcome = check(market, community="砚北B区", area_m2=None, asking_price="5400000.00")
    prices = outcome.evidence["community_prices"]
    assert prices["judged"] is False and "面积" in prices["not_judged"]


def test_import_market_reads_the_district_under_other_names_and_says_what_it_could_not_build(rt, tmp_path):
    header = ["district_raw" if h == "district" else h for h in LISTINGS_2021]
    rows = [listing_2021("远洋山水", unit_price=66_000 + i * 100) for i in range(25)]
    for row in rows:
        row["district_raw"] = row.pop("district")
    result = import_market_files(rt, [(write_csv(tmp_path / "raw.csv", header, rows), date(2021, 11, 6))], "北京")
    assert (result.built.districts, result.built.bizcircles) == (1, 1)
    assert not [line for line in result.lines() if line.startswith("WARNING")]

    header = [h for h in LISTINGS_2021 if h not in ("district", "bizcircle")]
    rows = [listing_2021("鲁谷大院", unit_price=50_000, city="上海") for _ in range(5)]
    for row in rows:
        del row["district"], row["bizcircle"]
    result = import_market_files(rt, [(write_csv(tmp_path / "bare.csv", header, rows), date(2021, 11, 6))], "上海")
    warnings = [line for line in result.lines() if line.startswith("WARNING")]
    assert warnings and "district" in warnings[0] and "bizcircle" in warnings[0]
