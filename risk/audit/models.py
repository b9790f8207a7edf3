from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from risk.db import Base, UTCDateTime

# SQLite only autoincrements an INTEGER PRIMARY KEY (its rowid).
EVENT_ID = BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(Base):
    """One audit event. Written unchained (`seq`, `prev_hash`, `hash` null) in its action's transaction;
    the chainer sets those three once; database triggers refuse every other UPDATE and every DELETE."""

    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("company", "seq", name="uq_audit_events_company_seq"),
        # What the chainer looks for: a company's events still without a seq, in the order written.
        Index(
            "ix_audit_events_unchained",
            "company",
            "id",
            postgresql_where=text("seq IS NULL"),
            sqlite_where=text("seq IS NULL"),
        ),
        Index("ix_audit_events_subject", "company", "subject_kind", "subject_id", "id"),
    )

    # The order events were written in (the chainer's order), not part of the event itself.
    id: Mapped[int] = mapped_column(EVENT_ID, primary_key=True, autoincrement=True)
    company: Mapped[str] = mapped_column(String(100))
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    type: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_client_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    actor_role: Mapped[str] = mapped_column(String(32))
    actor_name: Mapped[str] = mapped_column(String(200))
    subject_kind: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[str] = mapped_column(String(100))
    data: Mapped[Any] = mapped_column(JSON)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
