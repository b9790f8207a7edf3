"""State changes of deals. Services flush; the request boundary commits."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from listings.models import Listing
from risk.auth.access import can_see, ensure_visible
from risk.db import new_id
from risk.deals import rechecks
from risk.deals.models import DATE_FIELDS, Deal
from risk.deals.schemas import check_date_order
from risk.errors import Conflict, ExternalIdUsed, NotFound, ValidationFailed
from risk.identity import protect_party
from risk.web.ids import looks_like_id

if TYPE_CHECKING:
    from risk.auth.models import ApiClient
    from risk.runtime import Runtime


def get_visible(session: Session, client: ApiClient, deal_id: str) -> Deal:
    deal = session.get(Deal, deal_id) if looks_like_id(deal_id) else None
    if deal is None:
        raise NotFound("no such deal")
    ensure_visible(client, company=deal.company, store=deal.store_id, what="deal")
    return deal


def _listing_for(session: Session, client: ApiClient, listing_id: str) -> Listing:
    listing = session.get(Listing, listing_id) if looks_like_id(listing_id) else None
    if listing is None or not can_see(client, company=listing.company, store=listing.store_id):
        raise ValidationFailed("unknown listing", fields={"listing_id": ["no such listing"]})
    return listing


def _webhook_problems(rt: Runtime, url: str | None) -> None:
    if url is None:
        return
    from risk.webhooks.urls import validate_webhook_url

    problems = validate_webhook_url(url, rt.settings.webhook_allow_private)
    if problems:
        raise ValidationFailed("webhook_url is not allowed", fields={"webhook_url": problems})


def create_deal(session: Session, rt: Runtime, client: ApiClient, data: dict[str, Any]) -> Deal:
    """An open deal on a listing the client can see; plans its re-checks. 409 on a used external_id."""
    listing = _listing_for(session, client, data["listing_id"])
    _webhook_problems(rt, data["webhook_url"])
    buyer = protect_party(rt.id_hash, data["buyer"])
    now = rt.clock.now()
    deal = Deal(
        filing_no=data["filing_no"],
        co_buyers=[protect_party(rt.id_hash, c) for c in data["co_buyers"]],
        id=new_id("dea"),
        company=client.company,
        store_id=listing.store_id,
        created_by=client.id,
        external_id=data["external_id"],
        listing_id=listing.id,
        buyer_name=buyer["name"],
        buyer_id_type=buyer["id_type"],
        buyer_id_hash=buyer["id_hash"],
        buyer_id_masked=buyer["id_masked"],
        deposit_amount=data["deposit_amount"],
        webhook_url=data["webhook_url"],
        status="open",
        created_at=now,
        updated_at=now,
        changed_at=now,
        **{name: data[name] for name in DATE_FIELDS},
    )
    existing = _used_external_id(session, client.company, deal.external_id)
    if existing is not None:
        raise _conflict(existing)
    try:
        with session.begin_nested():
            session.add(deal)
            session.flush()
    except IntegrityError:
        existing = _used_external_id(session, client.company, data["external_id"])
        if existing is None:
            raise
        raise _conflict(existing) from None
    rechecks.replan(session, rt, [deal])
    return deal


def update_deal(session: Session, rt: Runtime, deal: Deal, data: dict[str, Any]) -> Deal:
    """Change dates, the webhook URL, the filing and co-buyers, or the status; re-plans (or, once
    closed, drops) the re-checks."""
    if deal.status != "open":
        raise Conflict(f"the deal is {deal.status}; it can no longer change")
    dates = {name: data.get(name, getattr(deal, name)) for name in DATE_FIELDS}
    problems = check_date_order(dates)
    if problems:
        raise ValidationFailed("deal dates go backwards", fields=problems)
    if "webhook_url" in data:
        _webhook_problems(rt, data["webhook_url"])
        deal.webhook_url = data["webhook_url"]
        deal.webhook_disabled_at = None  # a new (or re-confirmed) URL after a 410 Gone
    for name in DATE_FIELDS:
        if name in data:
            setattr(deal, name, data[name])
    if "status" in data:
        deal.status = data["status"]
    now = rt.clock.now()
    _change_parties(rt, deal, data, now)
    deal.updated_at = deal.changed_at = now
    session.flush()
    rechecks.replan(session, rt, [deal])
    return deal


def _change_parties(rt: Runtime, deal: Deal, data: dict[str, Any], now: datetime) -> None:
    """Set filing_no and co_buyers; a real change makes the deal's earlier transfer reports stale."""
    changed = False
    if "filing_no" in data and data["filing_no"] != deal.filing_no:
        deal.filing_no = data["filing_no"]
        changed = True
    if "co_buyers" in data:
        co_buyers = [protect_party(rt.id_hash, c) for c in data["co_buyers"]]
        if co_buyers != (deal.co_buyers or []):
            deal.co_buyers = co_buyers
            changed = True
    if changed:
        deal.parties_changed_at = now


def _used_external_id(session: Session, company: str, external_id: str) -> tuple[str, str] | None:
    """The id and store of the company's deal with this external_id."""
    row = session.execute(
        select(Deal.id, Deal.store_id).where(Deal.company == company, Deal.external_id == external_id)
    ).first()
    return None if row is None else (row.id, row.store_id)


def _conflict(existing: tuple[str, str]) -> ExternalIdUsed:
    return ExternalIdUsed("deal", *existing)
