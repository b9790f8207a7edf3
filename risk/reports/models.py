from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from risk.db import Base, UTCDateTime

STAGES = ("listing", "deposit", "signing", "online_signing", "transfer")
REPORT_STATUSES = ("pending", "running", "complete")
DECISIONS = ("ALLOW", "REVIEW", "BLOCK")
CHECK_STATUSES = ("clear", "attention", "blocking", "unavailable")
SEVERITIES = ("blocking", "attention", "info")


class Report(Base):
    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_listing_stage", "listing_id", "stage", "status", "completed_at"),
        Index("ix_reports_deal_stage", "deal_id", "stage", "status", "completed_at"),
        Index("ix_reports_status_updated", "status", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    company: Mapped[str] = mapped_column(String(100))
    listing_id: Mapped[str] = mapped_column(ForeignKey("listings.id"))
    deal_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    stage: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    decision: Mapped[str | None] = mapped_column(String(10), nullable=True)
    policy_version: Mapped[str | None] = mapped_column(String(50), nullable=True)
    reasons: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # Set on completion: a REVIEW, or a BLOCK whose blocking reasons are all overridable (the review queue).
    overridable: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    commitments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # What the report could not do (commitments left out), set on completion; null on reports completed
    # before notes existed, whose digests were computed without the field.
    notes: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # A deal's requirements as they stood at completion, and the exceptions disclosed: set on completion,
    # null on reports completed before requirements existed (their digests were computed without them).
    requirements: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    exceptions: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # The listing (and deal) as they stood when the report was asked for: checks judge this
    # snapshot, so a later PATCH cannot change what a report was about.
    subject: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The listing's revision the subject was taken at: the gate never answers from an older one.
    listing_revision: Mapped[int] = mapped_column(Integer, server_default="1")
    # The API client whose call created the report; None for background re-checks.
    requested_by: Mapped[str | None] = mapped_column(String(40), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Written every few seconds by the worker process running the report: a running report whose
    # heartbeat stopped was abandoned by a killed worker and is handed to another one.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Set while the report is pending or running, cleared on completion (`request_key`): unique, so
    # requests, gate refreshes and re-checks at once start one report per listing revision, deal and stage.
    refresh_key: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)

    checks: Mapped[list[ReportCheck]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="ReportCheck.position"
    )


class ReportCheck(Base):
    """One check's result inside a report, written when that check finishes."""

    __tablename__ = "report_checks"
    __table_args__ = (UniqueConstraint("report_id", "check", name="uq_report_checks_report_check"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"))
    check: Mapped[str] = mapped_column(String(20))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(200))
    retrieved_at: Mapped[datetime] = mapped_column(UTCDateTime())
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    report: Mapped[Report] = relationship(back_populates="checks")
