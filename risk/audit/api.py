"""`GET /api/v1/audit-events`: an admin reads its own company's chain, chained events only, in `seq` order."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.views import MethodView
from sqlalchemy import select

from risk.audit.chain import body
from risk.audit.models import AuditEvent
from risk.audit.schemas import AuditEventPageSchema, AuditQuerySchema
from risk.auth import access
from risk.web.boundary import endpoint
from risk.web.pagination import paginate
from risk.web.parsing import Blueprint
from risk.web.transaction import db

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="The audit record (admins)")


@blp.route("/audit-events")
class AuditEvents(MethodView):
    @endpoint(access.AUDIT_READ)
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditEventPageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """The company's audit events in `seq` order; filter by `type`, `subject_kind`, `subject_id`, `since`,
        `until`. Only chained events are listed: an event is chained within seconds of its action."""
        stmt = select(AuditEvent).where(
            AuditEvent.company == access.current_client().company, AuditEvent.seq.is_not(None)
        )
        for name in ("type", "subject_kind", "subject_id"):
            if name in args:
                stmt = stmt.where(getattr(AuditEvent, name) == args[name])
        if "since" in args:
            stmt = stmt.where(AuditEvent.at >= args["since"])
        if "until" in args:
            stmt = stmt.where(AuditEvent.at < args["until"])
        events, next_cursor = paginate(db(), stmt, AuditEvent.seq, args, oldest_first=True)
        return jsonify({"items": [body(e) for e in events], "next": next_cursor})
