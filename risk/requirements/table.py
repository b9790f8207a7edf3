"""The requirement table: versioned data beside the policy, validated on load as the policy is."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import marshmallow as ma

from checks.codes import CODES
from risk.reports.models import STAGES

TABLES = Path(__file__).parent.parent / "policy" / "requirements"
PARTIES = ("seller", "buyer", "brokerage")
PARTY_LABELS = {"seller": "卖方", "buyer": "买方", "brokerage": "经纪机构"}
STAGE_LABELS = {"listing": "挂牌", "deposit": "转定", "signing": "签约", "online_signing": "网签", "transfer": "过户"}


@dataclass(frozen=True)
class Row:
    code: str
    finding_code: str
    what: str
    who: str
    due_stage: str
    subject: str | None  # the evidence field naming which instance of the finding; None: the unit
    then_exception: bool  # once a reviewer records it, the finding stands as an accepted exception


class _RowSchema(ma.Schema):
    code = ma.fields.String(required=True, validate=ma.validate.Regexp(r"^[A-Z][A-Z0-9_]*$"))
    finding_code = ma.fields.String(required=True, validate=ma.validate.OneOf(list(CODES)))
    what = ma.fields.String(required=True, validate=ma.validate.Length(min=1))
    who = ma.fields.String(required=True, validate=ma.validate.OneOf(PARTIES))
    due_stage = ma.fields.String(required=True, validate=ma.validate.OneOf(STAGES))
    subject = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1))
    then_exception = ma.fields.Boolean(load_default=False)


class _TableSchema(ma.Schema):
    version = ma.fields.String(required=True, validate=ma.validate.Length(min=1))
    description = ma.fields.String(load_default="")
    requirements = ma.fields.List(ma.fields.Nested(_RowSchema), required=True)


class TableError(ValueError):
    pass


@dataclass(frozen=True)
class Table:
    version: str
    rows: tuple[Row, ...]

    @classmethod
    def load(cls, path: Path) -> Table:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise TableError(f"{path.name}: not JSON ({exc})") from exc
        try:
            data = _TableSchema().load(raw)
        except ma.ValidationError as exc:
            raise TableError(f"{path.name}: {_where(exc.messages, raw)}") from exc
        table = cls(data["version"], tuple(Row(**row) for row in data["requirements"]))
        table._validate(path.name)
        return table

    def _validate(self, name: str) -> None:
        for field in ("code", "finding_code"):
            seen: set[str] = set()
            for number, row in enumerate(self.rows):
                value = getattr(row, field)
                if value in seen:
                    raise TableError(f"{name}: requirement row {number} ({row.code}), field {field}: {value} repeats")
                seen.add(value)

    def for_finding(self, code: str) -> Row | None:
        return next((r for r in self.rows if r.finding_code == code), None)

    def by_code(self, code: str) -> Row | None:
        return next((r for r in self.rows if r.code == code), None)


def _where(messages: Any, raw: Any) -> str:
    """marshmallow's nested messages as `requirement row N (CODE), field F: message` lines."""
    rows = messages.get("requirements") if isinstance(messages, dict) else None
    if not isinstance(rows, dict) or not all(isinstance(k, int) for k in rows):
        return str(messages)
    raw_rows = raw.get("requirements") if isinstance(raw, dict) else None
    parts = []
    for number, fields in sorted(rows.items()):
        row = raw_rows[number] if isinstance(raw_rows, list) and number < len(raw_rows) else None
        code = row.get("code") if isinstance(row, dict) else None
        named = f"requirement row {number}" + (f" ({code})" if code else "")
        if not isinstance(fields, dict):
            parts.append(f"{named}: {fields}")
            continue
        for field, problems in fields.items():
            parts.append(f"{named}, field {field}: {' '.join(map(str, problems))}")
    return "; ".join(parts)


@lru_cache(maxsize=1)
def current_table() -> Table:
    """The newest version on disk (file names sort by version)."""
    files = sorted(TABLES.glob("*.json"))
    if not files:
        raise TableError("no requirement tables found")
    return Table.load(files[-1])
