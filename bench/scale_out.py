"""Scale-out: one backlog drained by 1, 2 and 4 RQ worker processes, side by side.

    .venv/bin/python bench/scale_out.py [--workers 1,2,4] [--orders 5000] [--shops 100]
                                        [--web 2] [--database-url URL] [--drain-timeout 300]

One run per worker count, each on a fresh instance: a throwaway PostgreSQL database of its
own on the server of `--database-url` (so pg_stat_database counts this run's transactions
alone), a redis-server started for this invocation (so its INFO counters and its CPU are this
run's alone), `--shops` shops each with its own Customer.io workspace, and the Customer.io
stand-in (in this process, answering after 20 ms).

Why a backlog: the workers start first, with RQ suspended (`rq suspend`: they register and
wait); `--orders` distinct orders, order i to shop i mod `--shops`, are posted through
`--web` gunicorn servers (one sync worker each) as fast as they take them; the web servers
are stopped, and RQ is resumed. From then on only the workers, PostgreSQL and Redis work,
on the same backlog in every run, so the figures measure what the workers deliver and what
it costs, not how fast the bench posts or how the web tier shares the CPU with them.

Measured from the resume to the last order delivered: events/s, when the last order was
mapped, CPU (the machine's, the workers', the database's backends', redis-server's, this
process's), PostgreSQL transactions and Redis commands, Customer.io requests, and every
order checked delivered exactly once. See docs/benchmarks.md ("Scale-out").
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from connector.dev.isolation import claimed_redis_database
from rq.suspension import resume, suspend

from drain import (
    Delivery,
    check_delivery,
    jobs_done,
    order_rows,
    start_web_servers,
    start_workers,
    wait_started,
)
from fakecio import BenchCustomerIO
from payloads import order_id
from phases import CIO_DELAY, batch_requests, wait_until
from post import Request, distinct_orders, order_event_id, post_all
from procs import Children, bench_workdir
from run import counts, table, terminate_on_signal, verdict
from stack import (
    DEFAULT_PG_URL,
    Instance,
    Workspace,
    add_shops,
    create_instance,
    event_statuses,
    inbox_count,
    libpq_url,
    pg_reachable,
    start_redis_server,
    unprocessed_count,
    workspaces,
)
from usage import CpuMeter, CpuUse, PgCounters, pg_counters, redis_commands, wait_no_backends

TAG = 1
RISING = 1.15  # a worker count "helps" when it delivers at least 15 % more than the one before
SATURATED = 0.90  # the machine's CPU counts as saturated from 90 % busy
WORKERS, PG, REDIS, BENCH = "workers", "PostgreSQL backends", "redis-server", "bench process"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--workers", type=counts, default=[1, 2, 4], help="worker counts, e.g. 1,2,4"
    )
    parser.add_argument("--orders", type=int, default=5000, help="orders in the backlog")
    parser.add_argument("--shops", type=int, default=100, help="shops, each its own workspace")
    parser.add_argument("--web", type=int, default=2, help="gunicorn servers (1 worker each)")
    parser.add_argument("--threads", type=int, default=16, help="posting threads, in all")
    parser.add_argument(
        "--database-url",
        default=DEFAULT_PG_URL,
        help="PostgreSQL server (a throwaway database per run is created on it and dropped)",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=300.0, help="seconds a drain may take at most"
    )
    return parser.parse_args(argv)


@dataclass
class ScaleRun:
    workers: int
    orders: int
    posted_per_second: float  # how fast the web servers took the backlog
    settled: bool  # False: the drain timeout ended the wait
    first_mapped: float | None  # resume -> first order mapped
    mapped: float | None  # resume -> last order mapped
    last_sent: float | None  # resume -> the last order's delivered_at (its answer)
    delivery: Delivery
    cpu: CpuUse
    pg: PgCounters  # during the drain, the bench's own polling taken out
    redis_commands: int  # during the drain
    requests: int  # /api/v2/batch requests
    jobs: int

    @property
    def seconds(self) -> float:
        """Resume -> the bench saw every order delivered in the database (the last outcome
        committed), or the timeout: the span of every other figure too."""
        return self.cpu.wall

    @property
    def per_second(self) -> float:
        return self.delivery.once / self.seconds if self.seconds else 0.0

    def cores(self, name: str) -> float:
        return self.cpu.by_class.get(name, 0.0) / self.cpu.wall if self.cpu.wall else 0.0

    def per_event(self, amount: float) -> float:
        return amount / self.delivery.once if self.delivery.once else float("nan")


# -- one run -----------------------------------------------------------------------------------


def run_workers(
    workdir: Path,
    children: Children,
    requests: list[Request],
    spaces: list[Workspace],
    *,
    workers: int,
    args: argparse.Namespace,
    redis_url: str,
    redis_pid: int,
) -> ScaleRun:
    with BenchCustomerIO({w.site_id: w.api_key for w in spaces}) as fake:
        fake.set_delay(CIO_DELAY)
        instance = create_instance(
            f"scale-{workers}",
            workdir,
            redis_url=redis_url,
            pg_url=args.database_url,
            track_url=fake.url,
            own_database=True,
        )
        try:
            add_shops(instance, spaces)
            return _drain(workdir, children, instance, fake, requests, workers, args, redis_pid)
        finally:
            children.stop_all()
            instance.close()


def _drain(
    workdir: Path,
    children: Children,
    instance: Instance,
    fake: BenchCustomerIO,
    requests: list[Request],
    workers: int,
    args: argparse.Namespace,
    redis_pid: int,
) -> ScaleRun:
    assert instance.pg_database is not None
    admin_url, database = libpq_url(instance.pg_database[0]), instance.pg_database[1]
    suspend(instance.redis)
    procs = start_workers(children, instance, workers, workdir)
    wait_started(instance, workers)
    webs = start_web_servers(children, instance, args.web, workdir)
    load = post_all([web.port for web in webs], requests, threads=args.threads)
    for web in webs:  # their database backends exit and report their counts
        children.stop(web.proc)
    stored = inbox_count(instance.engine)
    if load.non200 or stored < len(requests):
        raise RuntimeError(f"loading {len(requests)} orders: {load.statuses}, {stored} stored")
    print(
        f"  backlog of {len(requests)} orders posted at {load.per_second:.0f}/s; "
        f"{_workers(workers)} resumed",
        flush=True,
    )
    jobs_before, _failed = jobs_done(instance)
    instance.engine.dispose()  # its backend exits and reports its counts (the workers' stay)
    time.sleep(0.3)
    pg_before, redis_before = pg_counters(admin_url, database), redis_commands(instance.redis)
    groups = {WORKERS: [proc.pid for proc in procs], REDIS: [redis_pid]}
    resumed = time.time()
    meter = CpuMeter(groups, pg=(admin_url, database), pg_label=PG, self_label=BENCH).start()
    resume(instance.redis)

    polls = 0

    def mapped() -> bool:
        nonlocal polls
        polls += 1
        return unprocessed_count(instance.engine) == 0

    def delivered() -> bool:
        nonlocal polls
        if len(fake.events) < len(requests):  # the stand-in first: no database query
            return False
        polls += 1
        return event_statuses(instance.engine)["delivered"] >= len(requests)

    deadline = time.monotonic() + args.drain_timeout
    wait_until(mapped, args.drain_timeout, 0.1)
    done = wait_until(delivered, max(0.0, deadline - time.monotonic()), 0.05)
    cpu = meter.stop()
    redis_after = redis_commands(instance.redis)
    jobs, _failed = jobs_done(instance)
    children.stop_all()
    instance.engine.dispose()
    if not wait_no_backends(admin_url, database):
        print("  (some database backends had not exited: counts may be short)", flush=True)
    pg_after = pg_counters(admin_url, database)

    rows = order_rows(instance.engine)
    orders = [(order_event_id(TAG, index), order_id(index, TAG)) for index in range(len(requests))]
    delivery = check_delivery(rows, fake, orders)
    delivered_at = [rows[w].delivered_at for w, _o in orders if w in rows]
    processed_at = [rows[w].processed_at for w, _o in orders if w in rows]
    last = _latest(delivered_at)
    return ScaleRun(
        workers=workers,
        orders=len(requests),
        posted_per_second=load.per_second,
        settled=done,
        last_sent=last - resumed if last is not None and all(delivered_at) else None,
        first_mapped=_earliest(processed_at, resumed),
        mapped=(_latest(processed_at) or resumed) - resumed if all(processed_at) else None,
        delivery=delivery,
        cpu=cpu,
        pg=PgCounters(
            pg_after.commits - pg_before.commits,
            pg_after.rollbacks - pg_before.rollbacks - polls,
            pg_after.rows_written - pg_before.rows_written,
        ),
        redis_commands=redis_after - redis_before - 2,  # the bench's: INFO, resume (DEL)
        requests=len(batch_requests(fake)),
        jobs=jobs - jobs_before,
    )


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _latest(times: list[datetime | None]) -> float | None:
    known = [_epoch(t) for t in times if t is not None]
    return max(known) if known else None


def _earliest(times: list[datetime | None], since: float) -> float | None:
    known = [_epoch(t) for t in times if t is not None]
    return min(known) - since if known else None


# -- tables ------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def throughput_table(runs: list[ScaleRun]) -> str:
    base = runs[0].per_second if runs else 0.0
    rows = [
        [
            str(run.workers),
            f"{run.delivery.once}/{run.orders}",
            f"{run.per_second:.0f}",
            f"x{run.per_second / base:.2f}" if base else "-",
            _f(run.first_mapped, 2),
            _f(run.mapped),
            _f(run.last_sent),
            _f(run.seconds) + ("" if run.settled else " (timeout)"),
            f"{run.jobs}",
            f"{run.posted_per_second:.0f}",
            str(run.delivery.late + run.delivery.lost),
            str(run.delivery.duplicates),
        ]
        for run in runs
    ]
    header = ["workers", "delivered", "ev/s", "vs 1st", "first mapped s", "mapped s"]
    header += ["last sent s", "all recorded s", "RQ jobs", "posted /s", "lost", "dup"]
    return table("Scale-out: drain of the backlog (times from the resume)", header, rows)


def resources_table(runs: list[ScaleRun]) -> str:
    rows = []
    for run in runs:
        wall = run.cpu.wall
        rows.append(
            [
                str(run.workers),
                f"{wall:.1f}",
                f"{run.cpu.busy_share:.0%}",
                f"{run.cores(WORKERS):.2f}",
                f"{run.cores(WORKERS) / run.workers:.0%}",
                f"{run.cores(PG):.2f}",
                f"{run.cores(REDIS):.2f}",
                f"{run.cores(BENCH):.2f}",
                f"{run.cpu.other / wall:.2f}" if wall else "-",
                f"{run.pg.transactions / wall:.0f}" if wall else "-",
                f"{run.redis_commands / wall:.0f}" if wall else "-",
                f"{run.requests / wall:.1f}" if wall else "-",
            ]
        )
    header = ["workers", "wall s", "machine busy", "workers cores", "per worker", "PG cores"]
    header += ["Redis cores", "bench cores", "other cores", "PG tx/s", "Redis cmd/s"]
    header += ["cio req/s"]
    cores = runs[0].cpu.cores if runs else 0
    title = f"Resources during the drain ({cores:.0f} cores; cores = CPU seconds / wall seconds)"
    return table(title, header, rows)


def per_event_table(runs: list[ScaleRun]) -> str:
    rows = []
    for run in runs:
        ours = sum(run.cpu.by_class.get(name, 0.0) for name in (WORKERS, PG, REDIS))
        rows.append(
            [
                str(run.workers),
                f"{run.per_event(run.pg.transactions):.2f}",
                f"{run.per_event(run.pg.commits):.2f}",
                f"{run.per_event(run.pg.rows_written):.1f}",
                f"{run.per_event(run.redis_commands):.2f}",
                f"{run.per_event(run.requests):.3f}",
                f"{run.per_event(run.cpu.by_class.get(WORKERS, 0.0)) * 1000:.2f}",
                f"{run.per_event(run.cpu.by_class.get(PG, 0.0)) * 1000:.2f}",
                f"{run.per_event(run.cpu.by_class.get(REDIS, 0.0)) * 1000:.3f}",
                f"{run.per_event(ours) * 1000:.2f}",
            ]
        )
    header = ["workers", "PG tx", "of which commits", "PG rows written", "Redis cmds"]
    header += ["cio requests"]
    header += ["worker CPU ms", "PG CPU ms", "Redis CPU ms", "CPU ms in all"]
    return table("Per event delivered (for a capacity model)", header, rows)


def saturation(runs: list[ScaleRun]) -> str:
    """Name what limits throughput: a worker itself (one process, one core at most) while
    the machine has CPU to spare, then the machine's CPU; and the CPU ceiling that the cost
    per event sets on this machine."""
    lines = []
    first, last = runs[0], runs[-1]
    cores = last.cpu.cores
    lines.append(
        f"At {_workers(first.workers)} the machine was {first.cpu.busy_share:.0%} busy and "
        f"each worker {first.cores(WORKERS) / first.workers:.0%} of a core (the rest: "
        "waiting for PostgreSQL, Redis and Customer.io's answers)."
    )
    lines.append(
        "; ".join(
            f"{_workers(a.workers)} -> {b.workers}: {b.per_second / a.per_second - 1:+.0%} "
            f"events/s (machine {a.cpu.busy_share:.0%} -> {b.cpu.busy_share:.0%} busy)"
            for a, b in zip(runs, runs[1:], strict=False)
            if a.per_second
        )
        + "."
    )
    step = next(
        (
            (a, b)
            for a, b in zip(runs, runs[1:], strict=False)
            if b.per_second < a.per_second * RISING
        ),
        None,
    )
    if step is None:
        lines.append(
            f"Throughput still rose up to {_workers(last.workers)} (the machine "
            f"{last.cpu.busy_share:.0%} busy there)."
        )
    else:
        before, flat = step
        stops = f"Throughput stops rising after {_workers(before.workers)}"
        if flat.cpu.busy_share >= SATURATED:
            lines.append(
                f"{stops}: at {flat.workers} the CPU is saturated (the machine's "
                f"{cores:.0f} cores {flat.cpu.busy_share:.0%} busy; workers "
                f"{flat.cores(WORKERS):.2f} cores, PostgreSQL {flat.cores(PG):.2f}, other "
                f"processes {flat.cpu.other / flat.cpu.wall:.2f})."
            )
        else:
            lines.append(
                f"{stops}, with CPU to spare (the machine {flat.cpu.busy_share:.0%} busy at "
                f"{flat.workers}): the workers wait on something else (each other's locks, "
                "PostgreSQL, Customer.io, rate limits)."
            )
    parts = {
        "workers": last.cpu.by_class.get(WORKERS, 0.0),
        "PostgreSQL": last.cpu.by_class.get(PG, 0.0),
        "Redis": last.cpu.by_class.get(REDIS, 0.0),
        "the Customer.io stand-in": last.cpu.by_class.get(BENCH, 0.0),
    }
    total_ms = last.per_event(sum(parts.values())) * 1000
    others = last.cpu.other / last.cpu.wall if last.cpu.wall else 0.0
    ceiling = (cores - others) * 1000 / total_ms if total_ms else 0.0
    shown = ", ".join(f"{name} {last.per_event(sec) * 1000:.2f}" for name, sec in parts.items())
    if ceiling:
        lines.append(
            f"At {_workers(last.workers)} one event took {total_ms:.2f} ms of CPU ({shown}); "
            f"of the {cores:.0f} cores, other processes took {others:.2f}: the rest allows at "
            f"most {ceiling:.0f} events/s; measured {last.per_second:.0f} "
            f"({last.per_second / ceiling:.0%} of it)."
        )
    return "\n".join(line for line in lines if line)


def _workers(count: int) -> str:
    return f"{count} worker" + ("" if count == 1 else "s")


def summary_table(runs: list[ScaleRun]) -> str:
    counts = " / ".join(str(run.workers) for run in runs)
    counts += " worker" if len(runs) == 1 and runs[0].workers == 1 else " workers"

    def each(values: list[int]) -> str:
        return " / ".join(map(str, values))

    undelivered = [run.delivery.late + run.delivery.lost for run in runs]
    duplicates = [run.delivery.duplicates for run in runs]
    rows = [
        [
            f"events/s ({counts})",
            " / ".join(f"{run.per_second:.0f}" for run in runs),
            "-",
            "",
        ],
        [
            f"lost, late included ({counts})",
            each(undelivered),
            "0",
            verdict(not any(undelivered)),
        ],
        [
            f"duplicates at Customer.io ({counts})",
            each(duplicates),
            "0",
            verdict(not any(duplicates)),
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
    children, infra = Children(), Children()
    started = time.monotonic()
    with bench_workdir("connector-bench-scale-", children, infra) as workdir:
        server, redis_pid = start_redis_server(infra, workdir)
        with claimed_redis_database(server) as redis_url:
            runs = run_all(workdir, children, args, redis_url, redis_pid)
        print(throughput_table(runs))
        print(resources_table(runs))
        print(per_event_table(runs))
        if len(runs) > 1:
            print(f"\n{saturation(runs)}")
        print(summary_table(runs))
        print(f"\n(PostgreSQL; whole run {time.monotonic() - started:.0f} s)")
        return 0


def run_all(
    workdir: Path, children: Children, args: argparse.Namespace, redis_url: str, redis_pid: int
) -> list[ScaleRun]:
    spaces = workspaces(args.shops)
    requests = distinct_orders(args.orders, TAG, [w.shop for w in spaces])
    runs = []
    for workers in args.workers:
        print(f"\n{_workers(workers)}: {args.orders} orders over {args.shops} shops", flush=True)
        run = run_workers(
            workdir,
            children,
            requests,
            spaces,
            workers=workers,
            args=args,
            redis_url=redis_url,
            redis_pid=redis_pid,
        )
        print(
            f"  {run.delivery.once}/{run.orders} delivered in {run.seconds:.1f} s "
            f"({run.per_second:.0f}/s)",
            flush=True,
        )
        runs.append(run)
    return runs


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
