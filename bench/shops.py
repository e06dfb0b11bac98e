"""Many-shops benchmark: one order rate spread over 1, 100 and 1,000 shops.

    .venv/bin/python bench/shops.py [--rate 200] [--seconds 10] [--shops 1,100,1000]
                                    [--workers 2] [--database-url URL] [--drain-timeout 120]

One run per shop count, one after the other, each on a fresh instance (bench/stack.py): N
shops, each with its own Customer.io workspace (site id and API key, so its own rate-limit
key), one gunicorn (2 sync workers), `--workers` RQ worker processes (`connector worker`,
each with its sweep scheduler) and a FakeCustomerIO in this process that knows all N
workspaces and answers after 20 ms. Signed orders/create webhooks are posted at `--rate`
for `--seconds`, order i to shop i mod N. The bench then waits until every accepted order
is settled (delivered, or set aside) or `--drain-timeout` seconds have passed, and reads the
figures from the database, RQ's worker counters in Redis and the fake's request log.

A missed target is a measurement, not an error: the exit status is 0 unless something
crashed. See docs/benchmarks.md ("Many shops") for what each column means.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from connector.dev.fake_customerio import FakeCustomerIO
from connector.dev.isolation import claimed_redis_database
from connector.statuses import EventStatus, InboxState

from drain import (
    QueueWatch,
    busiest_workspace_1s,
    jobs_done,
    order_rows,
    queue_of,
    queued_by_function,
    settled,
    start_workers,
    wait_idle,
    warm_up,
)
from fakecio import BenchCustomerIO
from phases import (
    CIO_DELAY,
    CONNECTOR_APP,
    batch_requests,
    percentile,
    start_web,
    wait_until,
)
from post import PostStats, distinct_orders, order_event_id, post_all
from procs import Children, bench_workdir
from run import counts, table, terminate_on_signal, verdict
from stack import (
    REDIS_SERVER,
    Instance,
    Workspace,
    add_shops,
    create_instance,
    workspaces,
)

P99_TARGET = 1.0  # seconds, received -> delivered, at every shop count
SPREAD_TARGET = 2.0  # p99 with the most shops at most this many times p99 with the fewest
NEVER = math.inf  # the latency of an order not delivered when the wait ended


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="orders per second, in all")
    parser.add_argument("--seconds", type=float, default=10.0, help="posting time per run")
    parser.add_argument(
        "--shops", type=counts, default=[1, 100, 1000], help="shop counts, e.g. 1,100,1000"
    )
    parser.add_argument("--workers", type=int, default=2, help="RQ worker processes")
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=120.0,
        help="seconds to wait after the last post for every order to settle",
    )
    return parser.parse_args(argv)


# -- one run -----------------------------------------------------------------------------------


@dataclass
class ShopsRun:
    shops: int
    workers: int
    rate_limit: float  # DELIVERY_RATE_PER_SECOND
    registered_seconds: float  # `shops add` of every shop but the first
    load: PostStats
    settled: bool  # False: the drain timeout ended the wait
    window_seconds: float  # first post -> settled (or the timeout)
    drain_seconds: float  # last post answered -> settled (or the timeout)
    jobs: int  # RQ jobs the workers ended (finished or failed) during the window
    failed_jobs: int
    max_queued: int  # most jobs waiting in the queue at once (sampled every 0.25 s)
    queued_at_end: Counter[str]  # jobs still in the queue when the wait ended, by function
    # From the database, per order answered 200 (NEVER: not there when the wait ended):
    to_mapped: list[float] = field(default_factory=list)  # received_at -> processed_at
    to_delivered: list[float] = field(default_factory=list)  # -> order_placed delivered_at
    to_cio: list[float] = field(default_factory=list)  # post left -> the fake read the event
    delivered: int = 0
    late: int = 0  # not delivered, on its way when the wait ended (inbox or event pending)
    lost: int = 0  # not delivered, not on its way (no inbox row, set aside, failed)
    # From the fake's request log:
    requests: int = 0  # /api/v2/batch requests
    events_at_cio: int = 0  # unique events recorded
    duplicates: int = 0  # events seen again with an id already recorded
    busiest_workspace_1s: int = 0  # most requests to one workspace in any 1 s

    @property
    def p99(self) -> float:
        return percentile(self.to_delivered, 99)

    @property
    def accepted(self) -> int:
        return self.load.statuses[200]


def run_shops(
    workdir: Path,
    children: Children,
    *,
    shops: int,
    tag: int,
    args: argparse.Namespace,
    redis_url: str,
) -> ShopsRun:
    """Post `args.rate` orders/s for `args.seconds` over `shops` shops; wait; measure."""
    spaces = workspaces(shops)
    with BenchCustomerIO({w.site_id: w.api_key for w in spaces}) as fake:
        fake.set_delay(CIO_DELAY)
        instance = create_instance(
            f"shops-{shops}",
            workdir,
            redis_url=redis_url,
            pg_url=args.database_url,
            track_url=fake.url,
        )
        try:
            return _post_and_measure(workdir, children, instance, fake, spaces, tag, args)
        finally:
            children.stop_all()
            instance.close()


def _post_and_measure(
    workdir: Path,
    children: Children,
    instance: Instance,
    fake: FakeCustomerIO,
    spaces: list[Workspace],
    tag: int,
    args: argparse.Namespace,
) -> ShopsRun:
    """Register the shops, start the processes, post, wait until settled, measure."""
    label = instance.label
    started = time.monotonic()
    add_shops(instance, spaces)
    registered = time.monotonic() - started
    requests = distinct_orders(int(args.rate * args.seconds), tag, [w.shop for w in spaces])
    port = start_web(children, CONNECTOR_APP, instance.env, workdir / f"{label}-web.log")
    start_workers(children, instance, args.workers, workdir)
    wait_idle(instance, args.workers)
    warm_up(port)
    jobs_before, failed_before = jobs_done(instance)

    queue = queue_of(instance)
    with QueueWatch(queue) as watch:
        first_post = time.time()
        load = post_all(port, requests, threads=8, rate=args.rate)
        posted = time.monotonic()
        done = wait_until(lambda: settled(instance, load.statuses[200]), args.drain_timeout, 0.2)
        drain = time.monotonic() - posted
        window = time.time() - first_post
        jobs, failed = jobs_done(instance)
        queued = queued_by_function(queue)
    children.stop_all()

    run = ShopsRun(
        shops=len(spaces),
        workers=args.workers,
        rate_limit=float(instance.env["DELIVERY_RATE_PER_SECOND"]),
        registered_seconds=registered,
        load=load,
        settled=done,
        window_seconds=window,
        drain_seconds=drain,
        jobs=jobs - jobs_before,
        failed_jobs=failed - failed_before,
        max_queued=watch.most,
        queued_at_end=queued,
    )
    _measure_orders(run, instance, fake, tag)
    _measure_requests(run, fake)
    return run


# -- figures -----------------------------------------------------------------------------------


def _first_seen_at_cio(fake: FakeCustomerIO) -> dict[str, float]:
    """Event id -> when the fake first read a batch carrying it (epoch seconds)."""
    seen: dict[str, float] = {}
    for request in batch_requests(fake):
        if request["status"] not in (200, 207):
            continue
        for op in request["ops"]:
            if isinstance(op, dict) and op.get("action") == "event" and "id" in op:
                event_id = str(op["id"]).upper()
                seen[event_id] = min(seen.get(event_id, math.inf), request["time"])
    return seen


def _measure_orders(run: ShopsRun, instance: Instance, fake: FakeCustomerIO, tag: int) -> None:
    """Latencies, delivered, late and lost, per order the web process answered with 200."""
    rows = order_rows(instance.engine)
    at_cio = _first_seen_at_cio(fake)
    for index, (left, status) in sorted(run.load.answers.items()):
        if status != 200:
            continue
        row = rows.get(order_event_id(tag, index))
        if row is None:
            run.lost += 1  # answered 200 without its inbox row
            run.to_mapped.append(NEVER)
            run.to_delivered.append(NEVER)
            run.to_cio.append(NEVER)
            continue
        run.to_mapped.append(_seconds(row.received_at, row.processed_at))
        run.to_delivered.append(_seconds(row.received_at, row.delivered_at))
        seen = at_cio.get((row.event_id or "").upper()) if row.delivered_at else None
        run.to_cio.append(seen - left if seen is not None else NEVER)
        if row.delivered_at is not None:
            run.delivered += 1
        elif row.inbox_state == InboxState.RECEIVED or row.event_status == EventStatus.PENDING:
            run.late += 1
        else:
            run.lost += 1


def _seconds(start: datetime, end: datetime | None) -> float:
    return NEVER if end is None else (end - start).total_seconds()


def _measure_requests(run: ShopsRun, fake: FakeCustomerIO) -> None:
    """Requests, events, duplicates, and the busiest workspace's most requests in 1 s."""
    run.events_at_cio = len(fake.events)
    run.duplicates = fake.duplicate_events
    batches = batch_requests(fake)
    run.requests = len(batches)
    run.busiest_workspace_1s = busiest_workspace_1s(batches)


# -- tables ------------------------------------------------------------------------------------


def _shops(count: int) -> str:
    return f"{count:,} shop" + ("" if count == 1 else "s")


def _s(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "never"


def _pcts(values: list[float]) -> str:
    return f"{_s(percentile(values, 50))}/{_s(percentile(values, 99))}"


def _per_second(count: float, seconds: float) -> str:
    return f"{count / seconds:.0f}" if seconds > 0 else "-"


def latency_table(runs: list[ShopsRun]) -> str:
    rows = [
        [
            f"{run.shops:,}",
            f"{run.load.sent} @ {run.load.per_second:.0f}/s",
            str(run.load.non200),
            f"{run.load.max_lag * 1000:.0f}",
            _pcts(run.to_mapped),
            _pcts(run.to_delivered),
            _pcts(run.to_cio),
            _s(max(run.to_delivered, default=NEVER)),
            f"{run.drain_seconds:.1f}" + ("" if run.settled else " (timeout)"),
        ]
        for run in runs
    ]
    header = ["shops", "posted", "non-200", "post lag ms", "to mapped s", "to delivered s"]
    header += ["post to cio s", "max s", "drain s"]
    title = "Many shops: latency per order answered 200, p50/p99 (never: not there at the end)"
    return table(title, header, rows)


def work_table(runs: list[ShopsRun]) -> str:
    rows = []
    for run in runs:
        jobs = f"{run.jobs}" + (f" ({run.failed_jobs} failed)" if run.failed_jobs else "")
        rows.append(
            [
                f"{run.shops:,}",
                f"{run.window_seconds:.1f}",
                f"{run.delivered}/{run.accepted}",
                _per_second(run.delivered, run.window_seconds),
                jobs,
                _per_second(run.jobs, run.window_seconds),
                f"{run.jobs / run.accepted:.1f}" if run.accepted else "-",
                f"{run.max_queued}/{run.queued_at_end.total()}",
                _per_second(run.requests, run.window_seconds),
                f"{run.events_at_cio / run.requests:.1f}" if run.requests else "-",
                f"{run.busiest_workspace_1s}/{run.rate_limit:g}",
                str(run.late),
                str(run.lost),
                str(run.duplicates),
            ]
        )
    header = ["shops", "window s", "delivered", "ev/s", "RQ jobs", "jobs/s", "jobs/order"]
    header += ["queued max/end", "cio req/s", "ev/request", "max req/1s one ws"]
    header += ["late", "lost", "dup"]
    workers = runs[0].workers if runs else 0
    notes = [
        f"queued at the end, {_shops(run.shops)}: "
        + ", ".join(f"{name} {n}" for name, n in run.queued_at_end.most_common())
        for run in runs
        if run.queued_at_end
    ]
    title = f"Many shops: work ({workers} RQ workers, window: first post -> settled)"
    return "\n".join([table(title, header, rows), *notes])


def summary_table(runs: list[ShopsRun]) -> str:
    rows = [
        [
            f"p99 received -> delivered, {_shops(run.shops)}",
            f"{_s(run.p99)} s" if math.isfinite(run.p99) else "never",
            f"< {P99_TARGET:g} s",
            verdict(run.p99 < P99_TARGET),
        ]
        for run in runs
    ]
    if len(runs) > 1:
        few = min(runs, key=lambda run: run.shops)
        many = max(runs, key=lambda run: run.shops)
        ratio = many.p99 / few.p99 if few.p99 > 0 else math.inf
        rows.append(
            [
                f"p99 at {_shops(many.shops)} / p99 at {_shops(few.shops)}",
                f"x{ratio:.1f}" if math.isfinite(ratio) else "-",
                f"<= x{SPREAD_TARGET:g}",
                verdict(ratio <= SPREAD_TARGET),
            ]
        )
    shops = (
        _shops(runs[0].shops)
        if len(runs) == 1
        else " / ".join(f"{run.shops:,}" for run in runs) + " shops"
    )

    def each(value: Callable[[ShopsRun], object]) -> str:
        return " / ".join(str(value(run)) for run in runs)

    undelivered = [run.lost + run.late for run in runs]
    rows.append(
        [
            f"lost, late included ({shops})",
            " / ".join(map(str, undelivered)),
            "0",
            verdict(not any(undelivered)),
        ]
    )
    rows.append(
        [
            f"duplicates at Customer.io ({shops})",
            each(lambda run: run.duplicates),
            "0",
            verdict(not any(run.duplicates for run in runs)),
        ]
    )
    limit = min((run.rate_limit for run in runs), default=0.0)
    rows.append(
        [
            f"max requests in 1 s to one workspace ({shops})",
            each(lambda run: run.busiest_workspace_1s),
            f"<= {limit:g}",
            verdict(all(run.busiest_workspace_1s <= run.rate_limit for run in runs)),
        ]
    )
    return table("Summary", ["figure", "measured", "target", ""], rows)


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, terminate_on_signal)
    with claimed_redis_database(REDIS_SERVER) as redis_url:
        return run_all(args, redis_url)


def run_all(args: argparse.Namespace, redis_url: str) -> int:
    children = Children()
    started = time.monotonic()
    runs: list[ShopsRun] = []
    count = int(args.rate * args.seconds)
    with bench_workdir("connector-bench-shops-", children) as workdir:
        for tag, shops in enumerate(args.shops, start=1):
            print(
                f"\n{_shops(shops)}: {count} orders at {args.rate:g}/s, {args.workers} workers",
                flush=True,
            )
            run = run_shops(workdir, children, shops=shops, tag=tag, args=args, redis_url=redis_url)
            runs.append(run)
            print(
                f"  shops registered in {run.registered_seconds:.1f} s; "
                f"{run.delivered}/{run.accepted} delivered, "
                f"drain {run.drain_seconds:.1f} s{'' if run.settled else ' (timeout)'}",
                flush=True,
            )
        print(latency_table(runs))
        print(work_table(runs))
        print(summary_table(runs))
        database = "PostgreSQL" if args.database_url else "SQLite"
        print(f"\n({database}; whole run {time.monotonic() - started:.0f} s)")
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
