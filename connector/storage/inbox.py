"""The inbox: every verified webhook, stored before Shopify gets its 200."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Insert, Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from connector.statuses import InboxState
from connector.storage.db import Engine, Session, storage_errors
from connector.storage.models import Shop, WebhookDelivery
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
    session: Session, shop_domain: str, limit: int, only: Sequence[int] | None = None
) -> Sequence[WebhookDelivery]:
    """The oldest unprocessed inbox rows of one shop (of the ids `only` names, if given),
    locked (SKIP LOCKED) for this transaction."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.shop_domain == shop_domain)
        .where(WebhookDelivery.state == InboxState.RECEIVED)
        .order_by(WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if only is not None:
        query = query.where(WebhookDelivery.id.in_(list(only)))
    return session.scalars(query).all()


def received_delivery_ids(session: Session, shop_domain: str, limit: int) -> list[int]:
    """The ids of the oldest unprocessed inbox rows of one shop."""
    query = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.shop_domain == shop_domain)
        .where(WebhookDelivery.state == InboxState.RECEIVED)
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )
    return list(session.scalars(query).all())


def fail_delivery(session: Session, delivery_id: int, reason: str) -> None:
    """Set one inbox row aside as failed (after its processing raised), if still waiting."""
    row = session.get(WebhookDelivery, delivery_id)
    if row is not None and row.state == InboxState.RECEIVED:
        finish_delivery(row, InboxState.FAILED, reason)


def shops_with_received_deliveries(session: Session) -> list[str]:
    """The known shops that have inbox rows waiting to be processed (a shop that never
    installed has none to process: its webhooks wait for the install)."""
    query = (
        select(WebhookDelivery.shop_domain)
        .join(Shop, Shop.domain == WebhookDelivery.shop_domain)
        .where(WebhookDelivery.state == InboxState.RECEIVED)
    )
    return list(session.scalars(query.distinct()).all())


UNKNOWN_SHOP = "waiting: the shop has not installed the app (kept for a grace period)"


def hold_for_install(session: Session, shop_domain: str) -> int:
    """Say why a never-installed shop's webhooks wait; they are mapped once it installs."""
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.shop_domain == shop_domain,
            WebhookDelivery.state == InboxState.RECEIVED,
            WebhookDelivery.state_reason.is_(None),
        )
        .values(state_reason=UNKNOWN_SHOP)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def hold_unknown_shops(session: Session) -> int:
    """Say why the webhooks of shops that never installed wait (`hold_for_install`, for
    every such shop in one statement); the drains only visit installed shops."""
    known = select(Shop.domain).where(Shop.domain == WebhookDelivery.shop_domain).exists()
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.state == InboxState.RECEIVED,
            WebhookDelivery.state_reason.is_(None),
            ~known,
        )
        .values(state_reason=UNKNOWN_SHOP)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def purge_unknown_shops(session: Session, received_before: datetime) -> int:
    """Delete the webhooks of shops that never installed, once their grace period is over."""
    known = select(Shop.domain).where(Shop.domain == WebhookDelivery.shop_domain).exists()
    result = session.execute(
        delete(WebhookDelivery).where(
            WebhookDelivery.state == InboxState.RECEIVED,  # they never leave it: the index
            ~known,
            WebhookDelivery.received_at < received_before,
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


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
