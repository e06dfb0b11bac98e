"""Post many distinct signed orders from a few threads, flat out or paced."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from payloads import SHOP, base_order, body_of, headers_for, order_variant

PATH = "/webhooks/shopify"
Request = tuple[bytes, dict[str, str]]


@dataclass
class PostStats:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    seconds: float = 0.0
    max_lag: float = 0.0  # paced runs: how late the latest request left
    # request index -> (epoch time it left, HTTP status or None for a connection error)
    answers: dict[int, tuple[float, int | None]] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)  # seconds per request, sent -> answered

    @property
    def non200(self) -> int:
        return self.sent - self.statuses[200]

    @property
    def per_second(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def distinct_orders(count: int, tag: int, shops: Sequence[str] = (SHOP,)) -> list[Request]:
    """`count` distinct signed orders/create bodies (with their headers) of ~10 KB each;
    order `index` goes to `shops[index % len(shops)]` and has event id `order-TAG-INDEX`."""
    base = base_order()
    requests = []
    for index in range(count):
        body = body_of(order_variant(base, index, tag))
        shop = shops[index % len(shops)]
        requests.append((body, headers_for(body, event_id=order_event_id(tag, index), shop=shop)))
    return requests


def order_event_id(tag: int, index: int) -> str:
    """The X-Shopify-Event-Id of order `index` in `distinct_orders(..., tag)`."""
    return f"order-{tag}-{index}"


class _Connections(threading.local):
    def __init__(self) -> None:
        self.by_port: dict[int, http.client.HTTPConnection] = {}


def post_all(
    port: int | Sequence[int],
    requests: list[Request],
    *,
    threads: int = 8,
    rate: float | None = None,
) -> PostStats:
    """Send every request; with `rate`, request i leaves at start + i / rate. With several
    ports (web processes), request i goes to port i mod their number, as a load balancer
    taking turns would send it."""
    ports = [port] if isinstance(port, int) else list(port)
    stats, lock, local = PostStats(), threading.Lock(), _Connections()
    started = time.monotonic()

    def send(index: int) -> None:
        if rate:
            lag = time.monotonic() - (started + index / rate)
            if lag < 0:
                time.sleep(-lag)
            with lock:
                stats.max_lag = max(stats.max_lag, lag)
        left, clock = time.time(), time.perf_counter()
        status = _post(local, ports[index % len(ports)], *requests[index])
        took = time.perf_counter() - clock
        with lock:
            stats.answers[index] = (left, status)
            stats.durations.append(took)
            stats.sent += 1
            if status is None:
                stats.errors += 1
            else:
                stats.statuses[status] += 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, range(len(requests))))
    stats.seconds = time.monotonic() - started
    return stats


def _post(local: _Connections, port: int, body: bytes, headers: dict[str, str]) -> int | None:
    for _attempt in range(2):  # once more on a fresh connection if the server closed it
        conn = local.by_port.get(port)
        if conn is None:
            conn = local.by_port[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request("POST", PATH, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            conn.close()
            del local.by_port[port]
    return None
