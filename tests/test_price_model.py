"""Issue 23, item 1: what this flat should cost in its community, fitted by import-market and stored."""

import math
from datetime import UTC, date

import pytest

from checks import authenticity
from checks.authenticity import prices
from listings.market import price_model
from listings.market.importer import import_market_files
from listings.market.own import SqlMarket
from listings.market.price_model import Home
from tests.factories import context, subject
from tests.market_factories import LISTINGS_2021, listing_2021, write_csv


def known_price(area: float, rooms: int, year: int, orientation: str) -> float:
    """The synthetic market's price function: dearer per m² when larger, newer and facing south and north."""
    return 50_000 * (area / 90) ** 0.4 * 1.1 ** ((year - 2000) / 10) * (1.05 if orientation == "南北" else 1.0)


def homes(n: int, *, premium: float = 1.0) -> list[Home]:
    out = []
    for i in range(n):
        area, rooms, year = 50 + (i * 37) % 150, 1 + i % 4, 1990 + (i * 7) % 30
        orientation = "南北" if i % 3 else "东"
        wobble = 1 + 0.02 * ((i * 13) % 5 - 2)  # a little noise, deterministic
        price = known_price(area, rooms, year, orientation) * premium * wobble
        out.append(Home(area, rooms, None, 18, year, orientation, price))
    return out


def test_the_model_recovers_a_known_price_function():
    levels, models = price_model.fit_city([("a", "海淀", "万柳", homes(200))], "北京")
    level = levels[("bizcircle", "海淀", "万柳")]
    for area, year, orientation in ((70, 1995, "东"), (150, 2015, "南北"), (120, 2005, "南北")):
        home = Home(area, 3, None, 18, year, orientation)
        predicted, spread = price_model.judge(level, models["a"], home)
        assert math.exp(predicted) == pytest.approx(known_price(area, 3, year, orientation), rel=0.04)
        assert spread < 0.06


def test_a_thin_community_shrinks_to_its_bizcircle_and_a_well_known_one_keeps_its_own_level():
    thin, known = homes(2, premium=1.3), homes(30, premium=1.3)
    levels, models = price_model.fit_city(
        [("base", "海淀", "万柳", homes(200)), ("thin", "海淀", "万柳", thin), ("known", "海淀", "万柳", known)], "北京"
    )
    premium = math.log(1.3)
    assert 0 < models["thin"]["offset"] < premium / 2  # two homes: mostly the bizcircle's price
    assert 0.7 * premium < models["known"]["offset"] <= premium  # thirty: mostly its own
    assert models["thin"]["level"] == "bizcircle" and models["thin"]["n"] == 2


def test_a_community_without_enough_homes_around_borrows_the_district_or_city_slopes():
    levels, models = price_model.fit_city([("a", "海淀", "小圈", homes(10)), ("b", "海淀", "万柳", homes(50))], "北京")
    assert models["a"]["level"] == "district" and models["b"]["level"] == "bizcircle"
    assert ("bizcircle", "海淀", "小圈") not in levels


def two_buildings(year: int, premium: float) -> list[Home]:
    """Thirty flats of one building: its build year, and a price the bizcircle's slopes do not explain."""
    wobble = (0.98, 1.0, 1.02)
    return [Home(80 + i, 2, None, 18, year, "南北", known_price(80 + i, 2, year, "南北") * premium * wobble[i % 3])
            for i in range(30)]  # fmt: skip


def test_a_flat_is_compared_with_its_nearest_neighbours_where_its_community_mixes_dear_and_cheap_buildings():
    buildings = two_buildings(2000, 1.0) + two_buildings(2010, 1.4)
    communities = [("base", "海淀", "万柳", homes(200)), ("mixed", "海淀", "万柳", buildings)]
    levels, models = price_model.fit_city(communities, "北京")
    level, mixed = levels[("bizcircle", "海淀", "万柳")], models["mixed"]
    dear, cheap = Home(95, 2, None, 18, 2010, "南北"), Home(95, 2, None, 18, 2000, "南北")
    predicted, spread = price_model.judge(level, mixed, dear)
    offset, near_spread, k = price_model.local(mixed, level, dear)
    near = predicted - mixed["offset"] + offset
    assert k == price_model.NEIGHBOURS and near_spread < spread / 2
    assert math.exp(near) == pytest.approx(known_price(95, 2, 2010, "南北") * 1.4, rel=0.05)
    bait = near + math.log(0.7)  # the dear building's flat cut to 70 % of its price
    assert (bait - near) / near_spread < -prices.LOCAL_Z  # its neighbours see the cut ...
    assert (bait - predicted) / spread > -prices.MODEL_Z  # ... the community's spread hides it
    cheap_predicted, _spread = price_model.judge(level, mixed, cheap)
    cheap_offset, cheap_spread, _k = price_model.local(mixed, level, cheap)
    genuine = math.log(known_price(95, 2, 2000, "南北"))
    assert abs(genuine - (cheap_predicted - mixed["offset"] + cheap_offset)) / cheap_spread < 1


def test_a_community_of_two_homes_has_no_neighbours_to_compare_with():
    communities = [("base", "海淀", "万柳", homes(200)), ("thin", "海淀", "万柳", homes(2))]
    levels, models = price_model.fit_city(communities, "北京")
    level = levels[("bizcircle", "海淀", "万柳")]
    assert price_model.local(models["thin"], level, Home(95, 2, None, 18, 2010, "南北")) is None


@pytest.fixture
def market(rt, tmp_path):
    """One community whose large new flats cost far more per m² than its small old ones."""
    rows = []
    for i in range(60):
        area, year = 50 + (i * 37) % 150, 1990 + (i * 7) % 30
        price = known_price(area, 2, year, "南北")
        rows.append(listing_2021("远洋山水", area=area, year=year, unit_price=round(price)))
    path = write_csv(tmp_path / "bj.csv", LISTINGS_2021, rows)
    import_market_files(rt, [(path, date(2021, 11, 6))], "北京")
    return SqlMarket(rt.engine, "default")


def judge(market, area: float, year: int, share: float):
    asking = known_price(area, 2, year, "南北") * area * share
    fields = {"area_m2": f"{area:.2f}", "build_year": year, "asking_price": f"{asking:.2f}", "entrusted_price": None}
    return authenticity.run(context(subject(**fields), unit=None, market=market))


def test_a_dear_flat_cut_to_bait_is_caught_by_the_model_where_the_range_lets_it_through(market):
    outcome = judge(market, 195.0, 2019, 0.6)
    assert outcome.evidence["community_prices"]["level"] == "community"
    # (The market's own row of a 195 m² flat is this flat's history too: `which: history` beside it.)
    (finding,) = [f for f in outcome.findings if f.evidence.get("which") == "model"]
    evidence = finding.evidence
    assert evidence["which"] == "model"
    predicted = float(evidence["predicted"])
    assert predicted == pytest.approx(known_price(195.0, 2, 2019, "南北"), rel=0.05)
    low, high = (float(v) for v in evidence["interval"])
    assert low < predicted < high and float(evidence["unit_price"]) < low
    assert evidence["features"]["log_area"] == pytest.approx(math.log(195.0))
    assert "预测单价" in finding.message
    neighbours = evidence["neighbours"]  # the community's 60 homes: judged against the most alike of them
    assert neighbours["homes"] == price_model.NEIGHBOURS and neighbours["z"] < -prices.LOCAL_Z
    assert float(neighbours["predicted"]) == pytest.approx(known_price(195.0, 2, 2019, "南北"), rel=0.1)


def test_the_same_flat_at_its_price_is_clear(market):
    outcome = judge(market, 195.0, 2019, 1.0)
    assert "LISTING_PRICE_ANOMALY" not in [f.code for f in outcome.findings]
    assert outcome.evidence["price_model"]["judged"] is True


def test_a_small_old_flat_cheap_per_m2_is_explained_by_the_model_not_flagged_by_the_range(market):
    outcome = judge(market, 50.0, 1990, 1.0)
    prices = outcome.evidence["community_prices"]
    assert float(prices["unit_price"]) < float(prices["low"])  # the community's range alone would flag it
    assert outcome.evidence["price_model"]["level"] == "bizcircle"
    assert "LISTING_PRICE_ANOMALY" not in [f.code for f in outcome.findings]


def test_a_unit_listed_before_at_a_much_higher_price_is_caught_where_the_market_lets_it_through(rt, market):
    from decimal import Decimal

    from risk.db import transaction
    from tests.factories import listing_row

    with transaction(rt.sessions) as session:  # the same unit, listed by another brokerage, since withdrawn
        session.add(listing_row("lst_before", company="lianjia-rival", status="withdrawn",
                                asking_price=Decimal("8950000.00"), area_m2=Decimal("89.50")))  # fmt: skip
    outcome, earlier = bait_with_history(market)
    assert earlier["ratio"] == "0.60" and earlier["movement"] is None
    assert outcome.evidence["price_model"]["z"] > -3


def bait_with_history(market):
    """A listing at 60,000 per m² (fine for its market), whose one price finding is its history: another
    brokerage's listing of the flat, never named or priced."""
    fields = {"asking_price": "5370000.00", "entrusted_price": None}
    outcome = authenticity.run(context(subject(**fields), unit=None, market=market))
    (finding,) = [f for f in outcome.findings if f.code == "LISTING_PRICE_ANOMALY"]
    assert finding.evidence["which"] == "history"
    (earlier,) = finding.evidence["earlier"]
    assert earlier["brokerage"] == "another brokerage" and "asking_price" not in earlier
    return outcome, earlier


def test_a_unit_listed_before_at_about_its_price_is_clear(rt, market):
    from decimal import Decimal

    from risk.db import transaction
    from tests.factories import listing_row

    with transaction(rt.sessions) as session:
        session.add(listing_row("lst_before", status="withdrawn", asking_price=Decimal("5600000.00")))
    fields = {"asking_price": "5370000.00", "entrusted_price": None}
    outcome = authenticity.run(context(subject(**fields), unit=None, market=market))
    assert "LISTING_PRICE_ANOMALY" not in [f.code for f in outcome.findings]


def test_the_units_earlier_price_is_adjusted_by_the_communitys_price_movement(rt, tmp_path):
    from datetime import datetime
    from decimal import Decimal

    from risk.db import transaction
    from tests.factories import listing_row

    then = [listing_2021("远洋山水", unit_price=40_000 + i * 100) for i in range(6)]
    now = [listing_2021("远洋山水", unit_price=60_000 + i * 100) for i in range(6)]
    import_market_files(
        rt,
        [(write_csv(tmp_path / "2018.csv", LISTINGS_2021, then), date(2018, 4, 11)),
         (write_csv(tmp_path / "2021.csv", LISTINGS_2021, now), date(2021, 11, 6))],
        "北京",
    )  # fmt: skip
    with transaction(rt.sessions) as session:  # listed in 2018 at 40,000 per m²: 60,000 in today's prices
        session.add(listing_row("lst_2018", status="withdrawn", asking_price=Decimal("3580000.00"),
                                created_at=datetime(2018, 5, 1, tzinfo=UTC)))  # fmt: skip
    fields = {"asking_price": "3401000.00", "entrusted_price": None}  # 38,000 per m²: 95 % of 2018's price
    outcome = authenticity.run(context(subject(**fields), unit=None, market=SqlMarket(rt.engine, "default")))
    (history,) = [f for f in outcome.findings if f.evidence.get("which") == "history"]
    (earlier,) = [e for e in history.evidence["earlier"] if e.get("listing_id") == "lst_2018"]
    assert earlier["movement"] == pytest.approx(60_250 / 40_250, rel=0.01)
    assert float(earlier["ratio"]) == pytest.approx(0.95 / (60_250 / 40_250), abs=0.01)


def test_the_same_flat_listed_before_under_another_unit_id_is_found_by_fingerprint(rt, market):
    from decimal import Decimal

    from listings.market.data import SqlMarketData
    from risk.db import transaction
    from tests.factories import listing_row

    with transaction(rt.sessions) as session:  # another brokerage's listing of the flat, its own unit_id
        session.add(listing_row("lst_before", unit_id="rival-unit-77", company="lianjia-rival", status="withdrawn",
                                asking_price=Decimal("8950000.00"), building="3号楼", room="602室"))  # fmt: skip
    # What the runner does after the earlier listing's own check: its fingerprint is kept.
    before = authenticity.run(context(subject(listing_id="lst_before", unit_id="rival-unit-77"), unit=None,
                                      market=market))  # fmt: skip
    assert before.fingerprint is not None
    with transaction(rt.sessions) as session:
        SqlMarketData(rt.engine, rt.clock).remember(session, before.fingerprint)
    _outcome, earlier = bait_with_history(market)
    assert earlier["ratio"] == "0.60" and {"area_m2", "floor", "building_room"} <= set(earlier["matched_on"])


def sold_before(rt, tmp_path, **deal):
    """The community's market (the `market` fixture's rows) and one earlier sale from a deals export."""
    from tests.market_factories import DEALS_15, deal_15

    rows = [deal_15("远洋山水", date="2020.06.01", **{"area": 89.5, "price_wan": 895.0, **deal})]
    import_market_files(rt, [(write_csv(tmp_path / "deals.csv", DEALS_15, rows), None)], "北京")


def test_a_sale_of_the_same_flat_before_at_a_much_higher_price_is_caught(rt, market, tmp_path):
    sold_before(rt, tmp_path)  # 2室1厅 89.5 m², middle floor of 18, south and north: sold at 100,000 per m²
    fields = {"asking_price": "5370000.00", "entrusted_price": None, "floor": 9, "total_floors": 18}
    outcome = authenticity.run(context(subject(**fields), unit=None, market=market))
    (finding,) = [f for f in outcome.findings if f.code == "LISTING_PRICE_ANOMALY"]
    assert finding.evidence["which"] == "history"
    (earlier,) = finding.evidence["earlier"]
    assert earlier["market"] == "deal" and earlier["observed_on"] == "2020-06-01"
    assert earlier["unit_price"] == 100_000 and float(earlier["ratio"]) < 0.7
    assert "成交" in finding.message


@pytest.mark.parametrize(
    "other", [{"total_floors": "6"}, {"area": 120.0, "price_wan": 1200.0}, {"floor_level": "高楼层"}]
)
def test_a_sale_of_another_flat_of_the_community_is_not_the_units_history(rt, market, tmp_path, other):
    sold_before(rt, tmp_path, **other)
    fields = {"asking_price": "5370000.00", "entrusted_price": None, "floor": 9, "total_floors": 18}
    outcome = authenticity.run(context(subject(**fields), unit=None, market=market))
    assert "history" not in [f.evidence.get("which") for f in outcome.findings]


def test_a_flat_found_by_attributes_is_judged_by_every_record_found_its_twin_next_door_too(rt, market, tmp_path):
    from tests.market_factories import DEALS_15, deal_15

    rows = [deal_15("远洋山水", date="2020.06.01", area=89.5, price_wan=895.0),  # 100,000 per m²
            deal_15("远洋山水", date="2020.08.01", area=89.5, price_wan=550.0)]  # about today's price  # fmt: skip
    import_market_files(rt, [(write_csv(tmp_path / "deals.csv", DEALS_15, rows), None)], "北京")
    fields = {"asking_price": "5370000.00", "entrusted_price": None, "floor": 9, "total_floors": 18}
    outcome = authenticity.run(context(subject(**fields), unit=None, market=market))
    assert "history" not in [f.evidence.get("which") for f in outcome.findings]
