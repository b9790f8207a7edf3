"""A report's digest: hex SHA-256 of its canonical JSON (keys sorted, no spaces, UTF-8, no `digest`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json({k: v for k, v in body.items() if k != "digest"})).hexdigest()
