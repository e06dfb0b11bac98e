"""The `connector` command line."""

from __future__ import annotations

import getpass
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from connector import runtime as runtime_module
from connector.cli import console as console_cli
from connector.cli import history as install_cli
from connector.config import ConfigError
from connector.runtime import Runtime
from connector.shop_domain import SHOP_DOMAIN
from connector.statuses import ShopStatus
from connector.storage.db import transaction, upgrade
from connector.storage.models import Shop
from webhooks.topics import ORDER_TOPIC_CHOICES

if TYPE_CHECKING:
    from connector.audit import ReplayPreview


def _runtime() -> Runtime:
    try:
        return runtime_module.current()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


def _parse_when(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.group()
def main() -> None:
    """Shopify -> Customer.io purchase-feed connector."""


@main.group()
def db() -> None:
    """Database migrations."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations."""
    upgrade(_runtime().engine)
    click.echo("database is up to date")


@main.group()
def shops() -> None:
    """Configure shops without the install flow."""


@shops.command("add")
@click.argument("shop")
@click.option("--site-id", required=True, help="Customer.io site id")
@click.option("--api-key", required=True, help="Customer.io Track API key (stored encrypted)")
@click.option("--region", type=click.Choice(["us", "eu"]), default="us", show_default=True)
@click.option(
    "--order-topic",
    type=click.Choice(ORDER_TOPIC_CHOICES),
    default=None,
    help="which webhook places an order [default: orders/create]",
)
@click.option("--include-test-orders/--exclude-test-orders", default=None)
def shops_add(
    shop: str,
    site_id: str,
    api_key: str,
    region: str,
    order_topic: str | None,
    include_test_orders: bool | None,
) -> None:
    """Add or update SHOP's Customer.io workspace; re-activates a shop whose key was rejected."""
    from jobs import queue

    shop = shop.strip().lower()
    if not SHOP_DOMAIN.match(shop):
        raise click.BadParameter("must be a *.myshopify.com domain", param_hint="SHOP")
    rt = _runtime()
    with transaction(rt.sessions) as session:
        row = session.get(Shop, shop) or Shop(domain=shop)
        row.cio_site_id = site_id
        row.cio_api_key_encrypted = rt.secrets.encrypt(api_key)
        row.cio_region = region
        if order_topic:
            row.order_topic = order_topic
        if include_test_orders is not None:
            row.include_test_orders = include_test_orders
        if row.status == ShopStatus.CREDENTIALS_REJECTED:
            row.status, row.status_reason = ShopStatus.ACTIVE, None
        row.status = row.status or ShopStatus.ACTIVE
        session.add(row)
    if rt.settings.redis_url:
        queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER, shop)
    click.echo(f"{shop}: Customer.io site {site_id} ({region}) saved")


@main.group()
def spec() -> None:
    """The track spec (spec.yaml)."""


@spec.command("check")
@click.argument("payload", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", required=True, help="the Shopify topic, e.g. orders/create")
@click.option("--shop", default="example.myshopify.com", show_default=True)
def spec_check(payload: Path, topic: str, shop: str) -> None:
    """Map PAYLOAD and print the canonical event, or the violations (exit 1)."""
    from connector.spec import load_spec
    from webhooks.spec_check import check_payload

    try:
        data = json.loads(payload.read_text())
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{payload} is not JSON: {exc}") from exc
    event, violations = check_payload(load_spec(), data, topic, shop)
    if violations:
        for violation in violations:
            click.echo(violation, err=True)
        sys.exit(1)
    click.echo(json.dumps(event, indent=2, sort_keys=True))


@main.command()
@click.argument("event_ids", nargs=-1)
@click.option("--failed", is_flag=True, help="replay every failed (and quarantined) event")
@click.option("--shop", default=None)
@click.option("--since", default=None, help="ISO time: events that happened at or after")
@click.option("--until", default=None, help="ISO time: events that happened before")
@click.option("--dry-run", is_flag=True, help="show what would be replayed, change nothing")
@click.option("--yes", is_flag=True, help="replay --failed without asking for confirmation")
def replay(
    event_ids: tuple[str, ...],
    failed: bool,
    shop: str | None,
    since: str | None,
    until: str | None,
    dry_run: bool,
    yes: bool,
) -> None:
    """Queue EVENT_IDS (or all failed events) again, with the same ids; audited.

    Shows first what it will do, then asks for confirmation unless --yes.
    """
    from connector.audit import ReplayRequest, preview_replay, run_replay

    if not event_ids and not failed:
        raise click.UsageError("give EVENT_IDS or --failed")
    request = ReplayRequest(
        event_ids=() if failed else tuple(i.strip().upper() for i in event_ids),
        shop=shop,
        since=_parse_when(since),
        until=_parse_when(until),
    )
    rt = _runtime()
    with rt.sessions() as session:
        preview = preview_replay(session, request)
    _echo_preview(preview)
    if dry_run or not preview.replayable:
        return
    if not yes:
        click.confirm(f"Replay {preview.replayable} event(s)?", abort=True)
    result = run_replay(rt, request, actor=f"cli:{_os_user()}")
    for outcome in result.outcomes:
        click.echo(
            f"{outcome.event_id} {outcome.shop_domain} {outcome.before} -> "
            f"{outcome.after}: {outcome.detail}"
        )
    click.echo(
        f"replay #{result.audit_id}: {result.requeued} queued again, "
        f"{result.quarantined} still break the spec, {result.skipped} left alone"
    )


def _echo_preview(preview: ReplayPreview) -> None:
    for event_id in preview.missing:
        click.echo(f"{event_id}: no such event", err=True)
    shops = ", ".join(f"{shop} ({count})" for shop, count in preview.by_shop.items())
    click.echo(f"{preview.replayable} event(s) to queue again with the same ids: {shops or '-'}")
    for status, count in sorted(preview.skipped.items()):
        click.echo(f"{count} {status} event(s) left alone")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@main.command()
def sweep() -> None:
    """Run one sweep now (the worker runs it periodically)."""
    from jobs.tasks import sweep as run_sweep

    _runtime()
    click.echo(json.dumps(run_sweep()))


@main.command()
@click.option("--burst", is_flag=True, help="drain the queue, then exit")
@click.option(
    "--sweep/--no-sweep",
    "with_sweep",
    default=True,
    help="also run the periodic sweep (RQ cron) in a child process",
)
def worker(burst: bool, with_sweep: bool) -> None:
    """Run an RQ worker on the connector's queue."""
    from jobs.worker import run_worker

    run_worker(_runtime(), burst=burst, with_sweep=with_sweep)


@main.command()
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
    from connector.dev.serve import serve as run_serve

    run_serve(demo=demo, host=host, port=port, web_workers=web_workers)


main.add_command(console_cli.staff)
main.add_command(console_cli.events)
main.add_command(install_cli.history)
