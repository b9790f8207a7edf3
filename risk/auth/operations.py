"""Key and secret operations: create a client, revoke it, rotate its key or its webhook secret.

Services only flush; the caller commits (the API boundary, or the CLI's transaction). Every operation
records its key event through one function per event type (`key.created`, `key.revoked`, `key.rotated`,
`webhook_secret.rotated`): an audit event in the same transaction, never holding a key or a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from risk.audit.events import SYSTEM, Actor, record
from risk.auth.keys import hash_key, new_key, new_webhook_secret
from risk.auth.models import ROLES, ApiClient, ApiKey, WebhookSecret
from risk.clock import Clock
from risk.crypto import SecretBox
from risk.db import new_id
from risk.errors import Conflict, NotFound

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=30)
PREFIX_LENGTH = 12


@dataclass(frozen=True)
class NewKey:
    client: ApiClient
    key: str
    webhook_secret: str




@dataclass(frozen=True)
class SigningSecret:
    value: str
    standard: bool  # also signs the Standard Webhooks headers


# -- events ---------------------------------------------------------------------------------------


def _event(session: Session, event_type: str, actor: Actor, client: ApiClient, at: datetime,
           data: dict[str, Any]) -> None:  # fmt: skip
    record(session, company=client.company, type=event_type, actor=actor, subject_kind="client",
           subject_id=client.id, data=data, at=at)  # fmt: skip


def key_created(session: Session, actor: Actor, client: ApiClient, prefix: str, at: datetime) -> None:
    _event(session, "key.created", actor, client, at, {"role": client.role, "name": client.name, "store": client.store,
                                               "prefix": prefix})  # fmt: skip


def key_revoked(session: Session, actor: Actor, client: ApiClient, at: datetime) -> None:
    _event(session, "key.revoked", actor, client, at, {})


def key_rotated(
    session: Session, actor: Actor, client: ApiClient, prefix: str, old_expire_at: datetime, at: datetime
) -> None:
    data = {"prefix": prefix, "previous_keys_expire_at": old_expire_at.isoformat()}
    _event(session, "key.rotated", actor, client, at, data)


def webhook_secret_rotated(
    session: Session, actor: Actor, client: ApiClient, old_expire_at: datetime, at: datetime
) -> None:
    data = {"previous_secrets_expire_at": old_expire_at.isoformat()}
    _event(session, "webhook_secret.rotated", actor, client, at, data)


# -- operations -----------------------------------------------------------------------------------


def create_client(
    session: Session,
    clock: Clock,
    box: SecretBox,
    *,
    role: str,
    name: str,
    company: str = "default",
    store: str = "default",
    actor: Actor = SYSTEM,
) -> NewKey:
    """A new client with one key and one webhook secret, both returned this once."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    now = clock.now()
    client = ApiClient(id=new_id("cli"), name=name, role=role, company=company, store=store, created_at=now)
    session.add(client)
    session.flush()
    key = _add_key(session, client, now)
    secret = _add_secret(session, box, client, now)
    key_created(session, actor, client, key[:PREFIX_LENGTH], now)
    return NewKey(client=client, key=key, webhook_secret=secret)


def _add_key(session: Session, client: ApiClient, now: datetime) -> str:
    key = new_key()
    session.add(ApiKey(id=new_id("key"), client_id=client.id, key_hash=hash_key(key), prefix=key[:PREFIX_LENGTH],
                       created_at=now))  # fmt: skip
    session.flush()
    return key


def _add_secret(session: Session, box: SecretBox, client: ApiClient, now: datetime) -> str:
    secret = new_webhook_secret()
    session.add(WebhookSecret(id=new_id("whs"), client_id=client.id, encrypted=box.encrypt(secret), standard=True,
                              created_at=now))  # fmt: skip
    session.flush()
    return secret


def get_client(session: Session, client_id: str, company: str | None = None) -> ApiClient:
    """The client, or 404 (also for another company's, when `company` is given)."""
    client = session.get(ApiClient, client_id)
    if client is None or (company is not None and client.company != company):
        raise NotFound("no such key")
    return client


def _active(client: ApiClient) -> None:
    if client.revoked_at is not None:
        raise Conflict("this key is revoked")


def revoke(session: Session, clock: Clock, client: ApiClient, actor: Actor = SYSTEM) -> ApiClient:
    """Revoke every key of the client (a second revoke changes nothing). Every API process refuses them
    within `risk.auth.keys.KEY_CACHE_SECONDS`."""
    if client.revoked_at is None:
        client.revoked_at = clock.now()
        session.flush()
        key_revoked(session, actor, client, client.revoked_at)
    return client


def _end_overlap(session: Session, model: type[ApiKey] | type[WebhookSecret], client_id: str, until: datetime) -> None:
    """Make the client's current keys (or secrets) expire at `until`, unless they expire sooner already."""
    session.execute(
        update(model)
        .where(model.client_id == client_id, or_(model.expires_at.is_(None), model.expires_at > until))
        .values(expires_at=until)
        .execution_options(synchronize_session=False)
    )


def rotate_key(
    session: Session, clock: Clock, client: ApiClient, overlap: timedelta = DEFAULT_OVERLAP, actor: Actor = SYSTEM
) -> str:
    """A new key for the client; its other keys keep working for `overlap`, then are refused."""
    _active(client)
    now = clock.now()
    until = now + _bounded(overlap)
    _end_overlap(session, ApiKey, client.id, until)
    key = _add_key(session, client, now)
    key_rotated(session, actor, client, key[:PREFIX_LENGTH], until, now)
    return key


def rotate_secret(
    session: Session,
    clock: Clock,
    box: SecretBox,
    client: ApiClient,
    overlap: timedelta = DEFAULT_OVERLAP,
    actor: Actor = SYSTEM,
) -> str:
    """A new webhook secret; the others keep signing deliveries (beside it) for `overlap`."""
    _active(client)
    now = clock.now()
    until = now + _bounded(overlap)
    _end_overlap(session, WebhookSecret, client.id, until)
    secret = _add_secret(session, box, client, now)
    webhook_secret_rotated(session, actor, client, until, now)
    return secret


def _bounded(overlap: timedelta) -> timedelta:
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise ValueError("an overlap lies between 0 and 30 days")
    return overlap


# -- reading --------------------------------------------------------------------------------------


def keys_of(session: Session, client_ids: Sequence[str]) -> dict[str, list[ApiKey]]:
    """Each client's keys, newest first (no secrets: a key's hash and prefix only)."""
    out: dict[str, list[ApiKey]] = {client_id: [] for client_id in client_ids}
    if client_ids:
        for key in session.scalars(
            select(ApiKey).where(ApiKey.client_id.in_(client_ids)).order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        ):
            out[key.client_id].append(key)
    return out


def signing_secrets(session: Session, box: SecretBox, client_id: str, now: datetime) -> tuple[SigningSecret, ...]:
    """The client's webhook secrets that sign a delivery at `now`, newest first."""
    rows = session.execute(
        select(WebhookSecret.encrypted, WebhookSecret.standard)
        .where(
            WebhookSecret.client_id == client_id,
            or_(WebhookSecret.expires_at.is_(None), WebhookSecret.expires_at > now),
        )
        .order_by(WebhookSecret.created_at.desc(), WebhookSecret.id.desc())
    ).all()
    return tuple(SigningSecret(box.decrypt(encrypted), bool(standard)) for encrypted, standard in rows)


def reencrypt_secrets(session: Session, box: SecretBox) -> int:
    """Every stored webhook secret again under the first encryption key; returns how many."""
    count = 0
    for secret in session.scalars(select(WebhookSecret)):
        secret.encrypted = box.reencrypt(secret.encrypted)
        count += 1
    session.flush()
    return count
