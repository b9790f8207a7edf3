"""The hash chain: each company's events in one line, `seq` from 1, each hash over the one before.

`hash` is the hex SHA-256 of the event's canonical JSON (keys sorted, no spaces, UTF-8) exactly as
the API returns it, without `hash`; `prev_hash` is the previous event's `hash` (64 zeros for the
first). Events are written unchained on the request path; `chain_pending` chains them later under a
per-company lock, so a writer never waits for the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from risk.audit.models import AuditEvent
from risk.db import begin_write

GENESIS = "0" * 64
BATCH = 500
# pg_advisory_xact_lock's first key: the audit chains' own namespace ("AUDT").
_PG_LOCK_SPACE = 0x4155_4454
_EVENTS = cast(Table, AuditEvent.__table__)
_SET_LINK = (
    update(_EVENTS)
    .where(_EVENTS.c.id == bindparam("b_id"), _EVENTS.c.seq.is_(None))
    .values(seq=bindparam("b_seq"), prev_hash=bindparam("b_prev"), hash=bindparam("b_hash"))
)


def canonical(value: Any) -> bytes:
    """API.md's canonical JSON: keys sorted, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def event_hash(body: dict[str, Any]) -> str:
    """The hash of an event body (as `body` gives it), computed without its `hash`."""
    return hashlib.sha256(canonical({k: v for k, v in body.items() if k != "hash"})).hexdigest()


def body(event: Any) -> dict[str, Any]:
    """An event as the API returns it (an AuditEvent, or a row with its columns)."""
    return {
        "seq": event.seq,
        "type": event.type,
        "at": event.at.isoformat(),
        "actor": {"client_id": event.actor_client_id, "role": event.actor_role, "name": event.actor_name},
        "subject": {"kind": event.subject_kind, "id": event.subject_id},
        "data": event.data,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def chain_pending(sessions: sessionmaker[Session], *, batch: int = BATCH) -> int:
    """Chain every unchained event, company by company, in the order they were written. Returns how
    many it chained. Safe to run from several processes at once: each company's chain is extended
    under that company's lock, and a link is set only on an event that has none."""
    with sessions() as session:
        companies = session.scalars(select(_EVENTS.c.company).where(_EVENTS.c.seq.is_(None)).distinct()).all()
    return sum(_chain_company(sessions, company, batch) for company in companies)


def _chain_company(sessions: sessionmaker[Session], company: str, batch: int) -> int:
    chained = 0
    while True:
        with begin_write(sessions()) as session:  # on SQLite the write lock is the company's lock
            if session.get_bind().dialect.name == "postgresql":
                session.execute(
                    text("SELECT pg_advisory_xact_lock(:space, hashtext(:company))"),
                    {"space": _PG_LOCK_SPACE, "company": company},
                )
            head = session.execute(
                select(_EVENTS.c.seq, _EVENTS.c.hash)
                .where(_EVENTS.c.company == company, _EVENTS.c.seq.is_not(None))
                .order_by(_EVENTS.c.seq.desc())
                .limit(1)
            ).first()
            seq, prev = (head.seq, head.hash) if head is not None else (0, GENESIS)
            pending = session.scalars(
                select(AuditEvent)
                .where(AuditEvent.company == company, AuditEvent.seq.is_(None))
                .order_by(AuditEvent.id)
                .limit(batch)
            ).all()
            links = []
            for event in pending:
                seq += 1
                linked = body(event) | {"seq": seq, "prev_hash": prev, "hash": None}
                prev = event_hash(linked)
                links.append({"b_id": event.id, "b_seq": seq, "b_prev": linked["prev_hash"], "b_hash": prev})
            if links:
                changed = session.execute(_SET_LINK, links).rowcount  # type: ignore[attr-defined]
                if changed not in (-1, len(links)):  # -1: the driver does not count an executemany
                    raise RuntimeError(f"audit chain of {company}: {changed} of {len(links)} links set")
                session.commit()
            chained += len(links)
        if len(pending) < batch:
            return chained


@dataclass(frozen=True)
class Verified:
    company: str
    count: int
    head: str


class ChainBroken(Exception):
    """A chain does not hold; the message names the first event that breaks it."""


def companies(session: Session) -> list[str]:
    """Every company with a chained event."""
    return list(session.scalars(select(_EVENTS.c.company).where(_EVENTS.c.seq.is_not(None)).distinct()))


def chained_events(session: Session, company: str, *, since: Any = None, until: Any = None) -> Iterator[AuditEvent]:
    """A company's chained events in `seq` order (`since` ≤ at < `until` when given), streamed."""
    stmt = select(AuditEvent).where(AuditEvent.company == company, AuditEvent.seq.is_not(None))
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.at < until)
    for event in session.scalars(stmt.order_by(AuditEvent.seq).execution_options(yield_per=BATCH)):
        yield event
        session.expunge(event)  # a long chain is streamed, not held


def verify_company(session: Session, company: str) -> Verified:
    """Recompute one company's chain from its stored events; ChainBroken names the first bad event."""
    count, prev = 0, GENESIS
    for event in chained_events(session, company):
        shown = body(event)
        where = f"{company} event seq {event.seq} (id {event.id})"
        if event.seq != count + 1:
            raise ChainBroken(f"{where}: expected seq {count + 1}, the chain has a gap or a repeat")
        if event.prev_hash != prev:
            raise ChainBroken(f"{where}: prev_hash does not match the hash of seq {count}")
        if event_hash(shown) != event.hash:
            raise ChainBroken(f"{where}: hash does not match the event's content")
        count, prev = event.seq, event.hash
    return Verified(company=company, count=count, head=prev)


def unchained_count(session: Session, company: str | None = None) -> int:
    stmt = select(func.count()).select_from(_EVENTS).where(_EVENTS.c.seq.is_(None))
    if company is not None:
        stmt = stmt.where(_EVENTS.c.company == company)
    return int(session.scalar(stmt) or 0)
