"""The deals endpoints (the contract system's side), with each deal's gate answers."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.views import MethodView
from sqlalchemy import select

from risk.audit.events import Actor, changed_fields, record
from risk.audit.models import AuditEvent
from risk.auth import access
from risk.auth.models import ApiClient
from risk.deals import operations
from risk.deals.models import Deal
from risk.deals.schemas import (
    DealInputSchema,
    DealPageSchema,
    DealPatchSchema,
    DealQuerySchema,
    DealSchema,
    deal_body,
)
from risk.gate import operations as gate
from risk.gate.schemas import GateAnswerPageSchema
from risk.reports.models import STAGES
from risk.requirements import standing
from risk.runtime import current
from risk.web.boundary import endpoint
from risk.web.pagination import PageArgsSchema, paginate
from risk.web.parsing import Blueprint
from risk.web.transaction import after_commit, db

blp = Blueprint("deals", __name__, url_prefix="/api/v1", description="Deals, and the signing gate")
LOCATION = {"Location": {"description": "the deal's URL", "schema": {"type": "string"}}}


def _with_gate(deal: Deal) -> dict[str, Any]:
    """The deal with its current answer per stage, read-only (reading a deal starts no refresh)."""
    answers = {
        stage: gate.compute(db(), current(), listing_id=deal.listing_id, deal=deal, stage=stage).body
        for stage in STAGES
    }
    requirements = standing.of_deal(db(), deal.id)
    return deal_body(deal, answers, webhook_url=_shows_webhook_url(), requirements=requirements)


def _shows_webhook_url() -> bool:
    # The contract system's endpoint is none of a store's business (API.md v1.1).
    store_scoped, _store = access.caller_scope()
    return not store_scoped


def _start_due(deal_id: str) -> None:
    # Offsets already passed are due at once: start them now rather than at the next sweep.
    from risk.deals.rechecks import start_due_rechecks

    start_due_rechecks(current(), deal_id)


@blp.route("/deals")
class Deals(MethodView):
    @endpoint(access.DEALS_WRITE, idempotent=True)
    @blp.arguments(DealInputSchema)
    @blp.alt_response(409, response="CONFLICT", description="`external_id` already used (the error names the deal)")
    @blp.response(201, DealSchema, headers=LOCATION)
    def post(self, data: dict[str, Any]) -> Any:
        """Register a deal on a listing; plans its re-checks before online signing and transfer."""
        deal = operations.create_deal(db(), current(), access.current_client(), data)
        _changed(access.current_client(), deal, before=None)
        deal_id = deal.id
        after_commit(lambda: _start_due(deal_id))
        return jsonify(_with_gate(deal)), 201, {"Location": f"/api/v1/deals/{deal_id}"}

    @endpoint(access.DEALS_READ)
    @blp.arguments(DealQuerySchema, location="query")
    @blp.response(200, DealPageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """List deals, newest first; filter by `listing_id`, `external_id`, `status`, `changed_since`."""
        client = access.current_client()
        stmt = access.scoped(select(Deal), client, company=Deal.company, store=Deal.store_id)
        for name in ("listing_id", "external_id", "status"):
            if name in args:
                stmt = stmt.where(getattr(Deal, name) == args[name])
        if "changed_since" in args:
            stmt = stmt.where(Deal.changed_at >= args["changed_since"])
        items, next_cursor = paginate(db(), stmt, Deal.id, args)
        shown = _shows_webhook_url()
        return jsonify({"items": [deal_body(d, webhook_url=shown) for d in items], "next": next_cursor})


@blp.route("/deals/<deal_id>")
class DealById(MethodView):
    @endpoint(access.DEALS_READ)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.response(200, DealSchema)
    def get(self, deal_id: str) -> Any:
        """Read a deal, with its current gate answer per stage."""
        return jsonify(_with_gate(operations.get_visible(db(), access.current_client(), deal_id)))

    @endpoint(access.DEALS_WRITE)
    @blp.arguments(DealPatchSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="the deal is cancelled or completed")
    @blp.response(200, DealSchema)
    def patch(self, data: dict[str, Any], deal_id: str) -> Any:
        """Change any deal date, the webhook URL, `filing_no`, `co_buyers` or the status; re-checks are re-planned."""
        deal = operations.get_visible(db(), access.current_client(), deal_id)
        before = deal_body(deal)
        deal = operations.update_deal(db(), current(), deal, data)
        _changed(access.current_client(), deal, before=before)
        after_commit(lambda: _start_due(deal_id))
        return jsonify(_with_gate(deal))


def _changed(client: ApiClient, deal: Deal, *, before: dict[str, Any] | None) -> None:
    """The `deal.changed` audit event: every field on creation, the changed ones on a PATCH (the
    buyer's ID number masked, as the API shows it); a PATCH that changes nothing records nothing."""
    after = deal_body(deal)
    fields = after if before is None else changed_fields(before, after, ignore=("updated_at", "changed_at"))
    if fields:
        record(db(), company=deal.company, type="deal.changed", actor=Actor.of(client), subject_kind="deal",
               subject_id=deal.id, data={"action": "created" if before is None else "updated", "fields": fields},
               at=current().clock.now())  # fmt: skip


@blp.route("/deals/<deal_id>/gate-answers")
class DealGateAnswers(MethodView):
    @endpoint(access.DEALS_READ)
    @blp.arguments(PageArgsSchema, location="query")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.response(200, GateAnswerPageSchema)
    def get(self, args: dict[str, Any], deal_id: str) -> Any:
        """Every gate answer given for this deal, newest first: who asked, when, and what they were told (its
        `gate.answered` audit events, chained or still unchained)."""
        deal = operations.get_visible(db(), access.current_client(), deal_id)
        answers = select(AuditEvent).where(
            AuditEvent.company == deal.company,
            AuditEvent.subject_kind == "deal",
            AuditEvent.subject_id == deal.id,
            AuditEvent.type == "gate.answered",
        )
        rows, next_cursor = paginate(db(), answers, AuditEvent.id, args)
        items = [
            {"id": str(r.id), "client_id": r.actor_client_id, "answered_at": r.at.isoformat(), "answer": r.data}
            for r in rows
        ]
        return jsonify({"items": items, "next": next_cursor})
