"""The signing gate's endpoint and the reviewers' overrides (tagged as before: `deals` and `reports`)."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from flask.views import MethodView

from risk.auth import access
from risk.db import JsonText, each_statement
from risk.errors import NotFound, ValidationFailed
from risk.gate import operations as gate
from risk.gate import overrides
from risk.gate.schemas import (
    GateAnswerSchema,
    GateRequestSchema,
    OverrideInputSchema,
    OverrideListSchema,
    OverrideSchema,
)
from risk.ops.metrics import GATE_ANSWERS
from risk.queues import enqueue_deliveries, enqueue_report
from risk.reports import operations as reports
from risk.runtime import current
from risk.web.boundary import endpoint
from risk.web.ids import looks_like_id
from risk.web.parsing import Blueprint
from risk.web.transaction import after_commit, db, writes

blp = Blueprint("gate", __name__, url_prefix="/api/v1", description="The signing gate, and overrides")


@blp.route("/gate", tags=["deals"])
class Gate(MethodView):
    @endpoint(access.GATE, reads_first=True)
    @blp.arguments(GateRequestSchema())  # an instance: webargs would build one per request
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.response(200, GateAnswerSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """May this listing or deal go ahead at this stage? Answered from the database alone."""
        client, rt = access.current_client(), current()
        with each_statement(rt.engine) as reads:
            deal = None
            if data["deal_id"] is not None:
                deal = gate.deal_row(reads, data["deal_id"]) if looks_like_id(data["deal_id"]) else None
                if deal is None:
                    raise NotFound("no such deal")
                access.ensure_visible(client, company=deal.company, store=deal.store_id, what="deal")
                listing_id = deal.listing_id
            else:
                listing_id = data["listing_id"]
            deal_id = deal.id if deal is not None else None
            # The listing comes with its newest report in one read.
            listing = (
                gate.listing_and_newest(reads, listing_id, deal_id, data["stage"])
                if looks_like_id(listing_id)
                else None
            )
            if listing is None:
                raise NotFound("no such listing")
            access.ensure_visible(client, company=listing.company, store=listing.store_id, what="listing")
            if deal is not None and deal.status != "open":
                raise ValidationFailed(f"the deal is {deal.status}", fields={"deal_id": [f"the deal is {deal.status}"]})
            where = {"listing_id": listing.listing_id, "deal": deal, "stage": data["stage"]}
            recorded = {"company": listing.company, "listing_id": listing.listing_id, "deal_id": deal_id}
            answer = gate.compute(reads, rt, **where, newest=listing)
            if answer.fresh:
                sent = _serialised(answer.body)  # once: sent and recorded
                gate.record(reads, rt, client, **recorded, answer=answer, sent=sent)  # committed by itself
                GATE_ANSWERS.labels(answer.body["decision"]).inc()
                return _json_response(sent)
        # Stale: worked out again in one transaction under the write lock, so that one refresh starts
        # however many callers ask at once, and the answer is recorded with it.
        session = writes()
        answer = gate.compute(session, rt, **where, start_in=session, client_id=client.id)
        sent = _serialised(answer.body)
        gate.record(session, rt, client, **recorded, answer=answer, sent=sent)
        if answer.started_report_id is not None:
            report_id = answer.started_report_id
            after_commit(lambda: enqueue_report(rt, report_id))
        GATE_ANSWERS.labels(answer.body["decision"]).inc()
        return _json_response(sent)


def _serialised(body: dict[str, Any]) -> JsonText:
    """`body` as `jsonify` writes it: compact, unless the app runs in debug mode (Flask's rule)."""
    provider = current_app.json
    compact = getattr(provider, "compact", None)
    indent = (compact is None and current_app.debug) or compact is False
    return JsonText(provider.dumps(body, **({"indent": 2} if indent else {"separators": (",", ":")})))


def _json_response(text: str) -> Response:
    """A JSON body already serialised, sent as `jsonify` sends one."""
    return current_app.response_class(f"{text}\n", mimetype=current_app.json.mimetype)  # type: ignore[attr-defined]


@blp.route("/reports/<report_id>/overrides", tags=["reports"])
class ReportOverrides(MethodView):
    @endpoint(access.OVERRIDES_CREATE, idempotent=True)
    @blp.arguments(OverrideInputSchema)
    @blp.alt_response(200, schema=OverrideSchema, description="a ruling added to the report's pending override")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(
        409,
        response="CONFLICT",
        description="the reviewer asked for the report or already ruled; the report is not the newest complete "
        "one of its listing, deal and stage, already has an approved or declined override, or is a BLOCK "
        "that cannot be overridden (`fields.reasons`)",
    )
    @blp.response(201, OverrideSchema)
    def post(self, data: dict[str, Any], report_id: str) -> Any:
        """A reviewer approves (ALLOW) or declines a REVIEW report or an overridable BLOCK: 201 with the
        override it opens, 200 when it adds to the report's pending one."""
        client = access.current_client()
        report = reports.get_visible(db(), client, report_id)
        ruling = overrides.rule(
            db(), current(), client, report,
            decision=data["decision"], reason=data["reason"], evidence_ref=data["evidence_ref"],
        )  # fmt: skip
        if ruling.webhook_events:
            rt = current()
            after_commit(lambda: enqueue_deliveries(rt, ruling.webhook_events))
        return ruling.override, 201 if ruling.created else 200

    @endpoint(access.REPORTS_READ)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.response(200, OverrideListSchema)
    def get(self, report_id: str) -> Any:
        """The report's overrides, for whoever may read the report."""
        report = reports.get_visible(db(), access.current_client(), report_id)
        return {"items": overrides.overrides_of(db(), report.id)}
