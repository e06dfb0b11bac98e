"""Retention's queries: the delivered events, closed checkouts and processed webhooks old
enough to go, found and deleted one chunk at a time (jobs/retention.py decides when).

What goes, and what stays whatever its age:
- Only rows that are done with, and done with well: events `delivered` or `closed` (a
  checkout whose purchase was known before it was sent), with their delivery attempts;
  webhooks `processed` or `ignored`. Failed, quarantined, pending, waiting and
  unidentifiable events, and failed or waiting webhooks, stay: support sees them in the
  console and replays them.
- A webhook that fed a kept event, or names one, stays with it: a replay maps the event
  again from its stored webhook (jobs/processing.remap_event).
- A webhook that fed a delivered event still kept is unlinked from it first (the event's
  `source_delivery_id`, a foreign key); the event's timeline then starts at "mapped".
- The ledger stays (`customer_ledger`, `customer_orders`): `is_first_order` and the
  profiles' order counts depend on it, one small row per order. An order whose
  order_placed is deleted is marked there (`event_pruned_at`), so a webhook arriving later
  or a history backfill never places it again (`order_event_pruned`).
- Privacy tombstones (`redacted_customers`), exports, replay audits, shops: untouched.

Attempts go before their events, and the unlinking before the webhooks, in the same
transaction: the foreign keys hold at every statement, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Engine, and_, delete, exists, func, or_, select, update

from connector.events import EventName
from connector.statuses import EventStatus, InboxState
from connector.storage.db import Session, Sessions
from connector.storage.models import CustomerOrder, DeliveryAttempt, Event, WebhookDelivery

PRUNABLE_EVENT_STATUSES = (EventStatus.DELIVERED, EventStatus.CLOSED)
PRUNABLE_WEBHOOK_STATES = (InboxState.PROCESSED, InboxState.IGNORED)


@dataclass(frozen=True)
class EventRow:
    """What deleting an event needs to know of it; (occurred_at, id) is where the next
    chunk starts."""

    id: str
    occurred_at: datetime
    shop_domain: str
    name: str
    natural_key: str


def prunable_events(
    session: Session,
    status: str,
    cutoff: datetime,
    *,
    after: EventRow | None,
    limit: int,
    lock: bool,
) -> list[EventRow]:
    """The next `limit` events in `status` (delivered or closed) that happened, were stored
    and were delivered before `cutoff`, in the order they happened, after `after`.

    Read on ix_events_status_occurred (the console's problem lists use it too). An event
    that happened before the cutoff but was stored after it (a history backfill) is read
    once per run and left; the keyset means no row is read twice in a run. With `lock`,
    the rows are locked for the caller's transaction and rows someone else holds are
    skipped (PostgreSQL; SQLite has one writer).
    """
    if status not in PRUNABLE_EVENT_STATUSES:
        raise ValueError(f"events in status {status!r} are never pruned")
    query = select(
        Event.id, Event.occurred_at, Event.shop_domain, Event.name, Event.natural_key
    ).where(
        Event.status == status,
        Event.occurred_at < cutoff,
        Event.created_at < cutoff,
        or_(Event.delivered_at.is_(None), Event.delivered_at < cutoff),
    )
    if after is not None:
        query = query.where(
            Event.occurred_at >= after.occurred_at,
            or_(Event.occurred_at > after.occurred_at, Event.id > after.id),
        )
    query = query.order_by(Event.occurred_at, Event.id).limit(limit)
    if lock:
        query = query.with_for_update(skip_locked=True)
    return [EventRow(*row) for row in session.execute(query)]


def count_attempts(session: Session, event_ids: Sequence[str]) -> int:
    """How many delivery attempts these events have (what deleting them would delete)."""
    query = select(func.count()).where(DeliveryAttempt.event_id.in_(event_ids))
    return int(session.scalar(query) or 0)


def count_orders_to_mark(session: Session, rows: Sequence[EventRow]) -> int:
    """How many ledger orders deleting these events would mark as pruned."""
    return sum(
        int(session.scalar(select(func.count()).where(_unmarked_orders(shop, order_ids))) or 0)
        for shop, order_ids in _placed_orders(rows).items()
    )


def delete_events(
    session: Session, rows: Sequence[EventRow], now: datetime
) -> tuple[int, int, int]:
    """Delete these events and their delivery attempts; mark their orders in the ledger.

    Returns (events deleted, attempts deleted, ledger orders marked).
    """
    ids = [row.id for row in rows]
    if not ids:
        return 0, 0, 0
    attempts = session.execute(delete(DeliveryAttempt).where(DeliveryAttempt.event_id.in_(ids)))
    marked = 0
    for shop, order_ids in _placed_orders(rows).items():
        result = session.execute(
            update(CustomerOrder)
            .where(_unmarked_orders(shop, order_ids))
            .values(event_pruned_at=now)
            .execution_options(synchronize_session=False)
        )
        marked += _count(result)
    deleted = session.execute(
        delete(Event).where(Event.id.in_(ids)).execution_options(synchronize_session=False)
    )
    return _count(deleted), _count(attempts), marked


def _placed_orders(rows: Sequence[EventRow]) -> dict[str, list[str]]:
    """Shop -> the order ids of the order_placed events among `rows`."""
    orders: dict[str, list[str]] = {}
    for row in rows:
        if row.name == EventName.ORDER_PLACED:
            orders.setdefault(row.shop_domain, []).append(row.natural_key)
    return orders


def _unmarked_orders(shop: str, order_ids: list[str]) -> ColumnElement[bool]:
    return and_(
        CustomerOrder.shop_domain == shop,
        CustomerOrder.order_id.in_(order_ids),
        CustomerOrder.event_pruned_at.is_(None),
    )


def order_event_pruned(session: Session, shop_domain: str, order_id: str) -> bool:
    """Whether retention deleted this order's order_placed: the order was placed once."""
    order = session.get(CustomerOrder, (shop_domain, order_id))
    return order is not None and order.event_pruned_at is not None


# -- webhooks --------------------------------------------------------------------------------


def last_webhook_id_before(session: Session, cutoff: datetime) -> int | None:
    """The id of the last webhook received before `cutoff`, None when there is none.

    Ids grow with `received_at` (both are set as the row is stored), so a binary search on
    the primary key finds the boundary in ~30 look-ups: no index on received_at, which would
    cost every webhook's insert. A row stored out of order by a moment may wait a run.
    """
    low, high = session.execute(
        select(func.min(WebhookDelivery.id), func.max(WebhookDelivery.id))
    ).one()
    if low is None or high is None:
        return None
    first = _webhook_at_or_after(session, low)
    if first is None or first[1] >= cutoff:
        return None
    low = first[0]  # received before the cutoff; the answer is in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        found = _webhook_at_or_after(session, middle)
        if found is not None and found[1] < cutoff:
            low = found[0]
        else:
            high = middle - 1
    return int(low)


def _webhook_at_or_after(session: Session, webhook_id: int) -> tuple[int, datetime] | None:
    query = (
        select(WebhookDelivery.id, WebhookDelivery.received_at)
        .where(WebhookDelivery.id >= webhook_id)
        .order_by(WebhookDelivery.id)
        .limit(1)
    )
    row = session.execute(query).first()
    return (int(row[0]), row[1]) if row is not None else None


def prunable_webhooks(
    session: Session,
    cutoff: datetime,
    *,
    after_id: int,
    up_to_id: int,
    limit: int,
    lock: bool,
) -> list[int]:
    """The ids of the next `limit` webhooks in (after_id, up_to_id], processed or ignored,
    received and processed before `cutoff`, that neither fed nor name a kept event.

    Read on the primary key; the two look-ups into events use ix_events_source_delivery_id
    and the events' primary key. `lock` as for prunable_events.
    """
    kept = Event.status.not_in(PRUNABLE_EVENT_STATUSES)
    fed_kept = exists().where(Event.source_delivery_id == WebhookDelivery.id, kept)
    names_kept = exists().where(Event.id == WebhookDelivery.event_id, kept)
    query = (
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.id > after_id,
            WebhookDelivery.id <= up_to_id,
            WebhookDelivery.state.in_(PRUNABLE_WEBHOOK_STATES),
            WebhookDelivery.received_at < cutoff,
            or_(WebhookDelivery.processed_at.is_(None), WebhookDelivery.processed_at < cutoff),
            ~fed_kept,
            ~names_kept,
        )
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )
    if lock:
        query = query.with_for_update(skip_locked=True)
    return [int(webhook_id) for webhook_id in session.scalars(query)]


def delete_webhooks(session: Session, ids: Sequence[int]) -> tuple[int, int]:
    """Unlink the delivered events these webhooks fed, then delete the webhooks.

    Returns (webhooks deleted, events unlinked). The events keep their `updated_at`.
    """
    if not ids:
        return 0, 0
    unlinked = session.execute(
        update(Event)
        .where(Event.source_delivery_id.in_(ids))
        .values(source_delivery_id=None, updated_at=Event.updated_at)
        .execution_options(synchronize_session=False)
    )
    deleted = session.execute(
        delete(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    return _count(deleted), _count(unlinked)


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def vacuum(sessions: Sessions, tables: Sequence[str]) -> bool:
    """VACUUM (ANALYZE) `tables` on PostgreSQL (False on SQLite, which needs none).

    After a large delete PostgreSQL's visibility map marks the pages touched as not
    all-visible, so the console's counts (index-only scans) read the table again, row by
    row, until a vacuum: this ends that at once instead of whenever autovacuum comes.
    """
    engine = sessions.kw["bind"]
    assert isinstance(engine, Engine)
    if engine.dialect.name != "postgresql":
        return False
    known = {model.__tablename__ for model in (Event, WebhookDelivery, DeliveryAttempt)}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in tables:
            assert table in known, table  # a name, never a value, goes into the statement
            connection.exec_driver_sql(f'VACUUM (ANALYZE) "{table}"')
    return True
