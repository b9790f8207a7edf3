"""Small exports in the Lianjia layouts of ../shared/data/real/SOURCES.md, written to CSV for tests.

Each `*_row` returns one row with defaults that import cleanly; override what a test is about.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

# Beijing listings, 2021 (file 1 of SOURCES.md).
LISTINGS_2021 = (
    "listing_id,city,district,bizcircle,community,layout,rooms,halls,area_m2,area_implied_m2,orientation,renovation,"
    "building_type,total_floors,build_year,total_price_wan,unit_price_yuan_m2,listing_url_derived,"
    "id_repeats_in_file,field_shift_suspect"
).split(",")
# Beijing deals in named communities (file 6).
DEALS_15 = (
    "deal_date,city,community,lianjia_id,title,layout,rooms,halls,kitchens,baths,area_m2,floor_level,total_floors,"
    "floor_raw,building_type,orientation,build_year,listing_date,ownership_years,deal_price_wan,deal_price_low_wan,"
    "deal_price_high_wan,deal_price_raw,deal_unit_price_yuan_m2_derived,listed_price_wan,days_on_market,"
    "price_change_count,visit_count,follower_count,page_view_count,history_trade_count,source_file"
).split(",")
# Shanghai listings (file 3) and the Shanghai community reference prices (file 4).
SH_LISTINGS = (
    "city,district,community,layout,rooms,halls,area_m2,floor_level,total_floors,floor_raw,orientation,build_year,"
    "unit_price_yuan_m2,total_price_wan_derived"
).split(",")
SH_XIAOQU = "snapshot_date,city,district,bizcircle,community,avg_listing_unit_price_yuan_m2,on_sale_count".split(",")

_next_id = iter(range(101100000000, 101199999999))


def listing_2021(
    community: str = "远洋山水",
    *,
    area: float = 89.5,
    unit_price: int = 70_000,
    layout: str = "2室1厅",
    district: str = "石景山",
    bizcircle: str = "鲁谷",
    floors: int = 18,
    year: int = 2004,
    orientation: str = "南北",
    **overrides: Any,
) -> dict[str, Any]:
    listing_id = overrides.pop("listing_id", None) or str(next(_next_id))
    total_wan = round(unit_price * area / 10_000)
    row = {
        "listing_id": listing_id,
        "city": "北京",
        "district": district,
        "bizcircle": bizcircle,
        "community": community,
        "layout": layout,
        "rooms": layout[0] if layout[0].isdigit() else "",
        "halls": "1",
        "area_m2": f"{round(area):.1f}",
        "area_implied_m2": f"{area:.2f}",
        "orientation": orientation,
        "renovation": "精装",
        "building_type": "板楼",
        "total_floors": str(floors),
        "build_year": str(year),
        "total_price_wan": str(total_wan),
        "unit_price_yuan_m2": str(unit_price),
        "listing_url_derived": f"https://bj.lianjia.com/ershoufang/{listing_id}.html",
        "id_repeats_in_file": "1",
        "field_shift_suspect": "0",
    }
    row.update(overrides)
    return row


def deal_15(
    community: str = "远洋山水",
    *,
    date: str = "2021.09.01",
    area: float = 89.5,
    price_wan: float | None = 626.0,
    price_range: tuple[float, float] | None = None,
    layout: str = "2室1厅1厨1卫",
    **overrides: Any,
) -> dict[str, Any]:
    row = {name: "" for name in DEALS_15}
    row.update(
        {
            "deal_date": date,
            "city": "北京",
            "community": community,
            "lianjia_id": str(next(_next_id)),
            "title": f"{community} {layout} {area}平米",
            "layout": layout,
            "area_m2": f"{area}",
            "floor_level": "中楼层",
            "total_floors": "18",
            "orientation": "南 北",
            "build_year": "2004",
            "deal_price_wan": "" if price_wan is None else f"{price_wan:g}",
            "deal_price_low_wan": f"{price_range[0]:g}" if price_range else "",
            "deal_price_high_wan": f"{price_range[1]:g}" if price_range else "",
            "source_file": f"{community}.csv",
        }
    )
    row.update(overrides)
    return row


def sh_listing(community: str, *, area: float = 80.0, unit_price: int = 60_000, district: str = "浦东") -> dict:
    return {
        "city": "上海",
        "district": district,
        "community": community,
        "layout": "2室1厅",
        "rooms": "2",
        "halls": "1",
        "area_m2": f"{area:.2f}",
        "floor_level": "中区",
        "total_floors": "6",
        "floor_raw": "中区/6层",
        "orientation": "朝南",
        "build_year": "1995",
        "unit_price_yuan_m2": str(unit_price),
        "total_price_wan_derived": f"{unit_price * area / 10_000:.2f}",
    }


def sh_xiaoqu(
    community: str, *, price: int = 60_000, on_sale: int = 10, district: str = "浦东", bizcircle: str = "金桥"
):
    return {
        "snapshot_date": "2018-10-07",
        "city": "上海",
        "district": district,
        "bizcircle": bizcircle,
        "community": community,
        "avg_listing_unit_price_yuan_m2": str(price),
        "on_sale_count": str(on_sale),
    }


def write_csv(path: Path, header: list[str], rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=header)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in header})
    return path
