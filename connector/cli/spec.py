"""`connector spec check`: run a payload through the mapping and the track spec."""

from __future__ import annotations

import json
from pathlib import Path

import click

from connector.dev.serve import DEMO_SHOP
from connector.spec import load_spec
from webhooks.spec_check import check_payload


@click.group()
def spec() -> None:
    """The track spec (spec.yaml)."""


@spec.command("check")
@click.argument("payload", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", required=True, help="the Shopify topic, e.g. orders/create")
@click.option(
    "--shop",
    default=DEMO_SHOP,
    show_default=True,
    help="the shop the event ids are derived from (the demo's by default)",
)
def spec_check(payload: Path, topic: str, shop: str) -> None:
    """Map PAYLOAD as the pipeline does; print the events it yields, or the violations (exit 1)."""
    try:
        data = json.loads(payload.read_text())
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{payload} is not JSON: {exc}") from exc
    events, violations = check_payload(load_spec(), data, topic, shop)
    if violations:
        for violation in violations:
            click.echo(violation, err=True)
        raise SystemExit(1)
    yields = [event["name"] for event in events]
    summary = {"topic": topic, "yields": yields, "events": events}
    click.echo(json.dumps(summary, indent=2, sort_keys=True))
