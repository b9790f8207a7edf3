"""Reading listing and deal exports in the Lianjia layout (the columns of ../shared/data/real/SOURCES.md).

Three kinds of file, told apart by their header:
- listings (挂牌): `community`, `layout`, `area_m2`, `unit_price_yuan_m2` or `total_price_wan`…, no date column;
- deals (成交): a `deal_date` column (YYYY.MM.DD, YYYY.MM, or masked as 近30天内成交);
- community references (小区参考均价): `avg_listing_unit_price_yuan_m2` and `on_sale_count`, one row per community.

Every row comes back either as a `MarketRow` or as a skip with its reason; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from listings import names

LISTING, DEAL, REFERENCE = "listing", "deal", "reference"
# Beyond these a row is a parking space, a typo or a shifted column, not a home.
MIN_AREA, MAX_AREA = 8.0, 3000.0
MIN_UNIT_PRICE, MAX_UNIT_PRICE = 3000, 500_000
MAX_FLOORS = 120
_DATE = re.compile(r"^(\d{4})[.\-/](\d{1,2})(?:[.\-/](\d{1,2}))?$")


@dataclass
class MarketRow:
    kind: str  # listing, deal or reference
    line: int  # line number in the file (header is line 1)
    external_id: str | None
    district: str | None
    bizcircle: str | None
    community: str
    community_key: str
    rooms: int | None = None
    halls: int | None = None
    room_type: bool = False
    area_m2: float | None = None
    orientation: str | None = None
    floor_level: str | None = None
    total_floors: int | None = None
    build_year: int | None = None
    unit_price: int | None = None  # yuan per m²; None: the row feeds profiles only
    total_price: float | None = None  # yuan
    observed_on: date | None = None
    samples: int = 1  # a reference row stands for this many listings (on_sale_count)


@dataclass
class ReadReport:
    path: str
    kind: str
    rows: int = 0
    used: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_lines: dict[str, list[int]] = field(default_factory=dict)
    notes: Counter[str] = field(default_factory=Counter)  # rows kept, with something worth saying

    def skip(self, reason: str, line: int) -> None:
        self.skipped[reason] += 1
        lines = self.skipped_lines.setdefault(reason, [])
        if len(lines) < 5:
            lines.append(line)

    def lines(self) -> list[str]:
        out = [
            f"{self.path}: {self.kind} export, {self.rows} rows, {self.used} used, {sum(self.skipped.values())} skipped"
        ]
        for reason, count in self.skipped.most_common():
            shown = ", ".join(str(n) for n in self.skipped_lines[reason])
            out.append(f"  skipped {count:>6}  {reason} (e.g. lines {shown})")
        for note, count in self.notes.most_common():
            out.append(f"  kept    {count:>6}  {note}")
        return out


# Other exports name the district and bizcircle columns differently; the first one present is read.
COLUMN_ALIASES = {
    "district": ("district_raw", "district_name", "region", "区域", "区县", "行政区"),
    "bizcircle": ("bizcircle_raw", "bizcircle_name", "block", "商圈", "板块"),
}


def read_export(path: str | Path, city: str, observed: date | None = None) -> tuple[list[MarketRow], ReadReport]:
    """All usable rows of one export for `city`, and what was skipped and why.

    `observed` dates rows of files without a date column (listing snapshots)."""
    path = Path(path)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        header = set(reader.fieldnames or [])
        kind = _kind(header)
        report = ReadReport(path=path.name, kind=kind)
        rows = list(_rows(reader, kind, city, observed, report))
    if kind == DEAL:
        _date_masked_deals(rows, report)
    report.used = len(rows)
    return rows, report


def _kind(header: set[str]) -> str:
    if "avg_listing_unit_price_yuan_m2" in header:
        return REFERENCE
    if "deal_date" in header:
        return DEAL
    if "community" not in header or not header & {"area_m2", "layout"}:
        raise ValueError("not a Lianjia export: expected community, layout and area_m2 columns (see SOURCES.md)")
    return LISTING


def _rows(
    reader: csv.DictReader[str], kind: str, city: str, observed: date | None, report: ReadReport
) -> Iterator[MarketRow]:
    seen_ids: set[str] = set()
    for line, raw in enumerate(reader, start=2):
        report.rows += 1
        row = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        for column, aliases in COLUMN_ALIASES.items():
            if not row.get(column):
                row[column] = next((row[a] for a in aliases if row.get(a)), "")
        reason = _skip_reason(row, city, seen_ids)
        if reason:
            report.skip(reason, line)
            continue
        if kind == REFERENCE:
            parsed = _reference(row, line, report)
        else:
            parsed = _home(row, kind, line, observed, report)
        if isinstance(parsed, str):
            report.skip(parsed, line)
            continue
        yield parsed


def _skip_reason(row: dict[str, str], city: str, seen_ids: set[str]) -> str | None:
    if row.get("city") and names.plain(row["city"]) != names.plain(city):
        return f"another city ({row['city']})"
    if row.get("field_shift_suspect") == "1":
        return "columns shifted by the scraper (field_shift_suspect=1)"
    external_id = row.get("listing_id") or row.get("lianjia_id") or row.get("deal_id")
    if external_id:
        dated = f"{external_id}@{row.get('deal_date', '')}"
        if dated in seen_ids:
            return "repeated id in the file"
        seen_ids.add(dated)
    if not row.get("community"):
        return "no community name"
    if not names.community_key(row["community"]):
        return f"community name is not a name ({row['community']})"
    return None


def _reference(row: dict[str, str], line: int, report: ReadReport) -> MarketRow | str:
    price = _int(row.get("avg_listing_unit_price_yuan_m2"))
    on_sale = _int(row.get("on_sale_count")) or 0
    if not price:
        report.notes["no reference price (0): community kept, no price"] += 1
        price = None
    elif not MIN_UNIT_PRICE <= price <= MAX_UNIT_PRICE:
        return f"reference price outside {MIN_UNIT_PRICE}–{MAX_UNIT_PRICE} yuan/m²"
    return MarketRow(
        kind=REFERENCE,
        line=line,
        external_id=None,
        district=row.get("district") or None,
        bizcircle=row.get("bizcircle") or None,
        community=row["community"],
        community_key=names.community_key(row["community"]),
        unit_price=price,
        observed_on=_date(row.get("snapshot_date")),
        samples=max(on_sale, 1),
    )


def _home(row: dict[str, str], kind: str, line: int, observed: date | None, report: ReadReport) -> MarketRow | str:
    layout_text = row.get("layout", "")
    if "车位" in layout_text:
        return "parking space (车位), not a home"
    parsed = names.layout(layout_text)
    rooms, halls, room_type = (parsed.rooms, parsed.halls, parsed.room_type) if parsed else (None, None, False)
    if parsed is None:
        rooms, halls = _int(row.get("rooms")), _int(row.get("halls"))
        if rooms is None:
            report.notes["layout not given (e.g. '- -室- -厅'): kept for area, floors and price"] += 1
    if room_type is False and halls is None:
        halls = _int(row.get("halls"))
    area = _float(row.get("area_implied_m2")) or _float(row.get("area_m2"))
    if area is None:
        return "no area"
    if not MIN_AREA <= area <= MAX_AREA:
        return f"area outside {MIN_AREA:g}–{MAX_AREA:g} m²"
    floors = _int(row.get("total_floors"))
    if floors is not None and not 1 <= floors <= MAX_FLOORS:
        floors = None
        report.notes["total floors implausible: left blank"] += 1
    year = _int(row.get("build_year"))
    if year is not None and not 1900 <= year <= 2030:
        year = None
    unit_price, total = _prices(row, area, report)
    if unit_price is not None and not MIN_UNIT_PRICE <= unit_price <= MAX_UNIT_PRICE:
        return f"unit price outside {MIN_UNIT_PRICE}–{MAX_UNIT_PRICE} yuan/m²"
    if kind == DEAL:
        day = _date(row.get("deal_date"))
        if day is None:
            report.notes["deal date masked (近30天内成交): dated at the file's newest deal"] += 1
    else:
        day = observed
        report.notes[f"listing snapshot dated {observed.isoformat() if observed else 'nothing'} (no date column)"] += 1
    return MarketRow(
        kind=kind,
        line=line,
        external_id=row.get("listing_id") or row.get("lianjia_id") or row.get("deal_id") or None,
        district=row.get("district") or None,
        bizcircle=row.get("bizcircle") or None,
        community=row["community"],
        community_key=names.community_key(row["community"]),
        rooms=rooms,
        halls=halls,
        room_type=room_type,
        area_m2=round(area, 2),
        orientation=names.orientation(row.get("orientation")),
        floor_level=row.get("floor_level") or None,
        total_floors=floors,
        build_year=year,
        unit_price=unit_price,
        total_price=total,
        observed_on=day,
    )


def _prices(row: dict[str, str], area: float, report: ReadReport) -> tuple[int | None, float | None]:
    """Unit price (yuan/m²) and total (yuan): the exact deal price, else the asking price, else a range's middle."""
    total_wan = _float(row.get("deal_price_wan")) or _float(row.get("total_price_wan"))
    total_wan = total_wan or _float(row.get("total_price_wan_derived"))
    if total_wan is None:
        low, high = _float(row.get("deal_price_low_wan")), _float(row.get("deal_price_high_wan"))
        if low and high:
            total_wan = (low + high) / 2
            report.notes["deal price shown as a range: middle of the range used"] += 1
    unit = _int(row.get("unit_price_yuan_m2")) or _int(row.get("deal_unit_price_yuan_m2"))
    if unit is None and total_wan:
        unit = round(total_wan * 10_000 / area)
    if unit is None:
        report.notes["no price (masked or not scraped): profile only"] += 1
        return None, None
    total = total_wan * 10_000 if total_wan else unit * area
    return unit, round(total, 2)


def _date_masked_deals(rows: list[MarketRow], report: ReadReport) -> None:
    dated = [r.observed_on for r in rows if r.observed_on is not None]
    newest = max(dated) if dated else None
    for row in rows:
        if row.observed_on is None:
            row.observed_on = newest


def _date(text: str | None) -> date | None:
    match = _DATE.match(text or "")
    if not match:
        return None
    year, month, day = int(match.group(1)), int(match.group(2)), int(match.group(3) or 1)
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and value == value and value > 0 else None


def _int(text: str | None) -> int | None:
    value = _float(text)
    return None if value is None else int(round(value))
