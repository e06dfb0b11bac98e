"""The few queries the connector needs, written once for SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Connection, Insert, Table, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from connector.statuses import EventStatus, InboxState, ShopStatus
from connector.storage.models import Event, Shop, WebhookDelivery
from connector.timeutil import utcnow


def insert_ignore(session: Session, table: Table, values: dict[str, Any]) -> bool:
    """INSERT unless a row with the same unique key exists; True when a row was inserted."""
    statement = _insert_ignore_statement(table, session.get_bind().dialect.name)
    return session.execute(statement, values).first() is not None


@cache
def _insert_ignore_statement(table: Table, dialect: str) -> Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    first_key = next(iter(table.primary_key.columns))
    return insert(table).on_conflict_do_nothing().returning(first_key)


@cache
def _inbox_insert(dialect: str) -> Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = WebhookDelivery.__table__
    return insert(table).on_conflict_do_nothing().returning(table.c.id)  # type: ignore[attr-defined]


def record_delivery(connection: Connection, values: dict[str, Any]) -> bool:
    """Store one verified webhook in the inbox; False when (shop, topic, event id) is known.

    The webhook's hot path: one prebuilt statement on a plain connection, no ORM session.
    """
    statement = _inbox_insert(connection.dialect.name)
    return connection.execute(statement, values).first() is not None


def received_deliveries(
    session: Session, shop_domain: str, limit: int
) -> Sequence[WebhookDelivery]:
    """The oldest unprocessed inbox rows of one shop, locked for this transaction."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.shop_domain == shop_domain)
        .where(WebhookDelivery.state == InboxState.RECEIVED)
        .order_by(WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return session.scalars(query).all()


def _due(now: datetime) -> Any:
    return and_(
        Event.status == EventStatus.PENDING,
        or_(Event.next_attempt_at.is_(None), Event.next_attempt_at <= now),
        or_(Event.lease_until.is_(None), Event.lease_until < now),
    )


def claim_due_events(
    session: Session, shop_domain: str, limit: int, lease_seconds: int
) -> list[Event]:
    """Lease up to `limit` due events of a shop to this caller, atomically.

    A conditional UPDATE takes the lease, so two workers never claim the same event; an
    expired lease (a worker killed mid-send) makes the event due again.
    """
    now = utcnow()
    candidates = session.scalars(
        select(Event.id)
        .where(Event.shop_domain == shop_domain, _due(now))
        .order_by(Event.occurred_at)
        .limit(limit)
    ).all()
    if not candidates:
        return []
    owner = str(uuid.uuid4())
    session.execute(
        update(Event)
        .where(Event.id.in_(candidates), _due(now))
        .values(lease_owner=owner, lease_until=now + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return list(
        session.scalars(
            select(Event).where(Event.lease_owner == owner).order_by(Event.occurred_at)
        ).all()
    )


def shops_with_received_deliveries(session: Session) -> list[str]:
    query = select(WebhookDelivery.shop_domain).where(WebhookDelivery.state == InboxState.RECEIVED)
    return list(session.scalars(query.distinct()).all())


def shops_with_due_events(session: Session) -> list[str]:
    query = (
        select(Event.shop_domain)
        .join(Shop, Shop.domain == Event.shop_domain)
        .where(Shop.status == ShopStatus.ACTIVE, _due(utcnow()))
    )
    return list(session.scalars(query.distinct()).all())
