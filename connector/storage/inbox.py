"""The inbox: every verified webhook, stored before Shopify gets its 200."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Insert, Table, select
from sqlalchemy.dialects import postgresql, sqlite

from connector.statuses import InboxState
from connector.storage.db import Engine, Session, storage_errors
from connector.storage.models import WebhookDelivery
from connector.timeutil import utcnow


@cache
def _inbox_insert(dialect: str) -> Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = WebhookDelivery.__table__
    assert isinstance(table, Table)
    return insert(table).on_conflict_do_nothing().returning(table.c.id)


def record_delivery(engine: Engine, values: Mapping[str, Any]) -> bool:
    """Store one verified webhook; False when (shop, topic, event id) is already known.

    The webhook's hot path: one prebuilt statement on a connection of an autocommit engine,
    no ORM session. Raises StorageUnavailableError when the database refuses it.
    """
    with storage_errors(), engine.connect() as connection:
        statement = _inbox_insert(connection.dialect.name)
        return connection.execute(statement, dict(values)).first() is not None


def received_deliveries(
    session: Session, shop_domain: str, limit: int
) -> Sequence[WebhookDelivery]:
    """The oldest unprocessed inbox rows of one shop, locked (SKIP LOCKED) for this transaction."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.shop_domain == shop_domain)
        .where(WebhookDelivery.state == InboxState.RECEIVED)
        .order_by(WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).all()


def shops_with_received_deliveries(session: Session) -> list[str]:
    """The shops that have inbox rows waiting to be processed."""
    query = select(WebhookDelivery.shop_domain).where(WebhookDelivery.state == InboxState.RECEIVED)
    return list(session.scalars(query.distinct()).all())


def get_delivery(session: Session, delivery_id: int) -> WebhookDelivery | None:
    return session.get(WebhookDelivery, delivery_id)


def finish_delivery(
    row: WebhookDelivery, state: InboxState, reason: str | None, event_id: str | None = None
) -> None:
    """Mark an inbox row as done with, and why; `event_id` links the event it fed."""
    row.state = state
    row.state_reason = reason
    row.processed_at = utcnow()
    if event_id:
        row.event_id = event_id


def add_delivery(session: Session, values: Mapping[str, Any]) -> bool:
    """Store one inbox row in the session's transaction; False when (shop, topic, event id)
    is already known. For rows the connector makes itself (reconciliation)."""
    statement = _inbox_insert(session.get_bind().dialect.name)
    return session.execute(statement, dict(values)).first() is not None
