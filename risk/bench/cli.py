"""`presign bench [--quick]`: run the sections, print the table on stdout, write JSON and markdown."""

from __future__ import annotations

import importlib
import logging
import shlex
import sys
import time
from pathlib import Path

import click

from risk.bench.context import Context, Sizes
from risk.bench.infra import BenchError, Scratch, interrupts_as_exceptions, port_open
from risk.bench.results import Run, machine, print_table

# Section name -> module with run(ctx); in the order.
SECTIONS = {
    "latency": "risk.bench.latency",
    "throughput": "risk.bench.throughput",
    "gate": "risk.bench.gate",
    "replan": "risk.bench.replan",
    "import": "risk.bench.importing",
}


def run_bench(sections: list[str], sizes: Sizes, *, quick: bool, out: Path | None, plot: Path | None,
              pg: bool = True, show_progress: bool = True) -> Run:  # fmt: skip
    """Run the sections on fresh scratch space; everything started is stopped and removed on the way out."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    run = Run(command=" ".join(["presign", *map(shlex.quote, sys.argv[1:])]) if sys.argv else "presign bench",
              quick=quick)  # fmt: skip
    started = time.monotonic()
    scratch = Scratch()
    progress = (
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )  # fmt: skip
        if show_progress
        else None
    )
    try:
        with interrupts_as_exceptions():
            if progress is not None:
                scratch.stack.enter_context(progress)
            redis_url = scratch.redis()
            if not pg:
                run.skipped.append("PostgreSQL figures (--no-postgres)")
            elif not port_open("127.0.0.1", 5432):
                pg = False
                run.skipped.append("PostgreSQL figures (no server on 127.0.0.1:5432)")
            ctx = Context(scratch=scratch, run=run, sizes=sizes, redis_url=redis_url, pg=pg, progress=progress)
            run.machine = machine(redis_url, _pg_admin() if pg else None)
            for name in sections:
                importlib.import_module(SECTIONS[name]).run(ctx)
                if ctx.failures:
                    run.data.setdefault("retried_job_failures", {})[name] = list(ctx.failures)
                    run.notes.append(f"{name}: {len(ctx.failures)} job attempts failed and were retried by RQ "
                                       f"(first: {ctx.failures[0][:200]})")  # fmt: skip
                    ctx.failures.clear()
                ctx.finish_step()
                # Each section's processes stop with it, and Redis is left as it was found: no worker of
                # one section takes another's jobs (its database does not have their reports).
                scratch.stop_all()
                ctx.redis().flushdb()
    finally:
        scratch.close()
    run.seconds = time.monotonic() - started
    if out is not None:
        run.write(out)
    if plot is not None and "latency" in run.data:
        from risk.bench.plot import latency_plot

        latency_plot(run, plot)
    return run


def _pg_admin() -> str:
    from risk.bench.infra import PG_ADMIN_URL

    return PG_ADMIN_URL


@click.command("bench")
@click.option("--quick", is_flag=True, help="Tiny counts, a few seconds per section (CI); asserts nothing.")
@click.option("--only", "only", multiple=True, type=click.Choice(list(SECTIONS)), help="Run only these sections.")
@click.option("--latency-ms", default=50.0, show_default=True, type=click.FloatRange(0, 2000),
              help="How long each provider takes to answer in the latency section (L).")  # fmt: skip
@click.option("--out", default="bench-results", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for <timestamp>.json, .md and the latency plot.")  # fmt: skip
@click.option("--no-postgres", is_flag=True, help="Skip the PostgreSQL figures.")
def bench_command(quick: bool, only: tuple[str, ...], latency_ms: float, out: Path, no_postgres: bool) -> None:
    """Measure Presign against the limits that bound it, in one run on this machine.

    Every figure is a ratio against a limit measured in the same run (the slowest provider, RQ's own
    floor, a hello-world endpoint under the same gunicorn...). Prints a table; writes JSON, markdown and
    a plot of the report latencies under --out. Exits non-zero only if the harness itself breaks.
    """
    logging.getLogger().setLevel(logging.WARNING)
    sizes = Sizes.quick(latency_ms) if quick else Sizes(latency_ms=latency_ms)
    sections = list(only) or list(SECTIONS)
    stamp_dir = out
    try:
        run = run_bench(sections, sizes, quick=quick, out=stamp_dir, plot=None, pg=not no_postgres)
    except BenchError as exc:
        raise click.ClickException(f"the bench harness broke: {exc}") from exc
    except KeyboardInterrupt:
        click.echo("interrupted; every process and temporary file was cleaned up", err=True)
        raise click.exceptions.Exit(130) from None
    json_path = out / f"{run.started:%Y%m%dT%H%M%SZ}.json"
    if "latency" in run.data:
        from risk.bench.plot import latency_plot

        plot_path = latency_plot(run, out / f"{run.started:%Y%m%dT%H%M%SZ}-latency.png")
        if plot_path is not None:
            click.echo(f"plot: {plot_path}", err=True)
    print_table(run)
    click.echo(f"wrote {json_path} and {json_path.with_suffix('.md')}", err=True)
