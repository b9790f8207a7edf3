"""`presign audit …`: verify the chains, export one, or chain what is pending.

`verify` and `export` only read: they show the events the worker's chainer has linked (within a few
seconds of each action); `chain` links the pending ones now, for an instance with no worker running.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Any

import click

from risk.audit import chain


class _Moment(click.ParamType):
    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time", param, ctx)
        if moment.tzinfo is None:
            self.fail(f"{value!r} has no offset (write e.g. 2026-12-01T00:00:00+08:00)", param, ctx)
        return moment


@click.group()
def audit() -> None:
    """The audit record: one hash chain of events per company."""


@audit.command("verify")
@click.option("--company", help="Only this company's chain (default: every company's).")
def verify(company: str | None) -> None:
    """Recompute every chain: one line per company (`<company> <count> events, head <hash>`), or exit 1
    naming the first event whose hash or link does not hold."""
    from risk.runtime import build_runtime

    rt = build_runtime()
    try:
        with rt.sessions() as session:
            names = [company] if company is not None else chain.companies(session)
            for name in names:
                try:
                    verified = chain.verify_company(session, name)
                except chain.ChainBroken as broken:
                    click.echo(f"chain broken: {broken}", err=True)
                    sys.exit(1)
                click.echo(f"{verified.company} {verified.count} events, head {verified.head}")
    finally:
        rt.close()


@audit.command("export")
@click.option("--company", required=True, help="The company whose chain to export.")
@click.option("--since", type=_Moment(), help="Events at or after this time (ISO 8601 with offset).")
@click.option("--until", type=_Moment(), help="Events before this time (ISO 8601 with offset).")
def export(company: str, since: datetime | None, until: datetime | None) -> None:
    """Write the company's chained events as JSON Lines on stdout, in `seq` order, as the API shows them."""
    from risk.runtime import build_runtime

    rt = build_runtime()
    out = sys.stdout.buffer
    try:
        with rt.sessions() as session:
            for event in chain.chained_events(session, company, since=since, until=until):
                out.write(chain.canonical(chain.body(event)) + b"\n")
    finally:
        rt.close()
    out.flush()


@audit.command("chain")
def chain_now() -> None:
    """Chain every pending event now (the workers do this every few seconds); prints how many."""
    from risk.runtime import build_runtime

    rt = build_runtime()
    try:
        click.echo(f"chained {chain.chain_pending(rt.sessions)} events")
    finally:
        rt.close()
