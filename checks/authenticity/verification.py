"""房源核验: the housing authority's listing verification code, read by the authenticity check.

A code is good when the authority knows it, it is `valid` and not past `expires_at`, it was issued
for the listing's unit, and its owners include the listing's seller (by name and ID number, compared
by keyed hash: no second title pull). A city whose policy sets `verification_required` needs one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from checks.base import CheckContext, Finding
from listings.names import plain
from risk.identity import protect_record, same_person_number
from risk.policy import current_policy

KIND = "listing_verification"
# Why a code fails, in the order findings name them, with the Chinese the agent reads.
PROBLEMS = {
    "missing": "本市要求房源核验，但房源没有核验编号",
    "unknown": "核验机构没有该核验编号",
    "revoked": "核验编号已被撤销",
    "expired": "核验编号已过期",
    "other_unit": "核验编号核发给另一套房屋",
    "other_owners": "核验编号所载产权人不包括卖方",
}


@dataclass
class Verified:
    """What the authenticity check adds: its findings, its evidence and its facts."""

    findings: list[Finding] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)


def verify(ctx: CheckContext) -> Verified:
    """The listing's verification code, judged; ProviderUnavailable propagates (the check is unavailable)."""
    listing = ctx.subject
    code = listing.get("verification_code")
    required = current_policy().requires_verification(listing.get("city") or "")
    if not code and not required:
        return Verified()
    facts = {"verification_required": required, "verification_valid": False}
    fetched, source = None, "presign"
    if code:
        provider = ctx.providers(KIND)
        fetched, source = provider.get(KIND, code), provider.name
    if fetched is None:  # no code to ask about, or the authority has none such: nothing to quote
        evidence = {
            "provider": source,
            "reference": None,
            "as_of": None,
            "retrieved_at": ctx.clock.now().isoformat(),
            "required": required,
            "verification_code": code,
        }
        return Verified([_unverified(["unknown" if code else "missing"], evidence)], evidence, facts)
    record = protect_record(ctx.id_hash, fetched.payload)  # ID numbers only as hashes from here on
    problems = _problems(ctx, listing, record)
    evidence = fetched.evidence(
        required=required,
        verification_code=code,
        status=record["status"],
        unit_id=record["unit_id"],
        issued_at=record.get("issued_at"),
        expires_at=record.get("expires_at"),
        owners=[{"name": o.get("name"), "id_masked": o.get("id_masked")} for o in record["owners"]],
    )
    facts["verification_valid"] = not problems
    return Verified([_unverified(problems, evidence)] if problems else [], evidence, facts)


def genuine_listing_verified(facts: Mapping[str, Any]) -> bool:
    """GENUINE_LISTING's condition: a valid code wherever one is required (reports before codes had none)."""
    return not facts.get("verification_required") or bool(facts.get("verification_valid"))


def _problems(ctx: CheckContext, listing: dict[str, Any], record: dict[str, Any]) -> list[str]:
    problems = []
    if record["status"] in ("revoked", "expired"):
        problems.append(record["status"])
    elif record.get("expires_at") and datetime.fromisoformat(record["expires_at"]) <= ctx.clock.now():
        problems.append("expired")
    if record["unit_id"] != listing["unit_id"]:
        problems.append("other_unit")
    seller = listing["seller"]
    if not any(
        plain(o.get("name") or "") == plain(seller["name"])
        and same_person_number(ctx.id_hash, o, seller["id_type"], seller["id_hash"])
        for o in record["owners"]
    ):
        problems.append("other_owners")
    return problems


def _unverified(problems: list[str], evidence: dict[str, Any]) -> Finding:
    code = evidence.get("verification_code")
    message = "；".join(PROBLEMS[p] for p in problems)
    if code:
        message = f"房源核验编号 {code} 未通过：{message}"
    return Finding("LISTING_UNVERIFIED", message, {**evidence, "problems": problems})
