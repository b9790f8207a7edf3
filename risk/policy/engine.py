from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import marshmallow as ma

from checks.codes import CODES
from risk.reports.models import STAGES

_VERSIONS = Path(__file__).parent / "versions"
# API.md "Overrides": findings no reviewer may ever open, whatever a policy file says.
NEVER_OVERRIDABLE = frozenset(
    {"TITLE_SEIZURE", "TITLE_ADVANCE_REGISTRATION", "TITLE_OBJECTION", "TITLE_OWNER_MISMATCH", "LISTING_NOT_FOR_SALE"}
)
NEVER_OVERRIDABLE_PREFIXES = ("FILING_",)
# The order of severity; a report's decision is its most severe reason.
_RANK = {"ALLOW": 0, "REVIEW": 1, "BLOCK": 2}
SEVERITY = {"BLOCK": "blocking", "REVIEW": "attention", "INFO": "info"}


@dataclass(frozen=True)
class Rule:
    id: str
    code: str
    decision: str  # BLOCK, REVIEW or INFO (INFO: shown as a finding, never a reason)
    stages: tuple[str, ...] | None
    cities: tuple[str, ...] | None
    overridable: bool = False  # reviewers may open a BLOCK this rule gives (two of them)

    @property
    def severity(self) -> str:
        return SEVERITY[self.decision]

    def specificity(self) -> int:
        return (2 if self.cities else 0) + (1 if self.stages else 0)

    def matches(self, code: str, city: str, stage: str) -> bool:
        return (
            self.code == code
            and (self.stages is None or stage in self.stages)
            and (self.cities is None or city in self.cities)
        )


@dataclass(frozen=True)
class Decision:
    decision: str
    reasons: list[dict[str, Any]]


class _RuleSchema(ma.Schema):
    id = ma.fields.String(required=True, validate=ma.validate.Length(min=1))
    code = ma.fields.String(required=True, validate=ma.validate.OneOf(list(CODES)))
    decision = ma.fields.String(required=True, validate=ma.validate.OneOf(list(SEVERITY)))
    stages = ma.fields.List(ma.fields.String(validate=ma.validate.OneOf(STAGES)), load_default=None)
    cities = ma.fields.List(ma.fields.String(validate=ma.validate.Length(min=1)), load_default=None)
    overridable = ma.fields.Boolean(load_default=False)


class _PolicySchema(ma.Schema):
    version = ma.fields.String(required=True)
    description = ma.fields.String(load_default="")
    rules = ma.fields.List(ma.fields.Nested(_RuleSchema), required=True)
    # Cities whose listings need the authority's verification code (房源核验编号) to be genuine.
    verification_required = ma.fields.List(ma.fields.String(validate=ma.validate.Length(min=1)), load_default=list)


class PolicyError(ValueError):
    pass


class Policy:
    def __init__(
        self, version: str, rules: Iterable[Rule], verification_required: Iterable[str] = (), *, complete: bool = True
    ) -> None:
        self.version = version
        self.rules = tuple(rules)
        self.verification_required = frozenset(verification_required)
        self._validate(complete)

    @classmethod
    def load(cls, path: Path, *, complete: bool = True) -> Policy:
        try:
            data = _PolicySchema().load(json.loads(path.read_text(encoding="utf-8")))
        except ma.ValidationError as exc:
            raise PolicyError(f"{path.name}: {exc.messages}") from exc
        rules = [
            Rule(
                id=r["id"],
                code=r["code"],
                decision=r["decision"],
                stages=tuple(r["stages"]) if r["stages"] else None,
                cities=tuple(r["cities"]) if r["cities"] else None,
                overridable=r["overridable"],
            )
            for r in data["rules"]
        ]
        return cls(data["version"], rules, data["verification_required"], complete=complete)

    def requires_verification(self, city: str) -> bool:
        """Whether a listing in `city` needs a valid verification code (none by default)."""
        return city in self.verification_required

    def _validate(self, complete: bool) -> None:
        ids = [r.id for r in self.rules]
        if len(ids) != len(set(ids)):
            raise PolicyError(f"policy {self.version}: rule ids repeat")
        cities = sorted({c for r in self.rules for c in (r.cities or ())}) + ["*"]
        # An older version read for its recorded rules predates codes added since.
        for code in CODES if complete else {r.code for r in self.rules}:
            for stage in STAGES:
                for city in cities:
                    self.rule_for(code, city, stage)  # exactly one most specific rule, or raise
        for rule in self.rules:
            if rule.code == "CHECK_UNAVAILABLE" and rule.decision == "INFO":
                raise PolicyError(f"rule {rule.id}: an unavailable check can never be allowed")
            if rule.overridable and never_overridable(rule.code):
                raise PolicyError(f"rule {rule.id}: {rule.code} can never be overridden")
            if rule.overridable and rule.decision == "INFO":
                raise PolicyError(f"rule {rule.id}: an INFO rule gives no reason to override")

    def rule_for(self, code: str, city: str, stage: str) -> Rule:
        matching = [r for r in self.rules if r.matches(code, city, stage)]
        if not matching:
            raise PolicyError(f"policy {self.version}: no rule for {code} in {city} at {stage}")
        best = max(r.specificity() for r in matching)
        top = [r for r in matching if r.specificity() == best]
        if len(top) > 1:
            raise PolicyError(
                f"policy {self.version}: rules {', '.join(r.id for r in top)} all decide {code} in {city} at {stage}"
            )
        return top[0]

    def decide(self, findings: Iterable[tuple[str, dict[str, Any]]], city: str, stage: str) -> Decision:
        """findings: (check, finding dict with code and message) in report order."""
        reasons = []
        decision = "ALLOW"
        for check, finding in findings:
            rule = self.rule_for(finding["code"], city, stage)
            if rule.decision == "INFO":
                continue
            reasons.append(
                {
                    "code": finding["code"],
                    "rule": rule.id,
                    "check": check,
                    "message": finding["message"],
                    "decision": rule.decision,
                    "overridable": rule.overridable,
                }
            )
            if _RANK[rule.decision] > _RANK[decision]:
                decision = rule.decision
        return Decision(decision=decision, reasons=reasons)

    def rule_by_id(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def never_overridable(code: str) -> bool:
    return code in NEVER_OVERRIDABLE or code.startswith(NEVER_OVERRIDABLE_PREFIXES)


def not_overridable(reasons: Iterable[dict[str, Any]], version: str | None) -> list[str]:
    """The codes of the reasons that block and that no override may open, in order, once each.

    A reason carries its rule's `decision` and `overridable`; one written before reasons did is read
    against the policy version its report recorded."""
    codes: list[str] = []
    for reason in reasons:
        decision, flag = reason.get("decision"), reason.get("overridable")
        if decision is None or flag is None:
            rule = _recorded_rule(reason, version)
            decision = rule.decision if rule is not None else "BLOCK"
            flag = rule.overridable if rule is not None else False
        if decision == "BLOCK" and not flag and reason["code"] not in codes:
            codes.append(reason["code"])
    return codes


def report_overridable(decision: str | None, reasons: Iterable[dict[str, Any]], version: str | None) -> bool:
    """Whether reviewers may open a report's decision: a REVIEW always, a BLOCK when every reason that
    blocks is overridable, nothing else."""
    if decision == "REVIEW":
        return True
    return decision == "BLOCK" and not not_overridable(reasons, version)


def _recorded_rule(reason: dict[str, Any], version: str | None) -> Rule | None:
    policy = policy_version(version) if version else None
    return policy.rule_by_id(reason.get("rule", "")) if policy is not None else None


@lru_cache(maxsize=1)
def current_policy() -> Policy:
    """The newest version on disk (file names sort by version)."""
    files = sorted(_VERSIONS.glob("*.json"))
    if not files:
        raise PolicyError("no policy versions found")
    return Policy.load(files[-1])


@lru_cache(maxsize=16)
def policy_version(version: str) -> Policy | None:
    """The policy a report recorded, read from its file (None: no such version on disk)."""
    for path in sorted(_VERSIONS.glob("*.json")):
        if path.stem == version:
            policy = Policy.load(path, complete=False)
            if policy.version != version:
                raise PolicyError(f"{path.name} holds version {policy.version}")
            return policy
    return None


def decide(findings: Iterable[tuple[str, dict[str, Any]]], city: str, stage: str) -> Decision:
    return current_policy().decide(findings, city, stage)
