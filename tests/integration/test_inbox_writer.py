"""The door's INSERT (`InboxWriter`): once per webhook; on PostgreSQL a connection kept per
thread, replaced when the server drops it, closed when the engine is disposed."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text

from connector.runtime import Runtime
from connector.storage.models import WebhookDelivery

SHOP = "acme-store.myshopify.com"


def webhook(event_id: str) -> dict[str, Any]:
    return {
        "shop_domain": SHOP,
        "topic": "orders/create",
        "shopify_event_id": event_id,
        "body": '{"id": 1}',
        "resource_key": "1",
    }


def stored(rt: Runtime) -> int:
    with rt.sessions() as session:
        return session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0


def backend_pids_checked_out(rt: Runtime) -> list[int]:
    """PostgreSQL's process id of every connection taken from the pool from now on."""
    pids: list[int] = []
    sa_event.listen(
        rt.engine, "checkout", lambda dbapi, _record, _proxy: pids.append(dbapi.info.backend_pid)
    )
    return pids


def connected(rt: Runtime, pid: int) -> bool:
    with rt.engine.connect() as conn:
        query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
        return bool(conn.execute(query, {"pid": pid}).scalar())


def disconnected(rt: Runtime, pid: int) -> bool:
    """Whether PostgreSQL's process `pid` is gone, waiting up to 5 s for it to exit."""
    deadline = time.monotonic() + 5
    while connected(rt, pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not connected(rt, pid)


@pytest.fixture
def pg(rt: Runtime) -> Runtime:
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("on SQLite the door borrows a pooled connection per webhook")
    return rt


def test_a_webhook_is_stored_once(rt: Runtime) -> None:
    assert rt.inbox.record(webhook("e-1")) is True
    assert rt.inbox.record(webhook("e-1")) is False
    assert rt.inbox.record(webhook("e-2")) is True
    assert stored(rt) == 2


def test_one_connection_serves_a_thread_s_webhooks(pg: Runtime) -> None:
    pids = backend_pids_checked_out(pg)
    for number in range(5):
        assert pg.inbox.record(webhook(f"e-{number}"))
    assert len(pids) == 1
    other_thread = threading.Thread(target=pg.inbox.record, args=(webhook("e-other"),))
    other_thread.start()
    other_thread.join()
    assert len(pids) == 2 and pids[0] != pids[1]  # a connection is never shared by threads
    assert stored(pg) == 6
    assert disconnected(pg, pids[1])  # the thread ended: its connection is closed
    assert connected(pg, pids[0])


def test_a_connection_the_server_dropped_is_replaced_and_the_webhook_stored(
    pg: Runtime,
) -> None:
    pids = backend_pids_checked_out(pg)
    assert pg.inbox.record(webhook("before"))
    kept = pids[-1]
    with pg.engine.connect() as conn:  # as a restart or an idle timeout would
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": kept})
    checkouts = len(pids)
    assert pg.inbox.record(webhook("after")) is True  # not a 503: tried again on a new one
    assert len(pids) == checkouts + 1 and pids[-1] != kept
    assert stored(pg) == 2


def test_disposing_the_engine_closes_the_kept_connection(pg: Runtime) -> None:
    pids = backend_pids_checked_out(pg)
    assert pg.inbox.record(webhook("e-1"))
    kept = pids[-1]
    assert connected(pg, kept)
    pg.engine.dispose()
    assert disconnected(pg, kept)
    assert pg.inbox.record(webhook("e-2"))  # and the next webhook opens a new one
