"""Database tables. The database is the source of truth; Redis only carries nudges."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, validates
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from connector import lengths
from connector.statuses import InboxState, ShopStatus
from connector.timeutil import utcnow


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite autoincrements only INTEGER PRIMARY KEY columns.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Shop(Base):
    __tablename__ = "shops"

    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    status: Mapped[str] = mapped_column(String(32), default=ShopStatus.ACTIVE)
    status_reason: Mapped[str | None] = mapped_column(Text)
    cio_site_id: Mapped[str | None] = mapped_column(String(255))
    cio_api_key_encrypted: Mapped[str | None] = mapped_column(Text)
    cio_region: Mapped[str] = mapped_column(String(8), default="us")
    order_topic: Mapped[str] = mapped_column(String(32), default="orders/create")
    include_test_orders: Mapped[bool] = mapped_column(Boolean, default=False)
    # Install (connector/install/): expiring offline token pair, both encrypted at rest.
    shopify_access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    shopify_access_expires_at: Mapped[datetime | None]
    shopify_refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    shopify_refresh_expires_at: Mapped[datetime | None]
    shopify_scopes: Mapped[str | None] = mapped_column(String(512))
    installed_at: Mapped[datetime | None]
    uninstalled_at: Mapped[datetime | None]
    history_cursor: Mapped[str | None] = mapped_column(Text)  # resumes an interrupted import
    history_imported_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """The inbox: every verified webhook, stored before Shopify gets its 200."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("shop_domain", "topic", "shopify_event_id", name="uq_delivery_event"),
        Index("ix_delivery_state_shop", "state", "shop_domain"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    shop_domain: Mapped[str] = mapped_column(String(lengths.SHOP_DOMAIN))
    topic: Mapped[str] = mapped_column(String(lengths.TOPIC))
    shopify_event_id: Mapped[str] = mapped_column(String(lengths.SHOPIFY_EVENT_ID))
    webhook_id: Mapped[str | None] = mapped_column(String(lengths.WEBHOOK_ID))
    api_version: Mapped[str | None] = mapped_column(String(lengths.API_VERSION))
    triggered_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=InboxState.RECEIVED)
    state_reason: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None]
    resource_key: Mapped[str | None] = mapped_column(String(lengths.RESOURCE_KEY), index=True)
    event_id: Mapped[str | None] = mapped_column(String(26), index=True)


class Event(Base):
    """One canonical event; its id is stable, so there is one row per order or checkout."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("shop_domain", "name", "natural_key", name="uq_event_key"),
        Index("ix_event_due", "status", "shop_domain", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    shop_domain: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(64))
    natural_key: Mapped[str] = mapped_column(String(128))
    reference: Mapped[str | None] = mapped_column(String(128), index=True)  # "#1042" or token
    person_id: Mapped[str | None] = mapped_column(String(255), index=True)
    customer_id: Mapped[str | None] = mapped_column(String(64), index=True)
    email: Mapped[str | None] = mapped_column(String(255), index=True)
    person: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(Text)
    violations: Mapped[list[str] | None] = mapped_column(JSON)
    # Kept equal to violations_digest(violations) on every ORM write (below): the quarantined
    # list groups and counts these short keys on an index instead of reading each event's
    # JSON. Only read together with status = 'quarantined'.
    violations_key: Mapped[str | None] = mapped_column(String(32))
    source_delivery_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_deliveries.id"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(36))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    queued_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    sent_identify: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sent_track: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    @validates("violations")
    def _key_violations(self, _name: str, value: list[str] | None) -> list[str] | None:
        self.violations_key = violations_digest(value)
        return value


def violations_digest(violations: list[str] | None) -> str | None:
    """A digest that is the same for equal lists of violations (None for none)."""
    if not violations:
        return None
    text = json.dumps(violations, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str] = mapped_column(String(32))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None]
    reason: Mapped[str | None] = mapped_column(Text)
    excerpt: Mapped[str | None] = mapped_column(Text)
    batch_size: Mapped[int] = mapped_column(Integer, default=1)


class CustomerLedger(Base):
    """Per (shop, person): which order was the first. Decided once, never changed."""

    __tablename__ = "customer_ledger"

    shop_domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    person_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    first_order_id: Mapped[str] = mapped_column(String(64))
    first_order_at: Mapped[datetime]
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustomerOrder(Base):
    """Every order the connector has placed, per person: its own order count and dates, and
    what the shopper kept of it (cancellations and refunds), for lifetime spend."""

    __tablename__ = "customer_orders"
    __table_args__ = (Index("ix_customer_orders_person", "shop_domain", "person_key"),)

    shop_domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_key: Mapped[str] = mapped_column(String(255))
    ordered_at: Mapped[datetime]
    total: Mapped[float | None] = mapped_column(Float)  # the order's revenue; None: not known
    cancelled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    refunded: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    # Set when retention deleted the order's delivered order_placed (jobs/retention.py): the
    # order was placed, and neither a late webhook nor a backfill may place it again.
    event_pruned_at: Mapped[datetime | None]


class ShopperEmail(Base):
    """Which customer an email belongs to in a shop, learned from payloads carrying both.

    A guest order or checkout with this email then goes to that customer (one person per
    shopper), and what the ledger held under the email moves to the customer id.
    """

    __tablename__ = "shopper_emails"

    shop_domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    email: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShopperConsent(Base):
    """A shopper's newest marketing consent per channel ("email", "sms"), and as of when.

    Orders and checkouts are processed out of order and replayed; keeping the time of each
    consent lets the newest one win, so an old order can never flip it back.
    """

    __tablename__ = "shopper_consents"

    shop_domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    person_key: Mapped[str] = mapped_column(String(255), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    state: Mapped[str] = mapped_column(String(32))
    as_of: Mapped[datetime]


class CachedProduct(Base):
    """Product details from the Admin API, per shop, until products/update or the TTL.

    Kept in the database beside the events it enriches: the worker reads and refreshes it
    in the same unit of work as the batch, and products/update drops a row in the same
    inbox order as the orders around it. `details` is {} for a product Shopify no longer has.
    """

    __tablename__ = "cached_products"

    shop_domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    product_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffUser(Base):
    """A support person who may use the console; the password is stored as a Werkzeug hash."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Copied into the session cookie at login; a session whose copy differs is over.
    # Logout, a new password and disabling the account move it on.
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class ReplayAudit(Base):
    """One replay, from the console or the CLI: who, when, what, and what came of it."""

    __tablename__ = "replay_audits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(255))  # "staff:<email>" or "cli:<os user>"
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)  # shop, since, until, statuses
    event_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    shops: Mapped[list[str]] = mapped_column(JSON, default=list)
    considered: Mapped[int] = mapped_column(Integer, default=0)
    requeued: Mapped[int] = mapped_column(Integer, default=0)
    quarantined: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    missing: Mapped[int] = mapped_column(Integer, default=0)


class _CheckoutToken(FunctionElement[str]):
    """`events.properties ->> 'checkout_token'`, spelled for each dialect (see below)."""

    type = String()
    inherit_cache = True

    def __init__(self) -> None:
        super().__init__(Event.properties)


@compiles(_CheckoutToken)
def _checkout_token_sqlite(element: _CheckoutToken, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_extract({compiler.process(element.clauses, **kw)}, '$.checkout_token')"


@compiles(_CheckoutToken, "postgresql")
def _checkout_token_postgresql(element: _CheckoutToken, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.clauses, **kw)} ->> 'checkout_token')"


def checkout_token() -> ColumnElement[str]:
    """An order's checkout token: the expression of ix_events_checkout_token.

    Queries must spell it exactly like the index for the database to use the index, so the
    index below and the console's search both take it from here.
    """
    return _CheckoutToken()


# Console look-ups: an order id or checkout token without its shop, and per-shop time windows.
Index("ix_events_natural_key", Event.natural_key)
Index("ix_events_shop_occurred", Event.shop_domain, Event.occurred_at)
Index("ix_events_checkout_token", checkout_token())
# Delivery's claims: each shop's oldest pending events, and which shops have any, found
# without reading a shop's whole backlog (the index holds only pending events).
_PENDING = text("status = 'pending'")
Index(
    "ix_events_pending",
    Event.shop_domain,
    Event.occurred_at,
    postgresql_where=_PENDING,
    sqlite_where=_PENDING,
)
# Events of a status by time: retention's prunable events (connector/storage/retention.py)
# and the console's problem lists, newest first. And the events a webhook fed: what
# retention looks up, and what the foreign key check reads when a webhook is deleted
# (without it PostgreSQL scans the events table once per deleted webhook).
Index("ix_events_status_occurred", Event.status, Event.occurred_at)
Index("ix_events_source_delivery_id", Event.source_delivery_id)
# The console overview's shops' health: every shop's events of the last days by status,
# counted on a range of this index alone (connector/storage/health.py), not on the rows.
Index("ix_events_occurred_shop_status", Event.occurred_at, Event.shop_domain, Event.status)
# The console's problem lists, grouped and counted from these small partial indexes alone
# (index-only scans), not from the rows: failed events by reason (and, for one reason,
# newest first), quarantined ones by their list of violations (one event per list is read
# for the text).
_FAILED = text("status = 'failed'")
Index(
    "ix_events_failed_reason",
    Event.reason,
    Event.occurred_at,
    Event.shop_domain,
    postgresql_where=_FAILED,
    sqlite_where=_FAILED,
)
_QUARANTINED = text("status = 'quarantined'")
Index(
    "ix_events_quarantined",
    Event.violations_key,
    Event.shop_domain,
    Event.id,
    postgresql_where=_QUARANTINED,
    sqlite_where=_QUARANTINED,
)


class PrivacyExport(Base):
    """What the connector held about one customer, for a customers/data_request (merchant)."""

    __tablename__ = "privacy_exports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    shop_domain: Mapped[str] = mapped_column(String(255), index=True)
    data_request_id: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[str | None] = mapped_column(String(64))
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RedactedCustomer(Base):
    """A customers/redact tombstone: hashed keys, so later webhooks for them are erased too."""

    __tablename__ = "redacted_customers"

    shop_domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    redacted_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShopReconciliation(Base):
    """Per shop: how far reconciliation against the Admin API got, and what it found.

    `watermark`: orders updated at or after it are asked for on the next run. The counts
    of the last run and the totals are what the support console shows.
    """

    __tablename__ = "shop_reconciliations"

    shop_domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    watermark: Mapped[datetime | None]
    last_started_at: Mapped[datetime | None]
    last_finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_orders_seen: Mapped[int] = mapped_column(Integer, default=0)
    last_orders_recovered: Mapped[int] = mapped_column(Integer, default=0)
    last_subscriptions_recreated: Mapped[int] = mapped_column(Integer, default=0)
    orders_recovered_total: Mapped[int] = mapped_column(Integer, default=0)
    subscriptions_recreated_total: Mapped[int] = mapped_column(Integer, default=0)
