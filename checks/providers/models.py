from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from risk.db import Base, UTCDateTime


class ProviderRecord(Base):
    """A record imported with `presign import`, stored in the same shape a provider's HTTP answer has."""

    __tablename__ = "provider_records"
    __table_args__ = (UniqueConstraint("kind", "key", name="uq_provider_records_kind_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime())
