"""A reviewer records a deal's requirement as met."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from risk.auth import access
from risk.deals.operations import get_visible
from risk.queues import enqueue_deliveries
from risk.requirements import operations, standing
from risk.requirements.schemas import RequirementSchema, SatisfyInputSchema
from risk.runtime import current
from risk.web.boundary import endpoint
from risk.web.parsing import Blueprint
from risk.web.transaction import after_commit, db

blp = Blueprint("requirements", __name__, url_prefix="/api/v1", description="What a deal must do before a stage")
# Recording a requirement as met opens a gate as an override does: the same reviewer-only right.
SATISFY = access.OVERRIDES_CREATE


@blp.route("/deals/<deal_id>/requirements/<requirement_id>/satisfy")
class SatisfyRequirement(MethodView):
    @endpoint(SATISFY, idempotent=True)
    @blp.arguments(SatisfyInputSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="the requirement is already satisfied")
    @blp.response(201, RequirementSchema)
    def post(self, data: dict[str, Any], deal_id: str, requirement_id: str) -> Any:
        """A reviewer records the requirement as met, naming the evidence: 201 with the requirement."""
        rt, client = current(), access.current_client()
        deal = get_visible(db(), client, deal_id)
        requirement, events = operations.satisfy(
            db(), rt, client, deal, requirement_id, evidence_ref=data["evidence_ref"], note=data["note"]
        )
        if events:
            after_commit(lambda: enqueue_deliveries(rt, events))
        return standing.body(requirement), 201
