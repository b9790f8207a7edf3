from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from risk.db import Base, UTCDateTime

DEAL_STATUSES = ("open", "cancelled", "completed")
# The dates of a deal in the order they must not go backwards.
DATE_FIELDS = ("deposit_at", "signing_at", "online_signing_at", "transfer_at")
# Stages re-checked in the background, with the deal date each is planned before.
RECHECK_STAGES = {"online_signing": "online_signing_at", "transfer": "transfer_at"}


class Deal(Base):
    __tablename__ = "deals"
    __table_args__ = (
        UniqueConstraint("company", "external_id", name="uq_deals_company_external_id"),
        Index("ix_deals_listing", "listing_id"),
        Index("ix_deals_company_changed", "company", "changed_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    company: Mapped[str] = mapped_column(String(100))
    store_id: Mapped[str] = mapped_column(String(100))  # the listing's store: its agents read the deal
    created_by: Mapped[str] = mapped_column(String(40))  # the API client whose webhook secret signs
    external_id: Mapped[str] = mapped_column(String(100))
    listing_id: Mapped[str] = mapped_column(ForeignKey("listings.id"))
    buyer_name: Mapped[str] = mapped_column(String(200))
    buyer_id_type: Mapped[str] = mapped_column(String(32))
    buyer_id_hash: Mapped[str] = mapped_column(String(64))
    buyer_id_masked: Mapped[str] = mapped_column(String(40))
    # The online-signed contract's filing number (网签备案号) and the co-buyers, kept as the buyer is:
    # `{name, id_type, id_hash, id_masked}`, never the full number.
    filing_no: Mapped[str | None] = mapped_column(String(100), nullable=True)
    co_buyers: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # When filing_no or co_buyers last changed: transfer reports completed before then are stale.
    parties_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deposit_amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    deposit_at: Mapped[datetime] = mapped_column(UTCDateTime())
    signing_at: Mapped[datetime] = mapped_column(UTCDateTime())
    online_signing_at: Mapped[datetime] = mapped_column(UTCDateTime())
    transfer_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # Set when the receiver answered 410 Gone: nothing is sent until a PATCH of `webhook_url`.
    webhook_disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the deal or one of its gate answers last changed: what `changed_since` filters on.
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def snapshot(self) -> dict[str, Any]:
        """The deal as a report sees it (buyer's ID number hashed and masked only)."""
        return {
            "id": self.id,
            "external_id": self.external_id,
            "buyer": {
                "name": self.buyer_name,
                "id_type": self.buyer_id_type,
                "id_hash": self.buyer_id_hash,
                "id_masked": self.buyer_id_masked,
            },
            "filing_no": self.filing_no,
            "co_buyers": list(self.co_buyers or []),
            "deposit_amount": f"{self.deposit_amount:.2f}",
            **{name: _iso(getattr(self, name)) for name in DATE_FIELDS},
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class RecheckPlan(Base):
    """A background re-check, planned in the database (the source of truth) and started by the sweep.

    The id is deterministic — deal, stage and offset — so re-planning replaces and never duplicates.
    """

    __tablename__ = "recheck_plans"
    __table_args__ = (Index("ix_recheck_plans_due", "status", "run_at"),)

    id: Mapped[str] = mapped_column(String(120), primary_key=True)
    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(20))
    offset_seconds: Mapped[int] = mapped_column(Integer)
    run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20), default="planned")  # planned, started, expired
    report_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DealGateDecision(Base):
    """The gate decision the last `gate.changed` of a deal and stage announced: what the next change
    is measured against (kept whether or not the deal has a webhook URL)."""

    __tablename__ = "deal_gate_decisions"

    deal_id: Mapped[str] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(20), primary_key=True)
    decision: Mapped[str] = mapped_column(String(10))
    report_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    event_id: Mapped[str | None] = mapped_column(String(40), nullable=True)  # None: the deal had no webhook URL
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
