"""product details from the Admin API, cached per shop

Revision ID: 0007_cached_products
Revises: 0006_shopper_consents
"""

import sqlalchemy as sa
from alembic import op

from connector.storage.models import UTCDateTime

revision = "0007_cached_products"
down_revision = "0006_shopper_consents"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cached_products",
        sa.Column("shop_domain", sa.String(length=255), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("fetched_at", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shop_domain", "product_id"),
    )


def downgrade() -> None:
    op.drop_table("cached_products")
