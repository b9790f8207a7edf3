"""Community names, layouts and orientations as typed by people, reduced to comparable keys.

The same community is written 碧云新天地（一期）, 碧云新天地(一期) and 碧云新天地 一期; the same flat
2室1厅, 两室一厅 and ２室１厅; the same aspect 南北, 南 北 and 朝南北. Keys compare equal for these;
`similarity` scores what is left (a dropped phase, a typo) for fuzzy matching.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from rapidfuzz import fuzz

# Characters that carry no meaning in a community name: brackets, separators, quotes.
_NOISE = re.compile(r"[\s()\[\]{}<>【】《》〈〉「」『』\"'“”‘’·•・.,，。、:：;；/\\|_\-—–~～#＃*]+")
# A trailing 小区 is usually left off (和平里小区 = 和平里); other suffixes (花园, 家园, 公寓) name the place.
_SUFFIXES = ("小区",)
JUNK_NAMES = frozenset({"失效", "无效", "暂无", "未知", "其他", "null", "none"})
_CN_DIGITS = {
    "零": 0,
    "〇": 0,
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}
_LAYOUT = re.compile(r"(\d+)\s*[室房](?!间)\s*(?:(\d+)\s*客?厅)?")
_ROOM_TYPE = re.compile(r"(\d+)\s*房间")
# Two-character aspects first, so that 东南 is south-east, not east and south.
_ASPECTS = ("东南", "西南", "东北", "西北", "东", "南", "西", "北")


def plain(text: object) -> str:
    """NFKC (full-width to half-width), no spaces, case-folded."""
    if text is None:
        return ""
    return "".join(unicodedata.normalize("NFKC", str(text)).split()).casefold()


def community_key(name: object) -> str:
    """The key a community is stored and looked up under ('' for a name that names nothing)."""
    text = _NOISE.sub("", unicodedata.normalize("NFKC", str(name or "")).casefold())
    for suffix in _SUFFIXES:
        if text.endswith(suffix) and len(text) > len(suffix) + 1:
            text = text[: -len(suffix)]
    return "" if text in JUNK_NAMES else text


def grams(key: str) -> set[str]:
    """Character bigrams of a key (the key itself when shorter): the fuzzy index's terms."""
    if len(key) < 3:
        return {key} if key else set()
    return {key[i : i + 2] for i in range(len(key) - 1)}


def similarity(a: str, b: str) -> float:
    """0–100: how alike two community keys are (normalised edit distance)."""
    return float(fuzz.ratio(a, b))


@dataclass(frozen=True)
class Layout:
    rooms: int
    halls: int | None  # None when the layout does not say (房间 layouts never do)
    room_type: bool  # `N房间`: apartments and 商住, priced apart from homes

    @property
    def key(self) -> str:
        return f"{self.rooms}房间" if self.room_type else f"{self.rooms}室{self.halls or 0}厅"


def layout(text: object) -> Layout | None:
    """2室1厅, 2室1厅1厨1卫, 两室一厅, ２室１厅 -> rooms and halls; 3房间1卫 -> a room-type layout."""
    value = _arabic(plain(text))
    match = _ROOM_TYPE.search(value)
    if match:
        return Layout(int(match.group(1)), None, True)
    match = _LAYOUT.search(value)
    if match:
        halls = match.group(2)
        return Layout(int(match.group(1)), int(halls) if halls is not None else None, False)
    return None


def _arabic(text: str) -> str:
    # Only single Chinese digits before 室/厅/房: 两室一厅 -> 2室1厅.
    return re.sub(r"[零〇一二两三四五六七八九](?=客?[室厅房卫])", lambda m: str(_CN_DIGITS[m.group(0)]), text)


def aspects(text: object) -> list[str]:
    """The aspects a text names, in its order: 南 西南 -> ['南', '西南']; 朝 alone names none."""
    value = unicodedata.normalize("NFKC", str(text or "")).replace("朝", " ")
    found: list[str] = []
    for piece in value.split():
        i = 0
        while i < len(piece):
            for aspect in _ASPECTS:
                if piece.startswith(aspect, i):
                    found.append(aspect)
                    i += len(aspect)
                    break
            else:
                i += 1
    return found


def orientation(text: object) -> str | None:
    """南 北, 北南, 朝南北 -> '北+南'; a bare 朝 or nothing -> None. Sorted, so order is not a difference;
    joined with '+', so that east and south (东+南) is not south-east (东南)."""
    found = aspects(text)
    return "+".join(sorted(set(found))) if found else None


# A phase (二期), zone (B区, 北区) or group (五组团) names one part of an estate: another part is another place.
_SUBDIVISION = re.compile(r"([0-9一二三四五六七八九十]+)(期|组团)|([a-z]|[东南西北中])区")


def subdivisions(key: str) -> dict[str, str]:
    """The phase, zone and group numbers of a community key: 天通苑北区五组团 -> {'区': '北', '组团': '5'}."""
    found: dict[str, str] = {}
    for number, kind, zone in _SUBDIVISION.findall(key):
        if zone:
            found["区"] = zone
        else:
            found[kind] = str(_number(number))
    return found


def same_place(a: str, b: str) -> bool:
    """False when two community keys name different phases, zones or groups (both naming one)."""
    mine, theirs = subdivisions(a), subdivisions(b)
    return all(theirs[kind] == value for kind, value in mine.items() if kind in theirs)


def _number(text: str) -> int:
    if text.isdigit():
        return int(text)
    if text == "十":
        return 10
    tens, _, ones = text.partition("十")
    if "十" in text:
        return (_CN_DIGITS[tens] if tens else 1) * 10 + (_CN_DIGITS[ones] if ones else 0)
    return _CN_DIGITS.get(text, 0)


def district_key(name: object) -> str:
    """东城 and 东城区 alike; 上海周边 stays."""
    text = plain(name)
    return text[:-1] if len(text) > 2 and text[-1] in "区县" else text


def number_key(text: object) -> str:
    """The digits of a building or room designation: 3号楼 -> '3', 6-602 -> '6602'; '' when none."""
    return "".join(ch for ch in plain(text) if ch.isdigit())
