"""Writing audit events: one call, in the caller's transaction, for every action the record keeps.

    from risk.audit.events import Actor, SYSTEM, record

    record(session, company=report.company, type="report.completed", actor=SYSTEM,
           subject_kind="report", subject_id=report.id, data={...}, at=rt.clock.now())

The event is durable when the caller's transaction commits, and rolled back with it. It is written
unchained: the chainer (`risk.audit.chain.chain_pending`, run by every worker's sweeper) gives it its
`seq`, `prev_hash` and `hash` within seconds, so writing one never waits for a chain lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from risk.audit.models import AuditEvent
from risk.auth.access import authenticated_client
from risk.auth.models import ApiClient

TYPES = (
    "gate.answered",
    "override.requested",
    "override.approved",
    "override.declined",
    "report.requested",
    "report.completed",
    "listing.changed",
    "deal.changed",
    "requirement.satisfied",
    "key.created",
    "key.revoked",
    "key.rotated",
    "webhook_secret.rotated",
)
SUBJECT_KINDS = ("listing", "deal", "report", "override", "requirement", "client")
# Built once and given its values as parameters: building an insert per event cost more than running it.
_INSERT = insert(cast(Table, AuditEvent.__table__))


@dataclass(frozen=True)
class Actor:
    """Who caused an event: an API client, or the system (workers, sweeps, the CLI)."""

    client_id: str | None
    role: str
    name: str

    @classmethod
    def of(cls, client: ApiClient) -> Actor:
        return cls(client_id=client.id, role=client.role, name=client.name)

    def to_dict(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "role": self.role, "name": self.name}


SYSTEM = Actor(client_id=None, role="system", name="presign")


def actor_for(session: Session, client_id: str | None) -> Actor:
    """The actor behind a `requested_by`-style client id: that client, or SYSTEM for work the system
    started (re-checks, the bench, the CLI name themselves with a word, not a client id)."""
    if not client_id or not client_id.startswith("cli_"):
        return SYSTEM
    client = authenticated_client()  # the caller's own client, already read: no second read
    if client is None or client.id != client_id:
        client = session.get(ApiClient, client_id)
    return SYSTEM if client is None else Actor.of(client)


def record(
    session: Session,
    *,
    company: str,
    type: str,
    actor: Actor,
    subject_kind: str,
    subject_id: str,
    data: dict[str, Any],
    at: datetime,
) -> None:
    """Write one unchained audit event in `session`'s transaction (the caller commits).

    `data` is JSON-ready and never holds a full ID number, an API key or a webhook secret (refused
    with ValueError: an event can never be changed or deleted afterwards)."""
    if type not in TYPES:
        raise ValueError(f"unknown audit event type {type!r}")
    if subject_kind not in SUBJECT_KINDS:
        raise ValueError(f"unknown audit subject kind {subject_kind!r}")
    if at.tzinfo is None:
        raise ValueError("an audit event's time must be aware")
    leak = secret_in(data)
    if leak is not None:
        raise ValueError(f"audit event data must not hold a secret or a full ID number (at {leak})")
    session.execute(
        _INSERT,
        {
            "company": company,
            "type": type,
            "at": at,
            "actor_client_id": actor.client_id,
            "actor_role": actor.role,
            "actor_name": actor.name,
            "subject_kind": subject_kind,
            "subject_id": subject_id,
            "data": data,
        },
    )


# A resident ID in full (GB 11643: 17 digits and a check character); other ID types cannot be told
# from ordinary text, so callers put only masked numbers into events.
_FULL_RESIDENT_ID = re.compile(r"\d{17}[\dX]")
_SECRET_PREFIXES = ("psk_", "whsec_")
_SHOWN_PREFIX = 16  # a key's first characters identify it (as `presign keys list` shows them) and reveal nothing


def secret_in(value: Any, path: str = "data") -> str | None:
    """The path of the first string in `value` that is an API key, a webhook secret or a full
    resident ID number; None when there is none."""
    if isinstance(value, str):
        if (value.startswith(_SECRET_PREFIXES) and len(value) > _SHOWN_PREFIX) or _FULL_RESIDENT_ID.fullmatch(value):
            return path
        return None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = secret_in(item, f"{path}.{key}")
        if found is not None:
            return found
    return None


def changed_fields(before: dict[str, Any], after: dict[str, Any], *, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of `after` (a public body, ID numbers masked) whose value differs from `before`'s."""
    return {
        name: value
        for name, value in after.items()
        if name not in ignore and (name not in before or before[name] != value)
    }
