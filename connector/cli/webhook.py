"""`connector webhook send`: sign a payload and post it as Shopify would (like Shopify CLI's
`app webhook trigger`), to a running connector."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import click

from connector.cli.params import SHOP_DOMAIN, current_runtime
from connector.dev.serve import DEMO_SHOP
from connector.timeutil import utcnow
from webhooks.verify import sign


@click.group()
def webhook() -> None:
    """Send webhooks to a running connector (development and demos)."""


@webhook.command("send")
@click.argument("payload", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--topic", required=True, help="the Shopify topic, e.g. orders/create")
@click.option("--shop", type=SHOP_DOMAIN, default=DEMO_SHOP, show_default=True)
@click.option(
    "--url", default=None, help="the webhook endpoint [default: APP_URL/webhooks/shopify]"
)
@click.option("--event-id", default=None, help="X-Shopify-Event-Id [default: a fresh one]")
def send(payload: Path, topic: str, shop: str, url: str | None, event_id: str | None) -> None:
    """Sign PAYLOAD with SHOPIFY_API_SECRET and POST it with the headers Shopify sends.

    The same --event-id twice is a redelivery: the connector answers `duplicate`.
    """
    settings = current_runtime().settings
    body = payload.read_bytes()
    event_id = event_id or str(uuid.uuid4())
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": sign(body, settings.shopify_api_secrets[0]),
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-API-Version": settings.shopify_api_version,
        "X-Shopify-Triggered-At": utcnow().isoformat(),
    }
    target = url or settings.app_url.rstrip("/") + "/webhooks/shopify"
    request = urllib.request.Request(target, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, answer = response.status, response.read()
    except urllib.error.HTTPError as refused:
        status, answer = refused.code, refused.read()
    except OSError as exc:
        raise click.ClickException(f"cannot reach {target}: {exc}") from exc
    click.echo(f"POST {target}  {topic}  {shop}  event {event_id}")
    click.echo(f"-> {status} {_short(answer)}")
    if status >= 400:
        raise SystemExit(1)


def _short(answer: bytes) -> str:
    try:
        return json.dumps(json.loads(answer))
    except ValueError:
        return answer.decode("utf-8", "replace")[:200]
