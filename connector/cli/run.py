"""`connector worker|serve|sweep`: run the connector's processes."""

from __future__ import annotations

import json

import click

from connector.cli.params import current_runtime
from connector.config import ConfigError
from jobs.tasks import sweep as run_sweep
from jobs.worker import run_worker


@click.command()
def sweep() -> None:
    """Run one sweep now (the worker runs it periodically)."""
    current_runtime()
    click.echo(json.dumps(run_sweep()))


@click.command()
@click.option("--burst", is_flag=True, help="drain the queue, then exit")
@click.option(
    "--sweep/--no-sweep",
    "with_sweep",
    default=True,
    help="also run the periodic sweep (RQ cron) in a child process",
)
def worker(burst: bool, with_sweep: bool) -> None:
    """Run an RQ worker on the connector's queue."""
    try:
        run_worker(current_runtime(), burst=burst, with_sweep=with_sweep)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.option(
    "--demo",
    is_flag=True,
    help="dev secrets, a local Customer.io stand-in, and signed sample webhooks",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True)
@click.option("--web-workers", default=2, show_default=True)
def serve(demo: bool, host: str, port: int, web_workers: int) -> None:
    """Run web (gunicorn) + worker (+ embedded Redis, SQLite defaults) until Ctrl-C."""
    from connector.dev.serve import serve as run_serve  # the embedded Redis: not for workers

    run_serve(demo=demo, host=host, port=port, web_workers=web_workers)
