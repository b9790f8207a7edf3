"""The admin's key endpoints: its own company's clients, their keys and webhook secrets."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.views import MethodView
from sqlalchemy import select

from risk.auth import access, operations
from risk.auth.models import ApiClient, ApiKey
from risk.auth.schemas import (
    ClientPageSchema,
    ClientSchema,
    KeyInputSchema,
    NewClientSchema,
    NewKeySchema,
    NewSecretSchema,
    RotateInputSchema,
)
from risk.errors import NotFound
from risk.runtime import current
from risk.web.boundary import endpoint
from risk.web.ids import looks_like_id
from risk.web.pagination import PageArgsSchema, paginate
from risk.web.parsing import Blueprint
from risk.web.transaction import db

blp = Blueprint("keys", __name__, url_prefix="/api/v1/keys", description="API keys of the admin's company")


def _view(client: ApiClient, keys: list[ApiKey]) -> dict[str, Any]:
    return {
        "id": client.id,
        "role": client.role,
        "name": client.name,
        "company": client.company,
        "store": client.store,
        "created_at": client.created_at,
        "revoked_at": client.revoked_at,
        "keys": [{"prefix": k.prefix, "created_at": k.created_at, "expires_at": k.expires_at} for k in keys],
    }


def _client(client_id: str) -> ApiClient:
    if not looks_like_id(client_id):
        raise NotFound("no such key")
    return operations.get_client(db(), client_id, company=access.current_client().company)


def _overlap(data: dict[str, Any]) -> timedelta:
    overlap: timedelta = data.get("overlap", operations.DEFAULT_OVERLAP)
    return overlap


@blp.route("")
class Keys(MethodView):
    @endpoint(access.KEYS_ADMIN)
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, ClientPageSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """The company's clients, newest first, with their keys' prefixes (never a key or a secret)."""
        stmt = select(ApiClient).where(ApiClient.company == access.current_client().company)
        clients, next_cursor = paginate(db(), stmt, ApiClient.id, args)
        held = operations.keys_of(db(), [c.id for c in clients])
        return {"items": [_view(c, held[c.id]) for c in clients], "next": next_cursor}

    # Not idempotent on purpose: a replay would have to store the new key and secret to answer again.
    @endpoint(access.KEYS_ADMIN)
    @blp.arguments(KeyInputSchema)
    @blp.response(201, NewClientSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """A new client of the admin's company: its key and webhook secret are shown this once."""
        admin = access.current_client()
        rt = current()
        new = operations.create_client(
            db(), rt.clock, rt.secret_box, role=data["role"], name=data["name"], company=admin.company,
            store=data["store"], actor=operations.Actor.of(admin),
        )  # fmt: skip
        held = operations.keys_of(db(), [new.client.id])
        return {**_view(new.client, held[new.client.id]), "key": new.key, "webhook_secret": new.webhook_secret}, 201


@blp.route("/<client_id>/revoke")
class Revoke(MethodView):
    @endpoint(access.KEYS_ADMIN, empty_body=True)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.response(200, ClientSchema)
    def post(self, client_id: str) -> Any:
        """Revoke every key of the client: refused on every API process within 5 seconds."""
        admin = access.current_client()
        client = operations.revoke(db(), current().clock, _client(client_id), operations.Actor.of(admin))
        return _view(client, operations.keys_of(db(), [client.id])[client.id])


@blp.route("/<client_id>/rotate")
class Rotate(MethodView):
    @endpoint(access.KEYS_ADMIN, empty_body=True)
    @blp.arguments(RotateInputSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="the client is revoked")
    @blp.response(201, NewKeySchema)
    def post(self, data: dict[str, Any], client_id: str) -> Any:
        """A new key for the client; its previous keys work until `overlap` (default 24h) has passed."""
        admin = access.current_client()
        client = _client(client_id)
        key = operations.rotate_key(db(), current().clock, client, _overlap(data), operations.Actor.of(admin))
        return {"id": client.id, "key": key}, 201


@blp.route("/<client_id>/rotate-secret")
class RotateSecret(MethodView):
    @endpoint(access.KEYS_ADMIN, empty_body=True)
    @blp.arguments(RotateInputSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    @blp.alt_response(409, response="CONFLICT", description="the client is revoked")
    @blp.response(201, NewSecretSchema)
    def post(self, data: dict[str, Any], client_id: str) -> Any:
        """A new webhook secret; the previous ones sign deliveries beside it until `overlap` has passed."""
        admin = access.current_client()
        client = _client(client_id)
        rt = current()
        secret = operations.rotate_secret(
            db(), rt.clock, rt.secret_box, client, _overlap(data), operations.Actor.of(admin)
        )
        return {"id": client.id, "webhook_secret": secret}, 201
