from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from risk.db import Base, UTCDateTime

REQUIREMENT_STATUSES = ("open", "satisfied")


class Requirement(Base):
    """What must be done before a stage of a deal, raised by a finding of one of the deal's reports."""

    __tablename__ = "requirements"
    # One requirement per finding instance: a later report finding the same thing raises nothing new.
    __table_args__ = (UniqueConstraint("deal_id", "code", "subject", name="uq_requirements_deal_code_subject"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    code: Mapped[str] = mapped_column(String(50))
    finding_code: Mapped[str] = mapped_column(String(50))
    subject: Mapped[str] = mapped_column(String(200))
    what: Mapped[str] = mapped_column(Text)
    who: Mapped[str] = mapped_column(String(20))
    due_stage: Mapped[str] = mapped_column(String(20))
    table_version: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="open")
    # Null while open; a report's id, or the reviewer's approval ({reviewer, reviewer_id, evidence_ref, note, at}).
    satisfied_by: Mapped[Any] = mapped_column(JSON, nullable=True)
    opened_by_report: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
