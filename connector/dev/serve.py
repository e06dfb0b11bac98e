"""`connector serve`: the whole connector as one process tree, for newcomers and demos."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from connector.config import Settings, dev_settings_path
from connector.dev import embedded_redis
from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.storage.console import event_rows
from connector.timeutil import parse_utc, utcnow
from webhooks.verify import sign

DEMO_ENV = {
    "SHOPIFY_API_KEY": "demo-api-key",
    "SHOPIFY_API_SECRET": "demo-shopify-secret",
    "CONNECTOR_SECRET_KEY": "demo-connector-secret-key",
    "SWEEP_INTERVAL_SECONDS": "5",
    "LOG_LEVEL": "WARNING",  # the demo prints what Customer.io receives instead
}
DEMO_SHOP = "demo-shop.myshopify.com"
DEMO_SITE_ID, DEMO_API_KEY = "demo-site", "demo-track-key"
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
# (file, topic): a placed order, its redelivery, a paid echo, more orders, checkouts, then
# what happens to #1042 after it was placed: shipped, one item refunded, cancelled.
DEMO_SAMPLES = [
    ("orders_create_2026-07.json", "orders/create"),
    ("orders_create_2026-07.json", "orders/create"),
    ("orders_create_2026-07.json", "orders/paid"),
    ("orders_create_guest_email_only.json", "orders/create"),
    ("orders_create_pos_anonymous.json", "orders/create"),
    ("orders_create_multicurrency.json", "orders/create"),
    ("checkouts_create_2026-07.json", "checkouts/create"),
    ("checkouts_create_anonymous.json", "checkouts/create"),
    ("checkouts_update_with_email.json", "checkouts/update"),
    ("fulfillments_create_2026-07.json", "fulfillments/create"),
    ("refunds_create_2026-07.json", "refunds/create"),
    ("orders_cancelled_2026-07.json", "orders/cancelled"),
]


def serve(*, demo: bool, host: str, port: int, web_workers: int) -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # Ctrl-C ends the demo even when started in the background, where SIGINT is ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    env = dict(os.environ)
    if demo:
        for key, value in DEMO_ENV.items():
            env.setdefault(key, value)
    instance = Path(env.get("CONNECTOR_INSTANCE_DIR", "var")).resolve()
    env["CONNECTOR_INSTANCE_DIR"] = str(instance)
    children: list[subprocess.Popen[bytes]] = []
    fake_customerio: FakeCustomerIO | None = None
    settings_file: Path | None = None
    embedded_socket: Path | None = None
    if not env.get("REDIS_URL"):
        redis_process, env["REDIS_URL"] = embedded_redis.start(instance / "redis")
        embedded_socket = Path(env["REDIS_URL"].removeprefix("unix://"))
        children.append(redis_process)
        click.echo(f"embedded Redis at {env['REDIS_URL']}")
    if demo:
        fake_customerio = FakeCustomerIO(
            credentials={DEMO_SITE_ID: DEMO_API_KEY}, verbose=True
        ).start()
        env.setdefault("CUSTOMERIO_TRACK_URL", fake_customerio.url)
        click.echo(f"local Customer.io stand-in at {fake_customerio.url}")
    connector = [sys.executable, "-m", "connector"]
    try:
        subprocess.run([*connector, "db", "upgrade"], env=env, check=True)
        if subprocess.run([*connector, "keys", "check"], env=env).returncode != 0:
            raise click.ClickException("not started: see the key check above")
        if demo:
            subprocess.run(
                [
                    *connector,
                    "shops",
                    "add",
                    DEMO_SHOP,
                    "--site-id",
                    DEMO_SITE_ID,
                    "--api-key",
                    DEMO_API_KEY,
                    "--new-store",  # its customers' first orders are first
                ],
                env=env,
                check=True,
            )
        access_log = ["--log-level", "warning"] if demo else ["--access-logfile", "-"]
        env.setdefault("APP_URL", f"http://{host}:{port}")
        if demo:  # so `connector events list` etc. work in another terminal, unconfigured
            settings_file = _write_dev_settings(instance, env)
        children.append(
            _child(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--config",
                    "python:connector.gunicorn_config",
                    "--workers",
                    str(web_workers),
                    "--bind",
                    f"{host}:{port}",
                    *access_log,
                    "connector.app:create_app()",
                ],
                env,
            )
        )
        children.append(_child([*connector, "worker"], env))
        base_url = f"http://{host}:{port}"
        _wait_until_up(base_url)
        click.echo(f"connector is up: POST signed webhooks to {base_url}/webhooks/shopify")
        if demo:
            _post_samples(base_url, env["SHOPIFY_API_SECRET"])
            _show_event_states(env)
        click.echo("Ctrl-C stops everything.")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        click.echo("a child process stopped; shutting down", err=True)
    except KeyboardInterrupt:
        pass
    finally:
        # The children have their own sessions: Ctrl-C reached only this process, which
        # ends them in order (web and worker first, Redis last), quietly.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in reversed(children):  # one after the other: Redis outlives the worker
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        if fake_customerio is not None:
            fake_customerio.stop()
        if settings_file is not None:
            settings_file.unlink(missing_ok=True)
        if embedded_socket is not None:  # redis-server leaves it behind on SIGTERM
            embedded_socket.unlink(missing_ok=True)
        click.echo("connector stopped: web, worker and Redis ended; goodbye.")


def _child(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A child in its own session, so a terminal's Ctrl-C does not reach it directly."""
    return subprocess.Popen(command, env=env, start_new_session=True)


def _write_dev_settings(instance: Path, env: dict[str, str]) -> Path:
    """The demo's settings, where the CLI looks when its required settings are unset
    (connector.config.with_dev_settings). Demo values only: never production secrets."""
    names = (*DEMO_ENV, "REDIS_URL", "CUSTOMERIO_TRACK_URL", "APP_URL", "CONNECTOR_INSTANCE_DIR")
    path = dev_settings_path({"CONNECTOR_INSTANCE_DIR": str(instance)})
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{name}={env[name]}" for name in names if env.get(name)]
    path.write_text(
        "# written by `connector serve --demo`; removed when it stops\n" + "\n".join(lines) + "\n"
    )
    return path


def _stop_on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _wait_until_up(base_url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=1):
                return
        except OSError:  # refused, reset or timed out while gunicorn boots
            time.sleep(0.2)
    raise click.ClickException(f"the web server did not answer at {base_url}")


# The samples' own times; the demo moves them to just now (see `_as_if_recent`).
SHIFTED_FIELDS = ("created_at", "processed_at", "updated_at", "completed_at", "cancelled_at")


def _as_if_recent(payload: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The sample as if it just happened: its latest time a minute ago, the others as far
    before it as they were.

    Only new purchases are placed (NEW_ORDER_WINDOW_HOURS), and the samples are orders of
    July 2026: posted as they are, they would be recorded and never sent.
    """
    times = [parse_utc(str(payload[field])) for field in SHIFTED_FIELDS if payload.get(field)]
    shift = (now - timedelta(minutes=1)) - max(times)
    moved = dict(payload)
    for field in SHIFTED_FIELDS:
        if payload.get(field):
            moved[field] = (parse_utc(str(payload[field])) + shift).isoformat()
    return moved


def _post_samples(base_url: str, secret: str) -> None:
    now = utcnow()
    answers = []
    for index, (name, topic) in enumerate(DEMO_SAMPLES):
        payload = json.loads((SAMPLES / name).read_text())
        body = json.dumps(_as_if_recent(payload, now)).encode()
        event_id = f"demo-{name}-{topic}" if index != 1 else f"demo-{name}-orders/create"
        request = urllib.request.Request(
            f"{base_url}/webhooks/shopify",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Topic": topic,
                "X-Shopify-Shop-Domain": DEMO_SHOP,
                "X-Shopify-Hmac-Sha256": sign(body, secret),
                "X-Shopify-Event-Id": event_id,
                "X-Shopify-Webhook-Id": f"wh-{index}",
                "X-Shopify-API-Version": "2026-07",
            },
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = json.loads(response.read())
        click.echo(f"POST {topic:<17} {name:<40} -> {response.status} {answer['status']}")
        answers.append(answer["status"])
        time.sleep(0.3)
    if answers.count("duplicate") == len(answers):
        click.echo(
            "every sample was already received by an earlier run (same X-Shopify-Event-Id), "
            "so each is answered duplicate and nothing is sent twice; `make clean` starts over"
        )


def _show_event_states(env: dict[str, str], wait_seconds: float = 15) -> None:
    """Print each event's state once delivery has settled (or the wait is over)."""
    rt = Runtime(Settings.from_env(env))
    deadline = time.monotonic() + wait_seconds
    rows = event_rows(rt.sessions)
    while time.monotonic() < deadline and any(row["status"] == "pending" for row in rows):
        time.sleep(0.5)
        rows = event_rows(rt.sessions)
    click.echo("\nevents:")
    for row in rows:
        click.echo(
            f"  {row['id']}  {row['name']:<17} {row['reference'] or '':<34} "
            f"{row['status']:<17} {row['reason'] or ''}"
        )
