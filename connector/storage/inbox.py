"""The inbox: every verified webhook, stored before Shopify gets its 200."""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Insert,
    Select,
    Table,
    any_,
    delete,
    event,
    func,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.pool import PoolProxiedConnection

from connector.statuses import InboxState
from connector.storage.db import Engine, Session, StorageUnavailableError, storage_errors
from connector.storage.driver import bind_values, insert_ignore_sql
from connector.storage.models import Shop, WebhookDelivery
from connector.timeutil import utcnow


@cache
def _inbox_insert(dialect: str) -> Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table = WebhookDelivery.__table__
    assert isinstance(table, Table)
    return insert(table).on_conflict_do_nothing().returning(table.c.id)


class InboxWriter:
    """Stores verified webhooks, one INSERT … ON CONFLICT DO NOTHING RETURNING each.

    The webhook's hot path skips SQLAlchemy's statement execution, which cost about as much
    CPU as the rest of the door (docs/benchmarks.md). On PostgreSQL each thread also keeps
    one connection of its own, outside the pool and in autocommit: a webhook is then one
    round trip, with no BEGIN or COMMIT, no checkout, reset or autocommit switch (60 µs of
    client CPU a webhook, a tenth of the door's). A kept connection that fails is closed and
    the INSERT tried once more on a new one, so after a database restart the next webhook is
    stored rather than refused. A thread's connection is closed when the thread ends or the
    engine is disposed. SQLite borrows a pooled connection and commits.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._keeps_connections = engine.dialect.name == "postgresql"
        self._local = threading.local()
        self._kept: weakref.WeakSet[_KeptConnection] = weakref.WeakSet()
        self._lock = threading.Lock()
        if self._keeps_connections:
            event.listen(engine, "engine_disposed", self._close_kept)

    def record(self, values: Mapping[str, Any]) -> bool:
        """Store one verified webhook; False when (shop, topic, event id) is already known.

        Raises StorageUnavailableError when the database refuses it.
        """
        row = {column: values.get(column) for column in _INBOX_COLUMNS}
        row["state"] = row["state"] or InboxState.RECEIVED
        row["received_at"] = row["received_at"] or utcnow()
        row = bind_values(_INBOX, self.engine.dialect, row)
        if not self._keeps_connections:
            return self._insert_pooled(row)
        kept = self._kept_connection()
        if kept is not None:
            try:
                return self._insert(kept, row)
            except self.engine.dialect.loaded_dbapi.Error:
                self._discard(kept)  # perhaps closed by a restart: try a new connection
        fresh = self._connect()
        try:
            created = self._insert(fresh, row)
        except self.engine.dialect.loaded_dbapi.Error as exc:
            self._discard(fresh)
            raise StorageUnavailableError(type(exc).__name__) from exc
        self._keep(fresh)
        return created

    def _insert(self, connection: PoolProxiedConnection, row: dict[str, Any]) -> bool:
        cursor = connection.cursor()
        cursor.execute(insert_ignore_sql(_INBOX, self.engine.dialect.name, _INBOX_COLUMNS), row)
        created = cursor.fetchone() is not None
        cursor.close()
        return created

    def _insert_pooled(self, row: dict[str, Any]) -> bool:
        connection = self._checkout()
        try:
            created = self._insert(connection, row)
            connection.commit()
        except self.engine.dialect.loaded_dbapi.Error as exc:
            connection.invalidate()  # the connection may be dead: the pool opens a new one
            raise StorageUnavailableError(type(exc).__name__) from exc
        finally:
            connection.close()  # back to the pool (a no-op once invalidated)
        return created

    def _checkout(self) -> PoolProxiedConnection:
        try:
            with storage_errors():  # the pool's own errors
                return self.engine.raw_connection()
        except self.engine.dialect.loaded_dbapi.Error as exc:  # connecting: unwrapped
            raise StorageUnavailableError(type(exc).__name__) from exc

    def _connect(self) -> PoolProxiedConnection:
        """A new connection of this thread's own: taken from the pool, then detached."""
        connection = self._checkout()
        driver = connection.driver_connection
        assert driver is not None  # a checked-out connection has one
        connection.detach()  # closing it now closes it; the pool forgets it
        driver.autocommit = True
        return connection

    def _kept_connection(self) -> PoolProxiedConnection | None:
        kept: _KeptConnection | None = getattr(self._local, "kept", None)
        if kept is None:
            return None
        if kept.pid != os.getpid():  # inherited through a fork: the parent's session
            _LEFT_BY_PARENT.append(kept)  # never closed here, so never terminated
            self._local.kept = None
            return None
        if kept.connection.dbapi_connection is None:  # closed when the engine was disposed
            self._local.kept = None
            return None
        return kept.connection

    def _keep(self, connection: PoolProxiedConnection) -> None:
        kept = _KeptConnection(connection)
        self._local.kept = kept
        with self._lock:
            self._kept.add(kept)

    def _discard(self, connection: PoolProxiedConnection) -> None:
        self._local.kept = None
        with suppress(Exception):  # already broken: closing is all that is left
            connection.close()

    def _close_kept(self, _engine: Engine) -> None:
        """The engine was disposed (tests, shutdown): close every thread's connection."""
        with self._lock:
            kept = list(self._kept)
        for each in kept:
            each.close()


class _KeptConnection:
    """A thread's own connection, closed when nothing holds it any more: when its thread
    ends, Python drops the thread's `threading.local` values, and with them this."""

    def __init__(self, connection: PoolProxiedConnection) -> None:
        self.connection = connection
        self.pid = os.getpid()

    def close(self) -> None:
        if self.pid == os.getpid():  # a parent's connection is the parent's to close
            with suppress(Exception):
                self.connection.close()

    def __del__(self) -> None:
        self.close()


_LEFT_BY_PARENT: list[_KeptConnection] = []


_INBOX = cast(Table, WebhookDelivery.__table__)
_INBOX_COLUMNS = (
    "shop_domain",
    "topic",
    "shopify_event_id",
    "webhook_id",
    "api_version",
    "triggered_at",
    "received_at",
    "body",
    "state",
    "resource_key",
)


def received_deliveries(
    session: Session, shops: Sequence[str], per_shop: int, only: Sequence[int] | None = None
) -> Sequence[WebhookDelivery]:
    """The oldest `per_shop` unprocessed inbox rows of each of these shops (of the ids
    `only` names, if given), in arrival order, locked (SKIP LOCKED) for this transaction.

    Each shop takes at most its own share, so a shop with a backlog cannot crowd out the
    others. On PostgreSQL one statement of fixed text does it for any number of shops (a
    LATERAL subquery per shop named in an array), so it is planned and prepared once; on
    SQLite a union of per-shop subqueries gives the ids, then a second statement the rows.
    """
    if not shops:
        return []
    if session.get_bind().dialect.name == "postgresql":
        values: dict[str, Any] = {"shops": list(shops), "per_shop": per_shop}
        if only is not None:
            values["only"] = list(only)
        oldest = _OLDEST_RECEIVED if only is None else _OLDEST_RECEIVED_OF_ONLY
        found = oldest.bindparams(**values, state=InboxState.RECEIVED).subquery()
        # ARRAY(...) gathers the ids once, then the rows are found by primary key. As a
        # plain IN, a planner without statistics (a new table, or a burst after a quiet
        # spell) ran the per-shop subqueries again for every received row: 0.6 s for one
        # batch of a shop with 2,000 webhooks waiting.
        wanted = WebhookDelivery.id == any_(func.array(select(found.c.id).scalar_subquery()))
    else:
        ids = list(session.scalars(_oldest_received_union(shops, per_shop, only)))
        if not ids:
            return []
        wanted = WebhookDelivery.id.in_(ids)
    return session.scalars(
        select(WebhookDelivery)
        .where(wanted, WebhookDelivery.state == InboxState.RECEIVED)
        .order_by(WebhookDelivery.id)
        .with_for_update(skip_locked=True)
    ).all()


_OLDEST_RECEIVED_SQL = """
    SELECT oldest.id FROM unnest(CAST(:shops AS text[])) AS shop(domain)
    CROSS JOIN LATERAL (
        SELECT id FROM webhook_deliveries
        WHERE shop_domain = shop.domain AND state = :state {only}
        ORDER BY id LIMIT :per_shop
    ) AS oldest
"""
_OLDEST_RECEIVED = text(_OLDEST_RECEIVED_SQL.format(only="")).columns(id=BigInteger)
_OLDEST_RECEIVED_OF_ONLY = text(
    _OLDEST_RECEIVED_SQL.format(only="AND id = ANY(CAST(:only AS bigint[]))")
).columns(id=BigInteger)


def _oldest_received_union(
    shops: Sequence[str], per_shop: int, only: Sequence[int] | None
) -> Select[int]:
    per_shop_ids = []
    for shop in shops:
        query = _oldest_received_ids(shop, per_shop)
        if only is not None:
            query = query.where(WebhookDelivery.id.in_(list(only)))
        per_shop_ids.append(select(query.subquery()))
    return per_shop_ids[0] if len(per_shop_ids) == 1 else union_all(*per_shop_ids)  # type: ignore[return-value]


def received_delivery_ids(session: Session, shop_domain: str, limit: int) -> list[int]:
    """The ids of the oldest unprocessed inbox rows of one shop."""
    return list(session.scalars(_oldest_received_ids(shop_domain, limit)).all())


def _oldest_received_ids(shop_domain: str, limit: int) -> Select[int]:
    return (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.shop_domain == shop_domain)
        .where(WebhookDelivery.state == InboxState.RECEIVED)
        .order_by(WebhookDelivery.id)
        .limit(limit)
    )


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
