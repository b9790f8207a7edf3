"""State changes of reports. Services flush; the caller (request handler or job) commits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from listings.models import Listing
from risk.audit.events import actor_for, record
from risk.auth.access import ensure_visible
from risk.db import new_id
from risk.errors import NotFound, ValidationFailed
from risk.reports.models import STAGES, Report
from risk.web.ids import looks_like_id

if TYPE_CHECKING:
    from risk.auth.models import ApiClient
    from risk.deals.models import Deal
    from risk.runtime import Runtime


def request_key(listing_id: str, revision: int, deal_id: str | None, stage: str) -> str:
    """The key a pending or running report holds (`Report.refresh_key`): one per listing revision, deal
    and stage."""
    return f"{listing_id}|{revision}|{deal_id or '-'}|{stage}"


def get_visible(session: Session, client: ApiClient, report_id: str) -> Report:
    """The report if the client may read it (as its listing: an agent, only its store's); 404 otherwise."""
    if not looks_like_id(report_id):
        raise NotFound("no such report")
    stmt = select(Report, Listing.store_id).join(Listing, Listing.id == Report.listing_id)
    row = session.execute(stmt.where(Report.id == report_id)).first()
    if row is None:
        raise NotFound("no such report")
    report, store = row
    ensure_visible(client, company=report.company, store=store, what="report")
    return report  # type: ignore[no-any-return]


def pending_report(session: Session, key: str) -> Report | None:
    """The pending or running report holding `key` (a completed report has released it)."""
    return session.scalars(select(Report).where(Report.refresh_key == key)).first()


def request_report(
    session: Session,
    rt: Runtime,
    *,
    listing: Listing,
    stage: str,
    requested_by: str | None,
    deal: Deal | None = None,
) -> tuple[Report, bool]:
    """The report pending or running for the listing's current revision, `deal` and `stage`, writing
    a pending one if there is none. Returns (report, created); enqueue a created one with
    `risk.queues.enqueue_report` only after the transaction commits.

    `requested_by`: the API client asking, None for a background re-check. The unique request key
    decides, not a read before: an insert that finds the key taken (by a report in flight, or by a
    concurrent caller's, once that commits) fails inside a savepoint, and the report holding it is
    the answer. A request that creates one reads nothing more than the insert."""
    key = request_key(listing.id, listing.revision, deal.id if deal is not None else None, stage)
    try:
        with session.begin_nested():
            report = write_report(session, rt, listing=listing, stage=stage, requested_by=requested_by, deal=deal,
                                  key=key)  # fmt: skip
    except IntegrityError:
        existing = pending_report(session, key)
        if existing is None:
            raise
        return existing, False
    return report, True


def write_report(
    session: Session,
    rt: Runtime,
    *,
    listing: Listing,
    stage: str,
    requested_by: str | None,
    deal: Deal | None = None,
    key: str | None,
) -> Report:
    """Write a pending report of `listing` as it stands now, holding `key` until it completes.

    Requests go through `request_report`; a report written with no key is never joined by one (the
    bench queues many reports of one listing this way)."""
    if stage not in STAGES:
        raise ValidationFailed("unknown stage", fields={"stage": [f"must be one of: {', '.join(STAGES)}"]})
    now = rt.clock.now()
    subject = listing.snapshot()
    subject["deal"] = deal.snapshot() if deal is not None else None
    report = Report(
        id=new_id("rpt"),
        company=listing.company,
        listing_id=listing.id,
        listing_revision=listing.revision,
        deal_id=deal.id if deal is not None else None,
        stage=stage,
        status="pending",
        subject=subject,
        requested_by=requested_by,
        refresh_key=key,
        attempts=0,
        created_at=now,
        updated_at=now,
        checks=[],  # a new report has none: its body is built without asking the database
    )
    session.add(report)
    session.flush()
    record(session, company=report.company, type="report.requested", actor=actor_for(session, requested_by),
           subject_kind="report", subject_id=report.id, data={"report_id": report.id, "listing_id": listing.id,
           "deal_id": report.deal_id, "stage": stage}, at=now)  # fmt: skip
    return report
