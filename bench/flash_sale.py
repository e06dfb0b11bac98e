"""Flash sale: 10,000 orders of ONE shop, posted as fast as the web tier takes them.

    .venv/bin/python bench/flash_sale.py [--orders 10000] [--database-url URL] [--web 2]
                                         [--workers 2] [--threads 16] [--rate-limit 100]
                                         [--drain-timeout 300]

One instance on PostgreSQL (a throwaway database on the server of `--database-url`), `--web`
gunicorn servers (each a master of its own with one sync worker, on its own port: two web
machines behind a load balancer), `--workers` RQ worker processes, the Customer.io stand-in
(in this process, answering after 20 ms) and a staff account. Distinct signed orders/create
webhooks of one shop are posted flat out from `--threads` threads taking turns over the web
servers, while a probe process logged in to the support console times its pages, round after
round, on the first web server. The bench waits until every accepted order is settled (or
`--drain-timeout` seconds after the last post), stops everything, and checks each order
(delivered exactly once, lost, duplicated), the busiest second at the workspace and the
console's slowest page.

A missed target is a measurement, not an error: the exit status is 0 unless something
crashed. See docs/benchmarks.md ("Flash sale") for what each column means.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from connector.dev.isolation import claimed_redis_database
from connector.events import stable_event_id

from console_probe import SEARCH_KINDS, ProbeProcess, Sample
from drain import (
    ORDER_PLACED,
    Delivery,
    QueueWatch,
    busiest_workspace_1s,
    check_delivery,
    jobs_done,
    order_rows,
    queue_of,
    settled,
    start_web_servers,
    start_workers,
    wait_idle,
)
from fakecio import BenchCustomerIO
from payloads import SHOP, base_order, order_id, order_variant
from phases import CIO_DELAY, batch_requests, percentile, wait_until
from post import PostStats, distinct_orders, order_event_id, post_all
from procs import Children, bench_workdir, run_cli
from run import table, terminate_on_signal, verdict
from stack import (
    DEFAULT_PG_URL,
    REDIS_SERVER,
    SITE_ID,
    TRACK_KEY,
    Instance,
    create_instance,
    libpq_url,
    pg_reachable,
)
from usage import CpuMeter, CpuUse

CONSOLE_TARGET_MS = 300.0
STAFF_EMAIL, STAFF_PASSWORD = "flash-sale@example.com", "flash sale console password"
TAG = 1  # order ids, names and emails of this bench's orders (payloads.order_variant)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=10_000, help="orders in the sale")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_PG_URL,
        help="PostgreSQL server (a throwaway database is created on it and dropped)",
    )
    parser.add_argument("--web", type=int, default=2, help="gunicorn servers (1 worker each)")
    parser.add_argument("--workers", type=int, default=2, help="RQ worker processes")
    parser.add_argument("--threads", type=int, default=16, help="posting threads, in all")
    parser.add_argument("--rate-limit", type=float, default=100.0, help="DELIVERY_RATE_PER_SECOND")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=300.0,
        help="seconds to wait after the last post for every order to settle",
    )
    parser.add_argument(
        "--console-pause", type=float, default=0.2, help="seconds between console rounds"
    )
    parser.add_argument(
        "--console-idle",
        type=float,
        default=3.0,
        help="seconds the console is timed before the sale (the idle baseline)",
    )
    return parser.parse_args(argv)


@dataclass
class Sale:
    orders: int
    web: int
    workers: int
    threads: int
    rate_limit: float
    load: PostStats
    settled: bool  # False: the drain timeout ended the wait
    first_post: float  # epoch
    ended: float  # epoch: settled, or the timeout
    mapped_by: float | None  # seconds from the first post to the last order mapped
    drained_by: float | None  # ... to the last order delivered (None: not all were)
    delivery: Delivery
    requests: int  # /api/v2/batch requests
    events_at_cio: int
    busiest_1s: int
    jobs: int
    failed_jobs: int
    max_queued: int
    console: dict[str, list[Sample]]
    cpu: CpuUse
    # Per accepted order, seconds from the first post: received, mapped, delivered (or None)
    stages: list[tuple[float, float | None, float | None]]

    @property
    def accepted(self) -> int:
        return self.load.statuses[200]

    @property
    def window(self) -> float:
        return self.drained_by if self.drained_by is not None else self.ended - self.first_post

    def during_sale(self, page: str) -> list[Sample]:
        """The console requests sent between the first post and the end of the drain."""
        end = self.first_post + self.window
        return [s for s in self.console[page] if self.first_post <= s[0] <= end]

    def before_sale(self, page: str) -> list[Sample]:
        """The console requests answered before the first post (the idle baseline)."""
        return [s for s in self.console[page] if s[0] + s[1] / 1000 < self.first_post]


# -- the sale ----------------------------------------------------------------------------------


def flash_sale(workdir: Path, children: Children, args: argparse.Namespace, redis_url: str) -> Sale:
    with BenchCustomerIO({SITE_ID: TRACK_KEY}) as fake:
        fake.set_delay(CIO_DELAY)
        instance = create_instance(
            "flash",
            workdir,
            redis_url=redis_url,
            pg_url=args.database_url,
            track_url=fake.url,
            rate=args.rate_limit,
            own_database=True,
        )
        try:
            return _sale(workdir, children, instance, fake, args)
        finally:
            children.stop_all()
            instance.close()


def _sale(
    workdir: Path,
    children: Children,
    instance: Instance,
    fake: BenchCustomerIO,
    args: argparse.Namespace,
) -> Sale:
    run_cli(instance.env, "staff", "add", STAFF_EMAIL, "--password", STAFF_PASSWORD)
    built = time.monotonic()
    requests = distinct_orders(args.orders, TAG)
    print(f"  {len(requests)} signed orders built in {time.monotonic() - built:.1f} s", flush=True)
    workers = start_workers(children, instance, args.workers, workdir)
    webs = start_web_servers(children, instance, args.web, workdir)
    wait_idle(instance, args.workers)
    assert instance.pg_database is not None
    admin_url, database = instance.pg_database
    console = ProbeProcess(
        f"http://127.0.0.1:{webs[0].port}",
        STAFF_EMAIL,
        STAFF_PASSWORD,
        _console_targets(),
        workdir / "console-probe.log",
        args.console_pause,
    )
    with console as probe:
        assert probe.proc is not None
        time.sleep(args.console_idle)  # the probe's rounds on an idle instance: the baseline
        groups = {
            "web": [web.proc.pid for web in webs],
            "workers": [proc.pid for proc in workers],
            "console probe": [probe.proc.pid],
        }
        meter = CpuMeter(groups, pg=(libpq_url(admin_url), database)).start()
        jobs_before, failed_before = jobs_done(instance)
        print(f"  posting {len(requests)} orders from {args.threads} threads", flush=True)
        with QueueWatch(queue_of(instance)) as watch:
            first_post = time.time()
            load = post_all([web.port for web in webs], requests, threads=args.threads)
            print(
                f"  posted in {load.seconds:.1f} s ({load.per_second:.0f}/s), "
                f"{load.statuses[200]} accepted; draining",
                flush=True,
            )
            accepted = load.statuses[200]
            done = wait_until(lambda: settled(instance, accepted), args.drain_timeout, 0.2)
            ended = time.time()
            jobs, failed = jobs_done(instance)
        cpu = meter.stop()
        samples = probe.finish()
    children.stop_all()

    rows = order_rows(instance.engine)
    orders = [
        (order_event_id(TAG, index), order_id(index, TAG))
        for index, (_left, status) in sorted(load.answers.items())
        if status == 200
    ]
    delivery = check_delivery(rows, fake, orders)
    wanted = [rows[webhook] for webhook, _order in orders if webhook in rows]
    stages = [
        (
            _epoch(row.received_at) - first_post,
            None if row.processed_at is None else _epoch(row.processed_at) - first_post,
            None if row.delivered_at is None else _epoch(row.delivered_at) - first_post,
        )
        for row in wanted
    ]
    last_mapped = _latest([row.processed_at for row in wanted])
    last_delivered = _latest([row.delivered_at for row in wanted])
    batches = batch_requests(fake)
    return Sale(
        orders=len(requests),
        web=args.web,
        workers=args.workers,
        threads=args.threads,
        rate_limit=args.rate_limit,
        load=load,
        settled=done,
        first_post=first_post,
        ended=ended,
        mapped_by=last_mapped - first_post if last_mapped is not None else None,
        drained_by=(
            last_delivered - first_post
            if last_delivered is not None and delivery.once == len(orders)
            else None
        ),
        delivery=delivery,
        requests=len(batches),
        events_at_cio=len(fake.events),
        busiest_1s=busiest_workspace_1s(batches),
        jobs=jobs - jobs_before,
        failed_jobs=failed - failed_before,
        max_queued=watch.most,
        console=samples,
        cpu=cpu,
        stages=stages,
    )


def _console_targets() -> dict[str, str]:
    """What the console probe looks up: the sale's shop, and its first order every way."""
    order = order_variant(base_order(), 0, TAG)
    event = stable_event_id(SHOP, ORDER_PLACED, str(order["id"]))
    terms = {
        "order": order["name"],
        "email": order["email"],
        "customer": str(order["customer"]["id"]),
        "token": order["checkout_token"],  # the sample's: every bench order shares it
        "event": event,
    }
    assert set(terms) == set(SEARCH_KINDS)
    return {"shop": SHOP, **terms}


def _latest(times: list[datetime | None]) -> float | None:
    """The latest of `times` as epoch seconds (None when any is missing, or none given)."""
    if not times or any(t is None for t in times):
        return None
    return max(_epoch(t) for t in times if t is not None)


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


# -- tables ------------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def sale_table(sale: Sale) -> str:
    load, delivery = sale.load, sale.delivery
    drained = _s(sale.drained_by) if sale.drained_by is not None else "not all"
    if not sale.settled:
        drained += " (timeout)"
    per_request = sale.events_at_cio / sale.requests if sale.requests else 0.0
    jobs = f"{sale.jobs}" + (f" ({sale.failed_jobs} failed)" if sale.failed_jobs else "")
    post_pcts = [percentile(load.durations, p) for p in (50, 99)]
    rows = [
        ["orders posted / answered 200", f"{load.sent} / {sale.accepted}"],
        ["non-200 answers / connection errors", f"{load.non200 - load.errors} / {load.errors}"],
        ["posting time s, rate /s", f"{load.seconds:.1f}, {load.per_second:.0f}"],
        [
            "POST answered in p50 / p99 / max ms",
            " / ".join(f"{v * 1000:.0f}" for v in (*post_pcts, max(load.durations, default=0))),
        ],
        ["first post -> last order mapped s", _s(sale.mapped_by)],
        ["first post -> last order delivered s (drain)", drained],
        ["delivered events/s over the drain", f"{delivery.once / sale.window:.0f}"],
        ["Customer.io requests, events/request", f"{sale.requests}, {per_request:.1f}"],
        ["most requests to the workspace in 1 s", f"{sale.busiest_1s} / {sale.rate_limit:g}"],
        ["RQ jobs ended, most queued at once", f"{jobs}, {sale.max_queued}"],
        ["delivered exactly once", f"{delivery.once} / {delivery.accepted}"],
        ["late / lost", f"{delivery.late} / {delivery.lost}"],
        ["sent again (same id) / under two ids", f"{delivery.resent} / {delivery.two_ids}"],
        ["at Customer.io, not delivered in the database", str(delivery.unrecorded)],
    ]
    title = (
        f"Flash sale: {sale.orders:,} orders of one shop, {sale.web} web (1 sync worker "
        f"each), {sale.workers} RQ workers, {sale.threads} posting threads"
    )
    return table(title, ["figure", "value"], rows)


def backlog_table(sale: Sale, points: int = 10) -> str:
    """How many orders were received, mapped and delivered by each point of the sale."""
    moments = sorted({sale.window * k / points for k in range(1, points + 1)} | {sale.load.seconds})
    rows = []
    for moment in moments:
        received = sum(1 for r, _m, _d in sale.stages if r <= moment)
        mapped = sum(1 for _r, m, _d in sale.stages if m is not None and m <= moment)
        delivered = sum(1 for _r, _m, d in sale.stages if d is not None and d <= moment)
        mark = " (posting ended)" if moment == sale.load.seconds else ""
        rows.append(
            [
                f"{moment:.1f}{mark}",
                str(received),
                str(mapped),
                str(delivered),
                str(received - mapped),
                str(mapped - delivered),
            ]
        )
    header = ["s after first post", "received", "mapped", "delivered", "to map", "to send"]
    return table("Backlog during the sale (from the database's timestamps)", header, rows)


def console_table(sale: Sale) -> str:
    rows = []
    for page in sale.console:
        samples = sale.during_sale(page)
        ok = [ms for _sent, ms, status in samples if status == 200]
        not_yet = sum(1 for _s, _ms, status in samples if status == 404 and page == "timeline")
        errors = len(samples) - len(ok) - not_yet
        idle = [ms for _sent, ms, status in sale.before_sale(page) if status in (200, 404)]
        rows.append(
            [
                page,
                f"{statistics.median(idle):.0f}" if idle else "-",
                str(len(ok)) + (f" (+{not_yet} 404 before mapped)" if not_yet else ""),
                str(errors),
                f"{statistics.median(ok):.0f}" if ok else "-",
                f"{percentile(ok, 95):.0f}" if ok else "-",
                f"{max(ok):.0f}" if ok else "-",
                str(sum(1 for ms in ok if ms >= CONSOLE_TARGET_MS)),
            ]
        )
    header = [
        "page",
        "idle p50 ms",
        "requests",
        "errors",
        "p50 ms",
        "p95 ms",
        "max ms",
        f">= {CONSOLE_TARGET_MS:.0f}",
    ]
    title = "Console during the sale (HTTP, on web server 1, first post -> drained)"
    return table(title, header, rows)


def cpu_table(sale: Sale) -> str:
    cpu = sale.cpu
    rows = [
        [
            "machine (all cores)",
            f"{cpu.machine_busy:.1f}",
            f"{cpu.machine_busy / cpu.wall:.2f} of {cpu.cores:.0f}",
            f"{cpu.busy_share:.0%}",
        ]
    ]
    for name, seconds in [*cpu.by_class.items(), ("everything else", cpu.other)]:
        rows.append([name, f"{seconds:.1f}", f"{seconds / cpu.wall:.2f}", "-"])
    title = f"CPU from the first post to the end of the wait ({cpu.wall:.1f} s)"
    return table(title, ["processes", "CPU s", "cores busy", "machine busy"], rows)


def console_max(sale: Sale) -> tuple[float, str, int]:
    """The slowest console request during the sale (ms, page) and the failed requests."""
    slowest, where, errors = 0.0, "-", 0
    for page in sale.console:
        for _sent, ms, status in sale.during_sale(page):
            if status == 200 and ms > slowest:
                slowest, where = ms, page
            elif status != 200 and not (status == 404 and page == "timeline"):
                errors += 1
    return slowest, where, errors


def summary_table(sale: Sale) -> str:
    delivery = sale.delivery
    everyone = delivery.once == delivery.accepted == sale.load.sent
    slowest, page, errors = console_max(sale)
    rows = [
        [
            "orders delivered exactly once / posted",
            f"{delivery.once} / {sale.load.sent}",
            "all",
            verdict(everyone),
        ],
        [
            "lost (late included)",
            str(delivery.lost + delivery.late),
            "0",
            verdict(not (delivery.lost + delivery.late)),
        ],
        [
            "duplicates at Customer.io",
            str(delivery.duplicates),
            "0",
            verdict(not delivery.duplicates),
        ],
        [
            "most requests to the workspace in any 1 s",
            str(sale.busiest_1s),
            f"<= {sale.rate_limit:g}",
            verdict(sale.busiest_1s <= sale.rate_limit),
        ],
        [
            "slowest console page during the sale",
            f"{slowest:.0f} ms ({page})" + (f", {errors} errors" if errors else ""),
            f"< {CONSOLE_TARGET_MS:.0f} ms",
            verdict(slowest < CONSOLE_TARGET_MS and not errors),
        ],
    ]
    return table("Summary", ["figure", "measured", "target", ""], rows)


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, terminate_on_signal)
    if not pg_reachable(args.database_url):
        print(f"PostgreSQL at {args.database_url} does not answer", file=sys.stderr)
        return 2
    with claimed_redis_database(REDIS_SERVER) as redis_url:
        return run_all(args, redis_url)


def run_all(args: argparse.Namespace, redis_url: str) -> int:
    children = Children()
    started = time.monotonic()
    with bench_workdir("connector-bench-flash-", children) as workdir:
        print(
            f"flash sale: {args.orders} orders of one shop, {args.web} web, "
            f"{args.workers} workers, PostgreSQL",
            flush=True,
        )
        sale = flash_sale(workdir, children, args, redis_url)
        print(sale_table(sale))
        print(backlog_table(sale))
        print(console_table(sale))
        print(cpu_table(sale))
        print(summary_table(sale))
        print(f"\n(PostgreSQL; whole run {time.monotonic() - started:.0f} s)")
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
