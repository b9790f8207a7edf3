"""The registry of checks: every report's checks in one order, and checks that apply to some reports only."""

from __future__ import annotations

import pytest

from checks import registry


def test_every_check_is_registered_in_report_order():
    assert list(registry.all_checks()) == list(registry.ORDER) == ["title", "fees", "leak", "authenticity", "filing"]


def test_the_filing_check_runs_in_reports_of_a_deal_at_transfer_only():
    everyone = ["title", "fees", "leak", "authenticity"]
    assert list(registry.checks_for("transfer", True)) == [*everyone, "filing"]
    assert list(registry.checks_for("transfer", False)) == everyone
    assert list(registry.checks_for("signing", True)) == everyone


def test_a_check_registers_once(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry.all_checks()))
    with pytest.raises(RuntimeError, match="registered twice"):
        registry.register("filing")(registry.all_checks()["filing"])
