"""The statements that take a batch of work run each step once, whatever PostgreSQL knows.

On a table without statistics (a new install, or a burst after a quiet spell) the planner
guesses one matching row, and an `id IN (subquery)` became a nested loop that ran the
subquery again for every waiting row: a claim of 200 events out of 2,000 pending took
0.4 s, a batch of 2,000 waiting webhooks 0.6 s (docs/benchmarks.md). Here each statement
is run under EXPLAIN ANALYZE, on tables never analysed, and no step may run more than once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import event as sa_event

from connector.runtime import Runtime
from connector.storage import events
from connector.storage.db import transaction
from connector.storage.inbox import received_deliveries
from tests.integration.test_poison import SHOP, stored_event

WAITING = 400


@pytest.fixture
def pg(rt: Runtime, shop: str) -> Runtime:
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("SQLite's planner has no such plan")
    return rt


def statement_of(rt: Runtime, marker: str, run: Callable[[], Any]) -> tuple[str, Any]:
    """The SQL and parameters of the statement holding `marker` that `run` executes."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if marker in statement:
            seen.append((statement, parameters))

    sa_event.listen(rt.engine, "before_cursor_execute", capture)
    try:
        run()
    finally:
        sa_event.remove(rt.engine, "before_cursor_execute", capture)
    assert seen, f"no statement with {marker!r} ran"
    return seen[0]


def plan_nodes(rt: Runtime, statement: str, parameters: Any) -> Iterator[dict[str, Any]]:
    """Every node of the statement's plan as it ran (in a transaction rolled back)."""
    with rt.engine.connect() as conn:
        raw = conn.exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
        plan = raw.scalar_one()
        conn.rollback()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("Plans", []))


def busiest_step(rt: Runtime, statement: str, parameters: Any) -> tuple[int, str]:
    loops, name = max(
        (node["Actual Loops"], node["Node Type"]) for node in plan_nodes(rt, statement, parameters)
    )
    return loops, name


def test_a_mapping_batch_reads_its_webhooks_in_one_pass(pg: Runtime) -> None:
    for number in range(WAITING):
        pg.inbox.record(
            {
                "shop_domain": SHOP,
                "topic": "orders/create",
                "shopify_event_id": f"plan-{number}",
                "body": '{"id": 1}',
                "resource_key": "1",
            }
        )

    def take_a_batch() -> None:
        with transaction(pg.sessions) as session:
            assert len(received_deliveries(session, [SHOP], per_shop=100)) == 100

    statement, parameters = statement_of(pg, "FOR UPDATE SKIP LOCKED", take_a_batch)
    assert busiest_step(pg, statement, parameters)[0] == 1


def test_a_delivery_claim_locks_and_leases_in_one_pass(pg: Runtime) -> None:
    for number in range(WAITING):
        stored_event(pg, 883000 + number)

    def claim() -> None:
        with transaction(pg.sessions) as session:
            assert len(events.claim_due_events(session, SHOP, 100, 300, 5)) == 100

    statement, parameters = statement_of(pg, "UPDATE events SET lease_owner", claim)
    assert busiest_step(pg, statement, parameters)[0] == 1
