"""Registers the API blueprints, the OpenAPI document, the docs page and the one error handler."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response
from flask_smorest import Api

from risk.web import docs
from risk.web.errors import ErrorSchema, register_error_handlers
from risk.web.fields import DecimalAmount
from risk.web.transaction import close

DESCRIPTION = (
    "Pre-signing risk checks for second-hand home deals. JSON only, UTF-8. Times are ISO 8601 with offset. "
    "Money and areas come in as a number or a decimal string with at most two places and go out as decimal "
    "strings with exactly two places. Lists are paginated: `{items, next}`; pass `next` back as `cursor`."
)


class PresignApi(Api):
    """flask-smorest's Api with our error shape, documented and handled in one place."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        register_error_handlers(self._app)


def init_api(app: Flask) -> None:
    from listings.api import blp as listings_blp
    from risk.audit.api import blp as audit_blp
    from risk.auth.api import blp as keys_blp
    from risk.deals.api import blp as deals_blp
    from risk.gate.api import blp as gate_blp
    from risk.ops.api import init_operations
    from risk.reports.api import blp as reports_blp
    from risk.requirements.api import blp as requirements_blp
    from risk.webhooks.api import blp as webhooks_blp

    app.config.update(
        API_TITLE="Presign",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={"info": {"description": DESCRIPTION}},
    )
    api = PresignApi(app)
    api.spec.components.security_scheme(
        "bearerAuth",
        {"type": "http", "scheme": "bearer", "description": "An API key from `presign keys create`."},
    )
    api.register_field(DecimalAmount, "string", "decimal")
    blueprints = (listings_blp, reports_blp, deals_blp, gate_blp, requirements_blp, webhooks_blp, audit_blp, keys_blp)
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    app.teardown_appcontext(close)
    init_operations(app)

    def docs_page() -> Response:
        return Response(docs.render(api.spec.to_dict()), mimetype="text/html")

    app.add_url_rule("/api/v1/docs", "api_docs", docs_page)
    app.extensions["presign_api"] = api


def spec(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of an app built by `create_app`."""
    return app.extensions["presign_api"].spec.to_dict()  # type: ignore[no-any-return]
