"""The demo's sample world, generated here: a few Beijing and Shanghai communities, their units,
registry records and one listing per scenario. Nothing in it comes from real people."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from risk.identity import resident_check_digit


def resident_id(region: str, born: str, seq: str) -> str:
    """A synthetic resident ID with a correct GB 11643 check digit."""
    first17 = f"{region}{born}{seq}"
    return first17 + resident_check_digit(first17)


@dataclass(frozen=True)
class Community:
    id: str
    city: str
    district: str
    name: str
    build_year: int
    median: int
    p10: int
    p90: int
    total_floors: int


COMMUNITIES = [
    Community("bj-dc-hepingli", "北京", "东城", "和平里小区", 1985, 98_000, 86_000, 112_000, 6),
    Community("bj-hd-wanliu", "北京", "海淀", "万柳书院", 2004, 152_000, 131_000, 176_000, 18),
    Community("sh-cn-gubei", "上海", "长宁", "古北新城", 1998, 101_000, 88_000, 118_000, 24),
    Community("sh-pt-caoyang", "上海", "普陀", "曹杨新村", 1995, 64_000, 55_000, 73_000, 6),
]
_BY_ID = {c.id: c for c in COMMUNITIES}


@dataclass
class Scenario:
    key: str
    title: str  # what the scenario shows, for the table
    community: str
    building: str
    room: str
    floor: int
    area: str
    layout: str
    orientation: str
    price_per_m2: int
    expect: str  # the decision this world should produce
    seller: tuple[str, str] = ("王建国", resident_id("110101", "19700312", "041"))
    owners: list[tuple[str, str]] | None = None  # default: the seller alone
    encumbrances: list[dict[str, Any]] = field(default_factory=list)
    fee_items: list[dict[str, Any]] | None = None  # None: no fee account on record
    inspections: tuple[tuple[int, str], ...] | None = ((20, "no_leak"),)  # (days ago, result)
    in_dictionary: bool = True
    entrusted_ratio: str | None = "1"
    verification: tuple[str, str] | None = None  # the authority's (code, status) (房源核验), if any

    @property
    def unit_id(self) -> str:
        return f"{self.community}/{self.building}/{self.room}"

    @property
    def info(self) -> Community:
        return _BY_ID[self.community]


def _monthly(category: str, start: str, months: int, monthly: str, paid: str = "0.00") -> list[dict[str, Any]]:
    """One fee item per year from `start` (YYYY-MM), `months` months in all."""
    year, month = int(start[:4]), int(start[5:7])
    items = []
    left = months
    while left > 0:
        span = min(left, 12 - month + 1)
        end_month = month + span - 1
        items.append(
            {
                "category": category,
                "period_from": f"{year:04d}-{month:02d}-01",
                "period_to": f"{year:04d}-{end_month:02d}-28",
                "amount_due": f"{int(monthly) * span:.2f}",
                "amount_paid": paid,
            }
        )
        left -= span
        year, month = year + 1, 1
    return items


SCENARIOS = [
    Scenario("clean", "产权清晰、无欠费、近期房漏检测无渗漏", "bj-dc-hepingli", "3", "2-501", 5, "62.40", "2室1厅",
             "南北", 97_500, "ALLOW", fee_items=_monthly("property", "2025-01", 12, "180", "2160.00")),
    Scenario("seizure", "法院查封", "bj-dc-hepingli", "5", "1-302", 3, "58.10", "2室1厅", "南北", 99_000, "BLOCK",
             seller=("李秀英", resident_id("110101", "19650702", "022")),
             encumbrances=[{"type": "seizure", "status": "active", "holder": "北京市东城区人民法院",
                            "reference": "(2026)京0101执保1234号"}]),
    Scenario("mortgage", "抵押未解押", "bj-hd-wanliu", "2", "1-1201", 12, "138.60", "3室2厅", "南北", 150_000,
             "REVIEW", seller=("张伟", resident_id("110108", "19800115", "013")),
             encumbrances=[{"type": "mortgage", "status": "active", "holder": "中国工商银行北京海淀支行",
                            "amount": "3200000.00", "reference": "京(2019)海淀不动产证明第0012345号"}]),
    Scenario("released", "抵押已注销", "sh-cn-gubei", "12", "801", 8, "121.00", "3室2厅", "南", 100_500, "ALLOW",
             seller=("陈静", resident_id("310105", "19780921", "046")), verification=("231050000801", "valid"),
             encumbrances=[{"type": "mortgage", "status": "released", "holder": "招商银行上海分行",
                            "amount": "2500000.00", "reference": "沪(2015)长字第5678号",
                            "released_at": "2023-06-30"}]),
    Scenario("not-owner", "卖方不是登记产权人", "sh-cn-gubei", "8", "1502", 15, "96.50", "2室2厅", "南", 102_000,
             "BLOCK", seller=("刘洋", resident_id("310105", "19850503", "031")),
             owners=[("赵丽", resident_id("310104", "19600228", "062"))]),
    Scenario("fees", "2005-2014年物业费欠缴约6万元", "sh-pt-caoyang", "45", "302", 3, "54.20", "2室1厅", "南",
             63_800, "REVIEW", seller=("周敏", resident_id("310107", "19590814", "027")),
             fee_items=_monthly("property", "2005-02", 114, "480") + _monthly("heating", "2010-01", 24, "210")),
    Scenario("no-inspection", "从未做房漏检测", "bj-hd-wanliu", "6", "2-902", 9, "89.30", "2室1厅", "东南",
             153_000, "REVIEW", seller=("吴刚", resident_id("110108", "19760330", "058")), inspections=None),
    Scenario("leak", "房漏检测发现渗漏", "sh-pt-caoyang", "12", "101", 1, "47.80", "1室1厅", "南", 62_000,
             "REVIEW", seller=("孙红", resident_id("310107", "19690611", "044")),
             inspections=((400, "no_leak"), (12, "leaking")), verification=("231070000101", "valid")),
    Scenario("revoked", "房源核验编号已被撤销", "sh-cn-gubei", "3", "1101", 11, "88.00", "2室1厅", "南", 101_000,
             "BLOCK", seller=("钱磊", resident_id("310105", "19830417", "059")),
             verification=("231050001101", "revoked")),
    Scenario("ghost", "楼盘字典无此房（假房源）", "bj-dc-hepingli", "99", "9-909", 9, "88.00", "3室1厅", "南北",
             96_000, "BLOCK", seller=("郑强", resident_id("110101", "19820907", "075")), in_dictionary=False),
    Scenario("bait", "挂牌价远低于小区行情（诱饵房源）", "bj-hd-wanliu", "3", "1-601", 6, "101.20", "2室2厅",
             "南北", 68_000, "REVIEW", seller=("何芳", resident_id("110108", "19880219", "086")),
             entrusted_ratio=None),
    Scenario("refiled", "网签被撤销后重新备案（见交易表）", "bj-hd-wanliu", "7", "1-802", 8, "92.40", "2室1厅",
             "南北", 151_000, "ALLOW", seller=("马丽", resident_id("110108", "19720505", "062")),
             fee_items=_monthly("property", "2025-01", 12, "180", "2160.00")),
]  # fmt: skip


@dataclass(frozen=True)
class DealScenario:
    """A deal on a scenario's listing, its reports by stage and the gate answer each stage should get."""

    key: str
    title: str
    listing: str  # the Scenario whose listing the deal is on
    expect: dict[str, str]  # stage -> the gate's decision asked by deal
    because: str  # what makes its BLOCK: an open requirement's code, or a finding's
    # People the contract filing (网签备案) names as buyers besides the deal's buyer: a refiled contract.
    filing_strangers: tuple[tuple[str, str], ...] = ()

    @property
    def filing_no(self) -> str:
        return f"WQ-DEMO-{self.key}"


DEAL_SCENARIOS = [
    DealScenario("mortgage-deal", "转定后抵押仍未解押：转定须复核，过户前须解押", "mortgage",
                 {"deposit": "REVIEW", "transfer": "BLOCK"}, "MORTGAGE_DISCHARGED"),
    DealScenario("refiled-deal", "过户前：网签被撤销后加入陌生共同买方重新备案", "refiled", {"transfer": "BLOCK"},
                 "FILING_MISMATCH", filing_strangers=(("钱峰", resident_id("110105", "19830416", "035")),)),
]  # fmt: skip
BUYER = ("林晓", resident_id("110105", "19900101", "017"))


def deal_body(d: DealScenario, run: str, listing_id: str, now: datetime) -> dict[str, Any]:
    """The deal the contract system would post for the deal scenario: deposit today, transfer in a month."""
    day = timedelta(days=1)
    return {
        "external_id": f"DEMO-{run}-{d.key}",
        "listing_id": listing_id,
        "buyer": {"name": BUYER[0], "id_number": BUYER[1]},
        "deposit_amount": "200000.00",
        "deposit_at": now.isoformat(),
        "signing_at": (now + day).isoformat(),
        "online_signing_at": (now + 14 * day).isoformat(),
        "transfer_at": (now + 30 * day).isoformat(),
        "filing_no": d.filing_no,
    }


def records(now: datetime) -> list[dict[str, Any]]:
    """The provider records (PROVIDERS.md shapes, with `kind`) for `presign import`."""
    as_of = now.isoformat()
    out: list[dict[str, Any]] = []
    for c in COMMUNITIES:
        out.append({"kind": "community_prices", "community_id": c.id, "median_unit_price": f"{c.median}.00",
                    "p10_unit_price": f"{c.p10}.00", "p90_unit_price": f"{c.p90}.00", "sample_size": 40,
                    "as_of": as_of})  # fmt: skip
    for s in SCENARIOS:
        c = s.info
        if s.in_dictionary:
            out.append({
                "kind": "unit", "unit_id": s.unit_id, "city": c.city, "district": c.district,
                "community_id": c.id, "community": c.name, "building": s.building,
                "unit": s.room.split("-")[0] if "-" in s.room else "1", "room": s.room, "floor": s.floor,
                "total_floors": c.total_floors, "area_m2": s.area, "layout": s.layout,
                "orientation": s.orientation, "build_year": c.build_year, "use": "住宅", "as_of": as_of,
            })  # fmt: skip
            owners = s.owners or [s.seller]
            out.append({
                "kind": "title", "unit_id": s.unit_id, "certificate_no": f"证-{s.unit_id}",
                "registered_area_m2": s.area, "use": "住宅",
                "owners": [{"name": n, "id_number": i, "share": f"{100 / len(owners):.2f}"} for n, i in owners],
                "encumbrances": [
                    {"id": f"{s.key}-{n}", "registered_at": "2024-03-01", "released_at": None, "holder": None,
                     "amount": None, "reference": None, **e}
                    for n, e in enumerate(s.encumbrances)
                ],
                "as_of": as_of,
            })  # fmt: skip
        if s.fee_items is not None:
            out.append(
                {
                    "kind": "fee_account",
                    "unit_id": s.unit_id,
                    "company": f"{c.name}物业管理处",
                    "paid_through": s.fee_items[-1]["period_to"],
                    "items": s.fee_items,
                    "as_of": as_of,
                }
            )
        if s.verification is not None:
            code, status = s.verification
            out.append({
                "kind": "listing_verification", "code": code, "unit_id": s.unit_id, "status": status,
                "issued_at": (now - timedelta(days=30)).isoformat(),
                "expires_at": (now + timedelta(days=335)).isoformat(),
                "owners": [{"name": n, "id_number": i} for n, i in s.owners or [s.seller]], "as_of": as_of,
            })  # fmt: skip
        if s.inspections is not None:
            out.append({"kind": "inspections", "unit_id": s.unit_id, "as_of": as_of, "inspections": [
                {"id": f"{s.key}-insp-{n}", "inspected_at": (now - timedelta(days=days)).isoformat(),
                 "result": result, "areas": ["卫生间", "厨房"] if result != "no_leak" else [],
                 "inspector": "安心检测中心", "report_ref": f"LK-{s.key}-{n}"}
                for n, (days, result) in enumerate(s.inspections)
            ]})  # fmt: skip
    by_key = {s.key: s for s in SCENARIOS}
    for d in DEAL_SCENARIOS:  # each deal's online-signed contract as the authority filed it
        s = by_key[d.listing]
        out.append({
            "kind": "contract_filing", "filing_no": d.filing_no, "unit_id": s.unit_id, "status": "filed",
            "filed_at": (now - timedelta(days=3)).isoformat(), "revoked_at": None,
            "buyers": [{"name": n, "id_number": i} for n, i in [BUYER, *d.filing_strangers]],
            "sellers": [{"name": n, "id_number": i} for n, i in s.owners or [s.seller]], "as_of": as_of,
        })  # fmt: skip
    return out


def listing_body(s: Scenario, run: str) -> dict[str, Any]:
    """The listing an agent would post for the scenario."""
    c = s.info
    price = round(float(s.area) * s.price_per_m2, -3)
    body: dict[str, Any] = {
        "external_id": f"DEMO-{run}-{s.key}",
        "unit_id": s.unit_id,
        "city": c.city,
        "community": c.name,
        "building": s.building,
        "unit": s.room.split("-")[0] if "-" in s.room else "1",
        "room": s.room,
        "floor": s.floor,
        "area_m2": s.area,
        "layout": s.layout,
        "orientation": s.orientation,
        "build_year": c.build_year,
        "asking_price": f"{price:.2f}",
        "seller": {"name": s.seller[0], "id_number": s.seller[1]},
        # Photos are this run's own: a photo seen on any other listing, even a withdrawn one from an
        # earlier run on the same database, is LISTING_PHOTO_REUSED.
        "photos": [
            {"url": f"https://img.example.cn/{run}/{s.key}/{n}.jpg", "sha256": _photo_hash(f"{run}:{s.key}", n)}
            for n in (1, 2)
        ],
    }
    if s.entrusted_ratio is not None:
        body["entrusted_price"] = f"{price:.2f}"
    if s.verification is not None:
        body["verification_code"] = s.verification[0]
    return body


def _photo_hash(key: str, n: int) -> str:
    import hashlib

    return hashlib.sha256(f"demo-photo:{key}:{n}".encode()).hexdigest()
