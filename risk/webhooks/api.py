"""A deal's webhook deliveries, for the contract system that receives them."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from risk.auth import access
from risk.errors import NotFound
from risk.web.boundary import endpoint
from risk.web.ids import looks_like_id
from risk.web.pagination import PageArgsSchema, paginate
from risk.web.parsing import Blueprint
from risk.web.transaction import db
from risk.webhooks.models import WebhookEvent
from risk.webhooks.operations import deal_scope, event_view
from risk.webhooks.schemas import WebhookEventPageSchema

blp = Blueprint("webhooks", __name__, url_prefix="/api/v1", description="Webhook deliveries")


@blp.route("/deals/<deal_id>/webhooks")
class DealWebhooks(MethodView):
    # Read by those who manage the deal and its webhook URL: the roles that may write deals.
    @endpoint(access.DEALS_WRITE)
    @blp.arguments(PageArgsSchema, location="query")
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.response(200, WebhookEventPageSchema)
    def get(self, args: dict[str, Any], deal_id: str) -> Any:
        """A deal's webhook events, newest first, each with every delivery attempt."""
        client = access.current_client()
        scope = deal_scope(db(), deal_id) if looks_like_id(deal_id) else None
        if scope is None:
            raise NotFound("no such deal")
        access.ensure_visible(client, company=scope[0], store=scope[1], what="deal")
        stmt = select(WebhookEvent).where(WebhookEvent.deal_id == deal_id).options(selectinload(WebhookEvent.attempts))
        events, next_cursor = paginate(db(), stmt, WebhookEvent.id, args)
        return {"items": [event_view(event) for event in events], "next": next_cursor}
