"""What the fault tests share: Shopify's retries, real processes, the end-state checks, the report.

Every fault test ends the same way: each webhook Shopify had accepted is delivered exactly
once (each expected event id tracked at the fake Customer.io), nothing is stuck (no inbox row
`received`, no event pending or leased), and one row goes to the report (`record`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import Engine, func, select

from connector.config import Settings
from connector.dev.fake_customerio import FakeCustomerIO
from connector.events import EventName, stable_event_id
from connector.runtime import Runtime
from connector.storage.db import make_engine
from connector.storage.models import Event, WebhookDelivery
from jobs.tasks import sweep
from tests.support import ROOT, SHOP, make_order, run_jobs, signed_headers, subprocess_env

# The fault suite appends one JSON line per test to the file this names (bench/faults.py).
REPORT_ENV = "CONNECTOR_FAULTS_REPORT"


# -- webhooks, as Shopify sends and resends them ---------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """One Shopify webhook: a retry sends the very same headers and body."""

    topic: str
    body: bytes
    headers: dict[str, str]

    @classmethod
    def of(cls, topic: str, payload: dict[str, Any], event_id: str) -> Webhook:
        body = json.dumps(payload).encode()
        return cls(topic, body, signed_headers(body, topic, event_id))


def order(index: int) -> dict[str, Any]:
    """A distinct new order (its own customer), #6000 + index."""
    return make_order(
        8_000_000 + index,
        name=f"#{6000 + index}",
        customer={"id": 90_000 + index},
        email=f"fault{index}@example.com",
    )


def order_webhooks(count: int, prefix: str, start: int = 0) -> list[Webhook]:
    return [
        Webhook.of("orders/create", order(i), f"{prefix}-{i}") for i in range(start, start + count)
    ]


def placed_id(index: int) -> str:
    """The order_placed id of `order(index)`."""
    return stable_event_id(SHOP, EventName.ORDER_PLACED, str(8_000_000 + index))


def cancelled_id(index: int) -> str:
    return stable_event_id(SHOP, EventName.ORDER_CANCELLED, str(8_000_000 + index))


def post(client: FlaskClient, webhook: Webhook) -> tuple[int, str]:
    """POST through the app in this process; (HTTP status, the answer's status or error)."""
    response = client.post("/webhooks/shopify", data=webhook.body, headers=webhook.headers)
    answer = response.get_json(silent=True) or {}
    return response.status_code, str(answer.get("status") or answer.get("error"))


def post_http(base_url: str, webhook: Webhook, timeout: float = 10) -> tuple[int, str]:
    """POST to a real web server; status 0 when the connection failed."""
    request = urllib.request.Request(
        f"{base_url}/webhooks/shopify", data=webhook.body, headers=webhook.headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, str(json.loads(response.read()).get("status"))
    except urllib.error.HTTPError as exc:
        return exc.code, "error"
    except OSError as exc:
        return 0, type(exc).__name__


# -- what the fake Customer.io saw -----------------------------------------------------------


def track_counts(fake: FakeCustomerIO) -> Counter[str]:
    """Event id -> how many track operations carrying it Customer.io accepted (2xx).

    More than one means a resend: Customer.io dedupes on the id, so the person still has
    the event once (the fake's `events` keeps one per id, as Customer.io does).
    """
    counts: Counter[str] = Counter()
    for request in list(fake.requests):
        if request["status"] in (200, 207):
            for op in request["ops"]:
                if isinstance(op, dict) and op.get("action") == "event":
                    counts[str(op["id"]).upper()] += 1
    return counts


# -- the database, seen directly (not through the test's proxy) ------------------------------


class Observer:
    """Reads the connector's tables on its own connection, whatever the proxies do."""

    def __init__(self, database_url: str) -> None:
        self.engine: Engine = make_engine(database_url)

    def close(self) -> None:
        self.engine.dispose()

    def statuses(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(Event.status, func.count()).group_by(Event.status)).all()
        return {str(status): int(count) for status, count in rows}

    def event_ids(self, status: str = "delivered") -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.scalars(select(Event.id).where(Event.status == status)).all())

    def stuck(self) -> dict[str, int]:
        """Inbox rows still `received`, events pending, events under a lease."""
        with self.engine.connect() as conn:
            received = conn.scalar(select(func.count()).where(WebhookDelivery.state == "received"))
            pending = conn.scalar(select(func.count()).where(Event.status == "pending"))
            leased = conn.scalar(select(func.count()).where(Event.lease_until.is_not(None)))
        counts = {"received": received or 0, "pending": pending or 0, "leased": leased or 0}
        return {name: count for name, count in counts.items() if count}

    def inbox_rows(self, event_id_header: str) -> int:
        """How many inbox rows a webhook (its X-Shopify-Event-Id) left."""
        with self.engine.connect() as conn:
            found = conn.scalar(
                select(func.count()).where(WebhookDelivery.shopify_event_id == event_id_header)
            )
        return int(found or 0)


# -- waiting, recording ----------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout: float, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except Exception:  # noqa: BLE001 - a check may fail while a fault lasts
            pass
        time.sleep(poll)
    return False


@dataclass
class Outcome:
    """One row of the fault table."""

    fault: str
    webhooks: int  # distinct webhooks Shopify had accepted (answered 200)
    posts: int  # HTTP requests Shopify made for them (retries and redeliveries included)
    delivered: int  # expected events at Customer.io, each counted once
    duplicated: int  # resends of an event id Customer.io already had (it dedupes them)
    lost: int  # expected events Customer.io never got
    recover_seconds: float  # from the end of the fault until all was delivered
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def settle(
    fault: str,
    fake: FakeCustomerIO,
    observer: Observer,
    expected: Iterable[str],
    *,
    webhooks: int,
    posts: int,
    recovered_from: float,
    timeout: float = 30.0,
    notes: str = "",
    allow_duplicates: bool = False,
    pump: Callable[[], object] | None = None,
    describe: Callable[[], str] | None = None,
) -> Outcome:
    """Wait until every expected event is delivered and nothing is stuck; record the row;
    then assert exactly once (no event lost, none Customer.io got twice unless allowed).

    `pump` stands in for the workers when the test runs none: called at each check;
    `describe` adds to the notes what only the end state tells."""
    expected = {event_id.upper() for event_id in expected}

    def done() -> bool:
        if pump is not None:
            pump()
        return expected <= set(track_counts(fake)) and not observer.stuck()

    settled = wait_for(done, timeout, poll=0.1)
    recover = time.monotonic() - recovered_from
    counts = track_counts(fake)
    outcome = Outcome(
        fault=fault,
        webhooks=webhooks,
        posts=posts,
        delivered=len(expected & set(counts)),
        duplicated=sum(counts[event_id] - 1 for event_id in expected if counts[event_id] > 1),
        lost=len(expected - set(counts)),
        recover_seconds=round(recover, 1),
        notes="; ".join(part for part in (notes, describe() if describe else "") if part),
    )
    record(outcome)
    assert settled, f"not settled in {timeout}s: stuck={observer.stuck()} {outcome}"
    assert outcome.lost == 0, outcome
    assert set(counts) == expected, f"unexpected events at Customer.io: {set(counts) - expected}"
    assert observer.event_ids("delivered") >= expected
    if not allow_duplicates:
        assert outcome.duplicated == 0, outcome
    assert len({e["id"] for e in fake.events}) == len(fake.events)
    return outcome


def record(outcome: Outcome) -> None:
    """Append the row to the report file named by CONNECTOR_FAULTS_REPORT, if any."""
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as report:
            report.write(json.dumps(asdict(outcome)) + "\n")


# -- real processes --------------------------------------------------------------------------


class Processes:
    """`connector worker` and gunicorn subprocesses, each in its own process group."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self._procs: list[subprocess.Popen[bytes]] = []

    def _start(
        self, args: list[str], name: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}-{len(self._procs)}.log", "ab")  # noqa: SIM115
        env = {**subprocess_env(self.settings), "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()  # the child has its own copy
        self._procs.append(proc)
        return proc

    def worker(self, **env: str) -> subprocess.Popen[bytes]:
        """A `connector worker` (with its periodic sweep), once it listens for jobs; `env`
        overrides settings."""
        proc = self._start([sys.executable, "-m", "connector", "worker"], "worker", env)
        log = Path(self.log_dir / f"worker-{len(self._procs) - 1}.log")
        ready = wait_for(lambda: "Listening on" in log.read_text(errors="replace"), 30)
        assert ready and proc.poll() is None, self.logs()
        return proc

    def web(self, port: int) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "gunicorn", "--workers", "1", "--bind"]
        args += [f"127.0.0.1:{port}", "--log-level", "warning", "connector.app:create_app()"]
        proc = self._start(args, "web")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"gunicorn exited: {self.logs()}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    return proc
            except OSError:
                time.sleep(0.1)
        raise AssertionError("gunicorn did not answer")

    def kill(self, proc: subprocess.Popen[bytes], signum: int = signal.SIGKILL) -> None:
        try:
            os.killpg(proc.pid, signum)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [proc for proc in self._procs if proc.poll() is None]

    def stop_all(self) -> None:
        """SIGKILL every process group: the test is over, and a kill is what faults are made
        of anyway (a graceful stop takes seconds a suite of many processes cannot spare)."""
        for proc in self._procs:
            self.kill(proc)

    def logs(self) -> str:
        return "\n".join(
            f"== {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )


def pump_in_process(rt: Runtime) -> Callable[[], None]:
    """A sweep and a burst worker in this process: the workers, for tests that run none."""

    def pump() -> None:
        sweep()
        run_jobs(rt)

    return pump


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def in_threads(calls: list[Callable[[], Any]], threads: int = 10) -> list[Any]:
    """Run the calls concurrently, `threads` at a time; their results in order."""
    results: list[Any] = [None] * len(calls)
    lock = threading.Lock()
    queue = list(enumerate(calls))

    def run() -> None:
        while True:
            with lock:
                if not queue:
                    return
                index, call = queue.pop()
            results[index] = call()

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    return results
