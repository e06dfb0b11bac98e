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


@pytest.mark.slow
def test_serve_demo_shows_signed_samples_delivered(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SHOPIFY_", "DATABASE_", "REDIS_", "CONNECTOR_", "CUSTOMERIO_"))
    }
    env["CONNECTOR_INSTANCE_DIR"] = str(tmp_path / "var")
    port = free_port()
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
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line.rstrip())
            if line.startswith("Ctrl-C stops everything"):
                break
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    output = "\n".join(lines)
    assert "embedded Redis at unix://" in output
    assert "-> 200 accepted" in output and "-> 200 duplicate" in output
    assert "customer.io  track order_placed" in output
    assert "customer.io  track checkout_started" in output
    for name in ("order_fulfilled", "order_refunded", "order_cancelled"):
        assert f"customer.io  track {name}" in output, output
    events = output.split("events:", 1)[1].splitlines()
    states = [
        line.split()[-1]
        for line in events
        if " order_placed " in line and "unidentifiable" not in line
    ]
    assert states and set(states) == {"delivered"}, output
    assert any("unidentifiable" in line for line in events)
    assert process.returncode == 0
    with socket.socket() as probe:  # the web server is gone with its parent
        assert probe.connect_ex(("127.0.0.1", port)) != 0
