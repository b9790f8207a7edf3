"""Title search (产调): the registered owners against the seller, and every active encumbrance.

Owners' ID numbers are read only to hash them for the comparison; what leaves this module carries
them masked (risk.identity.mask), never in full.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Any

from checks.base import CheckContext, CheckOutcome, Fetched, Finding
from checks.registry import register
from risk.clock import shanghai_date
from risk.identity import mask_registry_number, same_person_number

# Encumbrance type -> (finding code, the Chinese name the evidence and message use).
ENCUMBRANCES: dict[str, tuple[str, str]] = {
    "seizure": ("TITLE_SEIZURE", "查封"),
    "seizure_renewal": ("TITLE_SEIZURE", "续封"),
    "pre_seizure": ("TITLE_SEIZURE", "预查封"),
    "queued_seizure": ("TITLE_SEIZURE", "轮候查封"),
    "mortgage": ("TITLE_MORTGAGE", "抵押"),
    "objection": ("TITLE_OBJECTION", "异议登记"),
    "advance_registration": ("TITLE_ADVANCE_REGISTRATION", "预告登记"),
    "residence_right": ("TITLE_RESIDENCE_RIGHT", "居住权"),
    "lease": ("TITLE_LEASE", "租赁"),
    "easement": ("TITLE_EASEMENT", "地役权"),
}


@register("title")
def run(ctx: CheckContext) -> CheckOutcome:
    unit_id = ctx.subject["unit_id"]
    provider = ctx.providers("title")
    fetched = provider.get("title", unit_id)
    if fetched is None:
        return _not_found(ctx, provider.name, unit_id)

    title = fetched.payload
    active = [e for e in title.get("encumbrances") or [] if e.get("status") == "active"]
    findings = [f for f in (_encumbrance_finding(ctx, fetched, e) for e in active) if f is not None]
    owners = title.get("owners") or []
    seller_is_owner = _seller_is_owner(ctx, owners)
    if not seller_is_owner:
        findings.append(_owner_mismatch(ctx, fetched, owners))

    active_types = [e.get("type") for e in active]
    return CheckOutcome(
        check="title",
        findings=findings,
        source=fetched.source,
        retrieved_at=fetched.retrieved_at,
        evidence=fetched.evidence(
            unit_id=unit_id,
            certificate_no=title.get("certificate_no"),
            owner_count=len(owners),
            active_encumbrances=active_types,
            unrecognised_encumbrances=[t for t in active_types if t not in ENCUMBRANCES],
        ),
        facts={"title_found": True, "seller_is_owner": seller_is_owner, "active_encumbrance_types": active_types},
    )


def _not_found(ctx: CheckContext, provider: str, unit_id: str) -> CheckOutcome:
    now = ctx.clock.now()
    evidence = {
        "provider": provider,
        "reference": None,
        "as_of": None,
        "retrieved_at": now.isoformat(),
        "unit_id": unit_id,
    }
    finding = Finding("TITLE_NOT_FOUND", f"产调未查到该房屋的产权登记（房屋编号 {unit_id}）", dict(evidence))
    return CheckOutcome(
        check="title",
        findings=[finding],
        source=provider,
        retrieved_at=now,
        evidence={**evidence, "title_found": False},
        facts={"title_found": False, "seller_is_owner": None, "active_encumbrance_types": []},
    )


# -- encumbrances --------------------------------------------------------------------------------


def _encumbrance_finding(ctx: CheckContext, fetched: Fetched, enc: dict[str, Any]) -> Finding | None:
    kind = enc.get("type")
    if kind not in ENCUMBRANCES:
        # No code to raise; the outcome's evidence lists it so a reviewer sees it.
        return None
    if kind == "advance_registration" and _is_this_deals_buyer(ctx, enc.get("holder")):
        # The buyer's own 预告登记 for this deal protects the deal; it is not a risk to it.
        return None
    code, which = ENCUMBRANCES[kind]
    evidence = fetched.evidence(
        type=kind,
        which=which,
        holder=enc.get("holder"),
        registered_at=enc.get("registered_at"),
        encumbrance_id=enc.get("id"),
        encumbrance_reference=enc.get("reference"),
    )
    if kind == "mortgage":
        evidence["amount"] = _money(enc.get("amount"))
    return Finding(code, _message(kind, which, enc), evidence)


# Who the holder is, for the encumbrances named after their holder's right.
_PARTY = {
    "objection": ("房屋存在异议登记", "异议申请人"),
    "advance_registration": ("房屋已有他人预告登记", "预告登记权利人"),
    "residence_right": ("房屋设有居住权", "居住权人"),
    "lease": ("房屋存在租赁", "承租人"),
    "easement": ("房屋设有地役权", "地役权人"),
}


def _message(kind: str, which: str, enc: dict[str, Any]) -> str:
    holder = enc.get("holder") or "未登记"
    details = []
    if kind in _PARTY:
        head, party = _PARTY[kind]
        details.append(f"{party}：{holder}")
    elif kind == "mortgage":
        amount = _money(enc.get("amount"))
        amount_text = f"，被担保债权 {amount} 元" if amount is not None else ""
        head = f"房屋已抵押给{holder}{amount_text}，过户前须解押"
    else:
        head = f"房屋已被{holder}{which}"
    if enc.get("reference"):
        details.append(f"文号 {enc['reference']}")
    if enc.get("registered_at"):
        details.append(f"登记于 {_local_day(enc['registered_at'])}")
    return f"{head}（{'，'.join(details)}）" if details else head


def _is_this_deals_buyer(ctx: CheckContext, holder: str | None) -> bool:
    deal = ctx.subject.get("deal") or {}
    buyer = deal.get("buyer") or {}
    return holder is not None and bool(buyer.get("name")) and _same_name(buyer["name"], holder)


# -- owners --------------------------------------------------------------------------------------


def _seller_is_owner(ctx: CheckContext, owners: list[dict[str, Any]]) -> bool:
    seller = ctx.subject["seller"]
    for owner in owners:
        if not _same_name(owner.get("name") or "", seller["name"]):
            continue
        # Imported records hold only keyed hashes; an HTTP provider's answer holds the number itself.
        if same_person_number(ctx.id_hash, owner, seller["id_type"], seller["id_hash"]):
            return True
    return False


def _owner_mismatch(ctx: CheckContext, fetched: Fetched, owners: list[dict[str, Any]]) -> Finding:
    seller = ctx.subject["seller"]
    listed = [
        {"name": o.get("name"), "id_masked": o.get("id_masked") or _mask_owner_id(o.get("id_number")),
         "share": o.get("share")}  # fmt: skip
        for o in owners
    ]
    name_found = any(_same_name(o.get("name") or "", seller["name"]) for o in owners)
    evidence = fetched.evidence(
        seller={"name": seller["name"], "id_masked": seller.get("id_masked")},
        owners=listed,
        seller_name_registered=name_found,
    )
    names = "、".join(f"{o['name']}（{o['id_masked']}）" for o in listed) or "无"
    if name_found:
        message = f"卖方{seller['name']}与登记产权人同名，但证件号码不符；登记产权人：{names}"
    else:
        message = f"卖方{seller['name']}不是登记产权人；登记产权人：{names}"
    return Finding("TITLE_OWNER_MISMATCH", message, evidence)


def _mask_owner_id(number: str | None) -> str | None:
    if not number:
        return None
    return mask_registry_number(number)


def _same_name(a: str, b: str) -> bool:
    return _plain(a) == _plain(b)


def _plain(text: str) -> str:
    # Registries and agents differ in full-width characters and stray spaces (incl. U+3000), not in names.
    return "".join(unicodedata.normalize("NFKC", text).split()).casefold()


def _local_day(instant: str) -> str:
    # Adapters hand instants over in UTC; the registry's day is the Shanghai one.
    return shanghai_date(datetime.fromisoformat(instant)).isoformat()


def _money(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return f"{Decimal(str(value)):.2f}"
