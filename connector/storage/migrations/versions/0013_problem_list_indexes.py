"""the console's problem lists read indexes, not rows: failed events by reason, quarantined
events by a digest of their violations (a new column, filled here for the stored ones)

Revision ID: 0013_problem_list_indexes
Revises: 0012_pending_events_index

Both indexes are partial (failed, quarantined events only) and built in the migration's
transaction, so on a large PostgreSQL events table writes wait while they are built (about
a second per million events). The backfill reads and rewrites only the quarantined events:
the digest is read with that status only, and every later write of violations sets it.
"""

import sqlalchemy as sa
from alembic import op

from connector.storage.models import violations_digest

revision = "0013_problem_list_indexes"
down_revision = "0012_pending_events_index"
branch_labels = None
depends_on = None

FAILED = sa.text("status = 'failed'")
QUARANTINED = sa.text("status = 'quarantined'")
BATCH = 1000

events = sa.table(
    "events",
    sa.column("id", sa.String),
    sa.column("status", sa.String),
    sa.column("violations", sa.JSON),
    sa.column("violations_key", sa.String),
)


def upgrade() -> None:
    op.add_column("events", sa.Column("violations_key", sa.String(length=32), nullable=True))
    _backfill()
    op.create_index(
        "ix_events_failed_reason",
        "events",
        ["reason", "occurred_at", "shop_domain"],
        postgresql_where=FAILED,
        sqlite_where=FAILED,
    )
    op.create_index(
        "ix_events_quarantined",
        "events",
        ["violations_key", "shop_domain", "id"],
        postgresql_where=QUARANTINED,
        sqlite_where=QUARANTINED,
    )


def _backfill() -> None:
    conn = op.get_bind()
    found = conn.execute(
        sa.select(events.c.id, events.c.violations).where(events.c.status == "quarantined")
    ).all()
    keyed = [
        {"event_id": event_id, "key": violations_digest(violations)}
        for event_id, violations in found
        if violations
    ]
    update = (
        sa.update(events)
        .where(events.c.id == sa.bindparam("event_id"))
        .values(violations_key=sa.bindparam("key"))
    )
    for start in range(0, len(keyed), BATCH):
        conn.execute(update, keyed[start : start + BATCH])


def downgrade() -> None:
    op.drop_index("ix_events_quarantined", table_name="events")
    op.drop_index("ix_events_failed_reason", table_name="events")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("violations_key")
