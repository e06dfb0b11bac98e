"""retention: indexes for events of a status by time (prunable ones, the console's problem
lists) and the events a webhook fed; the ledger remembers orders whose order_placed was pruned

Revision ID: 0011_retention
Revises: 0010_reconciliation

The two indexes are built in the migration's transaction (not CONCURRENTLY), so on a large
PostgreSQL events table writes to it wait while they are built (seconds per million rows).
"""

import sqlalchemy as sa
from alembic import op

from connector.storage.models import UTCDateTime

revision = "0011_retention"
down_revision = "0010_reconciliation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_status_occurred", ["status", "occurred_at"], unique=False)
        batch_op.create_index("ix_events_source_delivery_id", ["source_delivery_id"], unique=False)
    with op.batch_alter_table("customer_orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_pruned_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("customer_orders", schema=None) as batch_op:
        batch_op.drop_column("event_pruned_at")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_source_delivery_id")
        batch_op.drop_index("ix_events_status_occurred")
