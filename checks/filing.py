"""The contract filing (网签备案) before transfer: the filing the deal names is still in force, for the
listing's unit, between the deal's buyers and the title's registered owners.

People are compared by name and keyed hashes of their ID numbers; evidence names them with masked
numbers only. The sellers are held against the title record the title check fetched in the same
report (the report's providers remember it), never a second copy.
"""

from __future__ import annotations

from typing import Any

from checks.base import CheckContext, CheckOutcome, Fetched, Finding
from checks.registry import register
from checks.title import _same_name
from risk.identity import mask_registry_number, protect_person, same_person_number


def _deal_at_transfer(stage: str, has_deal: bool) -> bool:
    # Reports of a deal at transfer, which the re-checks before transfer are too.
    return stage == "transfer" and has_deal


@register("filing", applies=_deal_at_transfer)
def run(ctx: CheckContext) -> CheckOutcome:
    deal = ctx.subject["deal"]
    provider = ctx.providers("contract_filing")
    filing_no = deal.get("filing_no")
    if not filing_no:
        return _missing(ctx, provider.name)
    fetched = provider.get("contract_filing", filing_no)
    if fetched is None:
        return _not_found(ctx, provider.name, filing_no)
    filing = fetched.payload
    findings: list[Finding] = []
    if filing.get("status") == "revoked":
        findings.append(_revoked(fetched, filing))
    else:
        mismatch = _mismatch(ctx, fetched, filing)
        if mismatch is not None:
            findings.append(mismatch)
    return CheckOutcome(
        check="filing",
        findings=findings,
        source=fetched.source,
        retrieved_at=fetched.retrieved_at,
        evidence=fetched.evidence(
            filing_no=filing_no,
            status=filing.get("status"),
            unit_id=filing.get("unit_id"),
            filed_at=filing.get("filed_at"),
            buyers=[_shown(p) for p in filing.get("buyers") or []],
            sellers=[_shown(p) for p in filing.get("sellers") or []],
        ),
        facts={"filing_no": filing_no, "filing_status": filing.get("status")},
    )


def _absent(ctx: CheckContext, provider: str, code: str, message: str, filing_no: str | None) -> CheckOutcome:
    now = ctx.clock.now()
    evidence = {"provider": provider, "reference": None, "as_of": None, "retrieved_at": now.isoformat(),
                "filing_no": filing_no}  # fmt: skip
    return CheckOutcome(
        check="filing",
        findings=[Finding(code, message, dict(evidence))],
        source=provider,
        retrieved_at=now,
        evidence=evidence,
        facts={"filing_no": filing_no, "filing_status": None},
    )


def _missing(ctx: CheckContext, provider: str) -> CheckOutcome:
    return _absent(ctx, provider, "FILING_MISSING", "交易未登记网签备案号，过户前须核对网签备案", None)


def _not_found(ctx: CheckContext, provider: str, filing_no: str) -> CheckOutcome:
    return _absent(ctx, provider, "FILING_NOT_FOUND", f"住建部门查无网签备案号 {filing_no}", filing_no)


def _revoked(fetched: Fetched, filing: dict[str, Any]) -> Finding:
    revoked_at = filing.get("revoked_at")
    when = f"（撤销于 {revoked_at}）" if revoked_at else ""
    message = f"网签备案 {filing['filing_no']} 已被撤销{when}，不得凭此过户"
    return Finding("FILING_REVOKED", message, fetched.evidence(filing_no=filing["filing_no"], revoked_at=revoked_at))


# -- the unit and the parties -------------------------------------------------------------------


def _mismatch(ctx: CheckContext, fetched: Fetched, filing: dict[str, Any]) -> Finding | None:
    problems: list[str] = []
    facts: dict[str, Any] = {}
    unit_id = ctx.subject["unit_id"]
    if filing.get("unit_id") != unit_id:
        facts["unit"] = {"listing": unit_id, "filing": filing.get("unit_id")}
        problems.append(f"备案房屋 {filing.get('unit_id')} 不是本房源 {unit_id}")

    deal = ctx.subject["deal"]
    parties = [deal["buyer"], *(deal.get("co_buyers") or [])]
    buyers = filing.get("buyers") or []
    extra = [b for b in buyers if not any(_is_party(ctx, b, p) for p in parties)]
    absent = [p for p in parties if not any(_is_party(ctx, b, p) for b in buyers)]
    if extra:
        facts["extra_buyers"] = [_shown(b) for b in extra]
        problems.append(f"备案买方有交易以外的人：{_names(facts['extra_buyers'])}")
    if absent:
        facts["absent_buyers"] = [{"name": p["name"], "id_masked": p.get("id_masked")} for p in absent]
        problems.append(f"交易买方不在备案中：{_names(facts['absent_buyers'])}")

    title = ctx.providers("title").get("title", unit_id)
    if title is None:
        facts["sellers_compared"] = False  # no title on record: the title check says so
    else:
        owners = title.payload.get("owners") or []
        sellers = filing.get("sellers") or []
        strangers = [s for s in sellers if not any(_same_registry_person(ctx, s, o) for o in owners)]
        if strangers:
            facts["extra_sellers"] = [_shown(s) for s in strangers]
            facts["owners"] = [_shown(o) for o in owners]
            problems.append(f"备案卖方不是登记产权人：{_names(facts['extra_sellers'])}")
    if not problems:
        return None
    message = f"网签备案 {filing['filing_no']} 与交易不符：" + "；".join(problems)
    return Finding("FILING_MISMATCH", message, fetched.evidence(filing_no=filing["filing_no"], **facts))


def _is_party(ctx: CheckContext, registered: dict[str, Any], party: dict[str, Any]) -> bool:
    """Whether a person in the filing is the deal's buyer or co-buyer (as the deal keeps them: hashed)."""
    return _same_name(registered.get("name") or "", party["name"]) and same_person_number(
        ctx.id_hash, registered, party["id_type"], party["id_hash"]
    )


def _same_registry_person(ctx: CheckContext, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two registries' people (either protected at import or straight from HTTP), by name and number."""
    if not _same_name(a.get("name") or "", b.get("name") or ""):
        return False
    hashes_a = protect_person(ctx.id_hash, a).get("id_hashes") or {}
    hashes_b = protect_person(ctx.id_hash, b).get("id_hashes") or {}
    return bool(hashes_a) and hashes_a.get("resident_id") == hashes_b.get("resident_id")


def _shown(person: dict[str, Any]) -> dict[str, Any]:
    number = person.get("id_number")
    masked = person.get("id_masked") or (mask_registry_number(number) if isinstance(number, str) else None)
    return {"name": person.get("name"), "id_masked": masked}


def _names(people: list[dict[str, Any]]) -> str:
    return "、".join(f"{p['name']}（{p['id_masked']}）" for p in people)
