"""Leases in the database: one holder at a time for periodic sweeps, on SQLite and PostgreSQL alike.

A lease is taken with a compare-and-set update, so it needs no Redis and survives a Redis flush.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from risk.clock import Clock
from risk.db import Base, UTCDateTime, begin_write


class Lease(Base):
    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


def try_acquire(sessions: sessionmaker[Session], clock: Clock, name: str, holder: str, ttl: timedelta) -> bool:
    """Take or renew the lease `name` for `holder` if it is free, expired or already ours."""
    now = clock.now()
    with begin_write(sessions()) as session:
        result = session.execute(
            update(Lease)
            .where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
            .values(holder=holder, expires_at=now + ttl)
        )
        if result.rowcount:  # type: ignore[attr-defined]
            session.commit()
            return True
        try:
            session.execute(insert(Lease).values(name=name, holder=holder, expires_at=now + ttl))
            session.commit()
            return True
        except IntegrityError:
            session.rollback()
            return False


def release(sessions: sessionmaker[Session], name: str, holder: str) -> None:
    with sessions() as session:
        session.execute(
            update(Lease)
            .where(Lease.name == name, Lease.holder == holder)
            .values(expires_at=datetime.fromtimestamp(0).astimezone())
        )
        session.commit()
