from decimal import Decimal

import pytest

from checks import fees
from checks.base import ProviderUnavailable
from tests.factories import as_stored, context, fee_account_record, fee_item

# The case in DESIGN.md: about 60,000 yuan of fees owed from 2005 to 2014.
ARREARS = [
    fee_item("property", "2005-02-01", "2009-12-31", "28000.00", "0.00"),
    fee_item("property", "2010-01-01", "2014-07-31", "30000.00", "2000.00"),
    fee_item("heating", "2012-11-15", "2014-03-15", "6350.50", "0.00"),
    fee_item("water", "2014-01-01", "2014-06-30", "120.00", "120.00"),
]


def run_with(items, **record):
    return fees.run(context(fee_account=fee_account_record(items=items, **record)))


def test_paid_up_account_is_clear():
    outcome = run_with([fee_item(amount_due="3600.00", amount_paid="3600.00")])
    assert outcome.findings == []
    assert outcome.evidence["total_owed"] == "0.00"


def test_no_fee_account_is_clear_and_says_so_in_evidence():
    outcome = fees.run(context(fee_account=None))
    assert outcome.findings == []
    assert outcome.evidence["note"] == "no fee account on record"
    assert outcome.evidence["account_found"] is False
    assert outcome.evidence["provider"] == "memory"
    assert outcome.facts == {"account_found": False, "total_owed": "0.00"}


def test_money_owed_is_fees_arrears_with_the_total_to_two_places():
    outcome = run_with(ARREARS)
    assert [f.code for f in outcome.findings] == ["FEES_ARREARS"]
    assert outcome.findings[0].evidence["total_owed"] == "62350.50"


def test_arrears_evidence_breaks_the_total_down_by_category():
    evidence = run_with(ARREARS).findings[0].evidence
    assert evidence["by_category"] == {"property": "56000.00", "heating": "6350.50"}


def test_arrears_evidence_lists_only_the_periods_with_something_owed():
    evidence = run_with(ARREARS).findings[0].evidence
    assert evidence["periods"] == [
        {"category": "property", "period_from": "2005-02-01", "period_to": "2009-12-31", "owed": "28000.00"},
        {"category": "property", "period_from": "2010-01-01", "period_to": "2014-07-31", "owed": "28000.00"},
        {"category": "heating", "period_from": "2012-11-15", "period_to": "2014-03-15", "owed": "6350.50"},
    ]


def test_arrears_evidence_names_company_and_paid_through_with_the_record_source():
    evidence = run_with(ARREARS, company="北京某物业公司", paid_through="2005-01-31").findings[0].evidence
    assert evidence["company"] == "北京某物业公司"
    assert evidence["paid_through"] == "2005-01-31"
    assert evidence["reference"] == "memory:fee_account/bj-yysh-3-2-602"
    assert evidence["as_of"] == "2026-11-21T16:00:00+00:00"
    assert evidence["retrieved_at"] == "2026-11-22T02:00:00+00:00"


def test_arrears_message_gives_total_and_months_in_chinese():
    message = run_with(ARREARS, company="北京某物业公司").findings[0].message
    assert message.startswith("物业等欠费合计 62350.50 元（2005-02 至 2014-07）")
    assert "物业费 56000.00 元" in message and "供暖费 6350.50 元" in message
    assert "北京某物业公司" in message


def test_owed_is_summed_in_decimal_without_float_drift():
    items = [fee_item("water", amount_due="0.10", amount_paid="0.00") for _ in range(3)]
    evidence = run_with(items).findings[0].evidence
    assert evidence["total_owed"] == "0.30"
    assert Decimal(evidence["total_owed"]) == Decimal("0.1") * 3


def test_an_overpaid_item_offsets_what_is_owed_elsewhere():
    items = [
        fee_item("property", amount_due="1000.00", amount_paid="1200.00"),
        fee_item("parking", amount_due="150.00", amount_paid="0.00"),
    ]
    assert run_with(items).findings == []


def test_money_given_as_numbers_is_read_exactly():
    outcome = run_with([fee_item("gas", amount_due=305.1, amount_paid=0)])
    assert outcome.findings[0].evidence["total_owed"] == "305.10"


def test_fee_provider_failure_propagates_to_the_runner():
    with pytest.raises(ProviderUnavailable):
        fees.run(context(failing=["fee_account"]))


def test_findings_evidence_and_facts_are_json_safe_for_storage():
    outcome = run_with(ARREARS)
    assert as_stored(outcome)["facts"] == outcome.facts
