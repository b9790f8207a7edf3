import json

import pytest

from checks.codes import CODES
from risk.policy import current_policy
from risk.policy.engine import Policy, PolicyError, Rule
from risk.reports.models import STAGES

API_DEFAULTS = {
    "TITLE_SEIZURE": "BLOCK",
    "TITLE_ADVANCE_REGISTRATION": "BLOCK",
    "TITLE_OBJECTION": "BLOCK",
    "TITLE_OWNER_MISMATCH": "BLOCK",
    "TITLE_NOT_FOUND": "BLOCK",
    "TITLE_MORTGAGE": "REVIEW",
    "TITLE_RESIDENCE_RIGHT": "REVIEW",
    "TITLE_LEASE": "REVIEW",
    "FEES_ARREARS": "REVIEW",
    "LEAK_FOUND": "REVIEW",
    "LEAK_NOT_INSPECTED": "REVIEW",
    "LISTING_UNIT_NOT_FOUND": "BLOCK",
    "LISTING_NOT_FOR_SALE": "BLOCK",
    "LISTING_MISMATCH": "REVIEW",
    "LISTING_PRICE_ANOMALY": "REVIEW",
    "LISTING_DUPLICATE": "REVIEW",
    "LISTING_PHOTO_REUSED": "REVIEW",
}


@pytest.mark.parametrize("code,decision", sorted(API_DEFAULTS.items()))
@pytest.mark.parametrize("stage", STAGES)
def test_default_policy_decides_each_code_as_api_md_says(code, decision, stage):
    result = current_policy().decide([("x", {"code": code, "message": "m"})], "北京", stage)
    assert result.decision == decision
    assert result.reasons[0]["code"] == code and result.reasons[0]["rule"]


@pytest.mark.parametrize(
    "stage,decision",
    [
        ("listing", "REVIEW"),
        ("deposit", "REVIEW"),
        ("signing", "BLOCK"),
        ("online_signing", "BLOCK"),
        ("transfer", "BLOCK"),
    ],
)
def test_unavailable_check_blocks_from_signing_and_reviews_before(stage, decision):
    result = current_policy().decide([("title", {"code": "CHECK_UNAVAILABLE", "message": "m"})], "上海", stage)
    assert result.decision == decision


def test_no_reason_is_allow():
    assert current_policy().decide([], "北京", "signing").decision == "ALLOW"


def test_easement_is_shown_but_never_a_reason():
    result = current_policy().decide([("title", {"code": "TITLE_EASEMENT", "message": "m"})], "北京", "signing")
    assert result.decision == "ALLOW" and result.reasons == []


def test_decision_is_the_most_severe_reason_and_reasons_keep_report_order():
    findings = [
        ("fees", {"code": "FEES_ARREARS", "message": "a"}),
        ("title", {"code": "TITLE_SEIZURE", "message": "b"}),
    ]
    result = current_policy().decide(findings, "北京", "deposit")
    assert result.decision == "BLOCK"
    assert [r["code"] for r in result.reasons] == ["FEES_ARREARS", "TITLE_SEIZURE"]
    assert result.reasons[1] == {
        "code": "TITLE_SEIZURE",
        "rule": "title.seizure.block",
        "check": "title",
        "message": "b",
    }


def test_every_code_is_covered_at_every_stage():
    policy = current_policy()
    for code in CODES:
        for stage in STAGES:
            assert policy.rule_for(code, "深圳", stage)


def test_city_rule_is_more_specific_than_the_default():
    base = list(current_policy().rules)
    policy = Policy("test", base + [Rule("bj.lease.block", "TITLE_LEASE", "BLOCK", None, ("北京",))])
    assert policy.rule_for("TITLE_LEASE", "北京", "signing").decision == "BLOCK"
    assert policy.rule_for("TITLE_LEASE", "上海", "signing").decision == "REVIEW"


def test_two_equally_specific_rules_for_one_case_are_rejected():
    base = list(current_policy().rules)
    with pytest.raises(PolicyError, match="all decide"):
        Policy("test", base + [Rule("dup", "TITLE_LEASE", "BLOCK", None, None)])


def test_a_policy_that_leaves_a_code_undecided_is_rejected(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"version": "x", "rules": [{"id": "a", "code": "TITLE_SEIZURE", "decision": "BLOCK"}]}))
    with pytest.raises(PolicyError, match="no rule"):
        Policy.load(path)


def test_a_policy_may_never_allow_an_unavailable_check():
    base = [r for r in current_policy().rules if r.code != "CHECK_UNAVAILABLE"]
    with pytest.raises(PolicyError, match="never be allowed"):
        Policy("test", base + [Rule("u", "CHECK_UNAVAILABLE", "INFO", None, None)])
