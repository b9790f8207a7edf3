"""`presign keys ...` and `presign secrets ...`: API keys for clients, their webhook secrets, and the key
that encrypts those secrets at rest. A new key or secret goes to stdout, nothing else does."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from risk.auth import operations
from risk.auth.models import ROLES, ApiClient
from risk.errors import ConfigError, PresignError
from risk.settings import parse_duration
from risk.webapp.auth import WEB_ROLES, issue_login_token, login_link

log = logging.getLogger(__name__)


@contextmanager
def _unit_of_work() -> Iterator[tuple[Any, Session]]:
    """The runtime and one transaction; a domain error becomes the command's error message."""
    from risk.db import transaction
    from risk.runtime import build_runtime

    rt = build_runtime()
    try:
        with transaction(rt.sessions) as session:
            yield rt, session
    except (PresignError, ConfigError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        rt.close()


def _overlap(_ctx: click.Context, _param: click.Parameter, value: str) -> timedelta:
    try:
        overlap = parse_duration(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    if overlap > operations.MAX_OVERLAP:
        raise click.BadParameter("at most 30d")
    return overlap


_OVERLAP_OPTION: Callable[[Any], Any] = click.option(
    "--overlap", default="24h", show_default=True, callback=_overlap,
    help="How long the previous ones keep working (s, m, h or d).",
)  # fmt: skip


_BASE_URL_OPTION: Callable[[Any], Any] = click.option(
    "--base-url", envvar="PRESIGN_PUBLIC_URL", default="http://127.0.0.1:8000", show_default=True,
    help="Where people reach Presign, for the sign-in link (env PRESIGN_PUBLIC_URL).",
)  # fmt: skip


@click.group()
def keys() -> None:
    """API keys: a client holds one key, or more during a rotation."""


@keys.command("create")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the key may do.")
@click.option("--name", required=True, help="Who the key is for (shown in logs and admin lists).")
@click.option("--company", default="default", show_default=True, help="The company whose data the key sees.")
@click.option("--store", default="default", show_default=True, help="The store (agents see only their store's).")
@click.option("--login", is_flag=True, help="Also print a one-time sign-in link for the web page (third line).")
@_BASE_URL_OPTION
def create(role: str, name: str, company: str, store: str, login: bool, base_url: str) -> None:
    """Print a new API key on the first line of stdout and its webhook secret on the second (with
    `--login`, a one-time sign-in link to the web page, valid 15 minutes, on the third)."""
    if login and role not in WEB_ROLES:
        raise click.BadParameter(f"the web page signs in {' and '.join(sorted(WEB_ROLES))} keys", param_hint="--login")
    for label, value in (("--name", name), ("--company", company), ("--store", store)):
        if not value.strip() or len(value) > (200 if label == "--name" else 100):
            raise click.BadParameter("must be 1 to 100 characters (name: 200)", param_hint=label)
    with _unit_of_work() as (rt, session):
        new = operations.create_client(
            session, rt.clock, rt.secret_box, role=role, name=name, company=company, store=store
        )
        client_id, key, secret = new.client.id, new.key, new.webhook_secret
        link = login_link(base_url, issue_login_token(session, new.client, rt.clock.now())) if login else None
    log.info("created %s key %s for %r (company %s, store %s)", role, client_id, name, company, store)
    click.echo(key)
    click.echo(secret)
    if link is not None:
        click.echo(link)


@keys.command("login")
@click.argument("key_id")
@_BASE_URL_OPTION
def login(key_id: str, base_url: str) -> None:
    """Print a new one-time sign-in link (valid 15 minutes) to the web page for an agent or reviewer client."""
    with _unit_of_work() as (rt, session):
        client = operations.get_client(session, key_id)
        if client.revoked_at is not None or client.role not in WEB_ROLES:
            raise click.ClickException("only an active agent or reviewer client signs in to the web page")
        link = login_link(base_url, issue_login_token(session, client, rt.clock.now()))
    click.echo(link)


@keys.command("list")
@click.option("--company", default=None, help="Only this company's clients.")
def list_keys(company: str | None) -> None:
    """One line per client: id, role, company/store, name, created, revoked, its keys' prefixes (no secrets)."""
    with _unit_of_work() as (_rt, session):
        stmt = select(ApiClient).order_by(ApiClient.company, ApiClient.id)
        if company is not None:
            stmt = stmt.where(ApiClient.company == company)
        clients = session.scalars(stmt).all()
        by_client = operations.keys_of(session, [c.id for c in clients])
        lines = []
        for c in clients:
            held = " ".join(
                f"{k.prefix}…" + (f"(expires {k.expires_at.isoformat()})" if k.expires_at else "")
                for k in by_client[c.id]
            )
            revoked = c.revoked_at.isoformat() if c.revoked_at else "-"
            lines.append(
                f"{c.id}\t{c.role}\t{c.company}/{c.store}\t{c.name}\tcreated {c.created_at.isoformat()}"
                f"\trevoked {revoked}\tkeys {held}"
            )
    for line in lines:
        click.echo(line)


@keys.command("revoke")
@click.argument("key_id")
def revoke(key_id: str) -> None:
    """Revoke every key of client KEY_ID (refused everywhere within 5 seconds)."""
    with _unit_of_work() as (rt, session):
        operations.revoke(session, rt.clock, operations.get_client(session, key_id))
    log.info("revoked client %s", key_id)


@keys.command("rotate")
@click.argument("key_id")
@_OVERLAP_OPTION
def rotate(key_id: str, overlap: timedelta) -> None:
    """Print a new key for client KEY_ID; its previous keys work until the overlap ends."""
    with _unit_of_work() as (rt, session):
        key = operations.rotate_key(session, rt.clock, operations.get_client(session, key_id), overlap)
    log.info("rotated the key of client %s (overlap %s)", key_id, overlap)
    click.echo(key)


@keys.command("rotate-secret")
@click.argument("key_id")
@_OVERLAP_OPTION
def rotate_secret(key_id: str, overlap: timedelta) -> None:
    """Print a new webhook secret for client KEY_ID; the previous ones sign beside it until the overlap ends."""
    with _unit_of_work() as (rt, session):
        secret = operations.rotate_secret(
            session, rt.clock, rt.secret_box, operations.get_client(session, key_id), overlap
        )
    log.info("rotated the webhook secret of client %s (overlap %s)", key_id, overlap)
    click.echo(secret)


@click.group()
def secrets() -> None:
    """The encryption of webhook secrets at rest."""


@secrets.command("new-key")
def new_key() -> None:
    """Print a fresh encryption key, to put first in PRESIGN_ENCRYPTION_KEYS."""
    from risk.crypto import new_key as fresh

    click.echo(fresh())


@secrets.command("reencrypt")
def reencrypt() -> None:
    """Encrypt every stored webhook secret again under the first key of PRESIGN_ENCRYPTION_KEYS."""
    with _unit_of_work() as (rt, session):
        count = operations.reencrypt_secrets(session, rt.secret_box)
    click.echo(f"re-encrypted {count} webhook secrets", err=True)
