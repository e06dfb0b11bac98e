"""Benchmark the connector: ingest req/s, delivery events/s, received -> delivered latency.

    .venv/bin/python bench/run.py [--only ingest|delivery|latency] [--database-url URL]
                                  [--seconds N] [--loadgen auto|python]

Everything runs on 127.0.0.1: gunicorn, the RQ worker, a FakeCustomerIO stand-in (in this
process), a Redis database claimed for this run (so a test run can go on beside it), SQLite
in a temp dir and PostgreSQL in a throwaway schema.
Every child runs in its own process group and is killed on the way out, even on error.
See docs/benchmarks.md for what each figure means.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from types import FrameType

from connector.dev.isolation import claimed_redis_database
from connector.gunicorn_config import configured_workers

import phases
from loadgen import tool_name
from procs import Children, bench_workdir
from stack import DEFAULT_PG_URL, REDIS_SERVER, pg_reachable

INGEST_TARGET = 0.35  # connector req/s >= 35% of bare Flask
DELIVERY_TARGET = 500.0  # events/s
LATENCY_TARGET = 2.0  # p99 seconds
Row = list[str]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["ingest", "delivery", "latency"])
    parser.add_argument(
        "--database-url",
        help="PostgreSQL URL for the PostgreSQL ingest run and for delivery/latency "
        f"(default: ingest also on {DEFAULT_PG_URL} when reachable; delivery/latency on SQLite)",
    )
    parser.add_argument(
        "--seconds", type=float, help="ingest measurement window and latency posting time"
    )
    parser.add_argument("--loadgen", choices=["auto", "python"], default="auto")
    parser.add_argument("--events", type=int, default=5000, help="delivery: orders to deliver")
    parser.add_argument("--baseline-events", type=int, default=500)
    parser.add_argument("--rate", type=float, default=200.0, help="latency: orders per second")
    return parser.parse_args(argv)


def counts(text: str) -> list[int]:
    """An argparse type: comma-separated positive integers ("1,100,1000")."""
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("expected positive integers, e.g. 1,100,1000")
    return values


# -- tables ------------------------------------------------------------------------------------


def table(title: str, header: Row, rows: list[Row]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)

    def fmt(row: Row) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([f"\n## {title}", fmt(header), line, *map(fmt, rows)])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def ingest_table(result: phases.IngestResult) -> str:
    bare = result.runs[0].per_second
    rows = []
    for run in result.runs:
        p50 = statistics.median(r.p50_ms for r in run.rounds)
        p99 = max(r.p99_ms for r in run.rounds)
        rows.append(
            [
                run.label,
                f"{run.per_second:.0f}",
                f"{min(run.round_rates):.0f}-{max(run.round_rates):.0f}",
                f"{run.per_second / bare:.0%}" if bare else "-",
                str(run.requests),
                str(run.non200),
                str(run.socket_errors),
                f"{p50:.1f}/{p99:.1f}",
                "-" if run.stored is None else f"{run.stored}/{run.accepted}",
            ]
        )
    header = ["server", "req/s", "rounds", "vs bare", "requests", "non-200", "sock err"]
    header += ["p50/p99 ms", "rows/200s"]
    # gunicorn's options for every server; of two --workers, the later wins
    web = f"gunicorn --workers {configured_workers()} {os.environ.get('BENCH_GUNICORN_ARGS', '')}"
    title = f"Ingest ({result.body_bytes} B signed orders/create, {result.tool}, {web.strip()})"
    return table(title, header, rows)


def delivery_table(runs: list[phases.DeliveryRun]) -> str:
    rows = [
        [
            run.label,
            str(run.events),
            f"{run.events_per_second:.0f}",
            f"{run.delivery_events_per_second:.0f}",
            f"{run.ready_seconds:.1f}",
            f"{run.mapped_seconds:.1f}",
            f"{run.worker_seconds:.1f}",
            f"{run.worker_cpu_ms_per_event:.2f}",
            f"{run.requests_per_second:.1f}",
            f"{run.max_requests_1s}/{run.rate_limit:g}",
            f"{run.mean_events_per_request:.1f} (max {run.max_events_per_request})",
            f"{run.fake_events}/{run.duplicates}",
            ",".join(f"{k}={v}" for k, v in sorted(run.statuses.items())),
        ]
        for run in runs
    ]
    header = [
        "worker",
        "events",
        "ev/s e2e",
        "ev/s send",
        "ready s",
        "mapped s",
        "total s",
        "CPU ms/ev",
        "req/s",
    ]
    header += ["max req/1s", "events/request", "cio ev/dup", "statuses"]
    return table(
        f"Delivery (1 worker, Customer.io answers after {phases.CIO_DELAY * 1000:.0f} ms)",
        header,
        rows,
    )


def latency_table(run: phases.LatencyRun) -> str:
    row = [
        run.label,
        f"{run.load.sent} @ {run.load.per_second:.0f}/s",
        str(run.load.non200 + run.load.errors),
        f"{run.load.max_lag * 1000:.0f}",
        *(f"{run.pct(p) * 1000:.0f}" for p in (50, 95, 99)),
        f"{max(run.latencies, default=float('nan')) * 1000:.0f}",
        f"{run.drain_seconds:.1f}",
        f"{run.max_requests_1s}",
    ]
    header = ["setup", "posted", "non-200", "post lag ms", "p50 ms", "p95 ms", "p99 ms", "max ms"]
    return table("Latency (received_at -> delivered_at)", [*header, "drain s", "max req/1s"], [row])


def summary_table(
    ingest: phases.IngestResult | None,
    delivery: list[phases.DeliveryRun],
    latency: phases.LatencyRun | None,
) -> str:
    rows: list[Row] = []
    if ingest:
        bare = ingest.runs[0].per_second
        for run in ingest.runs[1:]:
            ratio = run.per_second / bare if bare else 0.0
            ok = ratio >= INGEST_TARGET and not run.non200 and not run.lost
            rows.append(
                [
                    f"ingest req/s, {run.label}",
                    f"{run.per_second:.0f}",
                    f"bare Flask {bare:.0f}",
                    f"{ratio:.0%}",
                    f">= {INGEST_TARGET:.0%} of bare",
                    verdict(ok),
                ]
            )
    if delivery:
        main, base = delivery[0], delivery[1] if len(delivery) > 1 else None
        ratio = main.events_per_second / base.events_per_second if base else 0.0
        ok = main.events_per_second >= DELIVERY_TARGET and main.max_requests_1s <= main.rate_limit
        rows.append(
            [
                f"delivery events/s (batch {main.batch_size}, from worker start)",
                f"{main.events_per_second:.0f}",
                f"batch 1: {base.events_per_second:.0f}" if base else "-",
                f"x{ratio:.1f}" if base else "-",
                f">= {DELIVERY_TARGET:.0f}/s, <= {main.rate_limit:g} req in any 1 s",
                verdict(ok),
            ]
        )
    if latency:
        p99 = latency.pct(99)
        rows.append(
            [
                f"latency p99 at {latency.rate:.0f} orders/s",
                f"{p99:.2f} s",
                f"p50 {latency.pct(50):.2f} s",
                "-",
                f"< {LATENCY_TARGET:.0f} s",
                verdict(p99 < LATENCY_TARGET),
            ]
        )
    return table("Summary", ["figure", "connector", "baseline", "ratio", "target", ""], rows)


# -- main --------------------------------------------------------------------------------------


def terminate_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, terminate_on_signal)
    with claimed_redis_database(REDIS_SERVER) as redis_url:
        return run_phases(args, redis_url)


def run_phases(args: argparse.Namespace, redis_url: str) -> int:
    """Run the phases `args` asks for, with `redis_url` as the run's own Redis database."""
    children = Children()
    pg_given = args.database_url
    pg_url = pg_given or (DEFAULT_PG_URL if pg_reachable(DEFAULT_PG_URL) else None)
    ingest = latency = None
    delivery: list[phases.DeliveryRun] = []
    started = time.monotonic()
    out: list[str] = []
    with bench_workdir("connector-bench-", children) as workdir:
        if args.only in (None, "ingest"):
            print(f"ingest: load generator {tool_name(args.loadgen == 'python')}", flush=True)
            backends: list[tuple[str, str | None]] = [("SQLite", None)]
            if pg_url:
                backends.append(("PostgreSQL", pg_url))
            else:
                print("ingest: PostgreSQL not reachable, SQLite only", flush=True)
            ingest = phases.ingest(
                workdir,
                children,
                backends,
                redis_url=redis_url,
                seconds=args.seconds or 8.0,
                warmup=2.0,
                rounds=4,
                force_python=args.loadgen == "python",
            )
            out.append(ingest_table(ingest))
            print(out[-1], flush=True)
        if args.only in (None, "delivery"):
            for label, events, batch in (
                ("batched", args.events, 50),
                ("baseline: batch 1", args.baseline_events, 1),
            ):
                print(f"\ndelivery: {label}, {events} orders", flush=True)
                delivery.append(
                    phases.delivery(
                        workdir,
                        children,
                        label=label,
                        events=events,
                        batch_size=batch,
                        redis_url=redis_url,
                        pg_url=pg_given,
                        tag=len(delivery) + 1,
                    )
                )
            out.append(delivery_table(delivery))
            print(out[-1], flush=True)
        if args.only in (None, "latency"):
            print(f"\nlatency: {args.rate:.0f} orders/s", flush=True)
            latency = phases.latency(
                workdir,
                children,
                redis_url=redis_url,
                pg_url=pg_given,
                rate=args.rate,
                seconds=args.seconds or 10.0,
                tag=9,
            )
            out.append(latency_table(latency))
            print(out[-1], flush=True)
        print(summary_table(ingest, delivery, latency))
        db = "PostgreSQL" if pg_given else "SQLite"
        print(f"\n(delivery and latency on {db}; whole run {time.monotonic() - started:.0f} s)")
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
