"""Fallback load generator (when wrk is absent): processes with keep-alive http.client.

Run as a script; prints one `BENCH_RESULT {json}` line like the wrk script does:
    pyload.py PORT PATH BODY_FILE HEADERS_FILE PREFIX SECONDS [PROCESSES]
Each process sends requests back to back on one connection (reopened when the server
closes it, as gunicorn's sync workers do after each answer) with a unique event id each.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import sys
import time
from pathlib import Path


def read_headers(path: str) -> dict[str, str]:
    headers = {}
    for line in Path(path).read_text().splitlines():
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip()] = value.strip()
    return headers


def blast(
    port: int, path: str, body: bytes, headers: dict[str, str], prefix: str, seconds: float
) -> dict[str, float]:
    """Send requests for `seconds`; return counts and latency sums."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    deadline = time.monotonic() + seconds
    done = non200 = errors = 0
    latencies: list[float] = []
    while time.monotonic() < deadline:
        event_id = f"{prefix}-{done + errors}"
        sent = time.monotonic()
        try:
            conn.request(
                "POST",
                path,
                body=body,
                headers={
                    **headers,
                    "X-Shopify-Event-Id": event_id,
                    "X-Shopify-Webhook-Id": event_id,
                },
            )
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            continue
        latencies.append(time.monotonic() - sent)
        done += 1
        non200 += response.status != 200
    conn.close()
    latencies.sort()
    return {"requests": done, "non200": non200, "socket_errors": errors, "latencies": latencies}


def _worker(args: tuple[int, str, bytes, dict[str, str], str, float]) -> dict[str, float]:
    return blast(*args)


def main(argv: list[str]) -> int:
    port, path, body_file, headers_file, prefix, seconds = argv[:6]
    processes = int(argv[6]) if len(argv) > 6 else 4
    body = Path(body_file).read_bytes()
    headers = read_headers(headers_file)
    jobs = [
        (int(port), path, body, headers, f"{prefix}-p{n}", float(seconds)) for n in range(processes)
    ]
    started = time.monotonic()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        results = pool.map(_worker, jobs)
    elapsed = time.monotonic() - started
    latencies = sorted(x for r in results for x in r["latencies"])
    summary = {
        "requests": sum(r["requests"] for r in results),
        "duration_us": int(elapsed * 1e6),
        "non200": sum(r["non200"] for r in results),
        "socket_errors": sum(r["socket_errors"] for r in results),
        "p50_ms": _pct(latencies, 50) * 1000,
        "p99_ms": _pct(latencies, 99) * 1000,
    }
    print("BENCH_RESULT " + json.dumps(summary), flush=True)
    return 0


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
