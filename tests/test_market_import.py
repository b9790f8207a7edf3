from datetime import date

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from listings.lianjia import read_export
from listings.market.data import SqlMarketData
from listings.market.importer import import_market_files
from listings.market.models import MarketArea, MarketCommunity, MarketObservation
from risk.cli import _register_commands, cli
from tests.market_factories import (
    DEALS_15,
    LISTINGS_2021,
    SH_LISTINGS,
    SH_XIAOQU,
    deal_15,
    listing_2021,
    sh_listing,
    sh_xiaoqu,
    write_csv,
)

OBSERVED = date(2021, 11, 6)


def community(rt, key, city="北京"):
    with rt.sessions() as session:
        return session.scalars(
            select(MarketCommunity).where(MarketCommunity.city == city, MarketCommunity.key == key)
        ).one()


def area(rt, level, name, city="北京"):
    with rt.sessions() as session:
        return session.scalars(
            select(MarketArea).where(MarketArea.city == city, MarketArea.level == level, MarketArea.name == name)
        ).one()


# -- reading an export: what is used, what is skipped and why ------------------------------------------


def test_every_skipped_row_is_counted_with_its_reason_and_lines(tmp_path):
    rows = [
        listing_2021(),
        listing_2021(field_shift_suspect="1"),
        listing_2021(city="上海"),
        listing_2021(layout="车位"),
        listing_2021(community="失效"),
        listing_2021(community=""),
        listing_2021(area_implied_m2="", area_m2=""),
        listing_2021(unit_price_yuan_m2="900", total_price_wan="8"),
        listing_2021(listing_id="101100000001"),
        listing_2021(listing_id="101100000001"),
    ]
    path = write_csv(tmp_path / "bj.csv", LISTINGS_2021, rows)
    used, report = read_export(path, "北京", OBSERVED)
    assert (report.kind, report.rows, report.used, len(used)) == ("listing", 10, 2, 2)
    assert dict(report.skipped) == {
        "columns shifted by the scraper (field_shift_suspect=1)": 1,
        "another city (上海)": 1,
        "parking space (车位), not a home": 1,
        "community name is not a name (失效)": 1,
        "no community name": 1,
        "no area": 1,
        "unit price outside 3000–500000 yuan/m²": 1,
        "repeated id in the file": 1,
    }
    assert report.skipped_lines["another city (上海)"] == [4]
    assert "  skipped      1  no area (e.g. lines 8)" in report.lines()


def test_listing_rows_take_the_precise_area_and_the_snapshot_date(tmp_path):
    path = write_csv(tmp_path / "bj.csv", LISTINGS_2021, [listing_2021(area=62.16, orientation="南 北")])
    (row,), _report = read_export(path, "北京", OBSERVED)
    assert (row.area_m2, row.rooms, row.halls, row.orientation, row.observed_on) == (62.16, 2, 1, "北+南", OBSERVED)
    assert (row.total_floors, row.build_year, row.unit_price) == (18, 2004, 70000)


def test_deal_rows_use_the_exact_price_else_the_middle_of_a_range_and_date_masked_deals(tmp_path):
    rows = [
        deal_15(date="2021.09.01", price_wan=626),
        deal_15(date="2021.10", price_wan=None, price_range=(600, 640)),
        deal_15(date="近30天内成交", price_wan=650),
        deal_15(price_wan=None, layout="- -室- -厅"),
    ]
    path = write_csv(tmp_path / "deals.csv", DEALS_15, rows)
    used, report = read_export(path, "北京")
    assert report.kind == "deal"
    assert [r.unit_price for r in used] == [69944, 69274, 72626, None]
    assert [r.observed_on for r in used][:3] == [date(2021, 9, 1), date(2021, 10, 1), date(2021, 10, 1)]
    assert used[3].rooms is None
    assert report.notes == {
        "deal price shown as a range: middle of the range used": 1,
        "deal date masked (近30天内成交): dated at the file's newest deal": 1,
        "no price (masked or not scraped): profile only": 1,
        "layout not given (e.g. '- -室- -厅'): kept for area, floors and price": 1,
    }


def test_a_file_without_community_layout_and_area_is_not_an_export(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a Lianjia export"):
        read_export(path, "北京")


# -- building the city's profiles and statistics -------------------------------------------------------


def test_community_prices_are_robust_statistics_of_its_rows(rt, tmp_path):
    prices = [60_000, 64_000, 68_000, 70_000, 72_000, 76_000, 300_000]  # the median shrugs off an absurd row
    listings = write_csv(tmp_path / "l.csv", LISTINGS_2021, [listing_2021(unit_price=p) for p in prices])
    deals = write_csv(tmp_path / "d.csv", DEALS_15, [deal_15(date="2021.03.02", price_wan=626.5)])
    import_market_files(rt, [(listings, OBSERVED), (deals, None)], "北京")
    home = community(rt, "远洋山水").prices["home"]
    assert home["median"] == 70_000
    assert (home["p10"], home["p25"], home["p75"], home["p90"]) == (62_800, 67_000, 73_000, 143_200)
    assert (home["n"], home["deals"], home["listings"]) == (8, 1, 7)
    assert (home["from"], home["to"]) == ("2021-03-02", "2021-11-06")


def test_room_type_listings_are_priced_apart_from_homes(rt, tmp_path):
    rows = [listing_2021("华润公寓", unit_price=70_000) for _ in range(3)]
    rows += [listing_2021("华润公寓", layout="1房间1卫", unit_price=35_000, area=45.0) for _ in range(4)]
    import_market_files(rt, [(write_csv(tmp_path / "l.csv", LISTINGS_2021, rows), OBSERVED)], "北京")
    prices = community(rt, "华润公寓").prices
    assert (prices["home"]["median"], prices["home"]["n"]) == (70_000, 3)
    assert (prices["room"]["median"], prices["room"]["n"]) == (35_000, 4)
    assert community(rt, "华润公寓").profile["layouts"] == {"1房间": 4, "2室1厅": 3}


def test_prices_come_from_the_newest_two_years_widened_when_too_few_but_never_past_five(rt, tmp_path):
    rows = [deal_15("老社区", date="2018.03.01", price_wan=500) for _ in range(5)]
    rows += [deal_15("老社区", date="2021.05.01", price_wan=600) for _ in range(5)]
    rows += [deal_15("新社区", date="2018.03.01", price_wan=500) for _ in range(5)]
    rows += [deal_15("新社区", date="2021.05.01", price_wan=600) for _ in range(2)]
    rows += [deal_15("旧社区", date="2012.05.01", price_wan=200) for _ in range(5)]
    rows += [deal_15("旧社区", date="2021.05.01", price_wan=600) for _ in range(2)]
    import_market_files(rt, [(write_csv(tmp_path / "d.csv", DEALS_15, rows), None)], "北京")
    window = community(rt, "老社区").prices["home"]
    assert (window["n"], window["from"]) == (5, "2021-05-01")
    widened = community(rt, "新社区").prices["home"]
    assert (widened["n"], widened["from"]) == (7, "2018-03-01")
    too_old = community(rt, "旧社区").prices["home"]
    assert (too_old["n"], too_old["from"]) == (2, "2021-05-01")
    assert community(rt, "旧社区").profile["n"] == 7  # buildings do not age out of the profile


def test_profile_holds_layouts_area_ranges_floors_and_build_years(rt, tmp_path):
    rows = [
        listing_2021(area=60.0, layout="1室1厅", floors=6, year=1998),
        listing_2021(area=89.5, floors=18, year=2004),
        listing_2021(area=120.0, layout="3室1厅", floors=18, year=2005),
    ]
    import_market_files(rt, [(write_csv(tmp_path / "l.csv", LISTINGS_2021, rows), OBSERVED)], "北京")
    profile = community(rt, "远洋山水").profile
    assert profile["n"] == 3
    assert profile["layouts"] == {"1室1厅": 1, "2室1厅": 1, "3室1厅": 1}
    assert (profile["rooms"]["min"], profile["rooms"]["max"]) == (1, 3)
    assert (profile["area"]["min"], profile["area"]["max"]) == (60.0, 120.0)
    assert profile["area_by_rooms"] == {"1": [60.0, 60.0, 1], "2": [89.5, 89.5, 1], "3": [120.0, 120.0, 1]}
    assert profile["floors"] == {"6": 1, "18": 2}
    assert profile["build_year"] == {"min": 1998, "max": 2005, "n": 3}


def test_bizcircle_and_district_statistics_cover_their_communities(rt, tmp_path):
    rows = [listing_2021("远洋山水", unit_price=70_000) for _ in range(3)]
    rows += [listing_2021("鲁谷大院", unit_price=50_000) for _ in range(2)]
    rows += [listing_2021("门头沟大院", unit_price=30_000, district="门头沟", bizcircle="城子")]
    import_market_files(rt, [(write_csv(tmp_path / "l.csv", LISTINGS_2021, rows), OBSERVED)], "北京")
    assert area(rt, "bizcircle", "鲁谷").prices["home"]["n"] == 5
    assert area(rt, "bizcircle", "鲁谷").district == "石景山"
    assert area(rt, "bizcircle", "鲁谷").profile == {"n": 5, "floors_p99": 18.0, "rooms_p99": 2.0, "area_p99": 89.5}
    assert area(rt, "district", "门头沟").prices["home"]["median"] == 30_000


def test_shanghai_listings_take_their_bizcircle_and_reference_price_from_the_community_list(rt, tmp_path):
    listings = write_csv(tmp_path / "sh.csv", SH_LISTINGS, [sh_listing("碧云新天地（一期）")])
    xiaoqu = write_csv(
        tmp_path / "xq.csv",
        SH_XIAOQU,
        [sh_xiaoqu("碧云新天地(一期)", price=72_807, on_sale=13), sh_xiaoqu("无人小区", price=0, on_sale=0)],
    )
    result = import_market_files(rt, [(listings, date(2018, 1, 1)), (xiaoqu, None)], "上海")
    found = community(rt, "碧云新天地一期", city="上海")
    assert (found.bizcircle, found.district, found.homes) == ("金桥", "浦东", 1)
    assert found.prices["reference"] == {"price": 72_807, "on_sale": 13, "as_of": "2018-10-07"}
    assert community(rt, "无人", city="上海").prices == {}
    assert result.reports[1].notes == {"no reference price (0): community kept, no price": 1}


def test_reimporting_a_file_replaces_its_rows(rt, tmp_path):
    path = tmp_path / "bj.csv"
    write_csv(path, LISTINGS_2021, [listing_2021() for _ in range(3)])
    import_market_files(rt, [(path, OBSERVED)], "北京")
    write_csv(path, LISTINGS_2021, [listing_2021(unit_price=50_000) for _ in range(2)])
    import_market_files(rt, [(path, OBSERVED)], "北京")
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(MarketObservation)) == 2
    assert community(rt, "远洋山水").prices["home"]["median"] == 50_000


def test_imported_communities_are_found_by_name_exactly_or_fuzzily(rt, tmp_path):
    rows = [listing_2021("北京城建琨廷南区"), listing_2021("远洋山水")]
    import_market_files(rt, [(write_csv(tmp_path / "l.csv", LISTINGS_2021, rows), OBSERVED)], "北京")
    market = SqlMarketData(rt.engine, rt.clock)
    exact = market.community("北京", "远洋山水小区")
    assert (exact.match.name, exact.score, exact.exact) == ("远洋山水", 100.0, True)
    typo = market.community("北京", "北京城建昆廷南区")
    assert typo.match.name == "北京城建琨廷南区" and typo.score == 87.5 and not typo.exact
    missing = market.community("北京", "远洋山川")
    assert missing.match is None and missing.best.name == "远洋山水" and missing.score == 75.0
    assert market.community("上海", "远洋山水").match is None


# -- the command -----------------------------------------------------------------------------------------


def run_cli(settings, monkeypatch, *args):
    monkeypatch.setenv("PRESIGN_INSTANCE", str(settings.instance))
    monkeypatch.setenv("PRESIGN_DATABASE_URL", settings.database_url)
    _register_commands()
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_import_market_command_reports_rows_used_and_skipped(rt, settings, monkeypatch, tmp_path):
    rows = [listing_2021() for _ in range(4)] + [listing_2021(layout="车位")]
    path = write_csv(tmp_path / "bj.csv", LISTINGS_2021, rows)
    result = run_cli(settings, monkeypatch, "import-market", str(path), "--city", "北京", "--observed", "2021-11-06")
    assert result.exit_code == 0, result.output
    assert "bj.csv: listing export, 5 rows, 4 used, 1 skipped" in result.output
    assert "skipped      1  parking space (车位), not a home (e.g. lines 6)" in result.output
    assert "city now has 1 communities (1 with prices), 1 bizcircles, 1 districts" in result.output
    assert community(rt, "远洋山水").prices["home"]["to"] == "2021-11-06"


def test_import_market_command_refuses_a_file_that_is_not_an_export(rt, settings, monkeypatch, tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    result = run_cli(settings, monkeypatch, "import-market", str(path), "--city", "北京")
    assert result.exit_code == 1
    assert "not a Lianjia export" in result.output
