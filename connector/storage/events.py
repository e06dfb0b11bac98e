"""Canonical events: storing what the mapping produced, leasing due ones, recording delivery."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    any_,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.sql.dml import Update
from sqlalchemy.sql.elements import TextClause

from connector.events import CanonicalEvent, EventName
from connector.statuses import DeliveryOutcome, EventStatus, ShopStatus
from connector.storage.db import Session, one_of
from connector.storage.models import DeliveryAttempt, Event, Shop, UTCDateTime, checkout_token
from connector.timeutil import utcnow

_ABSENT_EVENTS = "events known not to exist yet"
_ADDED_EVENTS = "events added by this unit of work"  # id -> Event: find_event without a scan


def prefetch_events(session: Session, event_ids: set[str]) -> None:
    """Load these events in one query; remember which ones do not exist yet.

    Later `find_event` calls are then answered from the session without a query.
    """
    found = (
        session.scalars(select(Event).where(one_of(session, Event.id, event_ids))).all()
        if event_ids
        else []
    )
    session.info[_ABSENT_EVENTS] = event_ids - {event.id for event in found}


def find_event(session: Session, event_id: str) -> Event | None:
    """The stored event, or one this unit of work added and has not flushed yet."""
    pending = session.info.get(_ADDED_EVENTS, {}).get(event_id)
    if pending is not None and pending in session:
        return pending  # type: ignore[no-any-return]
    if event_id in session.info.get(_ABSENT_EVENTS, ()):
        return None
    return session.get(Event, event_id)  # loaded by prefetch_events: no query


def purchased_checkouts(session: Session, shop_domain: str, tokens: set[str]) -> dict[str, str]:
    """Checkout token -> the order placed from it ("#1042"), for the tokens that have one.

    One query on the ix_events_checkout_token index, for a whole batch of checkouts.
    """
    if not tokens:
        return {}
    token = checkout_token()
    rows = session.execute(
        select(token, Event.reference, Event.natural_key).where(
            token.in_(sorted(tokens)),
            Event.shop_domain == shop_domain,
            Event.name == EventName.ORDER_PLACED,
        )
    )
    return {str(found): str(reference or order_id) for found, reference, order_id in rows}


def add_validated(
    session: Session,
    event: CanonicalEvent,
    violations: list[str],
    source_delivery_id: int | None = None,
) -> Event:
    """Add a new event to be sent (pending), or quarantined with the spec's `violations`."""
    stored = add_event(session, event, EventStatus.PENDING, None, source_delivery_id)
    set_validation_result(stored, violations)
    return stored


def close_checkout(stored: Event, reason: str) -> None:
    """A checkout_started that must never be sent (its purchase is known): closed, visibly."""
    stored.status = EventStatus.CLOSED
    stored.reason = reason
    stored.next_attempt_at = None


def withdraw_first_order(session: Session, event_id: str) -> bool:
    """Turn a stored order_placed's is_first_order to False unless Customer.io may have it.

    Only an event never tried (pending or quarantined, no attempt, no lease) is changed:
    one tried may have landed, and Customer.io keeps the first version of an event id. The
    check and the change are one conditional UPDATE, so a worker leasing the event at the
    same time either sends the corrected event or makes this return False.
    """
    stored = find_event(session, event_id)
    if stored is None or stored.name != EventName.ORDER_PLACED:
        return False  # the ledger's first came from the history import: it stays
    corrected = {**stored.properties, "is_first_order": False}
    if stored in session.new:
        stored.properties = corrected
        return True
    now = utcnow()
    result = session.execute(
        update(Event)
        .where(
            Event.id == event_id,
            Event.status.in_([EventStatus.PENDING, EventStatus.QUARANTINED]),
            Event.attempts == 0,
            or_(Event.lease_until.is_(None), Event.lease_until < now),
        )
        .values(properties=corrected, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.expire(stored, ["properties", "updated_at"])
    return bool(result.rowcount)  # type: ignore[attr-defined]


def get_event(session: Session, event_id: str) -> Event | None:
    return session.get(Event, event_id)


def events_by_id(session: Session, event_ids: Iterable[str]) -> dict[str, Event]:
    """The stored events with these ids, in one query."""
    event_ids = list(event_ids)
    if not event_ids:
        return {}
    loaded = session.scalars(select(Event).where(one_of(session, Event.id, event_ids))).all()
    return {event.id: event for event in loaded}


def add_event(
    session: Session,
    event: CanonicalEvent,
    status: EventStatus,
    reason: str | None,
    source_delivery_id: int | None = None,
) -> Event:
    """Add a new event row for a mapped event (written at the next flush)."""
    stored = Event(
        id=event.id,
        shop_domain=event.shop_domain,
        name=event.name,
        natural_key=event.natural_key,
        status=status,
        reason=reason,
        source_delivery_id=source_delivery_id,
        attempts=0,
    )
    apply_mapping(stored, event)
    session.add(stored)
    session.info.setdefault(_ADDED_EVENTS, {})[stored.id] = stored
    return stored


def apply_mapping(stored: Event, event: CanonicalEvent) -> None:
    """Copy what the mapping produced onto the stored row (who, when, what)."""
    stored.person = asdict(event.person)
    stored.person_id = event.person.id
    stored.customer_id = event.person.customer_id
    stored.email = event.person.email
    stored.occurred_at = event.occurred_at
    stored.properties = event.properties
    # What support staff search by: the order's name for everything about an order
    # (placed, cancelled, refunded, fulfilled), the token for a checkout.
    stored.reference = event.properties.get("order_name") or event.natural_key


def set_validation_result(stored: Event, violations: list[str]) -> None:
    """Quarantine an event that breaks the track spec; queue one that keeps it."""
    if violations:
        stored.status = EventStatus.QUARANTINED
        stored.reason = "breaks the track spec"
        stored.violations = violations
    else:
        stored.status = EventStatus.PENDING
        stored.reason = None
        stored.violations = None
        stored.next_attempt_at = None
        stored.queued_at = utcnow()


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(
        Event.status == EventStatus.PENDING,
        or_(Event.next_attempt_at.is_(None), Event.next_attempt_at <= now),
        or_(Event.lease_until.is_(None), Event.lease_until < now),
    )


def claim_due_events(
    session: Session, shop_domain: str, limit: int, lease_seconds: int, max_attempts: int
) -> list[Event]:
    """Lease up to `limit` due events of one shop (see `claim_due_events_of_shops`)."""
    return claim_due_events_of_shops(
        session,
        per_shop=limit,
        lease_seconds=lease_seconds,
        max_attempts=max_attempts,
        shop_domain=shop_domain,
    )


# Which shops have pending events, one index seek per shop (a "loose index scan" on
# ix_events_pending), from the first shop after :after, at most :most of them. The literal
# 'pending' lets both databases use the partial index.
_PENDING_SHOPS = text(
    """
    WITH RECURSIVE pending(shop, n) AS (
        SELECT (SELECT min(shop_domain) FROM events
                WHERE status = 'pending' AND shop_domain > :after), 1
        UNION ALL
        SELECT (SELECT min(later.shop_domain) FROM events AS later
                WHERE later.status = 'pending' AND later.shop_domain > pending.shop), n + 1
        FROM pending WHERE pending.shop IS NOT NULL AND n < :most
    )
    SELECT shop FROM pending WHERE shop IS NOT NULL
    """
)
_IS_PENDING = text("events.status = 'pending'")


@cache
def _candidates(shops: int, dialect: str) -> TextClause:
    """Each of `shops` shops' oldest due events (:shop0, :shop1, ...), at most :per_shop
    each, read from the pending-events index. Written out once per number of shops: built
    with SQLAlchemy's expressions, a claim over 64 shops spent 50 ms constructing it.

    SQLite is told which index to use: without statistics it walked the status index, every
    pending event of every shop for each shop (342 ms for 64 shops and 2,000 pending
    events; 3 ms on ix_events_pending). PostgreSQL's planner has statistics.
    """
    table = "events INDEXED BY ix_events_pending" if dialect == "sqlite" else "events"
    one = (
        f"SELECT * FROM (SELECT id, lease_owner FROM {table}"
        " WHERE shop_domain = :shop{n} AND events.status = 'pending'"
        " AND (next_attempt_at IS NULL OR next_attempt_at <= :now)"
        " AND (lease_until IS NULL OR lease_until < :now)"
        " ORDER BY occurred_at LIMIT :per_shop) AS shop{n}_due"
    )
    statement = " UNION ALL ".join(one.format(n=n) for n in range(shops))
    return text(statement).bindparams(bindparam("now", type_=UTCDateTime()))


# PostgreSQL: the same for any number of shops (:shops, an array), in one text.
_DUE_OF_SHOPS = text(
    """
    SELECT due.id, due.lease_owner FROM unnest(CAST(:shops AS text[])) AS shop(domain)
    CROSS JOIN LATERAL (
        SELECT id, lease_owner FROM events
        WHERE shop_domain = shop.domain AND events.status = 'pending'
        AND (next_attempt_at IS NULL OR next_attempt_at <= :now)
        AND (lease_until IS NULL OR lease_until < :now)
        ORDER BY occurred_at LIMIT :per_shop
    ) AS due
    """
).bindparams(bindparam("now", type_=UTCDateTime()))


def shops_with_pending_events(session: Session, after: str, most: int) -> list[str]:
    """Up to `most` shops with pending events, in name order starting after `after` and
    wrapping around (so a claim that cannot take every shop takes the next ones next)."""
    found = [str(shop) for shop in session.scalars(_PENDING_SHOPS, {"after": after, "most": most})]
    if after and len(found) < most:
        wrapped = session.scalars(_PENDING_SHOPS, {"after": "", "most": most - len(found)})
        found += [str(shop) for shop in wrapped if shop <= after]
    return found


def claim_due_events_of_shops(
    session: Session,
    *,
    per_shop: int,
    lease_seconds: int,
    max_attempts: int,
    shop_domain: str | None = None,
    skip_shops: Iterable[str] = (),
    after: str = "",
    max_shops: int = 64,
) -> list[Event]:
    """Lease due events to this caller, atomically: the oldest `per_shop` of each of up to
    `max_shops` active, configured shops (the next ones after `after`, or just
    `shop_domain`), ordered by shop.

    Fair by construction: a shop with a large backlog gives at most `per_shop` events to a
    claim, so it cannot push another shop's new order out. Each shop's events come from
    an index of pending events only, so a claim reads what it takes, not the backlog.
    The lease is taken by a conditional UPDATE of rows locked with SKIP LOCKED (PostgreSQL;
    SQLite has one writer at a time), so two workers never claim the same event; an expired
    lease (a worker killed mid-send) makes the event due again. Such an abandoned send
    counts as an attempt, so an event that stops the worker every time it is sent fails
    after `max_attempts` instead of being retried forever.
    """
    now = utcnow()
    if shop_domain is not None:
        shops = [shop_domain]
    else:  # inactive shops may hold pending events: look a little further than needed
        shops = shops_with_pending_events(session, after, max_shops * 4)
    deliverable = set(
        session.scalars(
            select(Shop.domain).where(
                one_of(session, Shop.domain, shops),
                Shop.status == ShopStatus.ACTIVE,
                Shop.cio_site_id.is_not(None),
            )
        )
    )
    skipped = set(skip_shops)
    shops = [shop for shop in shops if shop in deliverable and shop not in skipped][:max_shops]
    if not shops:
        return []
    dialect = session.get_bind().dialect.name
    parameters: dict[str, Any]
    if dialect == "postgresql":
        statement, parameters = _DUE_OF_SHOPS, {"shops": shops}
    else:
        statement = _candidates(len(shops), dialect)
        parameters = {f"shop{n}": shop for n, shop in enumerate(shops)}
    parameters.update(now=now, per_shop=per_shop)
    candidates = session.execute(statement, parameters).all()
    if not candidates:
        return []
    abandoned = [event_id for event_id, owner in candidates if owner is not None]
    if abandoned:
        _count_abandoned(session, abandoned, now, max_attempts)
    owner = str(uuid.uuid4())
    ids = [event_id for event_id, _ in candidates]
    # Lease those still due. The status is tested through a function so that the planner
    # finds the rows by id (without statistics, SQLite would rather walk the status index:
    # the backlog).
    still_due = and_(
        func.coalesce(Event.status, "") == EventStatus.PENDING,
        or_(Event.next_attempt_at.is_(None), Event.next_attempt_at <= now),
        or_(Event.lease_until.is_(None), Event.lease_until < now),
    )
    lease = {"lease_owner": owner, "lease_until": now + timedelta(seconds=lease_seconds)}
    if dialect == "postgresql":
        # One statement: lock the candidates another claim has not locked, lease them and
        # read them back (three round trips before; the claim was most of a round's wait).
        # ARRAY(...) locks once; as `id IN (...)` a planner without statistics ran the
        # locking subquery again for every pending event (0.4 s a claim at 2,000 pending).
        unlocked = (
            select(Event.id)
            .where(one_of(session, Event.id, ids))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        leased = session.scalars(
            update(Event)
            .where(Event.id == any_(func.array(unlocked)), still_due)
            .values(**lease)
            .returning(Event)
            # populate_existing: events loaded above (abandoned ones) take the new lease
            .execution_options(synchronize_session=False, populate_existing=True)
        ).all()
        return sorted(leased, key=lambda event: (event.shop_domain, event.occurred_at))
    session.execute(  # SQLite: one writer at a time, so nothing else holds these rows
        update(Event)
        .where(one_of(session, Event.id, ids), still_due)
        .values(**lease)
        .execution_options(synchronize_session=False)
    )
    return list(
        session.scalars(
            select(Event)
            .where(one_of(session, Event.id, ids), Event.lease_owner == owner)
            .order_by(Event.shop_domain, Event.occurred_at)
        ).all()
    )


def release_unsent(session: Session, event_ids: list[str], due_at: datetime) -> None:
    """Give back leased events that were not sent (their workspace must wait): no attempt
    is counted, and they are due again at `due_at`."""
    if event_ids:
        session.execute(
            update(Event)
            .where(one_of(session, Event.id, event_ids), Event.status == EventStatus.PENDING)
            .values(lease_owner=None, lease_until=None, next_attempt_at=due_at)
            .execution_options(synchronize_session=False)
        )


def _count_abandoned(
    session: Session, event_ids: list[str], now: datetime, max_attempts: int
) -> None:
    """Record each abandoned send as an attempt; fail the events that used up their tries."""
    reason = "the worker stopped while sending it (its lease ran out)"
    for event in session.scalars(select(Event).where(one_of(session, Event.id, event_ids))).all():
        if event.lease_owner is None or event.status != EventStatus.PENDING:
            continue
        event.attempts += 1
        event.lease_owner = None
        event.lease_until = None
        if event.attempts >= max_attempts:
            event.status = EventStatus.FAILED
            event.reason = f"gave up after {event.attempts} attempts: {reason}"
        add_attempt(
            session,
            event.id,
            attempted_at=now,
            outcome=DeliveryOutcome.ABANDONED,
            status_code=None,
            latency_ms=0.0,
            reason=reason,
            excerpt=None,
            batch_size=len(event_ids),
        )
    session.flush()


def has_due_events(session: Session) -> bool:
    """Whether any active, configured shop has an event due for delivery."""
    query = (
        select(Event.id)
        .join(Shop, Shop.domain == Event.shop_domain)
        .where(Shop.status == ShopStatus.ACTIVE, Shop.cio_site_id.is_not(None), _due(utcnow()))
        .limit(1)
    )
    return session.scalars(query).first() is not None


def expire_held_checkouts(session: Session, hold_hours: int) -> int:
    """Anonymous checkouts never identified within the hold become unidentifiable."""
    cutoff = utcnow() - timedelta(hours=hold_hours)
    result = session.execute(
        update(Event)
        .where(Event.status == EventStatus.WAITING_FOR_IDENTITY, Event.occurred_at < cutoff)
        .values(
            status=EventStatus.UNIDENTIFIABLE,
            reason=f"checkout never identified within {hold_hours} h: not sent",
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def record_delivered(session: Session, delivered: list[dict[str, Any]]) -> None:
    """Mark leased events delivered, and record one attempt each: two executemany
    statements for a whole round, no ORM objects (the hot path of a drain).

    Per event: `event_id`, `sent_identify` and `sent_track` (what was sent, shown by the
    console), and its request's `attempted_at`, `status_code`, `latency_ms`, `excerpt` and
    `batch_size` (the columns of `delivery_attempts`).
    """
    if not delivered:
        return
    marks = [
        {
            "event_id": row["event_id"],
            "delivered_at": row["attempted_at"],
            "sent_identify": row["sent_identify"],
            "sent_track": row["sent_track"],
        }
        for row in delivered
    ]
    session.execute(_mark_delivered(), marks)
    attempt_columns = ("event_id", "attempted_at", "status_code", "latency_ms", "excerpt")
    attempts = [
        {
            **{column: row[column] for column in attempt_columns},
            "batch_size": row["batch_size"],
            "outcome": DeliveryOutcome.DELIVERED,
            "reason": None,
        }
        for row in delivered
    ]
    session.execute(insert(_table(DeliveryAttempt)), attempts)


@cache
def _mark_delivered() -> Update:
    events = _table(Event)
    return (
        update(events)
        .where(events.c.id == bindparam("event_id"))
        .values(
            status=EventStatus.DELIVERED,
            delivered_at=bindparam("delivered_at"),
            reason=None,
            attempts=events.c.attempts + 1,
            lease_owner=None,
            lease_until=None,
            sent_identify=bindparam("sent_identify"),
            sent_track=bindparam("sent_track"),
        )
    )


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def add_attempt(
    session: Session,
    event_id: str,
    *,
    attempted_at: datetime,
    outcome: DeliveryOutcome,
    status_code: int | None,
    latency_ms: float,
    reason: str | None,
    excerpt: str | None,
    batch_size: int,
) -> None:
    """Record one delivery attempt of an event (the console's timeline shows each)."""
    session.add(
        DeliveryAttempt(
            event_id=event_id,
            attempted_at=attempted_at,
            outcome=outcome,
            status_code=status_code,
            latency_ms=latency_ms,
            reason=reason,
            excerpt=excerpt,
            batch_size=batch_size,
        )
    )
