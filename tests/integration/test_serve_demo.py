"""The README's run command: the whole flow on embedded defaults, no Shopify, no Customer.io."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT, free_port


def demo_env(instance: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SHOPIFY_", "DATABASE_", "REDIS_", "CONNECTOR_", "CUSTOMERIO_"))
    }
    env["CONNECTOR_INSTANCE_DIR"] = str(instance)
    return env


def start_demo(env: dict[str, str], port: int) -> tuple[subprocess.Popen[str], list[str]]:
    """`connector serve --demo`, read until it is up and the samples went through."""
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", "serve", "--demo", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("Ctrl-C stops everything"):
            break
    return process, lines


def stop_demo(process: subprocess.Popen[str], lines: list[str], sig: int) -> None:
    """Stop it as a terminal's Ctrl-C (SIGINT) or a service manager (SIGTERM) would."""
    try:
        process.send_signal(sig)
        rest, _ = process.communicate(timeout=40)
        lines.extend(rest.splitlines())
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """A `connector` command in another terminal: no settings of its own."""
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_serve_demo_shows_signed_samples_delivered(tmp_path: Path) -> None:
    instance = tmp_path / "var"
    env = demo_env(instance)
    port = free_port()
    process, lines = start_demo(env, port)
    try:
        # Next to the running demo, the CLI needs no variables: it reads the demo's settings.
        listed = cli(env, "events", "list", "--limit", "100")
        sent = cli(
            env,
            "webhook",
            "send",
            "samples/orders_create_2026-07.json",
            "--topic",
            "orders/create",
            "--event-id",
            "demo-orders_create_2026-07.json-orders/create",
        )
        checked = cli(
            env, "spec", "check", "samples/orders_create_2026-07.json", "--topic", "orders/create"
        )
    finally:
        stop_demo(process, lines, signal.SIGINT)
    output = "\n".join(lines)
    assert "embedded Redis at unix://" in output
    assert "-> 200 accepted" in output and "-> 200 duplicate" in output
    assert "customer.io  track order_placed" in output
    assert "customer.io  track checkout_started" in output
    for name in ("order_fulfilled", "order_refunded", "order_cancelled"):
        assert f"customer.io  track {name}" in output, output
    assert not any(line.count("email=") > 1 for line in lines), "a field shown twice"
    events = output.split("events:", 1)[1].splitlines()
    states = [
        line.split()[-1]
        for line in events
        if " order_placed " in line and "unidentifiable" not in line
    ]
    assert states and set(states) == {"delivered"}, output
    assert any("unidentifiable" in line for line in events)

    assert listed.returncode == 0, listed.stderr
    placed = [
        line.split()[0] for line in listed.stdout.splitlines() if "order_placed  #1042" in line
    ]
    assert len(placed) == 1, listed.stdout
    assert sent.returncode == 0 and '-> 200 {"status": "duplicate"}' in sent.stdout, sent.stdout
    assert checked.returncode == 0 and placed[0] in checked.stdout  # the demo's id

    # Ctrl-C: one goodbye, no traceback, nothing left behind.
    assert process.returncode == 0
    assert "Traceback" not in output, output
    assert output.rstrip().endswith("goodbye.")
    assert not (instance / "redis" / "redis.sock").exists()
    assert not (instance / "demo.env").exists()
    with socket.socket() as probe:  # the web server is gone with its parent
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    assert cli(env, "events", "list").returncode != 0  # no demo: no settings to borrow

    # A second run on the same instance says why every sample is a duplicate.
    process, lines = start_demo(env, free_port())
    stop_demo(process, lines, signal.SIGTERM)
    output = "\n".join(lines)
    assert "-> 200 accepted" not in output
    assert "already received by an earlier run" in output, output
    assert process.returncode == 0 and "Traceback" not in output
