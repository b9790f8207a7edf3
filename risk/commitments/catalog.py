"""The catalog of commitments: one data file per city, versions with inclusive Asia/Shanghai effective
dates, validated on load (known codes, ordered non-overlapping versions)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

import marshmallow as ma

_FILES = Path(__file__).parent / "catalog"
CODES = ("SEIZURE_ADVANCE", "FEE_ARREARS_ADVANCE", "LEAK_WARRANTY", "GENUINE_LISTING")


class CatalogError(ValueError):
    pass


@dataclass(frozen=True)
class Version:
    code: str
    title: str
    version: str
    effective_from: date
    effective_until: date | None
    terms: str
    params: dict[str, Any]

    def in_force_on(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_until is None or day <= self.effective_until)


class _VersionSchema(ma.Schema):
    version = ma.fields.String(required=True)
    effective_from = ma.fields.Date(required=True)
    effective_until = ma.fields.Date(required=True, allow_none=True)
    terms = ma.fields.String(required=True, validate=ma.validate.Length(min=1))
    params = ma.fields.Dict(load_default=dict)


class _CommitmentSchema(ma.Schema):
    code = ma.fields.String(required=True, validate=ma.validate.OneOf(CODES))
    title = ma.fields.String(required=True)
    versions = ma.fields.List(ma.fields.Nested(_VersionSchema), required=True, validate=ma.validate.Length(min=1))


class _CitySchema(ma.Schema):
    city = ma.fields.String(required=True)
    source = ma.fields.String(load_default="")
    commitments = ma.fields.List(ma.fields.Nested(_CommitmentSchema), required=True)


class Catalog:
    def __init__(self, by_city: dict[str, dict[str, list[Version]]]) -> None:
        self.by_city = by_city

    @classmethod
    def load(cls, folder: Path = _FILES) -> Catalog:
        by_city: dict[str, dict[str, list[Version]]] = {}
        for path in sorted(folder.glob("*.json")):
            try:
                data = _CitySchema().load(json.loads(path.read_text(encoding="utf-8")))
            except ma.ValidationError as exc:
                raise CatalogError(f"{path.name}: {exc.messages}") from exc
            if data["city"] in by_city:
                raise CatalogError(f"{path.name}: city {data['city']} has two catalog files")
            city: dict[str, list[Version]] = {}
            for item in data["commitments"]:
                if item["code"] in city:
                    raise CatalogError(f"{path.name}: {item['code']} listed twice")
                versions = sorted(
                    (Version(code=item["code"], title=item["title"], **v) for v in item["versions"]),
                    key=lambda v: v.effective_from,
                )
                _check_ordered(path.name, versions)
                city[item["code"]] = versions
            by_city[data["city"]] = city
        return cls(by_city)

    def version_on(self, city: str, code: str, day: date) -> Version | None:
        """The version of `code` in force in `city` on the local date `day`, or None."""
        for version in self.by_city.get(city, {}).get(code, []):
            if version.in_force_on(day):
                return version
        return None


def _check_ordered(name: str, versions: list[Version]) -> None:
    for v in versions:
        if v.effective_until is not None and v.effective_until < v.effective_from:
            raise CatalogError(f"{name}: {v.code} {v.version} ends before it starts")
    for earlier, later in zip(versions, versions[1:], strict=False):
        if earlier.effective_until is None or earlier.effective_until >= later.effective_from:
            raise CatalogError(f"{name}: {earlier.code} versions {earlier.version} and {later.version} overlap")


@lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    return Catalog.load()
