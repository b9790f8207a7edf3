from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from risk.db import Base, UTCDateTime

OVERRIDE_DECISIONS = ("ALLOW", "DECLINE")
OVERRIDE_STATUSES = ("pending", "approved", "declined")


class Override(Base):
    """Reviewers' ruling on a REVIEW report, or on a BLOCK whose blocking reasons are all overridable:
    the gate answers ALLOW for the report once the override is `approved`."""

    __tablename__ = "overrides"
    __table_args__ = (UniqueConstraint("report_id", name="uq_overrides_report"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    company: Mapped[str] = mapped_column(String(100))
    report_id: Mapped[str] = mapped_column(String(40))
    decision: Mapped[str] = mapped_column(String(10))  # ALLOW, or DECLINE once a reviewer declined
    status: Mapped[str] = mapped_column(String(10))  # pending, approved or declined
    required_approvals: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    approvals: Mapped[list[OverrideApproval]] = relationship(
        back_populates="override", order_by="OverrideApproval.number", lazy="selectin"
    )

    @property
    def first(self) -> OverrideApproval:
        return self.approvals[0]

    # The first approval's, as v1's override showed them.
    @property
    def reason(self) -> str:
        return self.first.reason

    @property
    def reviewer(self) -> str:
        return self.first.reviewer_name


class OverrideApproval(Base):
    """One reviewer's approval (or decline) of an override, numbered from 1.

    Unique per override by number, by client and by name: two reviewers acting at once cannot both be
    the second, and one reviewer (one key, or two keys under one name) counts once."""

    __tablename__ = "override_approvals"
    __table_args__ = (
        UniqueConstraint("override_id", "number", name="uq_override_approvals_number"),
        UniqueConstraint("override_id", "reviewer_id", name="uq_override_approvals_reviewer"),
        UniqueConstraint("override_id", "reviewer_name", name="uq_override_approvals_reviewer_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    override_id: Mapped[str] = mapped_column(ForeignKey("overrides.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(10))  # ALLOW or DECLINE
    reviewer_id: Mapped[str] = mapped_column(String(40))
    reviewer_name: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(2000))
    evidence_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    override: Mapped[Override] = relationship(back_populates="approvals")
