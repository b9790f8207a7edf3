"""The `presign` command. Every command builds Settings from the environment and upgrades the
schema first, so each one works on a fresh instance."""

from __future__ import annotations

import logging
import sys

import click

from risk.errors import ConfigError
from risk.runtime import build_runtime
from risk.settings import Settings


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages to stderr.")
def cli(verbose: bool) -> None:
    """Presign: listing verification and pre-signing risk checks."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Alembic reports every schema check at INFO; only upgrades and problems are worth a line.
    logging.getLogger("alembic").setLevel(logging.INFO if verbose else logging.WARNING)


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema to the newest revision."""
    rt = build_runtime()
    from risk.schema import current_revision

    click.echo(f"schema at revision {current_revision(rt.engine)}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API listens on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--api-workers", default=2, show_default=True, type=click.IntRange(1, 64), help="gunicorn workers.")
def serve(host: str, port: int, api_workers: int) -> None:
    """API (with its docs page), worker and scheduler together (embedded defaults unless configured)."""
    from risk.serve import serve as run

    rt = build_runtime()
    sys.exit(run(rt, host, port, api_workers))


@cli.command()
@click.option("--burst", is_flag=True, help="Stop once the queues are empty.")
def worker(burst: bool) -> None:
    """One RQ worker with the scheduler and the database sweeps (production runs many)."""
    from risk.embedded_redis import EmbeddedRedis
    from worker.main import run_worker

    rt = build_runtime()
    embedded = None
    if not rt.settings.redis_url:
        # Share the embedded Redis of a running `presign serve`, or start one for this worker.
        embedded = EmbeddedRedis(rt.settings.instance).start()
    try:
        run_worker(rt, burst=burst)
    finally:
        if embedded is not None:
            embedded.stop()


@cli.command()
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 16), help="Worker processes.")
@click.option("--keep", is_flag=True, help="Keep the demo instance's database from the previous run.")
def demo(workers: int, keep: bool) -> None:
    """Build a small sample world, check its listings through the real queue and workers, print the results."""
    from risk.demo import run_demo

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(run_demo(settings, workers=workers, keep=keep))


def _register_commands() -> None:
    # Each area keeps its commands next to its code; they are gathered here.
    from checks.authenticity.evaluation import eval_authenticity_command
    from checks.providers.importer import import_command
    from listings.market.importer import import_market_command
    from risk.audit.cli import audit
    from risk.auth.cli import keys, secrets
    from risk.bench.cli import bench_command

    commands = (keys, secrets, audit, import_command, import_market_command, eval_authenticity_command, bench_command)
    for command in commands:
        cli.add_command(command)


def main() -> None:
    _register_commands()
    cli(prog_name="presign")


if __name__ == "__main__":
    main()
