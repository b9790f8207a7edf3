from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from risk.db import Base, UTCDateTime

ROLES = ("agent", "contract_system", "reviewer", "admin")


class ApiClient(Base):
    """A client of the API, with a role and a company/store scope. It holds one key, or more during a
    rotation (`ApiKey`), and one webhook secret, or more during a secret's rotation (`WebhookSecret`)."""

    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    company: Mapped[str] = mapped_column(String(100), index=True)
    store: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class ApiKey(Base):
    """One key of a client. It works until its client is revoked or `expires_at` (set by a rotation) passes."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id", ondelete="CASCADE"), index=True)
    # SHA-256 of the key: keys are 256-bit random tokens, so a plain hash is enough and a request's
    # lookup stays one indexed read.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebhookSecret(Base):
    """One webhook secret of a client, encrypted at rest (`risk.crypto`). Every unexpired secret
    signs each delivery, so a receiver can switch to a new one during the overlap."""

    __tablename__ = "webhook_secrets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id", ondelete="CASCADE"), index=True)
    encrypted: Mapped[str] = mapped_column(Text)
    # v1.1 secrets (`whsec_` + standard base64 of 32 bytes) also sign the Standard Webhooks headers.
    standard: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
