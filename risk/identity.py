"""Identity document numbers: validated on the way in, kept only as a keyed hash and a masked form.

A resident ID (GB 11643) is 17 digits and a check digit (ISO 7064 MOD 11-2, `X` for 10). We check
the format, the province, the birth date and the check digit. We do not check that the county code
existed in the birth year: old genuine IDs carry codes since retired (see SOURCES.md, vector 14).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import date
from typing import Any

ID_TYPES = ("resident_id", "passport", "hk_macao_permit", "taiwan_permit", "foreign_permanent_id")

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
# GB/T 2260 province-level codes.
_PROVINCES = frozenset(
    "11 12 13 14 15 21 22 23 31 32 33 34 35 36 37 41 42 43 44 45 46 50 51 52 53 54 61 62 63 64 65 71 81 82".split()
)
_FORMATS = {
    # Passports: Chinese ones are a letter and 8 digits; foreign ones vary, so stay permissive.
    "passport": re.compile(r"^[A-Z0-9]{5,17}$"),
    # 港澳居民来往内地通行证: H or M and 8 (older: 10) digits.
    "hk_macao_permit": re.compile(r"^[HM]\d{8}(\d{2})?$"),
    # 台湾居民来往大陆通行证: 8 digits (older cards: 10 digits and a letter in brackets dropped).
    "taiwan_permit": re.compile(r"^\d{8}(\d{2})?$"),
    # 外国人永久居留身份证: 15 characters (2004 format) or 18 digits starting with 9 (2023 format).
    "foreign_permanent_id": re.compile(r"^([A-Z]{3}\d{12}|9\d{17})$"),
}


class InvalidIdNumber(ValueError):
    pass


def resident_check_digit(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def normalise(id_type: str, number: str) -> str:
    """Return the canonical form of a valid number, or raise InvalidIdNumber saying why."""
    if id_type not in ID_TYPES:
        raise InvalidIdNumber(f"unknown id_type {id_type!r}")
    value = number.strip().upper()
    if id_type != "resident_id":
        if not _FORMATS[id_type].match(value):
            raise InvalidIdNumber(f"not a valid {id_type} number")
        return value
    if not re.fullmatch(r"\d{17}[\dX]", value):
        raise InvalidIdNumber("a resident ID is 17 digits followed by a digit or X")
    if value[:2] not in _PROVINCES:
        raise InvalidIdNumber("unknown province code")
    try:
        born = date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise InvalidIdNumber("birth date is not a real date") from None
    if born.year < 1850:
        raise InvalidIdNumber("birth date is not a real date")
    if resident_check_digit(value[:17]) != value[17]:
        raise InvalidIdNumber("check digit does not match (GB 11643)")
    return value


def mask(id_type: str, canonical: str) -> str:
    """`110105********123X` for a resident ID; other types keep only their last 4."""
    if id_type == "resident_id" and len(canonical) == 18:
        return canonical[:6] + "*" * 8 + canonical[-4:]
    return "*" * max(len(canonical) - 4, 4) + canonical[-4:]


def keyed_hash(secret: str, id_type: str, number: str) -> str:
    """HMAC-SHA256 under the instance secret: comparable, but not reversible by enumerating IDs.

    Registry records are not re-validated (they hold old data), only trimmed and upper-cased, so a
    seller's canonical number and the registry's copy of it hash alike.
    """
    message = f"{id_type}:{number.strip().upper()}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def protect_party(id_hash: Callable[[str, str], str], person: dict[str, Any]) -> dict[str, str]:
    """A party of a listing or deal (ID number canonical, validated by the schema) as it is kept: the
    number only as its keyed hash and masked form."""
    return {
        "name": person["name"],
        "id_type": person["id_type"],
        "id_hash": id_hash(person["id_type"], person["id_number"]),
        "id_masked": mask(person["id_type"], person["id_number"]),
    }


# The lists of people in a registry record whose ID numbers are kept only hashed and masked.
PEOPLE_FIELDS = ("owners", "sellers", "buyers")


def mask_registry_number(number: str) -> str:
    """The masked form of a registry's number: the registry does not say which document a number is,
    and 18 characters is a resident ID's length."""
    canonical = number.strip().upper()
    return mask("resident_id" if len(canonical) == 18 else "other", canonical)


def protect_person(id_hash: Callable[[str, str], str], person: dict[str, Any]) -> dict[str, Any]:
    """A registry's person without the full ID number: `id_hashes` (the keyed hash under each ID type,
    since the registry does not say which it is, to compare with a seller's or buyer's `id_hash`) and
    `id_masked`. A person already protected comes back as it is."""
    number = person.get("id_number")
    if not isinstance(number, str) or not number.strip():
        return person
    kept = {k: v for k, v in person.items() if k != "id_number"}
    kept["id_hashes"] = {id_type: id_hash(id_type, number) for id_type in ID_TYPES}
    kept["id_masked"] = mask_registry_number(number)
    return kept


def protect_record(id_hash: Callable[[str, str], str], payload: dict[str, Any]) -> dict[str, Any]:
    """A registry record with every listed person's ID number replaced by its hashes and masked form."""
    out = dict(payload)
    for name in PEOPLE_FIELDS:
        people = out.get(name)
        if isinstance(people, list):
            out[name] = [protect_person(id_hash, p) if isinstance(p, dict) else p for p in people]
    return out


def same_person_number(id_hash: Callable[[str, str], str], person: dict[str, Any], id_type: str, hashed: str) -> bool:
    """Whether a registry's person (protected, or straight from an HTTP provider) has the ID number whose
    keyed hash under `id_type` is `hashed`."""
    hashes = person.get("id_hashes")
    if isinstance(hashes, dict):
        candidate = hashes.get(id_type)
        return isinstance(candidate, str) and hmac.compare_digest(candidate, hashed)
    number = person.get("id_number")
    return isinstance(number, str) and bool(number) and hmac.compare_digest(id_hash(id_type, number), hashed)
