"""Cheap reads for /readyz and /metrics: reachability, migrations, counts of stored work.

Each count runs on an index (`ix_event_due` leads with the status, `ix_delivery_state_shop`
with the state), so a scrape costs a few index scans, not a table scan.
"""

from __future__ import annotations

from functools import lru_cache

from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text

from connector.statuses import EventStatus, InboxState
from connector.storage.db import Engine, Session, alembic_config
from connector.storage.events import _due
from connector.storage.models import Event, WebhookDelivery
from connector.timeutil import utcnow


@lru_cache(maxsize=1)
def head_revisions() -> frozenset[str]:
    """The migrations' head(s), read once per process from the scripts on disk."""
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return frozenset(scripts.get_heads())


def database_revisions(engine: Engine) -> frozenset[str]:
    """`SELECT 1`, then the revision(s) the database is at (empty: never migrated).

    Raises SQLAlchemy's errors when the database cannot be reached.
    """
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        # Read directly: alembic's MigrationContext logs two lines each time (every probe).
        if not inspect(conn).has_table("alembic_version"):
            return frozenset()
        return frozenset(conn.scalars(text("SELECT version_num FROM alembic_version")))


def events_by_status(session: Session) -> dict[str, int]:
    """How many events are in each status (every status named, 0 when none)."""
    counts = dict.fromkeys((str(status) for status in EventStatus), 0)
    rows = session.execute(select(Event.status, func.count()).group_by(Event.status))
    counts.update({status: int(count) for status, count in rows})
    return counts


def received_webhooks(session: Session) -> int:
    """Webhooks stored and not mapped yet: the mapping stage's backlog."""
    query = select(func.count()).where(WebhookDelivery.state == InboxState.RECEIVED)
    return int(session.scalar(query) or 0)


def due_events(session: Session) -> int:
    """Events due for delivery now: the delivery stage's backlog."""
    return int(session.scalar(select(func.count()).where(_due(utcnow()))) or 0)
