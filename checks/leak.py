"""Leak inspections (房漏检测): is there a recent one, and did the latest find a leak?

"Recent" is no older than RECENT_DAYS at the clock's now, measured between instants: an inspection
90 days and a second ago is too old.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from checks.base import CheckContext, CheckOutcome, Fetched, Finding
from checks.registry import register
from risk.clock import SHANGHAI, shanghai_date

RECENT_DAYS = 90
LEAK_RESULTS = {"leaking": "发现渗漏", "suspected": "疑似渗漏"}


@register("leak")
def run(ctx: CheckContext) -> CheckOutcome:
    unit_id = ctx.subject["unit_id"]
    provider = ctx.providers("inspections")
    fetched = provider.get("inspections", unit_id)
    # PROVIDERS.md: None and an empty list both mean none on record.
    inspections = list(fetched.payload.get("inspections") or []) if fetched is not None else []
    source = fetched.source if fetched is not None else provider.name
    retrieved_at = fetched.retrieved_at if fetched is not None else ctx.clock.now()
    base = _base_evidence(fetched, provider.name, retrieved_at)

    if not inspections:
        finding = Finding("LEAK_NOT_INSPECTED", "该房屋没有房漏检测记录", {**base, "latest_inspected_at": None})
        none: dict[str, Any] = {"latest_inspected_at": None, "latest_result": None, "recent_inspection": False}
        return _outcome(source, retrieved_at, [finding], {**base, "inspection_count": 0}, none)

    latest = max(inspections, key=lambda i: _instant(i["inspected_at"]))
    age = _age_days(latest["inspected_at"], ctx.clock.now())
    recent = age <= RECENT_DAYS
    findings = []
    if not recent:
        findings.append(_stale(base, latest, age))
    if latest.get("result") in LEAK_RESULTS:
        findings.append(_leak(base, latest))
    evidence = {
        **base,
        "inspection_count": len(inspections),
        "latest_inspected_at": latest["inspected_at"],
        "latest_result": latest.get("result"),
        "latest_age_days": age,
    }
    facts: dict[str, Any] = {
        "latest_inspected_at": _instant(latest["inspected_at"]).isoformat(),
        "latest_result": latest.get("result"),
        "recent_inspection": recent,
    }
    return _outcome(source, retrieved_at, findings, evidence, facts)


def _outcome(
    source: str, retrieved_at: datetime, findings: list[Finding], evidence: dict[str, Any], facts: dict[str, Any]
) -> CheckOutcome:
    return CheckOutcome("leak", findings, source, retrieved_at, evidence=evidence, facts=facts)


def _base_evidence(fetched: Fetched | None, provider: str, retrieved_at: datetime) -> dict[str, Any]:
    if fetched is not None:
        return fetched.evidence()
    return {"provider": provider, "reference": None, "as_of": None, "retrieved_at": retrieved_at.isoformat()}


def _stale(base: dict[str, Any], latest: dict[str, Any], age: int) -> Finding:
    evidence = {**base, "latest_inspected_at": latest["inspected_at"], "age_days": age, "max_age_days": RECENT_DAYS}
    message = f"最近一次房漏检测在 {_local_day(latest['inspected_at'])}，距今 {age} 天，已超过 {RECENT_DAYS} 天"
    return Finding("LEAK_NOT_INSPECTED", message, evidence)


def _leak(base: dict[str, Any], latest: dict[str, Any]) -> Finding:
    areas = list(latest.get("areas") or [])
    evidence = {
        **base,
        "inspection_id": latest.get("id"),
        "inspected_at": latest["inspected_at"],
        "result": latest["result"],
        "areas": areas,
        "inspector": latest.get("inspector"),
        "report_ref": latest.get("report_ref"),
    }
    where = "、".join(areas) or "未注明部位"
    message = (
        f"{_local_day(latest['inspected_at'])} 房漏检测{LEAK_RESULTS[latest['result']]}（{where}；"
        f"检测单位 {latest.get('inspector') or '未注明'}，报告编号 {latest.get('report_ref') or '未注明'}）"
    )
    return Finding("LEAK_FOUND", message, evidence)


# -- time ------------------------------------------------------------------------------------------


def _instant(value: str) -> datetime:
    """Adapters give UTC ISO instants; a bare date is read as they read it, Shanghai midnight."""
    if len(value) == 10:
        return datetime.combine(date.fromisoformat(value), time(0), tzinfo=SHANGHAI).astimezone(UTC)
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=SHANGHAI)).astimezone(UTC)


def _age_days(value: str, now: datetime) -> int:
    """Whole days since the inspection, rounded up: 90 days and a second is 91, so recent iff <= RECENT_DAYS."""
    return -((_instant(value) - now) // timedelta(days=1))


def _local_day(value: str) -> str:
    return shanghai_date(_instant(value)).isoformat()
