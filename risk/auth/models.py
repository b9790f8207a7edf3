from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from risk.db import Base, UTCDateTime

ROLES = ("agent", "contract_system", "reviewer", "admin")


class ApiClient(Base):
    """One API key: each key is its own client, with a role and a company/store scope."""

    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    company: Mapped[str] = mapped_column(String(100), index=True)
    store: Mapped[str] = mapped_column(String(100))
    # SHA-256 of the key: keys are 256-bit random tokens, so a plain hash is enough and a request's
    # lookup stays one indexed read.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    webhook_secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
