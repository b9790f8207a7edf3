"""The decision policy: versioned data mapping each finding code to ALLOW/REVIEW/BLOCK per city and
stage. The newest version in `versions/` is in force; a report records the version it used."""

from risk.policy.engine import (
    Decision,
    Policy,
    Rule,
    current_policy,
    decide,
    not_overridable,
    policy_version,
    report_overridable,
)

__all__ = [
    "Decision",
    "Policy",
    "Rule",
    "current_policy",
    "decide",
    "not_overridable",
    "policy_version",
    "report_overridable",
]
