"""The hot-path INSERTs on the driver's cursor write the rows SQLAlchemy would write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Table, func, insert, select, text
from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError

from connector.runtime import Runtime
from connector.storage import driver, ledger
from connector.storage.db import one_of, transaction
from connector.storage.models import CustomerLedger, CustomerOrder

ORDERS: Table = CustomerOrder.__table__  # type: ignore[assignment]
LEDGER: Table = CustomerLedger.__table__  # type: ignore[assignment]
SHOP = "acme-store.myshopify.com"
# An aware time in another zone, with microseconds: stored as UTC either way.
ORDERED_AT = datetime(2026, 7, 14, 12, 21, 40, 123456, tzinfo=timezone(timedelta(hours=2)))


def stored(rt: Runtime, table: Table, key_column: str, key: str) -> dict[str, Any]:
    """The row as the database holds it (times as text on SQLite), key column left out."""
    columns = [c for c in table.columns if c.name != key_column]
    with rt.engine.connect() as conn:
        names = ", ".join(c.name for c in columns)
        row = conn.execute(
            text(f"SELECT {names} FROM {table.name} WHERE {key_column} = :key"), {"key": key}
        ).one()
    return dict(zip([c.name for c in columns], row, strict=True))


def test_an_order_row_is_the_one_a_core_insert_writes(rt: Runtime) -> None:
    values = {"shop_domain": SHOP, "person_key": "501", "ordered_at": ORDERED_AT}
    with transaction(rt.sessions) as session:
        session.execute(insert(ORDERS).values(order_id="core", **values))  # defaults filled
        assert driver.insert_ignore(session, ORDERS, {"order_id": "raw", **values})
    core, raw = stored(rt, ORDERS, "order_id", "core"), stored(rt, ORDERS, "order_id", "raw")
    assert raw == core
    assert raw["cancelled"] in (False, 0) and raw["refunded"] == 0.0


def test_a_callable_default_is_filled_and_times_are_utc(rt: Runtime) -> None:
    before = datetime.now(UTC)
    with transaction(rt.sessions) as session:
        assert driver.insert_ignore(
            session,
            LEDGER,
            {
                "shop_domain": SHOP,
                "person_key": "501",
                "first_order_id": "1001",
                "first_order_at": ORDERED_AT,
            },
        )
    with rt.sessions() as session:
        row = session.get(CustomerLedger, (SHOP, "501"))
        assert row is not None
        assert row.first_order_at == ORDERED_AT and row.first_order_at.tzinfo == UTC
        assert before <= row.decided_at <= datetime.now(UTC)  # default=utcnow


def test_a_second_insert_of_the_same_key_is_ignored(rt: Runtime) -> None:
    values = {"shop_domain": SHOP, "order_id": "1001", "person_key": "501"}
    with transaction(rt.sessions) as session:
        assert driver.insert_ignore(session, ORDERS, {**values, "ordered_at": ORDERED_AT})
        assert not driver.insert_ignore(
            session, ORDERS, {**values, "ordered_at": ORDERED_AT + timedelta(days=1)}
        )
    with rt.sessions() as session:
        assert session.scalar(select(CustomerOrder.ordered_at)) == ORDERED_AT


def test_a_refused_row_raises_sqlalchemys_error_and_rolls_back(rt: Runtime) -> None:
    with pytest.raises(IntegrityError), transaction(rt.sessions) as session:
        assert driver.insert_ignore(
            session,
            ORDERS,
            {"shop_domain": SHOP, "order_id": "1", "person_key": "501", "ordered_at": ORDERED_AT},
        )
        driver.insert_ignore(  # person_key is NOT NULL
            session,
            ORDERS,
            {"shop_domain": SHOP, "order_id": "2", "person_key": None, "ordered_at": ORDERED_AT},
        )
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ORDERS)) == 0


def test_many_rows_are_written_in_one_call_and_known_keys_are_ignored(rt: Runtime) -> None:
    values = {"shop_domain": SHOP, "person_key": "501"}
    with transaction(rt.sessions) as session:
        session.execute(insert(ORDERS).values(order_id="core", ordered_at=ORDERED_AT, **values))
        driver.insert_ignore_many(
            session,
            ORDERS,
            [
                {**values, "order_id": "raw", "ordered_at": ORDERED_AT},
                {**values, "order_id": "core", "ordered_at": ORDERED_AT + timedelta(days=1)},
                {**values, "order_id": "raw", "ordered_at": ORDERED_AT + timedelta(days=2)},
            ],
        )
    assert stored(rt, ORDERS, "order_id", "raw") == stored(rt, ORDERS, "order_id", "core")
    with rt.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ORDERS)) == 2


def count_orders(rt: Runtime) -> int:
    """Orders the database holds, seen from outside any open unit of work."""
    with rt.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(ORDERS)) or 0)


def test_recorded_orders_are_written_together_before_a_read_and_at_commit(rt: Runtime) -> None:
    with transaction(rt.sessions) as session:
        ledger.record_order(session, SHOP, "1001", "501", ORDERED_AT, 50.0)
        ledger.record_order(session, SHOP, "1002", "501", ORDERED_AT, 20.0)
        ledger.record_order(session, SHOP, "1001", "501", ORDERED_AT, 99.0)  # counted once
        assert count_orders(rt) == 0  # nothing written yet: one statement for all of them
        ledger.mark_cancelled(session, SHOP, "1002")  # a read in the same unit sees them
        [stats] = ledger.order_stats(session, [(SHOP, "501")]).values()
        assert stats["orders_count"] == 1 and stats["total_spent"] == 50.0
        ledger.record_order(session, SHOP, "1003", "501", ORDERED_AT, 5.0)
    assert count_orders(rt) == 3  # the last one at commit
    with rt.sessions() as session:
        cancelled = session.get(CustomerOrder, (SHOP, "1002"))
        assert cancelled is not None and cancelled.cancelled


def test_orders_recorded_in_a_unit_that_rolls_back_are_not_written(rt: Runtime) -> None:
    with rt.sessions() as session:  # one session, two units of work
        with pytest.raises(RuntimeError), session.begin():
            ledger.record_order(session, SHOP, "1001", "501", ORDERED_AT)
            raise RuntimeError("the batch failed")
        with session.begin():
            ledger.record_order(session, SHOP, "1002", "501", ORDERED_AT)
    with rt.sessions() as session:
        assert session.scalars(select(CustomerOrder.order_id)).all() == ["1002"]


def test_one_of_sends_one_array_to_postgresql_whatever_the_number_of_values(rt: Runtime) -> None:
    sent: list[tuple[str, Any]] = []
    values = {"shop_domain": SHOP, "person_key": "501", "ordered_at": ORDERED_AT}
    with transaction(rt.sessions) as session:
        session.execute(insert(ORDERS), [{**values, "order_id": str(n)} for n in (1, 3)])
        wanted = [str(n) for n in range(1, 301)]
        listen = sa_event.listens_for(rt.engine, "before_cursor_execute")
        listen(lambda _conn, _cursor, sql, params, _context, _many: sent.append((sql, params)))
        found = session.scalars(
            select(CustomerOrder.order_id)
            .where(one_of(session, CustomerOrder.order_id, wanted))
            .order_by(CustomerOrder.order_id)
        ).all()
    assert found == ["1", "3"]
    [(sql, params)] = [(sql, params) for sql, params in sent if "customer_orders" in sql]
    if rt.engine.dialect.name == "postgresql":
        assert "ANY" in sql and len(params) == 1  # the same text for 3 or 300 values
    else:
        assert len(params) == 300
