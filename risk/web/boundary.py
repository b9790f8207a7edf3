"""The request boundary of every API view, like indico's RH: parse → check access → call → dump.

    @blp.route("/deals")
    class Deals(MethodView):
        @endpoint(access.DEALS_WRITE, idempotent=True)
        @blp.arguments(DealInputSchema)
        @blp.alt_response(409, response="CONFLICT")
        @blp.response(201, DealSchema)
        def post(self, data):
            deal = operations.create_deal(db(), current(), current_client(), data)  # flushes only
            after_commit(lambda: enqueue_something(deal.id))
            return deal, 201, {"Location": f"/api/v1/deals/{deal.id}"}

`endpoint` goes on top: it authenticates and authorises first (401/403 before anything is parsed),
reads the JSON body once (400), runs the view under the Idempotency-Key if asked, commits once and
then runs the after-commit hooks. It also documents security and the error answers in OpenAPI.
"""

from __future__ import annotations

from collections.abc import Callable
from copy import deepcopy
from functools import wraps
from typing import Any

from flask import Response, make_response, request

from risk import idempotency
from risk.auth import access
from risk.runtime import current
from risk.web import limits, transaction
from risk.web.parsing import BODY_METHODS, empty_body_ok, json_body
from risk.web.transaction import commit

SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}]
IDEMPOTENCY_PARAMETER = {
    "in": "header",
    "name": idempotency.HEADER,
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_KEY_LENGTH},
    "description": (
        "Makes this POST safe to retry: scoped to the API key and the endpoint, kept 24 hours. A repeat "
        "with the same body returns the original status, body and Location (header `Idempotent-Replayed: "
        "true`); with another body, 409 `idempotency_key_reused`."
    ),
}


def endpoint(
    permission: str, *, idempotent: bool = False, reads_first: bool = False, empty_body: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    """Wrap an API view in the request boundary; `permission` is one of `risk.auth.access`'s.

    `empty_body`: a POST whose fields are all optional may come without a body.
    `reads_first`: a POST that mostly reads does so without SQLite's write lock and calls
    `risk.web.transaction.writes()` before it writes (see the gate)."""
    if permission not in access.ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def decorator(view: Callable[..., Any]) -> Callable[..., Response]:
        takes_body = view.__name__.upper() in BODY_METHODS

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            if reads_first:
                transaction.reads_first()
            client = access.authorize(permission)
            rt = current()
            limits.check(rt, rt.rate_limiter, client.id)
            if request.method in BODY_METHODS:
                if empty_body:
                    empty_body_ok()
                json_body()

            def call() -> Response:
                return make_response(view(*args, **kwargs))

            if idempotent:
                return idempotency.run_once(client.id, call)
            response = call()
            commit()
            return response

        wrapper._apidoc = _document(view, takes_body=takes_body, idempotent=idempotent)  # type: ignore[attr-defined]
        return wrapper

    return decorator


def _document(view: Callable[..., Any], *, takes_body: bool, idempotent: bool) -> dict[str, Any]:
    doc = deepcopy(getattr(view, "_apidoc", {}))
    errors = [(401, "UNAUTHORIZED"), (403, "FORBIDDEN"), (429, "TOO_MANY_REQUESTS"), (503, "SERVICE_UNAVAILABLE")]
    if takes_body:
        errors += [(400, "BAD_REQUEST"), (413, "REQUEST_ENTITY_TOO_LARGE")]
    if idempotent:
        errors += [(409, "CONFLICT")]
    responses = doc.setdefault("response", {}).setdefault("responses", {})
    for status, reference in errors:
        if status not in responses:  # a view's own description of that status wins
            responses[status] = [reference]
    manual = doc.setdefault("manual_doc", {})
    manual["security"] = SECURITY
    if idempotent:
        manual["parameters"] = [*manual.get("parameters", []), IDEMPOTENCY_PARAMETER]
    return doc
