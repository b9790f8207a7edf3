"""The reports endpoints: ask for a report on a listing, read and list reports."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from listings import operations as listings
from listings.models import Listing
from risk.auth import access
from risk.deals.models import Deal
from risk.errors import ValidationFailed
from risk.gate.overrides import awaiting_review
from risk.queues import enqueue_report
from risk.reports import operations
from risk.reports.models import STAGES, Report
from risk.reports.operations import request_report
from risk.reports.schemas import ReportPageSchema, ReportQuerySchema, ReportSchema
from risk.runtime import current
from risk.web.boundary import endpoint
from risk.web.ids import looks_like_id
from risk.web.pagination import paginate
from risk.web.parsing import Blueprint
from risk.web.transaction import after_commit, db

blp = Blueprint("reports", __name__, url_prefix="/api/v1", description="Risk reports")


class ReportRequestSchema(ma.Schema):
    stage = ma.fields.String(required=True, validate=ma.validate.OneOf(STAGES))
    deal_id = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=ma.validate.Length(max=40),
        metadata={"description": "the deal this report is for: a deal on this listing"},
    )


def _resolve_deal(client: Any, listing: Listing, deal_id: str | None) -> Deal | None:
    """The caller's deal on this listing, or 422 naming `deal_id`."""
    if deal_id is None:
        return None
    deal = db().get(Deal, deal_id) if looks_like_id(deal_id) else None
    if (
        deal is None
        or deal.listing_id != listing.id
        or not access.can_see(client, company=deal.company, store=deal.store_id)
    ):
        raise ValidationFailed("unknown deal", fields={"deal_id": ["no such deal on this listing"]})
    return deal


@blp.route("/listings/<listing_id>/reports")
class ListingReports(MethodView):
    @endpoint(access.REPORTS_CREATE, idempotent=True)
    @blp.arguments(ReportRequestSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.response(
        202, ReportSchema, headers={"Location": {"description": "the report's URL", "schema": {"type": "string"}}}
    )
    def post(self, data: dict[str, Any], listing_id: str) -> Any:
        """Ask for a report at a stage; it runs in the background (poll `Location`). While one for the
        listing's current revision, the same deal and stage is pending or running, the answer is that
        report and nothing starts."""
        client = access.current_client()
        listing = listings.get_visible(db(), client, listing_id)
        deal = _resolve_deal(client, listing, data["deal_id"])
        rt = current()
        report, created = request_report(
            db(), rt, listing=listing, stage=data["stage"], requested_by=client.id, deal=deal
        )
        report_id = report.id
        if created:
            # Enqueued only once the row is committed: a Redis outage loses nothing (the sweeps re-enqueue).
            after_commit(lambda: enqueue_report(rt, report_id))
        return report, 202, {"Location": f"/api/v1/reports/{report_id}"}


@blp.route("/reports")
class Reports(MethodView):
    @endpoint(access.REPORTS_READ)
    @blp.arguments(ReportQuerySchema, location="query")
    @blp.response(200, ReportPageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """List reports, newest first; `awaiting_review=true` is the reviewers' queue."""
        client = access.current_client()
        stmt = select(Report).join(Listing, Listing.id == Report.listing_id).options(selectinload(Report.checks))
        stmt = access.scoped(stmt, client, company=Report.company, store=Listing.store_id)
        for name in ("listing_id", "deal_id", "stage", "status", "decision"):
            if name in args:
                stmt = stmt.where(getattr(Report, name) == args[name])
        if "awaiting_review" in args:
            awaiting = awaiting_review()
            stmt = stmt.where(awaiting if args["awaiting_review"] else ~awaiting)
        items, next_cursor = paginate(db(), stmt, Report.id, args)
        return {"items": items, "next": next_cursor}


@blp.route("/reports/<report_id>")
class ReportById(MethodView):
    @endpoint(access.REPORTS_READ)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.response(200, ReportSchema)
    def get(self, report_id: str) -> Any:
        """Read a report: while it runs, the checks finished so far; complete reports never change."""
        return operations.get_visible(db(), access.current_client(), report_id)
