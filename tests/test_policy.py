import json
from pathlib import Path

import pytest

from checks.codes import CODES
from risk.policy import current_policy
from risk.policy.engine import Policy, PolicyError, Rule, not_overridable
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
        "decision": "BLOCK",
        "overridable": False,
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


# -- overridable rules ---------------------------------------------------------------------------------

OVERRIDABLE_BY_DEFAULT = {"LISTING_UNIT_NOT_FOUND", "TITLE_NOT_FOUND", "CHECK_UNAVAILABLE"}


@pytest.mark.parametrize("stage", STAGES)
def test_the_default_policy_marks_only_unit_not_found_title_not_found_and_unavailable_overridable(stage):
    policy = current_policy()
    marked = {code for code in CODES if policy.rule_for(code, "北京", stage).overridable}
    assert marked == OVERRIDABLE_BY_DEFAULT


def test_every_reason_carries_its_rules_decision_and_overridable_flag():
    findings = [
        ("title", {"code": "TITLE_NOT_FOUND", "message": "a"}),
        ("fees", {"code": "FEES_ARREARS", "message": "b"}),
    ]
    reasons = current_policy().decide(findings, "上海", "signing").reasons
    assert [(r["decision"], r["overridable"]) for r in reasons] == [("BLOCK", True), ("REVIEW", False)]


@pytest.mark.parametrize(
    "code",
    ["TITLE_SEIZURE", "TITLE_ADVANCE_REGISTRATION", "TITLE_OBJECTION", "TITLE_OWNER_MISMATCH", "LISTING_NOT_FOR_SALE"],
)
def test_a_policy_marking_a_never_overridable_code_overridable_is_refused_on_load(tmp_path, code):
    rules = json.loads(Path(current_policy_file()).read_text(encoding="utf-8"))
    for rule in rules["rules"]:
        if rule["code"] == code:
            rule["overridable"] = True
    path = tmp_path / "p.json"
    path.write_text(json.dumps(rules), encoding="utf-8")
    with pytest.raises(PolicyError, match="can never be overridden"):
        Policy.load(path)


def test_an_overridable_flag_must_be_a_boolean(tmp_path):
    rules = json.loads(Path(current_policy_file()).read_text(encoding="utf-8"))
    rules["rules"][4]["overridable"] = "sometimes"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(rules), encoding="utf-8")
    with pytest.raises(PolicyError, match="overridable"):
        Policy.load(path)


@pytest.mark.parametrize(
    "reasons,blocked",
    [
        ([{"code": "TITLE_NOT_FOUND", "decision": "BLOCK", "overridable": True}], []),
        ([{"code": "TITLE_SEIZURE", "decision": "BLOCK", "overridable": False},
          {"code": "LISTING_UNIT_NOT_FOUND", "decision": "BLOCK", "overridable": True},
          {"code": "FEES_ARREARS", "decision": "REVIEW", "overridable": False}], ["TITLE_SEIZURE"]),
    ],
)  # fmt: skip
def test_the_codes_no_override_opens_are_the_blocking_unmarked_ones(reasons, blocked):
    assert not_overridable(reasons, current_policy().version) == blocked


def test_reasons_written_before_the_flags_are_read_against_their_reports_policy_version():
    # Policy 2026.11 marked nothing overridable: its BLOCKs stay closed, its REVIEWs stay reviewable.
    old = [{"code": "TITLE_NOT_FOUND", "rule": "title.not-found.block", "check": "title", "message": "m"}]
    assert not_overridable(old, "2026.11") == ["TITLE_NOT_FOUND"]
    review = [{"code": "FEES_ARREARS", "rule": "fees.arrears.review", "check": "fees", "message": "m"}]
    assert not_overridable(review, "2026.11") == []


def current_policy_file() -> str:
    from risk.policy.engine import _VERSIONS

    return str(sorted(_VERSIONS.glob("*.json"))[-1])
