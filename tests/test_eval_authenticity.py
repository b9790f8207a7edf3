import json
import random
from datetime import date

import pytest
from click.testing import CliRunner

from checks.authenticity.evaluation import EXPECTED, KINDS, Case, Truth, evaluate, inject, name_variant
from listings.names import community_key
from risk.cli import _register_commands, cli
from tests.conftest import real_data
from tests.market_factories import LISTINGS_2021, listing_2021, write_csv


def small_export(tmp_path):
    """Six communities of fifteen listings in two bizcircles: enough to hold some out and judge the rest."""
    rng = random.Random(5)
    rows = []
    for n, (name, price, floors) in enumerate(
        [("远洋山水", 70_000, 18), ("鲁谷大院", 52_000, 6), ("玉泉西里", 61_000, 6), ("碧水云天", 88_000, 24),
         ("京汉旭城", 45_000, 16), ("阜成路北一区", 80_000, 6)]
    ):  # fmt: skip
        for _ in range(15):
            rows.append(
                listing_2021(
                    name,
                    bizcircle="鲁谷" if n < 3 else "阜成路",
                    area=round(rng.uniform(55, 110), 2),
                    unit_price=int(price * rng.uniform(0.9, 1.1)),
                    floors=floors,
                    layout=rng.choice(["1室1厅", "2室1厅", "3室1厅"]),
                )
            )
    return write_csv(tmp_path / "bj_small.csv", LISTINGS_2021, rows)


def test_every_injected_kind_names_the_codes_that_catch_it():
    assert set(EXPECTED) == set(KINDS)


def test_an_impossible_unit_goes_further_where_the_market_knows_fewer_than_three_homes():
    # "Impossible" as sure on one or two homes known as on three: 3 x as tall (or 15 floors), 4 more rooms,
    # 3-4 x the area, instead of 2 x (or 10 floors), 3 more rooms, 2-3 x the area.
    subject = {"unit_id": "u", "community": "远洋山水", "layout": "2室1厅", "area_m2": "80.00"}
    subject["asking_price"] = "100.00"
    for known, floors, rooms, area in ((5, 20, 5, 160), (1, 30, 6, 240)):
        truth = Truth(floors=10, rooms=2, area=80.0, known=known)
        seen = set()
        rng = random.Random(3)
        for _ in range(60):
            case = Case(subject=dict(subject), kind="impossible_unit")
            inject("impossible_unit", case, rng, truth, [], set())
            s, way = case.subject, case.detail["way"]
            seen.add(way)
            assert case.detail["known_homes"] == known
            if way == "floors":
                assert floors <= s["total_floors"] <= floors + 6
            elif way == "rooms":
                assert s["layout"] in (f"{rooms}室1厅", f"{rooms + 1}室1厅")
            else:
                assert area <= float(s["area_m2"]) <= area * 1.5 + 0.01
        assert seen == {"floors", "rooms", "area"}


def test_name_variants_keep_or_nearly_keep_the_key():
    rng = random.Random(1)
    for _ in range(50):
        variant = name_variant(rng, "北京城建琨廷南区")
        assert variant != "北京城建琨廷南区"
        assert len(community_key(variant)) >= 7


def test_eval_command_prints_recall_precision_and_false_positives_and_writes_plot_and_numbers(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("PRESIGN_INSTANCE", str(tmp_path / "instance"))
    export = small_export(tmp_path)
    _register_commands()
    args = ["eval-authenticity", "--city", "北京", "--listings", f"{export}@2021-11-06", "--limit", "42"]
    args += ["--seed", "3", "--rate", "0.5", "--plot", str(tmp_path / "plot.png"), "--json", str(tmp_path / "n.json")]
    args += ["--workdir", str(tmp_path / "work")]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "| injected anomaly | n | caught | recall | flagged at all | caught by |" in result.output
    assert "| finding code | flagged | expected | on untouched | on other anomalies | precision |" in result.output
    assert "false-positive rate" in result.output
    numbers = json.loads((tmp_path / "n.json").read_text())
    assert numbers["split"]["test_listings"] == 42 and numbers["split"]["injected"] == 21
    assert numbers["split"]["training_rows"] == 90 - 42
    assert set(numbers["recall"]) == set(KINDS)
    assert numbers["recall"]["photo_reused"]["recall"] == 1.0
    assert numbers["recall"]["area_change"]["recall"] == 1.0
    assert numbers["untouched"]["n"] == 21
    assert (tmp_path / "plot.png").stat().st_size > 10_000


def test_eval_on_real_beijing_listings_finds_what_was_injected(tmp_path):
    export = real_data("bj_lianjia_listings_2021.csv")
    result = evaluate(
        "北京", (export, date(2021, 11, 6)), [], limit=350, seed=11, rate=0.6, workdir=tmp_path, progress=False
    )
    summary = result.summary()
    recall = {kind: r["recall"] for kind, r in summary["recall"].items()}
    assert recall["photo_reused"] == 1.0
    assert recall["area_change"] == 1.0
    assert recall["fake_community"] >= 0.8
    assert recall["price_cut"] >= 0.8
    assert recall["relisted_unit"] >= 0.9
    assert summary["untouched"]["fpr"] <= 0.05
    # The export's exact twins of a test listing are held out with it (a handful in Beijing).
    assert 0 <= summary["split"]["twins_held_out"] < 20
    assert summary["split"]["training_rows"] == 33_967 - 350 - summary["split"]["twins_held_out"]
