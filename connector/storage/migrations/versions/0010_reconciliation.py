"""reconciliation of missed webhooks: per-shop watermark and results

Revision ID: 0010_reconciliation
Revises: 0007_cached_products
"""

import sqlalchemy as sa
from alembic import op

from connector.storage.models import UTCDateTime

revision = "0010_reconciliation"
down_revision = "0009_keyed_tombstones"
branch_labels = None
depends_on = None

UTC = UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "shop_reconciliations",
        sa.Column("shop_domain", sa.String(length=255), nullable=False),
        sa.Column("watermark", UTC, nullable=True),
        sa.Column("last_started_at", UTC, nullable=True),
        sa.Column("last_finished_at", UTC, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_orders_seen", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_orders_recovered", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_subscriptions_recreated", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("orders_recovered_total", sa.Integer(), nullable=False, server_default="0"),
        sa.Column(
            "subscriptions_recreated_total", sa.Integer(), nullable=False, server_default="0"
        ),
        sa.PrimaryKeyConstraint("shop_domain"),
    )


def downgrade() -> None:
    op.drop_table("shop_reconciliations")
