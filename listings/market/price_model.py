"""What a flat should cost in its community: a robust regression of log unit price on the flat's features.

`presign import-market` fits it (`fit_city`) and stores it with the market data: the slopes and the
residual spread per bizcircle (else district, else the whole city, whichever first has enough homes),
and per community an offset from that level and a spread of its own, both shrunk towards the level's
by the community's number of homes, so a thin community borrows from its bizcircle; and the community's
homes themselves (features and residuals), so a listing is compared with its nearest neighbours (`local`)
where the community's buildings differ more than its level's slopes explain. Judging a listing
(`predict`) is arithmetic on those stored numbers: nothing is fitted per report.
"""

from __future__ import annotations

import heapq
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from listings import names

FEATURES = ("intercept", "log_area", "rooms", "floor_level", "log_total_floors", "age_decades", "south", "north_south")
MIN_FIT = 40  # homes a level needs before its own slopes are fitted
SHRINK = 5.0  # a community's homes weigh against this many of its level's (empirical-Bayes style prior)
HUBER_SCALE = 0.1  # log-price residual beyond which a home counts linearly (robust to bait and typos)
RIDGE = 3.0  # pulls slopes the level's homes cannot tell apart (collinear, constant) to zero
MIN_SPREAD = 0.04  # no spread is believed tighter than this: a handful of alike homes under-state it
LEVELS = ("bizcircle", "district", "city")
MAX_NEIGHBOURS = 400  # homes a community keeps for the local comparison
NEIGHBOURS = 5  # the most alike homes a flat is compared with
LOCAL_SHRINK = 1.0  # the neighbours' median weighs k / (k + this) against the community's offset
# What one unit of difference is, per feature (log area, rooms, floor third, log total floors, decades,
# south, south-and-north): the same building's flats (height, age) are the nearest.
NEIGHBOUR_SCALES = (0.15, 1.0, 1.0, 0.1, 0.2, 1.0, 1.0)


@dataclass(frozen=True)
class Home:
    """One priced home, as fitted or judged."""

    area: float
    rooms: int | None
    floor_level: float | None  # -1 low, 0 middle, 1 high third of its building
    total_floors: int | None
    build_year: int | None
    orientation: str | None
    unit_price: float = 0.0


def floor_third(text: str | None) -> float | None:
    """An export's 低/中/高 floor (低区, 中楼层, 高楼层 …) as the model's floor level."""
    return {"低": -1.0, "中": 0.0, "高": 1.0}.get((text or "")[:1])


def floor_level(floor: Any, total: Any) -> float | None:
    """A listing's floor as the exports have it: the low, middle or high third of its building."""
    if not isinstance(floor, int) or not isinstance(total, int) or total <= 0:
        return None
    share = floor / total
    return -1.0 if share <= 1 / 3 else (1.0 if share > 2 / 3 else 0.0)


def _raw(home: Home) -> list[float | None]:
    aspects = set(names.aspects(home.orientation))
    return [
        1.0,
        math.log(home.area),
        float(min(home.rooms, 6)) if home.rooms else None,
        home.floor_level,
        math.log(home.total_floors) if home.total_floors else None,
        (2020 - home.build_year) / 10 if home.build_year else None,
        1.0 if aspects & {"南", "东南", "西南"} else 0.0,
        1.0 if "南" in aspects and "北" in aspects else 0.0,
    ]


def features(home: Home) -> dict[str, float | None]:
    """The features a home is judged on, as read from it (None: not known)."""
    return dict(zip(FEATURES[1:], _raw(home)[1:], strict=True))


def row(home: Home, level: dict[str, Any]) -> list[float]:
    """The features of a home centred on its level's typical values (a value it lacks is the typical one),
    each held within the range the level's homes span: the model does not extrapolate."""
    fill, low, high = level["fill"], level["low"], level["high"]
    out = [1.0]
    for i, f in enumerate(_raw(home)[1:], start=1):
        out.append(min(max(f, low[i]), high[i]) - fill[i] if f is not None else 0.0)
    return out


def fit_level(homes: Sequence[Home]) -> dict[str, Any]:
    """The slopes (Huber loss), typical feature values and residual spread of one level's homes."""
    import numpy as np  # fitting only (`import-market`): a worker judging listings never loads them
    from scipy.optimize import least_squares

    raws = [_raw(h) for h in homes]
    columns: list[list[float]] = [[v for r in raws if (v := r[i]) is not None] or [0.0] for i in range(len(FEATURES))]
    level: dict[str, Any] = {
        "features": list(FEATURES),
        "fill": [float(np.median(c)) for c in columns],
        "low": [float(np.percentile(c, 1)) for c in columns],
        "high": [float(np.percentile(c, 99)) for c in columns],
        "n": len(homes),
    }
    x = np.array([row(h, level) for h in homes])
    y = np.log([h.unit_price for h in homes])
    penalty = math.sqrt(RIDGE) * np.eye(len(FEATURES))[1:]
    design = np.vstack([x, penalty])
    target = np.concatenate([y, np.zeros(len(FEATURES) - 1)])
    start = np.linalg.lstsq(design, target, rcond=None)[0]
    fitted = least_squares(
        lambda b: design @ b - target, start, jac=lambda b: design, loss="huber", f_scale=HUBER_SCALE
    )
    level["coef"] = [float(c) for c in fitted.x]
    level["spread"] = _spread(y - x @ fitted.x)
    return level


def _spread(residuals: Any) -> float:
    """A robust standard deviation (1.4826 × the median absolute deviation)."""
    import numpy as np

    if len(residuals) == 0:
        return MIN_SPREAD
    deviation = float(np.median(np.abs(residuals - np.median(residuals))))
    return max(1.4826 * deviation, MIN_SPREAD)


def predict_log(level: dict[str, Any], home: Home) -> float:
    return math.fsum(c * x for c, x in zip(level["coef"], row(home, level), strict=True))


def fit_community(level: dict[str, Any], homes: Sequence[Home], where: tuple[str, str, str]) -> dict[str, Any]:
    """The community's offset from its level and its spread, both shrunk towards the level's."""
    import numpy as np

    residuals = np.array([math.log(h.unit_price) - predict_log(level, h) for h in homes])
    n = len(homes)
    weight = n / (n + SHRINK)
    offset = float(np.median(residuals)) * weight if n else 0.0
    own = _spread(residuals - offset) if n >= 3 else level["spread"]
    spread = math.sqrt(weight * own**2 + (1 - weight) * level["spread"] ** 2)
    neighbours = [_neighbour(level, h, float(r)) for h, r in zip(homes, residuals, strict=True)][:MAX_NEIGHBOURS]
    local = _local_spread(neighbours)
    return {"level": where[0], "district": where[1], "name": where[2], "offset": offset, "spread": spread, "n": n,
            "homes": neighbours, "local_spread": local}  # fmt: skip


def _neighbour(level: dict[str, Any], home: Home, residual: float) -> list[float]:
    """A home as a neighbour is stored: its centred features in NEIGHBOUR_SCALES, its residual from the level."""
    return _scaled(level, home, 3) + [round(residual, 4)]


def _scaled(level: dict[str, Any], home: Home, digits: int | None = None) -> list[float]:
    scaled = [x / s for x, s in zip(row(home, level)[1:], NEIGHBOUR_SCALES, strict=True)]
    return [round(x, digits) for x in scaled] if digits is not None else scaled


def _local_spread(neighbours: list[list[float]]) -> float | None:
    """How far the community's homes sit from their own nearest neighbours (each left out of its own
    comparison): the spread a local comparison is judged with; None when too few homes to tell."""
    import numpy as np

    if len(neighbours) < 3:
        return None
    table = np.array(neighbours)
    scaled = table[:, :-1]
    distance = ((scaled[:, None, :] - scaled[None, :, :]) ** 2).sum(axis=2)
    np.fill_diagonal(distance, np.inf)
    nearest = np.argsort(distance, axis=1, kind="stable")[:, : min(NEIGHBOURS, len(neighbours) - 1)]
    return _spread(table[:, -1] - np.median(table[nearest, -1], axis=1))


def local(community: dict[str, Any], level: dict[str, Any], home: Home) -> tuple[float, float, int] | None:
    """(offset, spread, homes compared) of a home against its nearest neighbours in the community: the
    median residual of the NEIGHBOURS most alike, shrunk towards the community's offset; None when the
    community keeps too few homes to measure how far neighbours differ."""
    stored, local_spread = community.get("homes") or [], community.get("local_spread")
    if local_spread is None or not stored:
        return None
    mine = _scaled(level, home)
    near = heapq.nsmallest(NEIGHBOURS, ((_distance(mine, h), h[-1]) for h in stored))
    k = len(near)
    weight = k / (k + LOCAL_SHRINK)
    offset = weight * statistics.median(r for _d, r in near) + (1 - weight) * community["offset"]
    trust = len(stored) / (len(stored) + SHRINK)
    spread = math.sqrt(trust * local_spread**2 + (1 - trust) * community["spread"] ** 2)
    return offset, spread, k


def _distance(mine: Sequence[float], other: Sequence[float]) -> float:
    return sum((a - b) ** 2 for a, b in zip(mine, other, strict=False))


def fit_city(
    communities: Iterable[tuple[str, str | None, str | None, list[Home]]], city: str
) -> tuple[dict[tuple[str, str, str], dict[str, Any]], dict[str, dict[str, Any]]]:
    """Fit every level with at least MIN_FIT homes, then each community against its finest fitted level.

    `communities`: (key, district key, bizcircle, homes). Returns (level models by (level, district, name),
    community models by key)."""
    groups: dict[tuple[str, str, str], list[Home]] = {}
    placed = []
    for key, district, bizcircle, homes in communities:
        where = []
        if district and bizcircle:
            where.append(("bizcircle", district, bizcircle))
        if district:
            where.append(("district", district, district))
        where.append(("city", "", city))
        for level in where:
            groups.setdefault(level, []).extend(homes)
        placed.append((key, where, homes))
    levels = {level: fit_level(homes) for level, homes in groups.items() if len(homes) >= MIN_FIT}
    models = {}
    for key, where, homes in placed:
        chosen = next((level for level in where if level in levels), None)
        if chosen is not None and homes:
            models[key] = fit_community(levels[chosen], homes, chosen)
    return levels, models


def judge(level: dict[str, Any], community: dict[str, Any], home: Home) -> tuple[float, float]:
    """(the predicted log unit price, its spread) of a home of this community."""
    return predict_log(level, home) + community["offset"], community["spread"]
