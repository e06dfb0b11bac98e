"""one person per shopper: which customer id an email belongs to, per shop

Revision ID: 0005_shopper_emails
Revises: 0004_order_lifecycle
"""

import sqlalchemy as sa
from alembic import op

from connector.storage.models import UTCDateTime

revision = "0005_shopper_emails"
down_revision = "0004_order_lifecycle"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shopper_emails",
        sa.Column("shop_domain", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("linked_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shop_domain", "email"),
    )


def downgrade() -> None:
    op.drop_table("shopper_emails")
