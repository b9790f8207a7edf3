"""`presign keys ...`: API keys for clients. The key and webhook secret go to stdout, nothing else does."""

from __future__ import annotations

import logging

import click

from risk.auth.models import ROLES

log = logging.getLogger(__name__)


@click.group()
def keys() -> None:
    """API keys (each key is its own client)."""


@keys.command("create")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What the key may do.")
@click.option("--name", required=True, help="Who the key is for (shown in logs and admin lists).")
@click.option("--company", default="default", show_default=True, help="The company whose data the key sees.")
@click.option("--store", default="default", show_default=True, help="The store (agents see only their store's).")
def create(role: str, name: str, company: str, store: str) -> None:
    """Print a new API key on the first line of stdout and its webhook secret on the second."""
    from risk.audit.events import SYSTEM, record
    from risk.auth.keys import create_key
    from risk.cli import build_runtime
    from risk.db import transaction

    for label, value in (("--name", name), ("--company", company), ("--store", store)):
        if not value.strip() or len(value) > (200 if label == "--name" else 100):
            raise click.BadParameter("must be 1 to 100 characters (name: 200)", param_hint=label)
    rt = build_runtime()
    try:
        with transaction(rt.sessions) as session:
            new = create_key(session, rt.clock, role=role, name=name, company=company, store=store)
            record(session, company=company, type="key.created", actor=SYSTEM, subject_kind="client",
                   subject_id=new.client.id, data={"role": role, "name": name, "store": store},
                   at=rt.clock.now())  # fmt: skip
            client_id, key, secret = new.client.id, new.key, new.webhook_secret
    finally:
        rt.close()
    log.info("created %s key %s for %r (company %s, store %s)", role, client_id, name, company, store)
    click.echo(key)
    click.echo(secret)
