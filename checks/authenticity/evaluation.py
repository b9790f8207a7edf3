"""`presign eval-authenticity`: precision and recall of the authenticity check on real listings.

The evaluation, in a scratch SQLite database of its own (the instance's database is never touched):

1. reads the `--listings` export and draws `--limit` priced listings from it (`--seed`): the test set;
2. imports every other row of that file and the `--market` exports as market data, except exact twins
   of a test listing (the held-out split: no test listing is in the statistics or profiles it is judged
   against);
3. with `--dictionary units` (default) loads a building-dictionary `unit` record for each test listing,
   as the 楼盘字典 of every real unit would have it; with `--dictionary none` there is none, and every
   listing is judged on market data alone;
4. injects one known anomaly into a share `--rate` of the test listings, the kinds in turn:
   - price_cut: the asking price cut to 40–70 % of the market (the community's median unit price over
     all the data, found as the check finds its yardstick, times the area);
   - price_cut_own: cut to 40–70 % of the listing's own asking price (harder: a dear flat cut stays
     near its community's median);
   - area_change: the area changed by ±10–40 %, the price kept;
   - impossible_unit: a unit its community cannot have (a building at least twice as tall as any there,
     three or four rooms more than any flat there, or 2–3 times its largest area), half of them with the
     community name written slightly differently, under a unit_id the dictionary does not know;
   - fake_community: a community that no export has (one name's start and another's end);
   - relisted_unit: the same unit posted again under another unit_id at another price (5–20 % off),
     its community, layout, aspect, building and room written differently, its area within 1 %;
   - photo_reused: a photo of a listing sold before;
   the rest stay untouched;
5. stores every test listing (and each re-posted unit's original) as an active listing, runs the
   registered check on each through the real providers, market and indexes, and reports recall per
   anomaly, precision per finding code and the false-positive rate on the untouched listings.

The exports carry no floor number (Beijing) or only 低/中/高区 (Shanghai): each listing is given a floor
drawn within what its export says, the same floor for a re-posted unit as for its original.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from hashlib import sha256
from pathlib import Path
from typing import Any

import click

from listings import names
from listings.lianjia import MarketRow, read_export

KINDS = (
    "price_cut",
    "price_cut_own",
    "area_change",
    "impossible_unit",
    "fake_community",
    "relisted_unit",
    "photo_reused",
)
EXPECTED = {
    "price_cut": ("LISTING_PRICE_ANOMALY",),
    "price_cut_own": ("LISTING_PRICE_ANOMALY",),
    "area_change": ("LISTING_MISMATCH",),
    # A unit the community cannot have is caught as such, or as a unit that does not exist at all.
    "impossible_unit": ("LISTING_MISMATCH", "LISTING_UNIT_NOT_FOUND"),
    "fake_community": ("LISTING_UNIT_NOT_FOUND",),
    "relisted_unit": ("LISTING_DUPLICATE",),
    "photo_reused": ("LISTING_PHOTO_REUSED",),
}
CODES = (
    "LISTING_UNIT_NOT_FOUND",
    "LISTING_MISMATCH",
    "LISTING_PRICE_ANOMALY",
    "LISTING_DUPLICATE",
    "LISTING_PHOTO_REUSED",
    "LISTING_NOT_FOR_SALE",
)
CITY_EN = {"北京": "Beijing", "上海": "Shanghai"}
COMPANIES = ("eval-brokerage", "another-brokerage")


@dataclass
class Case:
    """One evaluated listing: its snapshot, what was injected, what the check said."""

    subject: dict[str, Any]
    kind: str | None  # None: untouched
    detail: dict[str, Any] = field(default_factory=dict)
    codes: list[str] = field(default_factory=list)
    price: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)  # the price model's judgement (evidence "price_model")
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier prices that flagged it (which: history)
    price_by: list[str] = field(default_factory=list)  # what raised LISTING_PRICE_ANOMALY (evidence `which`)
    seconds: float = 0.0

    @property
    def caught(self) -> bool:
        return self.kind is not None and any(c in EXPECTED[self.kind] for c in self.codes)


@dataclass
class Truth:
    """What the whole data (test rows included) says of a community: the yardstick for 'impossible'
    and its market unit price (median of its homes of the same type, else of its bizcircle or district)."""

    floors: int = 0
    rooms: int = 0
    area: float = 0.0
    market: float = 0.0
    known: int = 0  # homes of it in the market data (the test rows left out): what the check can know


# "Impossible" must be as sure for a community known from one or two homes as for one known from three,
# so thinner communities get wider margins (the odds behind them: docs/AUTHENTICITY.md, "Impossible units").
IMPOSSIBLE_MIN_KNOWN = 3
IMPOSSIBLE_MARGINS = {"known": (2, 10, 3, 2.0, 3.0), "thin": (3, 15, 4, 3.0, 4.0)}


@dataclass
class EvalResult:
    city: str
    cases: list[Case]
    split: dict[str, Any]
    seconds: dict[str, float]

    def summary(self) -> dict[str, Any]:
        untouched = [c for c in self.cases if c.kind is None]
        flagged_untouched = [c for c in untouched if c.codes]
        recall = {}
        for kind in KINDS:
            injected = [c for c in self.cases if c.kind == kind]
            if injected:
                recall[kind] = {
                    "n": len(injected),
                    "caught": sum(c.caught for c in injected),
                    "recall": _ratio(sum(c.caught for c in injected), len(injected)),
                    "flagged_any": _ratio(sum(bool(c.codes) for c in injected), len(injected)),
                    "by": dict(Counter(code for c in injected for code in c.codes if code in EXPECTED[kind])),
                }
        precision = {}
        for code in CODES:
            flagged = [c for c in self.cases if code in c.codes]
            if not flagged:
                continue
            right = [c for c in flagged if c.kind is not None and code in EXPECTED[c.kind]]
            precision[code] = {
                "flagged": len(flagged),
                "expected": len(right),
                "on_untouched": sum(1 for c in flagged if c.kind is None),
                "on_other_anomalies": sum(1 for c in flagged if c.kind is not None and code not in EXPECTED[c.kind]),
                "precision": _ratio(len(right), len(flagged)),
            }
        latencies = sorted(c.seconds for c in self.cases)
        return {
            "city": self.city,
            "split": self.split,
            "recall": recall,
            "precision": precision,
            "untouched": {
                "n": len(untouched),
                "flagged": len(flagged_untouched),
                "fpr": _ratio(len(flagged_untouched), len(untouched)),
                "by_code": dict(Counter(code for c in flagged_untouched for code in c.codes)),
            },
            "price_cut_by_level": _by_level([c for c in self.cases if c.kind == "price_cut"]),
            "impossible_by_profile": _by_profile([c for c in self.cases if c.kind == "impossible_unit"]),
            "model_thresholds": _model_thresholds(self.cases),
            # Per judged listing (kind, z, ratio to the prediction, below the range's low bound, and the
            # neighbours' z and ratio, None where the community has too few homes): to choose thresholds.
            "model_cases": [
                [
                    c.kind or "untouched",
                    c.model["z"],
                    round(float(c.model["unit_price"]) / float(c.model["predicted"]), 4),
                    bool(c.price.get("judged")) and float(c.price["unit_price"]) < float(c.price["low"]),
                    *_neighbours(c.model),
                ]
                for c in self.cases
                if c.model.get("judged")
            ],
            "untouched_price_levels": dict(Counter(c.price.get("level") or "not judged" for c in untouched)),
            "check_ms": {
                "median": round(1000 * latencies[len(latencies) // 2], 1) if latencies else None,
                "p95": round(1000 * latencies[int(len(latencies) * 0.95)], 1) if latencies else None,
            },
            "seconds": {k: round(v, 1) for k, v in self.seconds.items()},
        }


def _neighbours(model: dict[str, Any]) -> tuple[float | None, float | None]:
    near = model.get("neighbours")
    if near is None:
        return None, None
    return near["z"], round(float(model["unit_price"]) / float(near["predicted"]), 4)


def _model_thresholds(cases: list[Case]) -> dict[str, Any]:
    """What the price model alone would flag at each threshold (robust standard deviations below the
    prediction, and at most a ratio of it): the untouched (false positives) and the two price cuts."""
    found: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for case in cases:
        if case.model.get("judged"):
            ratio = float(case.model["unit_price"]) / float(case.model["predicted"])
            found[case.kind or "untouched"].append((case.model["z"], ratio))
    out: dict[str, Any] = {}
    for threshold in (1.5, 2.0, 2.5, 3.0):
        for most in (0.7, 0.75, 0.8, 1.0):
            out[f"z{threshold}_r{most}"] = {
                kind: _ratio(sum(1 for z, r in zs if z < -threshold and r < most), len(zs))
                for kind, zs in sorted(found.items())
                if kind in ("untouched", "price_cut", "price_cut_own")
            }
    return out


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _by_level(cases: list[Case]) -> dict[str, Any]:
    levels: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        levels[case.price.get("level") or "not judged"].append(case)
    return {lvl: {"n": len(cs), "recall": _ratio(sum(c.caught for c in cs), len(cs))} for lvl, cs in levels.items()}


def _by_profile(cases: list[Case]) -> dict[str, Any]:
    groups: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        homes = case.profile.get("homes")
        label = (
            "community unknown"
            if homes is None
            else "0 homes"
            if homes == 0
            else "1-2 homes"
            if homes < 3
            else "3+ homes"
        )
        groups[label].append(case)
    return {k: {"n": len(cs), "recall": _ratio(sum(c.caught for c in cs), len(cs))} for k, cs in sorted(groups.items())}


# -- building the test set ------------------------------------------------------------------------


def _eligible(row: MarketRow) -> bool:
    return (
        row.kind == "listing"
        and row.unit_price is not None
        and row.total_price is not None
        and row.rooms is not None
        and row.area_m2 is not None
        and bool(row.community_key)
    )


def _twin(row: MarketRow) -> tuple[Any, ...]:
    """What makes two export rows the same listing seen twice: every attribute, the price and the date."""
    return (row.kind, row.community_key, row.rooms, row.halls, row.area_m2, row.orientation, row.floor_level,
            row.total_floors, row.build_year, row.unit_price, row.observed_on)  # fmt: skip


def _truth(rows: list[MarketRow], test: Sequence[MarketRow] = ()) -> dict[tuple[str, bool], Truth]:
    """Per (community, room type): what it has, and its market price over the whole data, found the way
    the check finds it (community with 3 rows, its reference price, bizcircle with 20, district); and
    how many of its homes the market data has (`test`, the held-out rows, left out)."""
    from checks.authenticity.prices import AREA_MIN_SAMPLE, MARKET_MIN_SAMPLE, REFERENCE_MIN_ON_SALE

    where: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    references: dict[str, MarketRow] = {}
    for row in rows:
        if row.district:
            where[row.community_key][(names.district_key(row.district), row.bizcircle or "")] += 1
        if row.kind == "reference" and row.unit_price and row.samples >= REFERENCE_MIN_ON_SALE:
            references[row.community_key] = row
    located = {key: _place(found) for key, found in where.items()}
    prices: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    truth: dict[tuple[str, bool], Truth] = defaultdict(Truth)
    for row in rows:
        if row.kind == "reference":
            continue
        for type_ in (False, True):
            t = truth[(row.community_key, type_)]
            t.floors = max(t.floors, row.total_floors or 0)
            t.rooms = max(t.rooms, row.rooms or 0)
            t.area = max(t.area, row.area_m2 or 0.0)
        if row.unit_price:
            district, bizcircle = located.get(row.community_key, ("", ""))
            for bucket in (("c", row.community_key), ("b", district, bizcircle), ("d", district)):
                prices[(*bucket, row.room_type)].append(row.unit_price)
    held_out = Counter(row.community_key for row in test)
    homes = Counter(row.community_key for row in rows if row.kind != "reference")
    for (key, type_), t in truth.items():
        t.known = homes[key] - held_out[key]
        district, bizcircle = located.get(key, ("", ""))
        levels: list[tuple[tuple[str, ...], int]] = [(("c", key), MARKET_MIN_SAMPLE)]
        if not type_ and key in references:
            levels.append((("r", key), 1))
        levels += [(("b", district, bizcircle), AREA_MIN_SAMPLE), (("d", district), 1)]
        for group, least in levels:
            if group[0] == "r":
                t.market = float(references[key].unit_price or 0)
                break
            found = sorted(prices.get((*group, type_), []))
            if len(found) >= least:
                t.market = found[len(found) // 2]
                break
    return truth


def _place(found: Counter[tuple[str, str]]) -> tuple[str, str]:
    """A community's (district, bizcircle): the most common, preferring rows that name a bizcircle."""
    named = Counter({k: v for k, v in found.items() if k[1]})
    return (named or found).most_common(1)[0][0]


def _floor(rng: random.Random, row: MarketRow) -> int:
    total = row.total_floors or 6
    thirds = {"低区": (1, max(1, total // 3)), "中区": (max(1, total // 3), max(1, 2 * total // 3))}
    low, high = thirds.get(row.floor_level or "", (1, total))
    if row.floor_level == "高区":
        low, high = max(1, 2 * total // 3), total
    return rng.randint(low, max(low, high))


def _photos(listing_id: str, count: int = 3) -> list[dict[str, str]]:
    return [
        {"url": f"https://img.example/{listing_id}/{i}.jpg", "sha256": sha256(f"{listing_id}/{i}".encode()).hexdigest()}
        for i in range(count)
    ]


def _snapshot(city: str, row: MarketRow, number: int, rng: random.Random) -> dict[str, Any]:
    listing_id = f"lst_eval{number:07d}"
    layout = names.Layout(row.rooms or 0, row.halls, row.room_type).key
    floor = _floor(rng, row)
    return {
        "listing_id": listing_id,
        "external_id": f"EVAL-{number}",
        "company": COMPANIES[0],
        "store_id": "eval",
        "agent_id": None,
        "status": "active",
        "unit_id": f"eval-{number}",
        "city": city,
        "community": row.community,
        # The exports have no address; each listing gets its own building and room on its floor.
        "building": str(rng.randint(1, 40)),
        "unit": str(rng.randint(1, 4)),
        "room": f"{floor}{rng.randint(1, 8):02d}",
        "floor": floor,
        "total_floors": row.total_floors,
        "area_m2": f"{row.area_m2:.2f}",
        "layout": layout,
        "orientation": " ".join(names.aspects(row.orientation)),
        "build_year": row.build_year,
        "asking_price": f"{row.total_price:.2f}",
        "entrusted_price": None,
        "seller": {"name": "业主", "id_type": "resident_id", "id_hash": "0" * 64, "id_masked": "******"},
        "photos": _photos(listing_id),
        "deal": None,
    }


def name_variant(rng: random.Random, name: str) -> str:
    """The same community written differently: 小区 added, a space, full-width, or a character left out."""
    choices = ["suffix", "space", "wide"]
    if len(names.community_key(name)) >= 6:
        choices.append("drop")
    how = rng.choice(choices)
    if how == "suffix" and not name.endswith("小区"):
        return name + "小区"
    if how == "space" and len(name) > 2:
        cut = rng.randint(1, len(name) - 1)
        return name[:cut] + " " + name[cut:]
    if how == "drop":
        cut = rng.randint(1, len(name) - 2)
        return name[:cut] + name[cut + 1 :]
    wide = "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch for ch in name)
    return wide if wide != name else name + " "


def _layout_variant(rng: random.Random, layout: str) -> str:
    digits = {"1": "一", "2": "两", "3": "三", "4": "四", "5": "五", "6": "六"}
    how = rng.choice(["chinese", "bath", "wide"])
    if how == "chinese" and "房间" not in layout:
        return "".join(digits.get(ch, ch) for ch in layout)
    if how == "bath":
        return layout + "1卫"
    return "".join(chr(ord(ch) + 0xFEE0) if ch.isdigit() else ch for ch in layout)


def _fake_name(rng: random.Random, keys: list[str], known: set[str]) -> str:
    """A plausible community name that no export has: one name's start with another's ending."""
    while True:
        head, tail = rng.choice(keys), rng.choice(keys)
        if len(head) < 3 or len(tail) < 3:
            continue
        made = head[: rng.choice((2, 3))] + tail[-rng.choice((2, 3)) :]
        if names.community_key(made) not in known and names.community_key(made) != "":
            return made


def inject(
    kind: str, case: Case, rng: random.Random, truth: Truth, keys: list[str], known: set[str]
) -> dict[str, Any] | None:
    """Change `case.subject` by `kind`; returns the re-posted original for relisted_unit, else None."""
    s = case.subject
    area, asking = Decimal(s["area_m2"]), Decimal(s["asking_price"])
    if kind == "price_cut":
        # To 40–70 % of the market: the community's median unit price over all the data, times the area.
        factor = rng.uniform(0.40, 0.70)
        market = Decimal(str(truth.market)) * area if truth.market else asking
        s["asking_price"] = f"{market * Decimal(str(factor)):.2f}"
        case.detail = {"factor": round(factor, 3), "market_unit_price": truth.market}
    elif kind == "price_cut_own":
        # To 40–70 % of the listing's own asking price: harder, a dear flat cut stays near the median.
        factor = rng.uniform(0.40, 0.70)
        s["asking_price"] = f"{asking * Decimal(str(factor)):.2f}"
        case.detail = {"factor": round(factor, 3)}
    elif kind == "area_change":
        change = rng.uniform(0.10, 0.40) * rng.choice((-1, 1))
        s["area_m2"] = f"{area * Decimal(str(1 + change)):.2f}"
        case.detail = {"change": round(change, 3)}
    elif kind == "impossible_unit":
        s["unit_id"] = f"fake-{s['unit_id']}"
        ways = [w for w, ok in (("floors", truth.floors), ("rooms", truth.rooms), ("area", truth.area)) if ok]
        way = rng.choice(ways or ["rooms"])
        margins = IMPOSSIBLE_MARGINS["known" if truth.known >= IMPOSSIBLE_MIN_KNOWN else "thin"]
        floor_factor, floor_slack, extra_rooms, area_low, area_high = margins
        if way == "floors":
            total = max(truth.floors * floor_factor, truth.floors + floor_slack) + rng.randint(0, 6)
            s["total_floors"], s["floor"] = total, rng.randint(int(total * 0.6), total)
        elif way == "rooms":
            rooms = truth.rooms + extra_rooms + rng.randint(0, 1)
            layout = names.layout(s["layout"])
            halls = layout.halls if layout is not None and layout.halls is not None else 1
            s["layout"] = f"{rooms}室{halls}厅"
        else:
            new_area = Decimal(str(truth.area)) * Decimal(str(rng.uniform(area_low, area_high)))
            s["area_m2"] = f"{new_area:.2f}"
            s["asking_price"] = f"{asking * new_area / area:.2f}"  # the same unit price: only the unit is odd
        if rng.random() < 0.5:
            s["community"] = name_variant(rng, s["community"])
        case.detail = {"way": way, "community": s["community"], "known_homes": truth.known}
    elif kind == "fake_community":
        s["unit_id"] = f"fake-{s['unit_id']}"
        s["community"] = _fake_name(rng, keys, known)
        case.detail = {"community": s["community"]}
    elif kind == "relisted_unit":
        original = dict(s)
        original["listing_id"] = s["listing_id"] + "o"
        original["external_id"] = s["external_id"] + "-O"
        original["company"] = rng.choice(COMPANIES)
        original["photos"] = _photos(original["listing_id"])
        s["unit_id"] = f"repost-{s['unit_id']}"
        s["community"] = name_variant(rng, s["community"])
        s["layout"] = _layout_variant(rng, s["layout"])
        s["orientation"] = " ".join(reversed(names.aspects(s["orientation"])))
        s["building"] = rng.choice((s["building"], f"{s['building']}号楼", f"{s['building']}栋"))
        s["room"] = rng.choice((s["room"], f"{s['room']}室", f"{s['room']}号"))
        s["area_m2"] = f"{area * Decimal(str(1 + rng.uniform(-0.01, 0.01))):.2f}"
        factor = rng.choice((rng.uniform(0.80, 0.95), rng.uniform(1.05, 1.20)))
        s["asking_price"] = f"{asking * Decimal(str(factor)):.2f}"
        case.detail = {"price_factor": round(factor, 3), "community": s["community"], "layout": s["layout"]}
        return original
    elif kind == "photo_reused":
        case.detail = {}
    return None


# -- running it -------------------------------------------------------------------------------------


def evaluate(
    city: str,
    listings: tuple[Path, date | None],
    market: list[tuple[Path, date | None]],
    *,
    limit: int = 4000,
    seed: int = 7,
    rate: float = 0.5,
    dictionary: str = "units",
    workdir: Path | None = None,
    progress: bool = True,
) -> EvalResult:
    from checks.providers import ProviderSet
    from risk.runtime import Runtime
    from risk.schema import upgrade
    from risk.settings import Settings

    seconds: dict[str, float] = {}
    started = time.monotonic()
    rng = random.Random(seed)
    path, observed = listings
    rows, _report = read_export(path, city, observed)
    everything = list(rows)
    for extra, day in market:
        everything += read_export(extra, city, day)[0]
    eligible = [r for r in rows if _eligible(r)]
    rng.shuffle(eligible)
    test = eligible[:limit]
    held_out = {r.line for r in test}
    # An export may hold the same listing twice (the Shanghai scrape: one test listing in eight); its
    # twin would put the test listing into the statistics it is judged against.
    twins = {_twin(r) for r in test}
    truth = _truth(everything, test)
    keys = sorted({r.community_key for r in everything})
    known = set(keys)

    folder = workdir or Path(tempfile.mkdtemp(prefix="presign-eval-"))
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "eval.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    settings = Settings.from_env(
        {"PRESIGN_INSTANCE": str(folder)}, database_url=f"sqlite:///{database}", secret_key="eval"
    )
    rt = Runtime.build(settings)
    upgrade(rt.engine)
    try:
        from listings.market.importer import import_market_files

        test_file = path.name
        imported = import_market_files(
            rt,
            [listings, *market],
            city,
            progress=progress,
            keep=lambda source, row: not (source == test_file and row.line in held_out) and _twin(row) not in twins,
        )
        seconds["import"] = time.monotonic() - started

        cases = [Case(subject=_snapshot(city, row, i, rng), kind=None) for i, row in enumerate(test)]
        injected = round(len(cases) * rate)
        order = list(range(len(cases)))
        rng.shuffle(order)
        originals: list[dict[str, Any]] = []
        for n, index in enumerate(order[:injected]):
            cases[index].kind = KINDS[n % len(KINDS)]
        units = [_unit_record(c.subject, row) for c, row in zip(cases, test, strict=True)]
        for case, row in zip(cases, test, strict=True):
            if case.kind is not None:
                facts = truth[(row.community_key, row.room_type)]
                original = inject(case.kind, case, rng, facts, keys, known)
                if original is not None:
                    originals.append(original)
        # Photos are reused from listings sold before (training rows, not evaluated), so that no
        # evaluated listing is flagged for being the one a photo was taken from.
        spare = [r for r in eligible[limit:] if r.line not in held_out][: max(50, len(cases) // 10)]
        donors = [_snapshot(city, r, len(cases) + i, rng) | {"status": "sold"} for i, r in enumerate(spare)]
        stored = [c.subject for c in cases] + originals
        for case in cases:
            if case.kind == "photo_reused":
                donor = rng.choice(donors)
                case.subject["photos"] = case.subject["photos"][:2] + [donor["photos"][0]]
        if dictionary == "units":
            from checks.providers.importer import import_records

            import_records(rt, [{"kind": "unit", **u} for u in units], progress=progress)
        _store_listings(rt, stored + donors, progress)
        seconds["setup"] = time.monotonic() - started - seconds["import"]

        providers = ProviderSet.from_settings(rt.settings, rt.engine)
        _run(rt, providers, cases, progress)
        seconds["checks"] = time.monotonic() - started - seconds["import"] - seconds["setup"]
    finally:
        rt.close()
        if workdir is None:
            shutil.rmtree(folder, ignore_errors=True)  # a scratch database nobody asked to keep
    seconds["total"] = time.monotonic() - started
    split = {
        "listings_file": path.name,
        "market_files": [p.name for p, _d in market],
        "test_listings": len(test),
        "eligible_listings": len(eligible),
        "training_rows": sum(r.used for r in imported.reports),
        "twins_held_out": sum(1 for r in everything if _twin(r) in twins) - len(test),
        "communities": imported.built.communities,
        "seed": seed,
        "rate": rate,
        "injected": injected,
        "dictionary": dictionary,
        "database": str(database) if workdir is not None else "temporary (removed)",
    }
    return EvalResult(city=city, cases=cases, split=split, seconds=seconds)


def _unit_record(subject: dict[str, Any], row: MarketRow) -> dict[str, Any]:
    """The dictionary's record of a genuine test listing's unit: what the export says the flat is."""
    return {
        "unit_id": subject["unit_id"],
        "city": subject["city"],
        "district": row.district,
        "community_id": row.community_key,
        "community": row.community,
        "building": subject["building"],
        "unit": subject["unit"],
        "room": subject["room"],
        "floor": subject["floor"],
        "total_floors": row.total_floors,
        "area_m2": float(subject["area_m2"]),
        "layout": subject["layout"],
        "orientation": subject["orientation"] or None,
        "build_year": row.build_year,
        "as_of": datetime.now(UTC).isoformat(),
    }


def _store_listings(rt: Any, snapshots: list[dict[str, Any]], progress: bool) -> None:
    """Every evaluated listing (and each re-posted original) as an active listing, fingerprinted."""
    from checks.authenticity import fingerprint
    from listings.market.data import SqlMarketData, remember_many
    from listings.models import Listing, ListingPhoto
    from risk.db import transaction

    now = rt.clock.now()
    market = SqlMarketData(rt.engine, rt.clock)
    prints = []
    with transaction(rt.sessions) as session:
        for s in snapshots:
            row = Listing(
                id=s["listing_id"],
                company=s["company"],
                store_id="eval",
                created_by="eval",
                external_id=s["external_id"],
                unit_id=s["unit_id"],
                city=s["city"],
                community=s["community"][:200],
                building=s["building"][:50],
                unit=s["unit"][:50],
                room=s["room"][:50],
                floor=s["floor"],
                area_m2=Decimal(s["area_m2"]),
                layout=s["layout"][:50],
                orientation=s["orientation"][:50],
                build_year=s["build_year"] or 0,  # unknown in the export; the check reads the snapshot
                asking_price=Decimal(s["asking_price"]),
                seller_name="业主",
                seller_id_type="resident_id",
                seller_id_hash="0" * 64,
                seller_id_masked="******",
                status=s["status"],
                created_at=now,
                updated_at=now,
            )
            row.photos = [ListingPhoto(position=i, url=p["url"], sha256=p["sha256"]) for i, p in enumerate(s["photos"])]
            session.add(row)
    with _bar(progress) as bar:
        task = bar.add_task("fingerprints", total=len(snapshots)) if bar is not None else None
        for s in snapshots:
            found = fingerprint(s, None, market.community(s["city"], s["community"]))
            if found is not None:
                prints.append(found)
            if bar is not None and task is not None:
                bar.advance(task)
    with transaction(rt.sessions) as session:
        remember_many(session, prints, now)


def _run(rt: Any, providers: Any, cases: list[Case], progress: bool) -> None:
    from checks import registry
    from checks.base import CheckContext
    from listings.market.data import SqlMarketData
    from listings.market.own import SqlMarket

    check = registry.all_checks()["authenticity"]
    market_data = SqlMarketData(rt.engine, rt.clock)
    bar_context = _bar(progress)
    with bar_context as bar:
        task = bar.add_task("checking", total=len(cases)) if bar is not None else None
        for case in cases:
            ctx = CheckContext(
                stage="listing",
                company=case.subject["company"],
                subject=case.subject,
                providers=providers.for_kind,
                market=SqlMarket(rt.engine, case.subject["company"]),
                market_data=market_data,
                clock=rt.clock,
                id_hash=rt.id_hash,
            )
            began = time.perf_counter()
            outcome = check(ctx)
            case.seconds = time.perf_counter() - began
            case.codes = sorted({f.code for f in outcome.findings})
            case.price = outcome.evidence.get("community_prices") or {}
            case.profile = outcome.evidence.get("community_profile") or {}
            case.model = outcome.evidence.get("price_model") or {}
            case.price_by = sorted({f.evidence.get("which") or "" for f in outcome.findings
                                    if f.code == "LISTING_PRICE_ANOMALY"})  # fmt: skip
            case.history = [e for f in outcome.findings if f.evidence.get("which") == "history"
                            for e in f.evidence["earlier"]]  # fmt: skip
            if bar is not None and task is not None:
                bar.advance(task)


def _bar(enabled: bool) -> Any:
    from contextlib import nullcontext

    if not enabled:
        return nullcontext(None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description:>24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=Console(stderr=True), transient=False)


# -- reporting --------------------------------------------------------------------------------------


def report_lines(summary: dict[str, Any]) -> list[str]:
    s = summary
    split = s["split"]
    out = [
        f"## {s['city']}: {split['test_listings']} test listings from {split['listings_file']} "
        f"(seed {split['seed']}, {split['injected']} injected at rate {split['rate']}, "
        f"dictionary: {split['dictionary']})",
        "",
        "| injected anomaly | n | caught | recall | flagged at all | caught by |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for kind, r in s["recall"].items():
        by = ", ".join(f"{code} {n}" for code, n in sorted(r["by"].items()))
        out.append(f"| {kind} | {r['n']} | {r['caught']} | {_fmt(r['recall'])} | {_fmt(r['flagged_any'])} | {by} |")
    out += [
        "",
        "| finding code | flagged | expected | on untouched | on other anomalies | precision |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for code, p in s["precision"].items():
        out.append(
            f"| {code} | {p['flagged']} | {p['expected']} | {p['on_untouched']} | {p['on_other_anomalies']} "
            f"| {_fmt(p['precision'])} |"
        )
    u = s["untouched"]
    by_code = ", ".join(f"{k} {v}" for k, v in sorted(u["by_code"].items())) or "none"
    out += [
        "",
        f"untouched listings: {u['n']}, flagged {u['flagged']}, false-positive rate {_fmt(u['fpr'])} ({by_code})",
        "price judged at (untouched): " + ", ".join(f"{k} {v}" for k, v in sorted(s["untouched_price_levels"].items())),
        "price-cut recall by level: "
        + ", ".join(f"{k} {v['recall']} (n={v['n']})" for k, v in sorted(s["price_cut_by_level"].items())),
        "impossible-unit recall by community profile: "
        + ", ".join(f"{k} {v['recall']} (n={v['n']})" for k, v in s["impossible_by_profile"].items()),
        f"check latency: median {s['check_ms']['median']} ms, p95 {s['check_ms']['p95']} ms; "
        + "time: "
        + ", ".join(f"{k} {v} s" for k, v in s["seconds"].items()),
    ]
    return out


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def plot(result: EvalResult, path: Path) -> None:
    """Unit price against the yardstick's median: untouched and price-cut listings, flagged or not."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {
        ("untouched", False): ("untouched, clear", "#9e9e9e", "o", 6),
        ("untouched", True): ("untouched, flagged (false positive)", "#d32f2f", "x", 22),
        ("price_cut", True): ("price cut 40-70 %, flagged", "#1565c0", "o", 8),
        ("price_cut", False): ("price cut 40-70 %, missed", "#ff8f00", "^", 22),
    }
    points: dict[tuple[str, bool], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for case in result.cases:
        if case.kind not in (None, "price_cut") or not case.price.get("judged"):
            continue
        flagged = "LISTING_PRICE_ANOMALY" in case.codes
        key = ("untouched" if case.kind is None else "price_cut", flagged)
        xs, ys = points[key]
        xs.append(float(case.price["median"]))
        ys.append(float(case.price["unit_price"]))
    fig, ax = plt.subplots(figsize=(8, 6.5), dpi=110)
    for key, (label, color, marker, size) in groups.items():
        xs, ys = points.get(key, ([], []))
        if xs:
            ax.scatter(xs, ys, s=size, c=color, marker=marker, alpha=0.55 if key[0] == "untouched" else 0.8,
                       label=f"{label} ({len(xs)})", linewidths=0.8)  # fmt: skip
    every = [x for xs, _ys in points.values() for x in xs]
    if every:
        from checks.authenticity.prices import MARKET_FACTORS

        lo, hi = min(every) * 0.8, max(every) * 1.1
        line = [lo, hi]
        ax.plot(line, line, color="black", lw=0.8, label="= median")
        low, high = (float(f) for f in MARKET_FACTORS["community"])
        ax.plot(line, [v * low for v in line], "--", color="#2e7d32", lw=1, label=f"{low:g} x median (community low)")
        ax.plot(line, [v * high for v in line], ":", color="#2e7d32", lw=1, label=f"{high:g} x median (community high)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("market median unit price, yuan/m2 (community, else bizcircle or district)")
    ax.set_ylabel("listing unit price, yuan/m2")
    split = result.split
    ax.set_title(
        f"{CITY_EN.get(result.city, result.city)}: held-out listings vs their market "
        f"(seed {split['seed']}, {split['test_listings']} listings)"
    )
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def plot_residuals(result: EvalResult, path: Path) -> None:
    """The price model's residuals in robust standard deviations: untouched listings and the two price cuts,
    with the threshold below which a listing is flagged."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from checks.authenticity.prices import MODEL_Z

    groups = {"untouched": "#9e9e9e", "price_cut": "#1565c0", "price_cut_own": "#ff8f00"}
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for kind, color in groups.items():
        zs = [c.model["z"] for c in result.cases if (c.kind or "untouched") == kind and c.model.get("judged")]
        if zs:
            flagged = sum(1 for z in zs if z < -MODEL_Z)
            ax.hist([max(min(z, 8.0), -20.0) for z in zs], bins=70, range=(-20, 8), alpha=0.55, color=color,
                    label=f"{kind} ({len(zs)}, {flagged} below the threshold)")  # fmt: skip
    ax.axvline(-MODEL_Z, color="#d32f2f", lw=1.2, label=f"flagged below -{MODEL_Z:g}")
    ax.set_yscale("log")
    ax.set_xlabel("listing's log unit price minus the model's prediction, in robust standard deviations")
    ax.set_ylabel("listings")
    split = result.split
    ax.set_title(f"{CITY_EN.get(result.city, result.city)}: price model residuals (seed {split['seed']})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _file_and_date(text: str) -> tuple[Path, date | None]:
    """FILE or FILE@YYYY-MM-DD: the date a listing snapshot was taken (exports without a date column)."""
    name, _, day = text.rpartition("@") if "@" in text else (text, "", "")
    path = Path(name)
    if not path.is_file():
        raise click.BadParameter(f"{path} is not a file")
    try:
        return path, date.fromisoformat(day) if day else None
    except ValueError as exc:
        raise click.BadParameter(f"{day!r} is not a date (YYYY-MM-DD)") from exc


@click.command("eval-authenticity")
@click.option("--city", required=True, help="City of the exports (北京, 上海).")
@click.option(
    "--listings", "listings_arg", required=True, help="Listing export to draw test listings from: FILE[@DATE]."
)
@click.option("--market", "market_args", multiple=True, help="Further exports for the market data: FILE[@DATE].")
@click.option("--limit", default=4000, show_default=True, type=click.IntRange(10, 200_000), help="Test listings.")
@click.option("--seed", default=7, show_default=True, type=int, help="Seed of the draw and the injections.")
@click.option("--rate", default=0.5, show_default=True, type=click.FloatRange(0, 1), help="Share injected.")
@click.option("--dictionary", type=click.Choice(["units", "none"]), default="units", show_default=True,
              help="units: the dictionary has each genuine test unit; none: market data alone.")  # fmt: skip
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the price plot here.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the numbers here.")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the scratch database here (default: a temporary folder, removed afterwards).",
)
def eval_authenticity_command(
    city: str,
    listings_arg: str,
    market_args: tuple[str, ...],
    limit: int,
    seed: int,
    rate: float,
    dictionary: str,
    plot_path: Path | None,
    json_path: Path | None,
    workdir: Path | None,
) -> None:
    """Inject known anomalies into real listings, run the authenticity check, print precision and recall.

    Test listings are held out of the market data they are judged against. Runs in a scratch SQLite
    database; the instance's database is not touched.
    """
    if plot_path is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise click.ClickException(f"--plot needs matplotlib: pip install 'presign[eval]' ({exc})") from exc
    listings = _file_and_date(listings_arg)
    market = [_file_and_date(m) for m in market_args]
    result = evaluate(city, listings, market, limit=limit, seed=seed, rate=rate, dictionary=dictionary, workdir=workdir)
    summary = result.summary()
    for line in report_lines(summary):
        click.echo(line)
    if plot_path is not None:
        plot(result, plot_path)
        residuals = plot_path.with_name(f"{plot_path.stem}_residuals{plot_path.suffix}")
        plot_residuals(result, residuals)
        click.echo(f"plot: {plot_path}, {residuals}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(summary, ensure_ascii=False, indent=2))
        click.echo(f"numbers: {json_path}")
