"""Fees owed on the unit (物业欠费 and utilities), by category and period.

Money stays Decimal from the provider's strings to the evidence's two-place strings: a float sum
of many periods drifts by fen, and the amount is what the brokerage may have to advance.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from checks.base import CheckContext, CheckOutcome, Fetched, Finding
from checks.registry import register

CATEGORY_LABELS = {
    "property": "物业费",
    "heating": "供暖费",
    "water": "水费",
    "electricity": "电费",
    "gas": "燃气费",
    "parking": "停车费",
    "other": "其他费用",
}
NO_ACCOUNT = "no fee account on record"
CENT = Decimal("0.01")


@register("fees")
def run(ctx: CheckContext) -> CheckOutcome:
    unit_id = ctx.subject["unit_id"]
    provider = ctx.providers("fee_account")
    fetched = provider.get("fee_account", unit_id)
    if fetched is None:
        return _no_account(ctx, provider.name, unit_id)

    account = fetched.payload
    items = account.get("items") or []
    owed = [(item, _owed(item)) for item in items]
    total = sum((amount for _, amount in owed), Decimal("0"))
    findings = [_arrears(fetched, owed, total)] if total > 0 else []
    return CheckOutcome(
        check="fees",
        findings=findings,
        source=fetched.source,
        retrieved_at=fetched.retrieved_at,
        evidence=fetched.evidence(
            unit_id=unit_id,
            company=account.get("company"),
            paid_through=account.get("paid_through"),
            item_count=len(items),
            total_owed=_money(total),
        ),
        facts={"account_found": True, "total_owed": _money(total)},
    )


def _no_account(ctx: CheckContext, provider: str, unit_id: str) -> CheckOutcome:
    # API.md: a ledger's 404 is not a risk; the check is clear and says why.
    now = ctx.clock.now()
    return CheckOutcome(
        check="fees",
        findings=[],
        source=provider,
        retrieved_at=now,
        evidence={
            "provider": provider,
            "reference": None,
            "as_of": None,
            "retrieved_at": now.isoformat(),
            "unit_id": unit_id,
            "account_found": False,
            "note": NO_ACCOUNT,
        },
        facts={"account_found": False, "total_owed": _money(Decimal("0"))},
    )


def _owed(item: dict[str, Any]) -> Decimal:
    return Decimal(str(item.get("amount_due") or "0")) - Decimal(str(item.get("amount_paid") or "0"))


def _arrears(fetched: Fetched, owed: list[tuple[dict[str, Any], Decimal]], total: Decimal) -> Finding:
    by_category: dict[str, Decimal] = {}
    for item, amount in owed:
        by_category[item["category"]] = by_category.get(item["category"], Decimal("0")) + amount
    periods = [
        {
            "category": item["category"],
            "period_from": item.get("period_from"),
            "period_to": item.get("period_to"),
            "owed": _money(amount),
        }
        for item, amount in owed
        if amount > 0
    ]
    account = fetched.payload
    evidence = fetched.evidence(
        total_owed=_money(total),
        by_category={category: _money(amount) for category, amount in by_category.items() if amount != 0},
        periods=periods,
        company=account.get("company"),
        paid_through=account.get("paid_through"),
    )
    return Finding("FEES_ARREARS", _message(total, by_category, periods, account.get("company")), evidence)


def _message(total: Decimal, by_category: dict[str, Decimal], periods: list[dict[str, Any]], company: Any) -> str:
    message = f"物业等欠费合计 {_money(total)} 元"
    span = _span(periods)
    if span:
        message += f"（{span}）"
    parts = [f"{CATEGORY_LABELS.get(c, c)} {_money(a)} 元" for c, a in by_category.items() if a > 0]
    if parts:
        message += "：" + "，".join(parts)
    if company:
        message += f"；收费单位 {company}"
    return message


def _span(periods: list[dict[str, Any]]) -> str:
    # Periods are ISO dates (or year-months); the month is what an agent quotes to the seller.
    starts = sorted(str(p["period_from"])[:7] for p in periods if p.get("period_from"))
    ends = sorted(str(p["period_to"])[:7] for p in periods if p.get("period_to"))
    if not starts or not ends:
        return ""
    return f"{starts[0]} 至 {ends[-1]}"


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))
