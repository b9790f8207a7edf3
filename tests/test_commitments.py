import json
from datetime import UTC, date, datetime

import pytest

from risk.commitments.catalog import Catalog, CatalogError, default_catalog
from risk.commitments.rules import CheckView, DealDates, add_months, applicable

CLEAR = CheckView("clear", {})
RECENT = CheckView("clear", {"recent_inspection": True})


def codes(items):
    return {c["code"]: c for c in items}


@pytest.mark.parametrize(
    "day,version",
    [
        (date(2015, 1, 1), "2015"),
        (date(2024, 9, 9), "2015"),
        (date(2024, 9, 10), "2024-09"),
        (date(2026, 1, 1), "2024-09"),
    ],
)
def test_leak_warranty_version_by_effective_date_both_ends_inclusive(day, version):
    assert default_catalog().version_on("北京", "LEAK_WARRANTY", day).version == version


def test_no_version_before_the_first_takes_effect():
    assert default_catalog().version_on("北京", "FEE_ARREARS_ADVANCE", date(2021, 12, 31)) is None


def test_shanghai_carries_the_same_four_codes():
    assert set(default_catalog().by_city["上海"]) == set(default_catalog().by_city["北京"])


def test_version_chosen_on_the_shanghai_local_date():
    # 2024-09-09T17:00Z is already 2024-09-10 in Shanghai.
    out = applicable(
        city="北京", report_date=datetime(2024, 9, 9, 17, 0, tzinfo=UTC), checks={"leak": RECENT}, build_year=1995
    )
    assert codes(out)["LEAK_WARRANTY"]["version"] == "2024-09"


def test_leak_warranty_2015_terms_need_a_building_from_2000_on():
    signed_2023 = DealDates(signing_at=datetime(2023, 5, 1, tzinfo=UTC))
    old = applicable(
        city="北京",
        report_date=datetime(2023, 5, 1, tzinfo=UTC),
        checks={"leak": RECENT},
        build_year=1995,
        deal=signed_2023,
    )
    new = applicable(
        city="北京",
        report_date=datetime(2023, 5, 1, tzinfo=UTC),
        checks={"leak": RECENT},
        build_year=2003,
        deal=signed_2023,
    )
    assert "LEAK_WARRANTY" not in codes(old)
    assert codes(new)["LEAK_WARRANTY"]["version"] == "2015"


def test_leak_warranty_runs_twelve_months_from_transfer_under_2024_terms():
    deal = DealDates(signing_at=datetime(2025, 3, 1, tzinfo=UTC), transfer_at=datetime(2025, 4, 15, 2, tzinfo=UTC))
    out = codes(
        applicable(
            city="北京",
            report_date=datetime(2025, 3, 1, tzinfo=UTC),
            checks={"leak": RECENT},
            build_year=1995,
            deal=deal,
        )
    )
    assert out["LEAK_WARRANTY"]["valid_from"] == "2025-04-15T02:00:00+00:00"
    assert out["LEAK_WARRANTY"]["valid_until"] == "2026-04-15T02:00:00+00:00"


def test_leak_warranty_needs_a_recent_inspection():
    out = applicable(
        city="北京",
        report_date=datetime(2025, 3, 1, tzinfo=UTC),
        checks={"leak": CheckView("attention", {"recent_inspection": False})},
        build_year=2010,
    )
    assert "LEAK_WARRANTY" not in codes(out)


def test_fee_advance_always_applies_with_null_dates_until_transfer_is_known():
    out = codes(applicable(city="上海", report_date=datetime(2025, 3, 1, tzinfo=UTC), checks={}, build_year=None))
    assert out["FEE_ARREARS_ADVANCE"]["valid_from"] is None and out["FEE_ARREARS_ADVANCE"]["valid_until"] is None


def test_fee_advance_2022_terms_allow_claims_for_one_year_after_transfer():
    deal = DealDates(signing_at=datetime(2023, 3, 1, tzinfo=UTC), transfer_at=datetime(2023, 6, 1, tzinfo=UTC))
    out = codes(
        applicable(city="北京", report_date=datetime(2023, 3, 1, tzinfo=UTC), checks={}, build_year=None, deal=deal)
    )
    assert out["FEE_ARREARS_ADVANCE"]["version"] == "2022"
    assert out["FEE_ARREARS_ADVANCE"]["valid_until"] == "2024-06-01T00:00:00+00:00"


def test_fee_advance_2024_terms_have_no_claim_deadline():
    deal = DealDates(signing_at=datetime(2025, 3, 1, tzinfo=UTC), transfer_at=datetime(2025, 6, 1, tzinfo=UTC))
    out = codes(
        applicable(city="北京", report_date=datetime(2025, 3, 1, tzinfo=UTC), checks={}, build_year=None, deal=deal)
    )
    assert out["FEE_ARREARS_ADVANCE"]["valid_from"] == "2025-06-01T00:00:00+00:00"
    assert out["FEE_ARREARS_ADVANCE"]["valid_until"] is None


def test_genuine_listing_needs_a_clear_authenticity_check():
    when = datetime(2026, 11, 22, tzinfo=UTC)
    clear = codes(applicable(city="北京", report_date=when, checks={"authenticity": CLEAR}, build_year=None))
    flagged = codes(
        applicable(city="北京", report_date=when, checks={"authenticity": CheckView("attention", {})}, build_year=None)
    )
    assert (
        clear["GENUINE_LISTING"]["valid_from"] == when.isoformat() and clear["GENUINE_LISTING"]["valid_until"] is None
    )
    assert "GENUINE_LISTING" not in flagged


def test_seizure_advance_runs_from_deposit_to_online_signing_when_deposit_report_was_clean():
    deal = DealDates(
        deposit_at=datetime(2025, 3, 1, tzinfo=UTC),
        signing_at=datetime(2025, 3, 5, tzinfo=UTC),
        online_signing_at=datetime(2025, 3, 20, tzinfo=UTC),
    )
    yes = codes(
        applicable(
            city="上海", report_date=deal.signing_at, checks={}, build_year=None, deal=deal, deposit_seizure_free=True
        )
    )
    no = codes(
        applicable(
            city="上海", report_date=deal.signing_at, checks={}, build_year=None, deal=deal, deposit_seizure_free=False
        )
    )
    assert yes["SEIZURE_ADVANCE"]["valid_from"] == "2025-03-01T00:00:00+00:00"
    assert yes["SEIZURE_ADVANCE"]["valid_until"] == "2025-03-20T00:00:00+00:00"
    assert "SEIZURE_ADVANCE" not in no


def test_a_city_without_a_catalog_gets_no_commitments():
    assert (
        applicable(
            city="深圳", report_date=datetime(2026, 1, 1, tzinfo=UTC), checks={"authenticity": CLEAR}, build_year=None
        )
        == []
    )


def test_months_are_added_on_the_shanghai_calendar_and_clamped():
    # 2025-01-30T17:00Z is 2025-01-31 01:00 in Shanghai; a month later is 2025-02-28 01:00 there.
    assert add_months(datetime(2025, 1, 30, 17, tzinfo=UTC), 1) == datetime(2025, 2, 27, 17, tzinfo=UTC)


def test_overlapping_versions_are_rejected_on_load(tmp_path):
    (tmp_path / "x.json").write_text(
        json.dumps(
            {
                "city": "北京",
                "commitments": [
                    {
                        "code": "LEAK_WARRANTY",
                        "title": "t",
                        "versions": [
                            {
                                "version": "a",
                                "effective_from": "2020-01-01",
                                "effective_until": "2024-12-31",
                                "terms": "t",
                            },
                            {"version": "b", "effective_from": "2024-06-01", "effective_until": None, "terms": "t"},
                        ],
                    }
                ],
            }
        )
    )
    with pytest.raises(CatalogError, match="overlap"):
        Catalog.load(tmp_path)


def test_unknown_commitment_code_is_rejected_on_load(tmp_path):
    (tmp_path / "x.json").write_text(
        json.dumps(
            {
                "city": "北京",
                "commitments": [
                    {
                        "code": "FREE_LUNCH",
                        "title": "t",
                        "versions": [
                            {"version": "a", "effective_from": "2020-01-01", "effective_until": None, "terms": "t"}
                        ],
                    }
                ],
            }
        )
    )
    with pytest.raises(CatalogError):
        Catalog.load(tmp_path)


def test_genuine_listing_needs_the_unit_in_the_building_dictionary():
    when = datetime(2026, 11, 22, tzinfo=UTC)
    plausible = CheckView("clear", {"unit_found": False, "community_matched": True})
    assert "GENUINE_LISTING" not in codes(
        applicable(city="北京", report_date=when, checks={"authenticity": plausible}, build_year=None)
    )


FAR_FUTURE = datetime(9999, 12, 31, 15, 59, 59, tzinfo=UTC)  # the last second of 9999 in Shanghai


@pytest.mark.parametrize("moment", [FAR_FUTURE, datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)])
def test_months_added_past_the_last_representable_time_stop_there(moment):
    assert add_months(moment, 12) == datetime.max.replace(tzinfo=UTC)


def test_months_added_near_the_last_representable_year_still_count_on_the_calendar():
    assert add_months(datetime(9998, 6, 30, 16, tzinfo=UTC), 12) == datetime(9999, 6, 30, 16, tzinfo=UTC)


@pytest.mark.parametrize("city", ["北京", "上海"])
@pytest.mark.parametrize("signed", [datetime(2023, 3, 1, tzinfo=UTC), datetime(2025, 3, 1, tzinfo=UTC), FAR_FUTURE])
def test_every_commitment_is_worked_out_for_a_deal_dated_at_the_end_of_9999(city, signed):
    deal = DealDates(deposit_at=signed, signing_at=signed, online_signing_at=FAR_FUTURE, transfer_at=FAR_FUTURE)
    out = applicable(
        city=city,
        report_date=datetime(2026, 11, 22, tzinfo=UTC),
        checks={"leak": RECENT, "authenticity": CLEAR},
        build_year=2010,
        deal=deal,
        deposit_seizure_free=True,
    )
    for commitment in out:
        for name in ("valid_from", "valid_until"):
            assert commitment[name] is None or datetime.fromisoformat(commitment[name]) >= datetime(
                2000, 1, 1, tzinfo=UTC
            )
    assert "LEAK_WARRANTY" in codes(out)
