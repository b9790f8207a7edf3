"""Imports every model so that the metadata (and Alembic) sees all tables."""

from checks.providers.models import ProviderRecord
from listings.market.models import (
    ListingFingerprint,
    MarketArea,
    MarketCommunity,
    MarketCommunityGram,
    MarketObservation,
    MarketSource,
)
from listings.models import Listing, ListingPhoto
from risk.audit.models import AuditEvent
from risk.auth.models import ApiClient, ApiKey, WebhookSecret
from risk.db import Base
from risk.deals.models import Deal, DealGateDecision, RecheckPlan
from risk.gate.models import Override, OverrideApproval
from risk.idempotency import IdempotencyRecord
from risk.locks import Lease
from risk.reports.models import Report, ReportCheck
from risk.requirements.models import Requirement
from risk.webapp.models import WebDealsSeen, WebLoginToken, WebSession
from risk.webhooks.models import WebhookAttempt, WebhookEvent

__all__ = [
    "ApiClient",
    "ApiKey",
    "AuditEvent",
    "WebhookSecret",
    "Base",
    "Deal",
    "DealGateDecision",
    "Override",
    "OverrideApproval",
    "RecheckPlan",
    "IdempotencyRecord",
    "Lease",
    "Listing",
    "ListingFingerprint",
    "ListingPhoto",
    "MarketArea",
    "MarketCommunity",
    "MarketCommunityGram",
    "MarketObservation",
    "MarketSource",
    "ProviderRecord",
    "Report",
    "ReportCheck",
    "Requirement",
    "WebhookAttempt",
    "WebhookEvent",
    "WebDealsSeen",
    "WebLoginToken",
    "WebSession",
]
