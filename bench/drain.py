"""Running RQ workers against an instance and watching them drain it: start the workers,
wait until they are idle, warm up gunicorn, count jobs, tell when every order is settled,
and read back what happened to each order (shared by shops.py, flash_sale.py, scale_out.py).
"""

from __future__ import annotations

import http.client
import subprocess
import threading
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from connector.dev.fake_customerio import FakeCustomerIO
from connector.statuses import EventStatus, InboxState
from connector.storage.models import Event, WebhookDelivery
from rq import Queue, Worker
from rq.cron import CronScheduler
from rq.job import Job
from sqlalchemy import Engine, and_, select

from payloads import TOPIC
from phases import CONNECTOR_APP, max_in_window, wait_until
from procs import CONNECTOR, Children, free_port, gunicorn_args, wait_for_port
from stack import Instance, event_statuses, unprocessed_count

ORDER_PLACED = "order_placed"


def start_workers(children: Children, instance: Instance, count: int, workdir: Path) -> list[Any]:
    """`count` `connector worker` processes (each with its sweep scheduler), logs in workdir."""
    return [
        children.start(
            [*CONNECTOR, "worker"], instance.env, workdir / f"{instance.label}-worker-{n}.log"
        )
        for n in range(count)
    ]


def queue_of(instance: Instance) -> Queue:
    return Queue(instance.env["CONNECTOR_QUEUE"], connection=instance.redis)


def wait_idle(instance: Instance, workers: int, timeout: float = 60.0) -> None:
    """Wait until every worker and its sweep scheduler (a process of its own, which imports
    the app too) have registered, and nothing is queued or running (the delivery job `shops
    add` queued for the bench shop, the first sweeps): posting starts on a quiet machine."""
    queue = queue_of(instance)

    def idle() -> bool:
        return (
            len(Worker.all(queue=queue)) >= workers
            and len(CronScheduler.all(instance.redis, cleanup=False)) >= workers
            and queue.count == 0
            and queue.started_job_registry.get_job_count(cleanup=False) == 0
        )

    if not wait_until(idle, timeout, 0.05):
        raise RuntimeError(f"{workers} workers did not register and go idle in {timeout:.0f} s")


def wait_started(instance: Instance, workers: int, timeout: float = 60.0) -> None:
    """Wait until every worker and its sweep scheduler have registered in Redis (they have
    imported the app and connected); unlike `wait_idle`, the queue may hold work."""
    queue = queue_of(instance)

    def started() -> bool:
        return (
            len(Worker.all(queue=queue)) >= workers
            and len(CronScheduler.all(instance.redis, cleanup=False)) >= workers
        )

    if not wait_until(started, timeout, 0.05):
        raise RuntimeError(f"{workers} workers did not register in {timeout:.0f} s")


@dataclass(frozen=True)
class WebServer:
    port: int
    proc: subprocess.Popen[bytes]  # the gunicorn master, leader of its process group


def start_web_servers(
    children: Children, instance: Instance, count: int, workdir: Path
) -> list[WebServer]:
    """`count` gunicorn servers, each a master of its own with ONE sync worker on a port of
    its own (web machines behind a load balancer). Each has answered a warm-up when this
    returns."""
    servers = []
    for n in range(count):
        port = free_port()
        args = gunicorn_args(CONNECTOR_APP, port, workers=1)
        proc = children.start(args, instance.env, workdir / f"{instance.label}-web-{n}.log")
        wait_for_port(port, proc)
        servers.append(WebServer(port, proc))
    for server in servers:
        warm_up(server.port)
    return servers


def warm_up(port: int, requests: int = 16) -> None:
    """GET /readyz from a few connections at once, so gunicorn's workers have loaded the app
    and opened their database and Redis connections before the first order."""

    def ready(_n: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status
        finally:
            conn.close()

    with ThreadPoolExecutor(4) as pool:
        statuses = set(pool.map(ready, range(requests)))
    if statuses != {200}:
        raise RuntimeError(f"GET /readyz answered {sorted(statuses)}")


def jobs_done(instance: Instance) -> tuple[int, int]:
    """(finished + failed, failed) jobs over the instance's workers: RQ counts them in each
    worker's hash as it ends a job (the jobs themselves are not kept: result_ttl=0)."""
    workers = Worker.all(queue=queue_of(instance))
    failed = sum(w.failed_job_count for w in workers)
    return sum(w.successful_job_count for w in workers) + failed, failed


class QueueWatch:
    """The most jobs waiting in `queue` at once, sampled from a thread while in the block."""

    def __init__(self, queue: Queue, interval: float = 0.25) -> None:
        self.queue, self.interval, self.most = queue, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> QueueWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.most = max(self.most, self.queue.count)


def queued_by_function(queue: Queue) -> Counter[str]:
    """The jobs waiting in `queue`, counted by function (`deliver_pending`, `sweep`...)."""
    jobs = Job.fetch_many(queue.get_job_ids(), connection=queue.connection)
    return Counter(job.func_name.rsplit(".", 1)[-1] for job in jobs if job is not None)


def settled(instance: Instance, accepted: int) -> bool:
    """Every accepted order delivered, or nothing left to do: no inbox row waiting to be
    mapped and no event waiting to be sent."""
    statuses = event_statuses(instance.engine)
    if statuses[EventStatus.DELIVERED] >= accepted:
        return True
    return statuses[EventStatus.PENDING] == 0 and unprocessed_count(instance.engine) == 0


@dataclass(frozen=True)
class OrderRow:
    received_at: datetime
    processed_at: datetime | None
    inbox_state: str
    event_id: str | None
    event_status: str | None
    delivered_at: datetime | None


def order_rows(engine: Engine) -> dict[str, OrderRow]:
    """Per X-Shopify-Event-Id: the inbox row and its order_placed event, if any."""
    query = (
        select(
            WebhookDelivery.shopify_event_id,
            WebhookDelivery.received_at,
            WebhookDelivery.processed_at,
            WebhookDelivery.state,
            Event.id,
            Event.status,
            Event.delivered_at,
        )
        .outerjoin(
            Event,
            and_(Event.source_delivery_id == WebhookDelivery.id, Event.name == ORDER_PLACED),
        )
        .where(WebhookDelivery.topic == TOPIC)
    )
    with engine.connect() as conn:
        return {row[0]: OrderRow(*row[1:]) for row in conn.execute(query)}


@dataclass
class Delivery:
    """Whether each order answered 200 reached Customer.io exactly once."""

    accepted: int = 0
    once: int = 0  # delivered (the database says so) and recorded once by the stand-in
    late: int = 0  # not at Customer.io, still on its way (inbox row received, event pending)
    lost: int = 0  # not at Customer.io and not on its way (or delivered in the database only)
    resent: int = 0  # requests carrying an event id the stand-in had recorded already
    two_ids: int = 0  # orders the stand-in recorded under more than one event id
    unrecorded: int = 0  # at Customer.io, but not delivered in the database (would go again)

    @property
    def duplicates(self) -> int:
        return self.resent + self.two_ids


def check_delivery(
    rows: dict[str, OrderRow], fake: FakeCustomerIO, orders: Sequence[tuple[str, int]]
) -> Delivery:
    """`orders`: (X-Shopify-Event-Id, Shopify order id) of every order answered 200; `rows`
    from `order_rows` after the processes stopped."""
    at_cio = placed_at_cio(fake)
    result = Delivery(accepted=len(orders), resent=fake.duplicate_events)
    for webhook_id, order in orders:
        row, seen = rows.get(webhook_id), at_cio.get(str(order), 0)
        delivered = row is not None and row.delivered_at is not None
        result.two_ids += seen > 1
        result.unrecorded += seen > 0 and not delivered
        if seen == 1 and delivered:
            result.once += 1
        elif not seen and row is not None and not delivered and _on_its_way(row):
            result.late += 1
        elif not seen:
            result.lost += 1
    return result


def _on_its_way(row: OrderRow) -> bool:
    return row.inbox_state == InboxState.RECEIVED or row.event_status == EventStatus.PENDING


def busiest_workspace_1s(batches: Sequence[dict[str, Any]]) -> int:
    """The most /api/v2/batch requests one workspace received in any 1 s, over all."""
    by_workspace: dict[str, list[float]] = defaultdict(list)
    for request in batches:
        by_workspace[request["site_id"] or "-"].append(request["time"])
    return max(map(max_in_window, by_workspace.values()), default=0)


def placed_at_cio(fake: FakeCustomerIO) -> Counter[str]:
    """Order id -> how many distinct order_placed events (ids) the fake recorded for it.
    The fake records an event id once (a resend counts in `duplicate_events`), so a count
    above 1 is the same order sent under two ids."""
    return Counter(
        str(event["attributes"].get("order_id")) for event in fake.events_named(ORDER_PLACED)
    )
