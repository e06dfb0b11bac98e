"""support console: staff accounts, replay audit log, look-up indexes

Revision ID: 0002_console
Revises: 0001
Create Date: 2026-11-28 11:00:00
"""

import sqlalchemy as sa
from alembic import op

from connector.storage.models import UTCDateTime

revision = "0002_console"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "replay_audits",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("event_ids", sa.JSON(), nullable=False),
        sa.Column("shops", sa.JSON(), nullable=False),
        sa.Column("considered", sa.Integer(), nullable=False),
        sa.Column("requeued", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("missing", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("replay_audits", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_replay_audits_created_at"), ["created_at"], unique=False
        )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_natural_key", ["natural_key"], unique=False)
        batch_op.create_index(
            "ix_events_shop_occurred", ["shop_domain", "occurred_at"], unique=False
        )
    op.create_index("ix_events_checkout_token", "events", [sa.text(_checkout_token())])


def _checkout_token() -> str:
    """A frozen copy of connector.storage.models.checkout_token, as it was at this revision."""
    if op.get_bind().dialect.name == "postgresql":
        return "(properties ->> 'checkout_token')"
    return "json_extract(properties, '$.checkout_token')"


def downgrade() -> None:
    op.drop_index("ix_events_checkout_token", table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_shop_occurred")
        batch_op.drop_index("ix_events_natural_key")
    with op.batch_alter_table("replay_audits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_replay_audits_created_at"))
    op.drop_table("replay_audits")
    op.drop_table("staff_users")
