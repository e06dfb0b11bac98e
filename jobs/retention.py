"""Retention: delete what support and replay no longer need, a chunk at a time, so storage
does not grow without bound. What goes and what stays: connector/storage/retention.py.

When:
- A delivered event or closed checkout goes, with its delivery attempts, once it was
  stored, happened and was delivered more than EVENT_RETENTION_DAYS ago; a processed or
  ignored webhook once it was received and processed more than WEBHOOK_RETENTION_DAYS ago.
  0 keeps them forever.
- One order_placed per order, ever: a webhook of an order whose event was deleted must not
  place it again. Events are kept at least a day longer than NEW_ORDER_WINDOW_HOURS (the
  setting is raised here when it is shorter), so such a webhook is for an order created
  before the new-order window and is recorded, not placed (jobs/processing.py). The
  ledger's mark on the order (`event_pruned_at`) covers the rest: a window made longer
  after a prune, and `connector history backfill`.
- Never under MIN_RETENTION_DAYS (settings refuse it): the console's and the merchant's
  feed-health figures count the last 7 days, and their rows stay.

How: chunks of `chunk_rows` events (or webhooks), each its own short transaction, so a
large prune holds no lock for long and ingest (SQLite: one writer) waits at most one chunk.
Rows another transaction holds are skipped, for the next run. A run stops at its time
budget; the next one goes on from the oldest rows left.

After a run that caught up and deleted (or unlinked) at least VACUUM_AFTER_ROWS events, or
deleted that many webhooks, PostgreSQL vacuums those tables at once: until then the
console's problem lists and counts, read from indexes alone, read the table row by row
(a deployment's first prune of a year's backlog; an hourly run deletes far fewer).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from connector.config import MIN_RETENTION_DAYS, Settings
from connector.storage import retention as queries
from connector.storage.db import Sessions, transaction
from connector.timeutil import utcnow

log = logging.getLogger(__name__)

CHUNK_ROWS = 5000
VACUUM_AFTER_ROWS = 10_000
TIME_BUDGET_SECONDS = 240.0  # the worker's run; its job timeout is 300 s


@dataclass(frozen=True)
class RetentionPolicy:
    """How old things may get: days (0 keeps them forever) and rows per transaction."""

    event_days: int
    webhook_days: int
    chunk_rows: int = CHUNK_ROWS

    @classmethod
    def from_settings(cls, settings: Settings, chunk_rows: int = CHUNK_ROWS) -> RetentionPolicy:
        return cls(
            event_days=event_days(settings.event_retention_days, settings.new_order_window_hours),
            webhook_days=settings.webhook_retention_days,
            chunk_rows=chunk_rows,
        )


def event_days(configured: int, new_order_window_hours: int) -> int:
    """The event retention in force: EVENT_RETENTION_DAYS, but at least a day more than the
    new-order window (see the module's docstring) and MIN_RETENTION_DAYS; 0 stays 0."""
    if configured == 0:
        return 0
    return max(configured, MIN_RETENTION_DAYS, math.ceil(new_order_window_hours / 24) + 1)


@dataclass
class PruneReport:
    """What a run deleted (or, dry, would delete), per table."""

    dry_run: bool
    event_cutoff: datetime | None  # None: events kept forever
    webhook_cutoff: datetime | None
    events: int = 0
    attempts: int = 0
    webhooks: int = 0
    orders_marked: int = 0  # customer_orders rows marked: their order_placed was deleted
    events_unlinked: int = 0  # kept events whose source webhook was deleted
    chunks: int = 0
    seconds: float = 0.0
    finished: bool = True  # False: the time budget ran out first
    vacuumed: tuple[str, ...] = ()  # tables vacuumed after the run (PostgreSQL)
    vacuum_seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.events + self.attempts + self.webhooks

    def summary(self) -> dict[str, object]:
        values = asdict(self)
        for key in ("event_cutoff", "webhook_cutoff"):
            values[key] = values[key].isoformat() if values[key] else None
        values["seconds"] = round(self.seconds, 3)
        values["vacuumed"] = list(self.vacuumed)
        values["vacuum_seconds"] = round(self.vacuum_seconds, 3)
        return values


def prune(
    sessions: Sessions,
    policy: RetentionPolicy,
    *,
    dry_run: bool = False,
    time_budget: float | None = None,
    now: datetime | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PruneReport:
    """Delete (with `dry_run`, only count) the events, attempts and webhooks past the
    policy's retention, events first; stop once `time_budget` seconds are spent."""
    now = now or utcnow()
    started = clock()
    deadline = started + time_budget if time_budget is not None else math.inf
    report = PruneReport(
        dry_run=dry_run,
        event_cutoff=now - timedelta(days=policy.event_days) if policy.event_days else None,
        webhook_cutoff=now - timedelta(days=policy.webhook_days) if policy.webhook_days else None,
    )
    finished = True
    if report.event_cutoff is not None:
        finished = _prune_events(
            sessions, policy, report, report.event_cutoff, now, deadline, clock
        )
    if finished and report.webhook_cutoff is not None:
        finished = _prune_webhooks(sessions, policy, report, report.webhook_cutoff, deadline, clock)
    report.finished = finished
    report.seconds = clock() - started
    if finished and not dry_run:
        _vacuum(sessions, report, clock)
    log.info(
        "retention%s: %d events, %d attempts, %d webhooks%s in %.1f s",
        " (dry run)" if dry_run else "",
        report.events,
        report.attempts,
        report.webhooks,
        "" if finished else " (time budget spent: the next run goes on)",
        report.seconds,
    )
    return report


def _vacuum(sessions: Sessions, report: PruneReport, clock: Callable[[], float]) -> None:
    """Vacuum the tables this run changed a lot (see the module's docstring)."""
    tables = []
    if report.events + report.events_unlinked >= VACUUM_AFTER_ROWS:
        tables.append("events")
    if report.webhooks >= VACUUM_AFTER_ROWS:
        tables.append("webhook_deliveries")
    started = clock()
    if tables and queries.vacuum(sessions, tables):
        report.vacuumed, report.vacuum_seconds = tuple(tables), clock() - started
        log.info("retention: vacuumed %s in %.1f s", ", ".join(tables), report.vacuum_seconds)


def _prune_events(
    sessions: Sessions,
    policy: RetentionPolicy,
    report: PruneReport,
    cutoff: datetime,
    now: datetime,
    deadline: float,
    clock: Callable[[], float],
) -> bool:
    for status in queries.PRUNABLE_EVENT_STATUSES:
        after = None
        while True:
            if clock() > deadline:
                return False
            with transaction(sessions) as session:
                rows = queries.prunable_events(
                    session,
                    status,
                    cutoff,
                    after=after,
                    limit=policy.chunk_rows,
                    lock=not report.dry_run,
                )
                if not rows:
                    break
                if report.dry_run:
                    events = len(rows)
                    attempts = queries.count_attempts(session, [row.id for row in rows])
                    marked = queries.count_orders_to_mark(session, rows)
                else:
                    events, attempts, marked = queries.delete_events(session, rows, now)
            report.events += events
            report.attempts += attempts
            report.orders_marked += marked
            report.chunks += 1
            after = rows[-1]
            if len(rows) < policy.chunk_rows:
                break
    return True


def _prune_webhooks(
    sessions: Sessions,
    policy: RetentionPolicy,
    report: PruneReport,
    cutoff: datetime,
    deadline: float,
    clock: Callable[[], float],
) -> bool:
    with sessions() as session:
        last = queries.last_webhook_id_before(session, cutoff)
    after = 0
    while last is not None:
        if clock() > deadline:
            return False
        with transaction(sessions) as session:
            ids = queries.prunable_webhooks(
                session,
                cutoff,
                after_id=after,
                up_to_id=last,
                limit=policy.chunk_rows,
                lock=not report.dry_run,
            )
            if not ids:
                break
            if report.dry_run:
                deleted, unlinked = len(ids), 0
            else:
                deleted, unlinked = queries.delete_webhooks(session, ids)
        report.webhooks += deleted
        report.events_unlinked += unlinked
        report.chunks += 1
        after = ids[-1]
        if len(ids) < policy.chunk_rows:
            break
    return True
