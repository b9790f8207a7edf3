from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from risk.db import Base, UTCDateTime

EVENT_TYPES = ("report.completed", "gate.changed")
EVENT_STATUSES = ("pending", "delivered", "failed")


class WebhookEvent(Base):
    """One event for one deal's webhook URL: its body is fixed when it is emitted and sent byte for byte.

    The row is the delivery's state: `next_attempt_at` says when it is due, `claim_*` which delivery
    holds it now (a compare-and-set claim, so one event is never sent by two workers at once).
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_deal", "deal_id", "id"),
        Index("ix_webhook_events_due", "status", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    type: Mapped[str] = mapped_column(String(40))
    deal_id: Mapped[str] = mapped_column(String(40))
    company: Mapped[str] = mapped_column(String(100))
    store_id: Mapped[str] = mapped_column(String(100))
    # The API client that created the deal: its webhook secret signs every delivery (read at send time,
    # never copied here).
    creator_id: Mapped[str] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(String(2048))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    claim_token: Mapped[str | None] = mapped_column(String(40), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    attempts: Mapped[list[WebhookAttempt]] = relationship(
        back_populates="event", cascade="all, delete-orphan", order_by="WebhookAttempt.number"
    )


class WebhookAttempt(Base):
    """One try at sending an event: when, what came back (or what went wrong) and how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (UniqueConstraint("event_id", "number", name="uq_webhook_attempts_event_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)  # null: the attempt never reported
    # The start of the receiver's answer, for debugging; never more than this.
    response_snippet: Mapped[str | None] = mapped_column(String(300), nullable=True)

    event: Mapped[WebhookEvent] = relationship(back_populates="attempts")
