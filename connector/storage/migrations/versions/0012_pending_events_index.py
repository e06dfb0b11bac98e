"""an index of pending events per shop, for delivery's claims across shops

Revision ID: 0012_pending_events_index
Revises: 0011_retention
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_pending_events_index"
down_revision = "0011_retention"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index(
        "ix_events_pending",
        "events",
        ["shop_domain", "occurred_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_events_pending", table_name="events")
