from datetime import timedelta

import pytest

from checks import leak
from checks.base import ProviderUnavailable
from tests.conftest import START
from tests.factories import as_stored, context, inspection, inspections_record


def run_with(*inspections, **kwargs):
    return leak.run(context(inspections=inspections_record(inspections=inspections), **kwargs))


def codes(outcome):
    return [f.code for f in outcome.findings]


def ago(**delta):
    return (START - timedelta(**delta)).isoformat()


def test_recent_inspection_without_leak_is_clear():
    outcome = run_with(inspection(ago(days=20), "no_leak"))
    assert outcome.findings == []
    assert outcome.facts == {
        "latest_inspected_at": ago(days=20),
        "latest_result": "no_leak",
        "recent_inspection": True,
    }


def test_no_inspection_record_is_leak_not_inspected():
    outcome = leak.run(context(inspections=None))
    assert codes(outcome) == ["LEAK_NOT_INSPECTED"]
    assert outcome.facts == {"latest_inspected_at": None, "latest_result": None, "recent_inspection": False}


def test_an_empty_inspection_list_is_leak_not_inspected():
    outcome = run_with()
    assert codes(outcome) == ["LEAK_NOT_INSPECTED"]
    assert outcome.evidence["reference"] == "memory:inspections/bj-yysh-3-2-602"


def test_latest_inspection_older_than_90_days_is_leak_not_inspected_with_its_date_and_age():
    outcome = run_with(inspection(ago(days=120), "no_leak"))
    assert codes(outcome) == ["LEAK_NOT_INSPECTED"]
    evidence = outcome.findings[0].evidence
    assert evidence["latest_inspected_at"] == ago(days=120)
    assert evidence["age_days"] == 120
    assert outcome.facts["recent_inspection"] is False
    assert "距今 120 天" in outcome.findings[0].message


def test_inspection_exactly_90_days_old_is_still_recent():
    outcome = run_with(inspection(ago(days=90), "no_leak"))
    assert outcome.findings == []
    assert outcome.facts["recent_inspection"] is True


def test_inspection_90_days_and_a_second_old_is_too_old():
    outcome = run_with(inspection(ago(days=90, seconds=1), "no_leak"))
    assert codes(outcome) == ["LEAK_NOT_INSPECTED"]
    assert outcome.findings[0].evidence["age_days"] == 91


def test_a_bare_date_is_aged_from_shanghai_midnight_as_the_adapters_read_it():
    # START is 2026-11-22 10:00 in Shanghai: 2026-08-24 00:00 there is 90 days and 10 hours ago.
    assert run_with(inspection("2026-08-25", "no_leak")).facts["recent_inspection"] is True
    assert run_with(inspection("2026-08-24", "no_leak")).facts["recent_inspection"] is False


def test_the_boundary_moves_with_the_clock(clock):
    ctx = context(inspections=inspections_record([inspection(ago(days=89), "no_leak")]), clock=clock)
    assert leak.run(ctx).findings == []
    clock.advance(timedelta(days=2))
    assert codes(leak.run(ctx)) == ["LEAK_NOT_INSPECTED"]


@pytest.mark.parametrize("result", ["leaking", "suspected"])
def test_latest_inspection_leaking_or_suspected_is_leak_found(result):
    outcome = run_with(inspection(ago(days=10), result, areas=["主卧外墙", "卫生间"], report_ref="FLJC-88"))
    assert codes(outcome) == ["LEAK_FOUND"]
    evidence = outcome.findings[0].evidence
    assert evidence["result"] == result
    assert evidence["areas"] == ["主卧外墙", "卫生间"]
    assert evidence["inspector"] == "北京安居房屋检测有限公司"
    assert evidence["report_ref"] == "FLJC-88"
    assert "主卧外墙、卫生间" in outcome.findings[0].message


def test_old_and_leaking_latest_inspection_reports_both():
    outcome = run_with(inspection(ago(days=200), "leaking"))
    assert codes(outcome) == ["LEAK_NOT_INSPECTED", "LEAK_FOUND"]


def test_only_the_latest_inspection_is_judged_for_leaks():
    outcome = run_with(inspection(ago(days=5), "no_leak"), inspection(ago(days=40), "leaking"))
    assert outcome.findings == []
    assert outcome.facts["latest_result"] == "no_leak"


def test_a_repaired_leak_rechecked_later_as_leaking_is_found_whatever_the_list_order():
    outcome = run_with(inspection(ago(days=3), "suspected"), inspection(ago(days=30), "no_leak"))
    assert codes(outcome) == ["LEAK_FOUND"]
    assert outcome.facts["latest_inspected_at"] == ago(days=3)


def test_outcome_evidence_names_the_latest_inspection_and_the_record_source():
    evidence = run_with(inspection(ago(days=20)), inspection(ago(days=400))).evidence
    assert evidence["inspection_count"] == 2
    assert evidence["latest_inspected_at"] == ago(days=20)
    assert evidence["latest_age_days"] == 20
    assert evidence["as_of"] == "2026-11-21T16:00:00+00:00"


def test_leak_provider_failure_propagates_to_the_runner():
    with pytest.raises(ProviderUnavailable):
        leak.run(context(failing=["inspections"]))


def test_findings_evidence_and_facts_are_json_safe_for_storage():
    outcome = run_with(inspection(ago(days=200), "leaking"))
    assert as_stored(outcome)["facts"] == outcome.facts
