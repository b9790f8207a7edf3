"""The registry of checks: every report's checks in one order, and checks that apply to some reports only."""

from __future__ import annotations

import pytest

from checks import registry
from checks.base import CheckContext, CheckOutcome


def test_every_check_is_registered_in_report_order():
    assert list(registry.all_checks()) == list(registry.ORDER) == ["title", "fees", "leak", "authenticity"]


def test_the_checks_a_report_runs_are_those_that_apply_to_its_stage_and_deal(monkeypatch):
    registry.all_checks()
    monkeypatch.setattr(registry, "ORDER", (*registry.ORDER, "filing"))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_APPLIES", dict(registry._APPLIES))

    @registry.register("filing", applies=lambda stage, has_deal: has_deal and stage == "transfer")
    def filing(ctx: CheckContext) -> CheckOutcome:
        raise AssertionError("never run here")

    everyone = ["title", "fees", "leak", "authenticity"]
    assert list(registry.checks_for("transfer", True)) == [*everyone, "filing"]
    assert list(registry.checks_for("transfer", False)) == everyone
    assert list(registry.checks_for("signing", True)) == everyone
    with pytest.raises(RuntimeError, match="registered twice"):
        registry.register("filing")(filing)
