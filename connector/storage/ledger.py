"""The first-order ledger and the connector's own record of each customer's orders."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Table, event, func, select
from sqlalchemy.orm import ORMExecuteState

from connector.storage.db import Session, one_of
from connector.storage.driver import insert_ignore, insert_ignore_many
from connector.storage.models import CustomerLedger, CustomerOrder
from connector.timeutil import utcnow

# Stands for an order the connector never saw (Shopify says the customer ordered before).
PRIOR_ORDER = "(before the connector)"


def first_order_id(session: Session, shop_domain: str, person_key: str) -> str | None:
    """The order the ledger holds as the person's first, locking the row; None if unknown."""
    ledger = first_order(session, shop_domain, person_key)
    return ledger[0] if ledger is not None else None


# (shop, person key) -> (first order id, ordered at), or None for no row yet: what this unit
# of work knows of the ledger, from rows it locked (prefetch) or wrote itself.
_KNOWN = "first orders known to this unit of work"


def prefetch_first_orders(session: Session, people: Iterable[tuple[str, str]]) -> None:
    """Load and lock the ledger rows of these (shop, person key) pairs in one query, so
    that `first_order` asks the database only about people not named here."""
    pairs = set(people)
    if not pairs:
        return
    found = session.scalars(
        select(CustomerLedger)
        .where(
            one_of(session, CustomerLedger.shop_domain, sorted({shop for shop, _ in pairs})),
            one_of(session, CustomerLedger.person_key, sorted({key for _, key in pairs})),
        )
        .with_for_update()
    ).all()
    known = session.info.setdefault(_KNOWN, {})
    known.update(dict.fromkeys(pairs))
    known.update(
        {
            (row.shop_domain, row.person_key): (row.first_order_id, row.first_order_at)
            for row in found
            if (row.shop_domain, row.person_key) in pairs
        }
    )


def _known(session: Session) -> dict[tuple[str, str], tuple[str, datetime] | None]:
    return session.info.setdefault(_KNOWN, {})  # type: ignore[no-any-return]


def first_order(session: Session, shop_domain: str, person_key: str) -> tuple[str, datetime] | None:
    """(order id, ordered at) the ledger holds as the person's first, locking the row."""
    key = (shop_domain, person_key)
    known = _known(session)
    if key in known:
        return known[key]
    ledger = session.get(CustomerLedger, key, with_for_update=True)
    return (ledger.first_order_id, ledger.first_order_at) if ledger is not None else None


def move_first_order(
    session: Session, shop_domain: str, person_key: str, order_id: str, ordered_at: datetime
) -> None:
    """An earlier order takes the person's first-order claim (its row is locked already)."""
    ledger = session.get(CustomerLedger, (shop_domain, person_key))
    assert ledger is not None
    ledger.first_order_id, ledger.first_order_at, ledger.decided_at = (
        order_id,
        ordered_at,
        utcnow(),
    )
    _known(session)[(shop_domain, person_key)] = (order_id, ordered_at)


def claim_first_order(
    session: Session, shop_domain: str, person_key: str, order_id: str, ordered_at: datetime
) -> str:
    """Claim (shop, person)'s first order for `order_id` unless one already holds it.

    The primary key makes two concurrent claims impossible; returns the order that holds
    the claim, which is `order_id` when this one won.
    """
    values = {
        "shop_domain": shop_domain,
        "person_key": person_key,
        "first_order_id": order_id,
        "first_order_at": ordered_at,
        "decided_at": utcnow(),
    }
    key = (shop_domain, person_key)
    _known(session).pop(key, None)
    if insert_ignore(session, _table(CustomerLedger), values):
        _known(session)[key] = (order_id, ordered_at)  # the row is ours (locked) until commit
        return order_id
    ledger = session.get(CustomerLedger, (shop_domain, person_key))  # a concurrent claim won
    assert ledger is not None
    return ledger.first_order_id


def record_order(
    session: Session,
    shop_domain: str,
    order_id: str,
    person_key: str,
    ordered_at: datetime,
    total: float | None = None,
) -> None:
    """Count an order for its customer; an order recorded before is left as it is.

    The row is written together with the other orders this unit of work records, in one
    statement, before the session's next statement or its commit: a batch of orders costs
    one round trip for their ledger rows instead of one each, and whatever reads the
    ledger in the same unit of work still sees them.
    """
    values = {
        "shop_domain": shop_domain,
        "order_id": order_id,
        "person_key": person_key,
        "ordered_at": ordered_at,
        "total": total,
        "cancelled": False,
        "refunded": 0.0,
    }
    _unwritten(session).setdefault((shop_domain, order_id), values)


# (shop, order id) -> the ledger row of an order recorded by this unit of work, not written yet.
_UNWRITTEN = "orders recorded by this unit of work, not written yet"


def _unwritten(session: Session) -> dict[tuple[str, str], dict[str, Any]]:
    return session.info.setdefault(_UNWRITTEN, {})  # type: ignore[no-any-return]


def write_recorded_orders(session: Session) -> None:
    """Write the orders recorded so far in one statement (called before each statement
    the session runs and before its commit)."""
    unwritten = session.info.pop(_UNWRITTEN, None)
    if unwritten:
        insert_ignore_many(session, _table(CustomerOrder), list(unwritten.values()))


@event.listens_for(Session, "do_orm_execute")
def _write_before_statement(state: ORMExecuteState) -> None:
    write_recorded_orders(state.session)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    write_recorded_orders(session)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_UNWRITTEN, None)


def get_order(session: Session, shop_domain: str, order_id: str) -> CustomerOrder | None:
    """The recorded order (its total, cancellation and refunds), or None."""
    return session.get(CustomerOrder, (shop_domain, order_id))


def mark_cancelled(session: Session, shop_domain: str, order_id: str) -> None:
    """The order no longer counts towards its customer's orders and spend."""
    order = get_order(session, shop_domain, order_id)
    if order is not None:
        order.cancelled = True


def add_refund(session: Session, shop_domain: str, order_id: str, amount: float) -> None:
    """Take a refund off what the order counts towards its customer's spend."""
    order = get_order(session, shop_domain, order_id)
    if order is not None:
        order.refunded = round((order.refunded or 0.0) + amount, 2)


def seed_order(
    session: Session, shop_domain: str, order_id: str, person_key: str, ordered_at: datetime
) -> bool:
    """Record a historical order, first for its customer unless the ledger knows an earlier
    one (history is read oldest first); False when the order was already recorded."""
    values = {"shop_domain": shop_domain, "person_key": person_key}
    _known(session).pop((shop_domain, person_key), None)
    insert_ignore(
        session,
        _table(CustomerLedger),
        {**values, "first_order_id": order_id, "first_order_at": ordered_at},
    )
    return insert_ignore(
        session, _table(CustomerOrder), {**values, "order_id": order_id, "ordered_at": ordered_at}
    )


def order_stats(
    session: Session, people: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, Any]]:
    """The connector's own order count and lifetime spend (both net of cancellations and
    refunds) and first/last order dates, per (shop, person key), in one query for any
    number of shops.

    `total_spent` is None when the total of a counted order is unknown (seeded history).
    """
    wanted = set(people)
    if not wanted:
        return {}
    kept = CustomerOrder.cancelled.is_(False)
    rows = session.execute(
        select(
            CustomerOrder.shop_domain,
            CustomerOrder.person_key,
            func.count().filter(kept),
            func.sum(CustomerOrder.total - CustomerOrder.refunded).filter(kept),
            func.count(CustomerOrder.total).filter(kept),
            func.min(CustomerOrder.ordered_at),
            func.max(CustomerOrder.ordered_at),
        )
        .where(
            one_of(session, CustomerOrder.shop_domain, {shop for shop, _ in wanted}),
            one_of(session, CustomerOrder.person_key, {person for _, person in wanted}),
        )
        .group_by(CustomerOrder.shop_domain, CustomerOrder.person_key)
    ).all()
    return {
        (shop, key): {
            "orders_count": count,
            "total_spent": round(float(spent or 0.0), 2) if known == count else None,
            "first_order_at": first,
            "last_order_at": last,
        }
        for shop, key, count, spent, known, first, last in rows
        if (shop, key) in wanted  # the query may match a person of another of the shops
    }


def _table(model: type[CustomerLedger] | type[CustomerOrder]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table
