"""Idempotency-Key records: scoped to the API key and the endpoint, kept at least 24 hours.

A creating POST that carries `Idempotency-Key` runs at most once per (API key, endpoint, key). The
record is inserted, as a reservation, in the same transaction as whatever the request creates and
before it: a concurrent duplicate then waits on (PostgreSQL) or is refused by (SQLite) the unique
constraint, rolls back, and answers from the winner's record. A repeat with the same request
replays the stored status, body and Location; with another request it is 409
`idempotency_key_reused`. Failed requests store nothing, so the key can be retried.

Endpoints opt in with `risk.web.boundary.endpoint(..., idempotent=True)`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import Response, jsonify, request
from sqlalchemy import JSON, Integer, String, UniqueConstraint, delete, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Mapped, Session, mapped_column

from risk.db import Base, UTCDateTime
from risk.errors import BadRequest, Conflict, IdempotencyKeyReused

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 200
# A record answers repeats for this long; `purge_expired` removes it afterwards.
RETENTION = timedelta(hours=24)
# Response headers a replay must repeat.
REPLAYED_HEADERS = ("Location",)
_KEY = re.compile(rf"^[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}$")


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("client_id", "endpoint", "key", name="uq_idempotency_scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(40))
    endpoint: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[dict[str, Any]] = mapped_column(JSON)
    response_headers: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


@dataclass(frozen=True)
class Scope:
    client_id: str
    endpoint: str  # method and route rule: "POST /api/v1/listings/<listing_id>/reports"
    key: str


def fingerprint(secret_key: str, method: str, path: str, body: Any) -> str:
    """HMAC-SHA256 of the request's canonical JSON (keys sorted, no spaces), its concrete path included,
    under the instance secret: bodies hold ID numbers, and a plain hash of a body could be matched by
    hashing guessed ID numbers."""
    canonical = json.dumps(
        {"method": method, "path": path, "body": body}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    key = hmac.new(secret_key.encode("utf-8"), b"presign idempotency fingerprint", hashlib.sha256).digest()
    return hmac.new(key, canonical.encode("ascii"), hashlib.sha256).hexdigest()


def find(session: Session, scope: Scope) -> IdempotencyRecord | None:
    return session.scalars(
        select(IdempotencyRecord).where(
            IdempotencyRecord.client_id == scope.client_id,
            IdempotencyRecord.endpoint == scope.endpoint,
            IdempotencyRecord.key == scope.key,
        )
    ).first()


def reserve(session: Session, scope: Scope, request_hash: str, now: datetime) -> IdempotencyRecord:
    """Insert the scope's record before the work; raises IntegrityError if another request holds it."""
    record = IdempotencyRecord(
        client_id=scope.client_id,
        endpoint=scope.endpoint,
        key=scope.key,
        request_hash=request_hash,
        status_code=0,
        response_body={},
        response_headers={},
        created_at=now,
    )
    session.add(record)
    session.flush()
    return record


def remember(record: IdempotencyRecord, response: Response) -> None:
    record.status_code = response.status_code
    record.response_body = response.get_json()
    record.response_headers = {name: response.headers[name] for name in REPLAYED_HEADERS if name in response.headers}


def replay(record: IdempotencyRecord, request_hash: str) -> Response:
    """The stored answer for a repeat of the same request; 409 for another request under the same key."""
    if record.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request",
            fields={HEADER: ["already used with a different request"]},
        )
    response = jsonify(record.response_body)
    response.status_code = record.status_code
    for name, value in (record.response_headers or {}).items():
        response.headers[name] = value
    response.headers["Idempotent-Replayed"] = "true"
    return response


def purge_expired(session: Session, now: datetime) -> int:
    """Delete records older than RETENTION (for a periodic maintenance job); returns how many."""
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - RETENTION))
    return int(getattr(result, "rowcount", 0) or 0)


def request_key() -> str | None:
    """The request's Idempotency-Key header, checked; None when absent."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not _KEY.match(key):
        raise BadRequest(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            fields={HEADER: [f"1 to {MAX_KEY_LENGTH} printable ASCII characters"]},
        )
    return key


def run_once(client_id: str, call: Callable[[], Response]) -> Response:
    """Run a creating request under its Idempotency-Key (if any) and commit it with its record."""
    from risk.runtime import current
    from risk.web.parsing import json_body
    from risk.web.transaction import commit, db, rollback

    key = request_key()
    if key is None:
        response = call()
        commit()
        return response
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    scope = Scope(client_id=client_id, endpoint=f"{request.method} {rule}", key=key)
    rt = current()
    request_hash = fingerprint(rt.settings.secret_key, request.method, request.path, json_body())
    now = rt.clock.now()
    session = db()
    existing = find(session, scope)
    if existing is not None:
        if existing.created_at > now - RETENTION:
            return replay(existing, request_hash)
        session.delete(existing)
        session.flush()
    try:
        record = reserve(session, scope, request_hash, now)
        response = call()
        if response.status_code >= 300:
            # Only successes are kept: a failed attempt leaves the key free for a retry.
            rollback()
            return response
        remember(record, response)
        commit()
    except (IntegrityError, OperationalError, Conflict):
        # Either a concurrent duplicate won the race (answer from its record), or this is a real
        # conflict or outage (no record then: re-raise it).
        rollback()
        winner = find(db(), scope)
        if winner is None:
            raise
        return replay(winner, request_hash)
    return response
