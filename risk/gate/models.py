from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from risk.db import Base, UTCDateTime


class Override(Base):
    """A reviewer's acceptance of a REVIEW report; the gate then answers ALLOW for it, saying so."""

    __tablename__ = "overrides"
    __table_args__ = (UniqueConstraint("report_id", name="uq_overrides_report"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    company: Mapped[str] = mapped_column(String(100))
    report_id: Mapped[str] = mapped_column(String(40))
    decision: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(2000))
    reviewer_id: Mapped[str] = mapped_column(String(40))
    reviewer_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "report_id": self.report_id,
            "decision": self.decision,
            "reason": self.reason,
            "reviewer": self.reviewer_name,
            "created_at": self.created_at.isoformat(),
        }
