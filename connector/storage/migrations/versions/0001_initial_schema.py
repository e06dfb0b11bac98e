"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 10:16:23.368790
"""

import sqlalchemy as sa
from alembic import op

from connector.storage.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "customer_ledger",
        sa.Column("shop_domain", sa.String(length=255), nullable=False),
        sa.Column("person_key", sa.String(length=255), nullable=False),
        sa.Column("first_order_id", sa.String(length=64), nullable=False),
        sa.Column("first_order_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shop_domain", "person_key"),
    )
    op.create_table(
        "customer_orders",
        sa.Column("shop_domain", sa.String(length=255), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("person_key", sa.String(length=255), nullable=False),
        sa.Column("ordered_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shop_domain", "order_id"),
    )
    with op.batch_alter_table("customer_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_customer_orders_person", ["shop_domain", "person_key"], unique=False
        )

    op.create_table(
        "shops",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("cio_site_id", sa.String(length=255), nullable=True),
        sa.Column("cio_api_key_encrypted", sa.Text(), nullable=True),
        sa.Column("cio_region", sa.String(length=8), nullable=False),
        sa.Column("order_topic", sa.String(length=32), nullable=False),
        sa.Column("include_test_orders", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("shop_domain", sa.String(length=255), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("shopify_event_id", sa.String(length=128), nullable=False),
        sa.Column("webhook_id", sa.String(length=128), nullable=True),
        sa.Column("api_version", sa.String(length=16), nullable=True),
        sa.Column("triggered_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column("processed_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("resource_key", sa.String(length=128), nullable=True),
        sa.Column("event_id", sa.String(length=26), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_domain", "topic", "shopify_event_id", name="uq_delivery_event"),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_state_shop", ["state", "shop_domain"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_event_id"), ["event_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_deliveries_resource_key"), ["resource_key"], unique=False
        )

    op.create_table(
        "events",
        sa.Column("id", sa.String(length=26), nullable=False),
        sa.Column("shop_domain", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("natural_key", sa.String(length=128), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("person_id", sa.String(length=255), nullable=True),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("email", sa.String(length=255), nullable=True),
        sa.Column("person", sa.JSON(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("violations", sa.JSON(), nullable=True),
        sa.Column(
            "source_delivery_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=36), nullable=True),
        sa.Column("lease_until", UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("queued_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("sent_identify", sa.JSON(), nullable=True),
        sa.Column("sent_track", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_delivery_id"],
            ["webhook_deliveries.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shop_domain", "name", "natural_key", name="uq_event_key"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_event_due", ["status", "shop_domain", "next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_events_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_reference"), ["reference"], unique=False)

    op.create_table(
        "delivery_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=26), nullable=False),
        sa.Column("attempted_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("excerpt", sa.Text(), nullable=True),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_attempts_event_id"), ["event_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_attempts_event_id"))

    op.drop_table("delivery_attempts")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_reference"))
        batch_op.drop_index(batch_op.f("ix_events_person_id"))
        batch_op.drop_index(batch_op.f("ix_events_email"))
        batch_op.drop_index(batch_op.f("ix_events_customer_id"))
        batch_op.drop_index("ix_event_due")

    op.drop_table("events")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_resource_key"))
        batch_op.drop_index(batch_op.f("ix_webhook_deliveries_event_id"))
        batch_op.drop_index("ix_delivery_state_shop")

    op.drop_table("webhook_deliveries")
    op.drop_table("shops")
    with op.batch_alter_table("customer_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_orders_person")

    op.drop_table("customer_orders")
    op.drop_table("customer_ledger")
