"""order lifecycle: each recorded order's total, and whether it was cancelled or refunded

Revision ID: 0004_order_lifecycle
Revises: 0002_console, 0003_install (merges the two heads)
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_order_lifecycle"
down_revision = ("0002_console", "0003_install")
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customer_orders") as batch:
        batch.add_column(sa.Column("total", sa.Float(), nullable=True))
        batch.add_column(
            sa.Column("cancelled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("refunded", sa.Float(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("customer_orders") as batch:
        batch.drop_column("refunded")
        batch.drop_column("cancelled")
        batch.drop_column("total")
