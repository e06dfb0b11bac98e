"""Metrics and JSON logs across real processes: gunicorn with two workers (two of them killed
and replaced on the way) and a `connector worker`, sharing one PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from connector.dev.fake_customerio import FakeCustomerIO
from connector.runtime import Runtime
from connector.storage.db import upgrade
from tests.support import (
    ROOT,
    SHOP,
    add_shop,
    free_port,
    make_order,
    make_settings,
    signed_headers,
    subprocess_env,
)

pytestmark = pytest.mark.slow

EMAIL = "maya.chen@example.com"  # the sample order's shopper: must appear in no log line


def _counter_pids(directory: Path) -> set[int]:
    return {int(path.stem.split("_")[-1]) for path in directory.glob("counter_*.db")}


def _wait(condition, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _up(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=1):
            return True
    except OSError:
        return False


def _post(base: str, index: int) -> int:
    body = json.dumps(make_order(8_800_000 + index, email=EMAIL)).encode()
    request = urllib.request.Request(
        f"{base}/webhooks/shopify",
        data=body,
        method="POST",
        headers=signed_headers(body, "orders/create", f"evt-proc-{index}"),
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def _scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


ACCEPTED = (
    "connector_webhooks_received_total",
    (("answer", "accepted"), ("status", "200"), ("topic", "orders/create")),
)
DELIVERED = ("connector_customerio_requests_total", (("outcome", "delivered"), ("status", "200")))


def _json_lines(text: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # each line one JSON object


def test_counts_add_up_across_gunicorn_workers_and_the_worker_logging_json(
    tmp_path: Path, redis_url: str, redis_conn: redis.Redis
) -> None:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    with FakeCustomerIO(credentials={"site-1": "track-key-1"}) as fake:
        settings = make_settings(
            database_url=f"sqlite:///{tmp_path}/connector.db",
            redis_url=redis_url,
            instance_dir=tmp_path,
            customerio_track_url=fake.url,
        )
        rt = Runtime(settings)
        upgrade(rt.engine)
        add_shop(rt, SHOP)
        env = {
            **subprocess_env(settings),
            "LOG_FORMAT": "json",
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
            "PYTHONUNBUFFERED": "1",
        }
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        web_log = tmp_path / "web.log"
        with web_log.open("wb") as log:
            web = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--config",
                    "python:connector.gunicorn_config",
                    "--workers",
                    "2",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "connector.app:create_app()",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait(lambda: _up(base) and len(_counter_pids(multiproc)) == 2, "two web workers")
            with ThreadPoolExecutor(4) as pool:
                assert set(pool.map(lambda i: _post(base, i), range(6))) == {200}
            first_workers = _counter_pids(multiproc)
            for pid in first_workers:  # their counts must survive them
                os.kill(pid, signal.SIGKILL)
            _wait(lambda: len(_counter_pids(multiproc)) == 4 and _up(base), "two new workers")
            with ThreadPoolExecutor(4) as pool:
                assert set(pool.map(lambda i: _post(base, i), range(6, 10))) == {200}
            for _ in range(4):  # whichever worker answers, it adds up every process
                assert _scrape(base)[ACCEPTED] == 10

            worker = subprocess.run(
                [sys.executable, "-m", "connector", "worker", "--burst"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert worker.returncode == 0, worker.stderr
            after = _scrape(base)
        finally:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(20)
        rt.engine.dispose()

    assert after[ACCEPTED] == 10
    assert after[DELIVERED] >= 1  # counted by the worker, in the shared directory
    assert after[("connector_events", (("status", "delivered"),))] == 10
    assert after[("connector_mapping_lag_seconds_count", ())] == 10

    worker_lines = _json_lines(worker.stdout + worker.stderr)
    web_lines = _json_lines(web_log.read_text())
    for line in worker_lines + web_lines:
        assert {"time", "level", "logger", "message"} <= line.keys()
    everything = json.dumps(worker_lines + web_lines)
    assert EMAIL not in everything and "Maya" not in everything
    mapped = [line for line in worker_lines if line["message"].startswith("mapped ")]
    assert sum(len(line["webhook_ids"]) for line in mapped) == 10  # type: ignore[arg-type]
    assert any(line.get("event_ids") for line in worker_lines if line.get("outcome"))
    assert any("Booting worker" in str(line["message"]) for line in web_lines)
