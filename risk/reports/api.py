"""The reports endpoints: ask for a report on a listing, read a report."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import jsonify
from flask.views import MethodView
from sqlalchemy import select

from listings import operations as listings
from listings.models import Listing
from risk.auth import access
from risk.errors import NotFound, ValidationFailed
from risk.reports.models import STAGES, Report
from risk.reports.operations import request_report
from risk.reports.schemas import ReportSchema, report_body
from risk.runtime import current
from risk.web.boundary import endpoint
from risk.web.ids import looks_like_id
from risk.web.parsing import Blueprint
from risk.web.transaction import after_commit, db

blp = Blueprint("reports", __name__, url_prefix="/api/v1", description="Risk reports")


class ReportRequestSchema(ma.Schema):
    stage = ma.fields.String(required=True, validate=ma.validate.OneOf(STAGES))
    deal_id = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=ma.validate.Length(max=40),
        metadata={"description": "the deal this report is for (deals are not available yet: must be null)"},
    )


def _resolve_deal(deal_id: str | None) -> None:
    # Deals arrive in a later issue; until then no deal id can be valid.
    if deal_id is not None:
        raise ValidationFailed("unknown deal", fields={"deal_id": ["unknown deal"]})


@blp.route("/listings/<listing_id>/reports")
class ListingReports(MethodView):
    @endpoint(access.REPORTS_CREATE, idempotent=True)
    @blp.arguments(ReportRequestSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.response(
        202, ReportSchema, headers={"Location": {"description": "the report's URL", "schema": {"type": "string"}}}
    )
    def post(self, data: dict[str, Any], listing_id: str) -> Any:
        """Ask for a report at a stage; it runs in the background (poll `Location`)."""
        from worker.queues import enqueue_report

        client = access.current_client()
        listing = listings.get_visible(db(), client, listing_id)
        _resolve_deal(data["deal_id"])
        rt = current()
        report = request_report(db(), rt, listing=listing, stage=data["stage"], client=client)
        report_id = report.id
        # Enqueued only once the row is committed: a Redis outage loses nothing (the sweeps re-enqueue).
        after_commit(lambda: enqueue_report(rt, report_id))
        return jsonify(report_body(report)), 202, {"Location": f"/api/v1/reports/{report_id}"}


@blp.route("/reports/<report_id>")
class ReportById(MethodView):
    @endpoint(access.REPORTS_READ)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.response(200, ReportSchema)
    def get(self, report_id: str) -> Any:
        """Read a report: checks appear as they finish; complete reports never change."""
        client = access.current_client()
        if not looks_like_id(report_id):
            raise NotFound("no such report")
        stmt = select(Report, Listing.store_id).join(Listing, Listing.id == Report.listing_id)
        row = db().execute(stmt.where(Report.id == report_id)).first()
        if row is None:
            raise NotFound("no such report")
        report, store = row
        access.ensure_visible(client, company=report.company, store=store, what="report")
        return jsonify(report_body(report))
