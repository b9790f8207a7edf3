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


class _PolicySchema(ma.Schema):
    version = ma.fields.String(required=True)
    description = ma.fields.String(load_default="")
    rules = ma.fields.List(ma.fields.Nested(_RuleSchema), required=True)


class PolicyError(ValueError):
    pass


class Policy:
    def __init__(self, version: str, rules: Iterable[Rule]) -> None:
        self.version = version
        self.rules = tuple(rules)
        self._validate()

    @classmethod
    def load(cls, path: Path) -> Policy:
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
            )
            for r in data["rules"]
        ]
        return cls(data["version"], rules)

    def _validate(self) -> None:
        ids = [r.id for r in self.rules]
        if len(ids) != len(set(ids)):
            raise PolicyError(f"policy {self.version}: rule ids repeat")
        cities = sorted({c for r in self.rules for c in (r.cities or ())}) + ["*"]
        for code in CODES:
            for stage in STAGES:
                for city in cities:
                    self.rule_for(code, city, stage)  # exactly one most specific rule, or raise
        for rule in self.rules:
            if rule.code == "CHECK_UNAVAILABLE" and rule.decision == "INFO":
                raise PolicyError(f"rule {rule.id}: an unavailable check can never be allowed")

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
            reasons.append({"code": finding["code"], "rule": rule.id, "check": check, "message": finding["message"]})
            if _RANK[rule.decision] > _RANK[decision]:
                decision = rule.decision
        return Decision(decision=decision, reasons=reasons)


@lru_cache(maxsize=1)
def current_policy() -> Policy:
    """The newest version on disk (file names sort by version)."""
    files = sorted(_VERSIONS.glob("*.json"))
    if not files:
        raise PolicyError("no policy versions found")
    return Policy.load(files[-1])


def decide(findings: Iterable[tuple[str, dict[str, Any]]], city: str, stage: str) -> Decision:
    return current_policy().decide(findings, city, stage)
