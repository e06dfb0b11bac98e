"""staff session version: logout, a new password and disabling end every session

Revision ID: 0008_staff_session_version
Revises: 0007_cached_products
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_staff_session_version"
down_revision = "0007_cached_products"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_version", sa.Integer(), nullable=False, server_default="1")
        )


def downgrade() -> None:
    with op.batch_alter_table("staff_users", schema=None) as batch_op:
        batch_op.drop_column("session_version")
