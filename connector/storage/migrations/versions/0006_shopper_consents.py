"""marketing consent per shopper and channel, newest first

Revision ID: 0006_shopper_consents
Revises: 0005_shopper_emails
"""

import sqlalchemy as sa
from alembic import op

from connector.storage.models import UTCDateTime

revision = "0006_shopper_consents"
down_revision = "0005_shopper_emails"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shopper_consents",
        sa.Column("shop_domain", sa.String(length=255), nullable=False),
        sa.Column("person_key", sa.String(length=255), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("as_of", UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("shop_domain", "person_key", "channel"),
    )


def downgrade() -> None:
    op.drop_table("shopper_consents")
