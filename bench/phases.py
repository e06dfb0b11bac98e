"""The three measurements: ingest, delivery throughput, end-to-end latency."""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.dev.fake_customerio import FakeCustomerIO
from rq import Worker

from fakecio import BenchCustomerIO
from loadgen import LoadResult, run_load, write_request_files
from payloads import base_order, body_of, headers_for
from post import PATH, PostStats, distinct_orders, post_all
from procs import (
    BENCH,
    CONNECTOR,
    Children,
    cpu_seconds,
    free_port,
    gunicorn_args,
    wait_for_port,
)
from stack import (
    SITE_ID,
    TRACK_KEY,
    Instance,
    create_instance,
    delivered_span,
    delivery_latencies,
    event_statuses,
    inbox_count,
    unprocessed_count,
)
from usage import group_seconds

CONNECTOR_APP = "connector.app:create_app()"
CIO_DELAY = 0.02  # the fake Customer.io answers each request after 20 ms


# -- helpers -----------------------------------------------------------------------------------


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most timestamps falling in any half-open interval [t, t + window)."""
    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)), default=0
    )


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def start_web(children: Children, app: str, env: dict[str, str], log: Path, **kw: Any) -> int:
    port = free_port()
    proc = children.start(gunicorn_args(app, port, **kw), env, log)
    wait_for_port(port, proc)
    if Path("/proc").is_dir():
        wait_until_booted(proc.pid)
    return port


def wait_until_booted(group: int, timeout: float = 60.0, window: float = 0.5) -> None:
    """Wait until gunicorn's workers have loaded the app: two windows in a row in which its
    process group used less than a tenth of a core.

    gunicorn listens before its workers have imported the app; with five workers on two
    cores that takes seconds, and a load started at once measured their start-up (a
    latency run's first second) rather than the connector (docs/benchmarks.md).
    """
    deadline = time.monotonic() + timeout
    before, quiet = group_seconds([group]), 0
    while quiet < 2:
        if time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn {group}: still busy starting after {timeout:.0f}s")
        time.sleep(window)
        now = group_seconds([group])
        quiet = quiet + 1 if now - before < 0.1 * window else 0
        before = now


def start_fake() -> FakeCustomerIO:
    fake = BenchCustomerIO({SITE_ID: TRACK_KEY}).start()
    fake.set_delay(CIO_DELAY)
    return fake


def batch_requests(fake: FakeCustomerIO) -> list[dict[str, Any]]:
    return [r for r in list(fake.requests) if r["path"].startswith("/api/v2/batch")]


# -- 1. ingest ---------------------------------------------------------------------------------


@dataclass
class IngestRun:
    label: str
    rounds: list[LoadResult]
    stored: int | None = None  # inbox rows at the end (None for the bare endpoint)
    accepted: int = 0  # 200 answers over warm-up and every round

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rounds)

    @property
    def per_second(self) -> float:
        return self.requests / sum(r.seconds for r in self.rounds)

    @property
    def non200(self) -> int:
        return sum(r.non200 for r in self.rounds)

    @property
    def socket_errors(self) -> int:
        return sum(r.socket_errors for r in self.rounds)

    @property
    def round_rates(self) -> list[float]:
        return [r.per_second for r in self.rounds]

    @property
    def lost(self) -> bool:
        """A 200 answered without its inbox row (rows may exceed 200s: answers cut by the
        end of a load run were still stored)."""
        return self.stored is not None and self.stored < self.accepted


@dataclass
class IngestResult:
    body_bytes: int
    tool: str
    runs: list[IngestRun] = field(default_factory=list)


@dataclass
class _Server:
    run: IngestRun
    port: int
    instance: Instance | None = None


def ingest(
    workdir: Path,
    children: Children,
    backends: list[tuple[str, str | None]],
    *,
    redis_url: str,
    seconds: float,
    warmup: float,
    rounds: int,
    force_python: bool,
) -> IngestResult:
    """req/s of a bare Flask endpoint and of the connector on each (label, pg_url) backend.

    Every server runs side by side (idle when not under load); after a warm-up each, they
    take turns for `rounds` rounds of `seconds / rounds`, so drift on a shared machine hits
    them all alike.
    """
    body = body_of(base_order())
    files = write_request_files(workdir, body, headers_for(body))
    log = workdir / "ingest-web.log"
    servers: list[_Server] = []
    try:
        port = start_web(children, "bare_app:app", dict(os.environ), log, pythonpath=BENCH)
        servers.append(_Server(IngestRun("bare Flask", []), port))
        for label, pg_url in backends:
            instance = create_instance(
                f"ingest-{label.lower()}", workdir, redis_url=redis_url, pg_url=pg_url
            )
            servers.append(_Server(IngestRun(f"connector {label}", []), 0, instance))
            servers[-1].port = start_web(children, CONNECTOR_APP, instance.env, log)

        def load(server: _Server, name: str, duration: float) -> LoadResult:
            prefix = f"{server.run.label.split()[-1]}-{name}"
            done = run_load(server.port, PATH, files, prefix, duration, force_python=force_python)
            server.run.accepted += done.requests - done.non200
            return done

        for server in servers:
            load(server, "warm", warmup)
        for number in range(rounds):
            for server in servers:
                server.run.rounds.append(load(server, f"r{number}", seconds / rounds))
        children.stop_all()
        for server in servers:
            if server.instance is not None:
                server.run.stored = inbox_count(server.instance.engine)
        first = servers[0].run.rounds[0]
        return IngestResult(len(body), first.tool, [server.run for server in servers])
    finally:
        children.stop_all()
        for server in servers:
            if server.instance is not None:
                server.instance.close()


# -- 2. delivery throughput --------------------------------------------------------------------


@dataclass
class DeliveryRun:
    label: str
    events: int
    batch_size: int
    rate_limit: float
    load: PostStats
    worker_seconds: float  # worker start -> every event delivered
    ready_seconds: float  # worker start -> worker registered with Redis (imports, connect)
    mapped_seconds: float  # worker start -> every inbox row mapped to an event
    delivery_seconds: float  # first request to the fake -> last delivered_at
    requests: int
    max_requests_1s: int
    mean_events_per_request: float
    max_events_per_request: int
    statuses: dict[str, int]
    fake_events: int
    duplicates: int
    worker_cpu_ms_per_event: float = 0.0  # the worker's CPU from registered to done, per event

    @property
    def events_per_second(self) -> float:
        return self.events / self.worker_seconds if self.worker_seconds else 0.0

    @property
    def delivery_events_per_second(self) -> float:
        return self.events / self.delivery_seconds if self.delivery_seconds else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.delivery_seconds if self.delivery_seconds else 0.0


def delivery(
    workdir: Path,
    children: Children,
    *,
    label: str,
    events: int,
    batch_size: int,
    redis_url: str,
    pg_url: str | None,
    tag: int,
    rate: float = 100.0,
    timeout: float = 180.0,
) -> DeliveryRun:
    """Load `events` orders with no worker running, then time one worker delivering them."""
    fake = start_fake()
    instance = create_instance(
        f"delivery-{tag}",
        workdir,
        redis_url=redis_url,
        pg_url=pg_url,
        track_url=fake.url,
        batch_size=batch_size,
        rate=rate,
    )
    try:
        load = _load_orders(workdir, children, instance, events, tag)
        fake.reset()
        fake.set_delay(CIO_DELAY)
        started = time.monotonic()
        log = workdir / f"worker-{tag}.log"
        worker = children.start([*CONNECTOR, "worker"], instance.env, log)
        ready = _wait_worker_registered(instance) - started
        cpu_at_ready = cpu_seconds(worker.pid)
        mapped = _wait_mapped(instance, events, timeout)
        if not wait_until(lambda: _delivered(instance) >= events, timeout, 0.05):
            raise RuntimeError(f"{label}: only {_delivered(instance)}/{events} delivered")
        worker_seconds = time.monotonic() - started
        cpu = cpu_seconds(worker.pid) - cpu_at_ready
        children.stop_all()
        timing = (worker_seconds, ready, mapped - started)
        run = _delivery_run(label, instance, fake, load, batch_size, rate, events, timing)
        run.worker_cpu_ms_per_event = cpu * 1000 / events
        return run
    finally:
        children.stop_all()
        fake.stop()
        instance.close()


def _load_orders(
    workdir: Path, children: Children, instance: Instance, events: int, tag: int
) -> PostStats:
    port = start_web(children, CONNECTOR_APP, instance.env, workdir / f"web-{tag}.log")
    load = post_all(port, distinct_orders(events, tag))
    children.stop_all()
    if load.non200 or inbox_count(instance.engine) != events:
        raise RuntimeError(f"loading {events} orders: {load.statuses} errors={load.errors}")
    return load


def _wait_mapped(instance: Instance, events: int, timeout: float) -> float:
    def mapped() -> bool:
        return (
            unprocessed_count(instance.engine) == 0
            and sum(event_statuses(instance.engine).values()) >= events
        )

    wait_until(mapped, timeout, 0.05)
    return time.monotonic()


def _delivered(instance: Instance) -> int:
    return event_statuses(instance.engine)["delivered"]


def _delivery_run(
    label: str,
    instance: Instance,
    fake: FakeCustomerIO,
    load: PostStats,
    batch_size: int,
    rate: float,
    events: int,
    timing: tuple[float, float, float],
) -> DeliveryRun:
    """Figures from the fake's request log and the database; timing: (total, ready, mapped)."""
    worker_seconds, ready_seconds, mapped_seconds = timing
    batches = batch_requests(fake)
    times = [r["time"] for r in batches]
    per_request = [len(r["ops"]) // 2 for r in batches]  # identify + event per event
    _first, last = delivered_span(instance.engine)
    delivery_seconds = (last.timestamp() - min(times)) if (last and times) else 0.0
    return DeliveryRun(
        label=label,
        events=events,
        batch_size=batch_size,
        rate_limit=rate,
        load=load,
        worker_seconds=worker_seconds,
        ready_seconds=ready_seconds,
        mapped_seconds=mapped_seconds,
        delivery_seconds=delivery_seconds,
        requests=len(batches),
        max_requests_1s=max_in_window(times),
        mean_events_per_request=sum(per_request) / len(per_request) if per_request else 0.0,
        max_events_per_request=max(per_request, default=0),
        statuses=dict(event_statuses(instance.engine)),
        fake_events=len(fake.events),
        duplicates=fake.duplicate_events,
    )


# -- 3. latency --------------------------------------------------------------------------------


@dataclass
class LatencyRun:
    label: str
    rate: float
    load: PostStats
    latencies: list[float]
    drain_seconds: float  # last post answered -> every event delivered
    max_requests_1s: int
    requests: int

    def pct(self, p: float) -> float:
        return percentile(self.latencies, p)


def latency(
    workdir: Path,
    children: Children,
    *,
    redis_url: str,
    pg_url: str | None,
    rate: float,
    seconds: float,
    tag: int,
    timeout: float = 120.0,
) -> LatencyRun:
    """Post orders at `rate`/s for `seconds` to gunicorn + one worker; received -> delivered."""
    fake = start_fake()
    instance = create_instance(
        f"latency-{tag}", workdir, redis_url=redis_url, pg_url=pg_url, track_url=fake.url
    )
    count = int(rate * seconds)
    try:
        requests = distinct_orders(count, tag)
        port = start_web(children, CONNECTOR_APP, instance.env, workdir / "latency-web.log")
        children.start([*CONNECTOR, "worker"], instance.env, workdir / "latency-worker.log")
        _wait_worker_registered(instance)
        time.sleep(0.5)  # let it run the deliver job `shops add` queued
        load = post_all(port, requests, threads=8, rate=rate)
        posted = time.monotonic()
        if not wait_until(lambda: _delivered(instance) >= count, timeout, 0.05):
            raise RuntimeError(f"latency: only {_delivered(instance)}/{count} delivered")
        drain = time.monotonic() - posted
        children.stop_all()
        batches = batch_requests(fake)
        return LatencyRun(
            label="gunicorn + 1 worker",
            rate=rate,
            load=load,
            latencies=delivery_latencies(instance.engine),
            drain_seconds=drain,
            max_requests_1s=max_in_window([r["time"] for r in batches]),
            requests=len(batches),
        )
    finally:
        children.stop_all()
        fake.stop()
        instance.close()


def _wait_worker_registered(instance: Instance, timeout: float = 30.0) -> float:
    """Wait until the RQ worker has registered (it has imported everything by then)."""
    if not wait_until(lambda: bool(Worker.all(connection=instance.redis)), timeout, 0.02):
        raise RuntimeError("the worker did not register with Redis")
    return time.monotonic()
