"""`connector spec check`: a payload file in, the canonical event or the violations out.

The first test runs `python -m connector` end to end; the other runs in process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, SAMPLES, invoke_cli, sample


def spec_check(path: Path, topic: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", "spec", "check", str(path), "--topic", topic],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_valid_payload_prints_the_canonical_event() -> None:
    result = spec_check(SAMPLES / "orders_create_2026-07.json", "orders/create")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["yields"] == ["order_placed"]
    [event] = printed["events"]
    assert event["name"] == "order_placed"
    assert event["properties"]["currency"] == "USD"


def test_a_cancellation_yields_order_cancelled_not_order_placed() -> None:
    path = str(SAMPLES / "orders_cancelled_2026-07.json")
    result = invoke_cli(None, "spec", "check", path, "--topic", "orders/cancelled")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["yields"] == ["order_cancelled"]


def test_a_payload_that_breaks_the_spec_prints_violations_and_fails(tmp_path: Path) -> None:
    payload = sample("orders_create_2026-07.json")
    for key in [k for k in payload if k.endswith("_set")] + ["currency", "presentment_currency"]:
        payload.pop(key, None)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(payload))
    result = invoke_cli(None, "spec", "check", str(path), "--topic", "orders/create")
    assert result.returncode == 1
    assert "order_placed.currency: missing" in result.stderr.splitlines()
    assert result.stdout == ""
