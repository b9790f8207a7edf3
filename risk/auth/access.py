"""Who is calling and what they may do: bearer keys, role rights, company and store scope.

A role's rights are named permissions (`listings:write`); an object of another company, or for an
agent of another store, does not exist for the caller (404, never 403, so ids cannot be probed).
"""

from __future__ import annotations

from typing import Any, TypeVar

from flask import g, has_app_context, request
from sqlalchemy import Select

from risk.auth.models import ApiClient
from risk.errors import Forbidden, NotFound, Unauthorized
from risk.runtime import current

LISTINGS_READ = "listings:read"
LISTINGS_WRITE = "listings:write"
REPORTS_READ = "reports:read"
REPORTS_CREATE = "reports:create"
DEALS_READ = "deals:read"
DEALS_WRITE = "deals:write"
GATE = "gate"
OVERRIDES_CREATE = "overrides:create"
KEYS_ADMIN = "keys:admin"
AUDIT_READ = "audit:read"

ALL_PERMISSIONS = frozenset(
    {
        LISTINGS_READ,
        LISTINGS_WRITE,
        REPORTS_READ,
        REPORTS_CREATE,
        DEALS_READ,
        DEALS_WRITE,
        GATE,
        OVERRIDES_CREATE,
        KEYS_ADMIN,
        AUDIT_READ,
    }
)
# API.md, "Auth and tenancy". Reviewers also read their company's reports and listings, which they
# rule on; only reviewers rule (API.md v1.1 "Overrides": admin keys get 403), so admins are not one.
PERMISSIONS: dict[str, frozenset[str]] = {
    "agent": frozenset({LISTINGS_READ, LISTINGS_WRITE, REPORTS_READ, REPORTS_CREATE, GATE, DEALS_READ}),
    "contract_system": frozenset(
        {LISTINGS_READ, LISTINGS_WRITE, REPORTS_READ, REPORTS_CREATE, GATE, DEALS_READ, DEALS_WRITE}
    ),
    "reviewer": frozenset({OVERRIDES_CREATE, REPORTS_READ, LISTINGS_READ}),
    "admin": ALL_PERMISSIONS - {OVERRIDES_CREATE},
}
# Roles confined to their own store's objects; every role is confined to its company.
STORE_SCOPED_ROLES = frozenset({"agent"})

_CLIENT = "presign_client"
S = TypeVar("S", bound=Select[*tuple[Any, ...]])  # a select of any entities


def authenticate() -> ApiClient:
    """The client behind `Authorization: Bearer <key>` (one indexed read, unless the key was presented
    in the last few seconds: `risk.auth.keys.KnownKeys`), or 401."""
    cached: ApiClient | None = g.get(_CLIENT)
    if cached is not None:
        return cached
    from risk.web.transaction import db

    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("send an API key as `Authorization: Bearer <key>`")
    rt = current()
    client = rt.known_keys.resolve(db, key, rt.clock.now())
    if client is None:
        raise Unauthorized("unknown or revoked API key")
    setattr(g, _CLIENT, client)
    return client


def authorize(permission: str) -> ApiClient:
    """The authenticated client if its role has `permission`; 401 or 403 otherwise."""
    if permission not in ALL_PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    client = authenticate()
    if not has_permission(client, permission):
        raise Forbidden(f"a {client.role} key may not do this ({permission})")
    return client


def has_permission(client: ApiClient, permission: str) -> bool:
    return permission in PERMISSIONS.get(client.role, frozenset())


def current_client() -> ApiClient:
    """The client `authorize` let in for this request."""
    client: ApiClient | None = g.get(_CLIENT)
    if client is None:
        raise RuntimeError("current_client() outside an authenticated request")
    return client


def authenticated_client() -> ApiClient | None:
    """The client this request authenticated, if any (None outside a request or before `authorize`)."""
    return g.get(_CLIENT) if has_app_context() else None


def caller_scope() -> tuple[bool, str | None]:
    """Whether this request's caller is confined to a store (or not known), and its store."""
    client = authenticated_client()
    if client is None:
        return True, None
    return client.role in STORE_SCOPED_ROLES, client.store


def can_see(client: ApiClient, *, company: str, store: str | None) -> bool:
    if company != client.company:
        return False
    return client.role not in STORE_SCOPED_ROLES or store == client.store


def ensure_visible(client: ApiClient, *, company: str, store: str | None, what: str) -> None:
    """404 for an object outside the client's company (or, for an agent, its store)."""
    if not can_see(client, company=company, store=store):
        raise NotFound(f"no such {what}")


def scoped(stmt: S, client: ApiClient, *, company: Any, store: Any) -> S:
    """Narrow a query to what the client may see, given the columns holding company and store."""
    stmt = stmt.where(company == client.company)
    if client.role in STORE_SCOPED_ROLES:
        stmt = stmt.where(store == client.store)
    return stmt


def ensure_store_allowed(client: ApiClient, store: str) -> None:
    """Agents act only within their own store (403 otherwise)."""
    if client.role in STORE_SCOPED_ROLES and store != client.store:
        raise Forbidden("an agent key acts only within its own store", fields={"store_id": [f"must be {client.store}"]})
