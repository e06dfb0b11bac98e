"""merchant install: Shopify token columns on shops, privacy tables

Revision ID: 0003_install
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from connector.storage.models import UTCDateTime

revision = "0003_install"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC = UTCDateTime(timezone=True)
SHOP_COLUMNS = (
    sa.Column("shopify_access_token_encrypted", sa.Text(), nullable=True),
    sa.Column("shopify_access_expires_at", UTC, nullable=True),
    sa.Column("shopify_refresh_token_encrypted", sa.Text(), nullable=True),
    sa.Column("shopify_refresh_expires_at", UTC, nullable=True),
    sa.Column("shopify_scopes", sa.String(length=512), nullable=True),
    sa.Column("installed_at", UTC, nullable=True),
    sa.Column("uninstalled_at", UTC, nullable=True),
    sa.Column("history_cursor", sa.Text(), nullable=True),
    sa.Column("history_imported_at", UTC, nullable=True),
)


def upgrade() -> None:
    with op.batch_alter_table("shops", schema=None) as batch_op:
        for column in SHOP_COLUMNS:
            batch_op.add_column(column.copy())
    op.create_table(
        "privacy_exports",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("shop_domain", sa.String(length=255), nullable=False),
        sa.Column("data_request_id", sa.String(length=64), nullable=True),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_privacy_exports_shop_domain", "privacy_exports", ["shop_domain"])
    op.create_table(
        "redacted_customers",
        sa.Column("shop_domain", sa.String(length=255), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("redacted_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("shop_domain", "key_hash"),
    )


def downgrade() -> None:
    op.drop_table("redacted_customers")
    op.drop_index("ix_privacy_exports_shop_domain", table_name="privacy_exports")
    op.drop_table("privacy_exports")
    with op.batch_alter_table("shops", schema=None) as batch_op:
        for column in reversed(SHOP_COLUMNS):
            batch_op.drop_column(column.name)
