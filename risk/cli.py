"""The `presign` command. Every command builds Settings from the environment and upgrades the
schema first, so each one works on a fresh instance."""

from __future__ import annotations

import logging
import sys

import click

from risk.errors import ConfigError
from risk.runtime import Runtime
from risk.settings import Settings


def build_runtime() -> Runtime:
    """Settings from the environment, schema upgraded, runtime activated for this process."""
    from risk.schema import upgrade

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    rt = Runtime.build(settings)
    upgrade(rt.engine)
    return rt.activate()


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages to stderr.")
def cli(verbose: bool) -> None:
    """Presign: listing verification and pre-signing risk checks."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema to the newest revision."""
    rt = build_runtime()
    from risk.schema import current_revision

    click.echo(f"schema at revision {current_revision(rt.engine)}")


def _register_commands() -> None:
    # Each area keeps its commands next to its code; they are gathered here.
    # (commands are added below as the areas land)
    pass


def main() -> None:
    _register_commands()
    cli(prog_name="presign")


if __name__ == "__main__":
    main()
