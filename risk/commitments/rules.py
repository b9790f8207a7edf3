"""When each commitment applies and over which dates (API.md, Commitments).

The version attached is the one in force on the deal's `signing_at`, or on the report's own date
when there is no deal, both as Asia/Shanghai local dates.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, UTC, datetime
from typing import Any

from checks.authenticity.verification import genuine_listing_verified
from risk.clock import SHANGHAI, isoformat, shanghai_date
from risk.commitments.catalog import Catalog, Version, default_catalog


@dataclass(frozen=True)
class DealDates:
    deposit_at: datetime | None = None
    signing_at: datetime | None = None
    online_signing_at: datetime | None = None
    transfer_at: datetime | None = None


@dataclass(frozen=True)
class CheckView:
    status: str
    facts: Mapping[str, Any]


LATEST = datetime.max.replace(tzinfo=UTC)
EARLIEST = datetime.min.replace(tzinfo=UTC)


def add_months(moment: datetime, months: int) -> datetime:
    """Same local (Asia/Shanghai) day and time `months` later, clamped to the month's last day.

    Total for any date a deal can hold: past the last (or before the first) time `datetime` can
    represent, the answer is that time, since a deal may hold dates stored before they were bounded."""
    try:
        local = moment.astimezone(SHANGHAI)
        month0 = local.month - 1 + months
        year, month = local.year + month0 // 12, month0 % 12 + 1
        if not MINYEAR <= year <= MAXYEAR:
            return LATEST if months >= 0 else EARLIEST
        day = min(local.day, calendar.monthrange(year, month)[1])
        return local.replace(year=year, month=month, day=day).astimezone(UTC)
    except OverflowError:  # the local time, or the answer in UTC, lies past datetime's range
        return LATEST if months >= 0 else EARLIEST


def _entry(version: Version, valid_from: datetime | None, valid_until: datetime | None) -> dict[str, Any]:
    return {
        "code": version.code,
        "version": version.version,
        "title": version.title,
        "terms": version.terms,
        "valid_from": isoformat(valid_from),
        "valid_until": isoformat(valid_until),
    }


def applicable(
    *,
    city: str,
    report_date: datetime,
    checks: Mapping[str, CheckView],
    build_year: int | None,
    deal: DealDates | None = None,
    deposit_seizure_free: bool | None = None,
    catalog: Catalog | None = None,
) -> list[dict[str, Any]]:
    """The commitments this report (and deal, if any) is eligible for, in catalog order.

    deposit_seizure_free: whether the deal's newest complete `deposit` report had no TITLE_SEIZURE;
    None when the deal has no such report (or there is no deal).
    """
    catalog = catalog or default_catalog()
    day = shanghai_date(deal.signing_at if deal and deal.signing_at else report_date)
    transfer_at = deal.transfer_at if deal else None
    out: list[dict[str, Any]] = []

    seizure = catalog.version_on(city, "SEIZURE_ADVANCE", day)
    if seizure and deal and deposit_seizure_free:
        out.append(_entry(seizure, deal.deposit_at, deal.online_signing_at))

    fees = catalog.version_on(city, "FEE_ARREARS_ADVANCE", day)
    if fees:
        window = fees.params.get("claim_window_months")
        until = add_months(transfer_at, int(window)) if transfer_at and window else None
        out.append(_entry(fees, transfer_at, until))

    leak = catalog.version_on(city, "LEAK_WARRANTY", day)
    leak_check = checks.get("leak")
    if leak and leak_check and leak_check.status != "unavailable" and leak_check.facts.get("recent_inspection"):
        min_year = leak.params.get("min_build_year")
        if min_year is None or (build_year is not None and build_year >= int(min_year)):
            period = int(leak.params["period_months"])
            out.append(_entry(leak, transfer_at, add_months(transfer_at, period) if transfer_at else None))

    genuine = catalog.version_on(city, "GENUINE_LISTING", day)
    authenticity = checks.get("authenticity")
    # 真房源 pays if the listing proves fake: promise it only for a unit the building dictionary holds,
    # not one merely judged plausible against its community's market profile; and one verified by the
    # authority wherever the policy requires it.
    if (
        genuine
        and authenticity
        and authenticity.status == "clear"
        and authenticity.facts.get("unit_found", True)
        and genuine_listing_verified(authenticity.facts)
    ):
        out.append(_entry(genuine, report_date, None))
    return out
