"""Replay with a preview and an audit trail: the one code path the console and the CLI share.

A replay is described by a ReplayRequest (chosen event ids, or every event of some statuses
for a shop and time window). `preview_replay` says what it would do without changing
anything; `run_replay` maps each failed or quarantined event again from its stored webhook,
queues it under its own id, writes one ReplayAudit row in the same transaction, and then
nudges the workers. Delivered and pending events are left alone, so replaying twice never
sends twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connector.runtime import Runtime
from connector.spec import TrackSpec
from connector.statuses import EventStatus
from connector.storage.db import Session, transaction
from connector.storage.models import Event
from connector.storage.replay import (
    count_failed_webhooks,
    events_by_id,
    find_replayable,
    record_replay,
    return_failed_webhooks,
)
from jobs import queue
from jobs.processing import remap_event

REPLAYABLE = (EventStatus.FAILED, EventStatus.QUARANTINED)


@dataclass(frozen=True)
class ReplayRequest:
    """Which events to replay: `event_ids`, or all events in `statuses` matching the filters."""

    event_ids: tuple[str, ...] = ()
    shop: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    statuses: tuple[str, ...] = REPLAYABLE

    @property
    def by_filter(self) -> bool:
        return not self.event_ids

    def describe(self) -> dict[str, Any]:
        """The filters as stored in the audit log (ids are stored separately)."""
        if not self.by_filter:
            return {"event_ids": len(self.event_ids)}
        return {
            "shop": self.shop,
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "statuses": list(self.statuses),
        }


@dataclass(frozen=True)
class ReplayPreview:
    """What a replay would do: how many events go out again, from which shops, what is skipped."""

    replayable: int
    by_shop: dict[str, int]
    skipped: dict[str, int]  # status -> count (delivered, pending, ...): left alone
    missing: list[str] = field(default_factory=list)
    webhooks: int = 0  # webhooks set aside, mapped again by a replay by filter

    @property
    def total(self) -> int:
        return self.replayable + sum(self.skipped.values())


@dataclass(frozen=True)
class ReplayOutcome:
    """What became of one event: its status before and after, and why."""

    event_id: str
    shop_domain: str
    before: str
    after: str
    detail: str


@dataclass(frozen=True)
class ReplayResult:
    audit_id: int | None
    outcomes: list[ReplayOutcome]
    missing: list[str]

    def _replayed(self) -> list[ReplayOutcome]:
        return [o for o in self.outcomes if o.before in REPLAYABLE]

    @property
    def requeued(self) -> int:
        return sum(1 for o in self._replayed() if o.after == EventStatus.PENDING)

    @property
    def quarantined(self) -> int:
        return sum(1 for o in self._replayed() if o.after == EventStatus.QUARANTINED)

    @property
    def skipped(self) -> int:
        return len(self.outcomes) - len(self._replayed())


def select_events(session: Session, request: ReplayRequest) -> tuple[list[Event], list[str]]:
    """The events a request names, and the requested ids that do not exist."""
    if request.by_filter:
        events = find_replayable(
            session,
            shop=request.shop,
            since=request.since,
            until=request.until,
            statuses=request.statuses,
        )
        return events, []
    ids = list(dict.fromkeys(request.event_ids))
    events = events_by_id(session, ids)
    found = {event.id for event in events}
    return events, [event_id for event_id in ids if event_id not in found]


def preview_replay(session: Session, request: ReplayRequest) -> ReplayPreview:
    """Say what `run_replay` would do now, changing nothing."""
    events, missing = select_events(session, request)
    replayable = [event for event in events if event.status in REPLAYABLE]
    return ReplayPreview(
        replayable=len(replayable),
        by_shop=dict(sorted(Counter(event.shop_domain for event in replayable).items())),
        skipped=dict(Counter(event.status for event in events if event.status not in REPLAYABLE)),
        missing=missing,
        webhooks=count_failed_webhooks(session, request.shop) if request.by_filter else 0,
    )


def run_replay(rt: Runtime, request: ReplayRequest, actor: str) -> ReplayResult:
    """Re-queue the requested events under their own ids, audit it, then nudge the workers.

    A replay by filter also puts webhooks that could not be mapped back in the inbox.
    """
    with transaction(rt.sessions) as session:
        events, missing = select_events(session, request)
        outcomes = replay_events(session, rt.spec, events)
        reprocess = return_failed_webhooks(session, request.shop) if request.by_filter else []
        audit_id = _audit(session, actor, request, ReplayResult(None, outcomes, missing))
    if rt.settings.redis_url:
        if any(outcome.after == EventStatus.PENDING for outcome in outcomes):
            queue.kick(rt.redis, rt.settings.queue_name, queue.DELIVER)
        if reprocess:
            queue.kick(rt.redis, rt.settings.queue_name, queue.PROCESS)
    return ReplayResult(audit_id, outcomes, missing)


def replay_events(
    session: Session, spec: TrackSpec, events: Sequence[Event]
) -> list[ReplayOutcome]:
    """Re-map each replayable event from its stored webhook, then queue it under the same id."""
    outcomes = []
    for event in events:
        before = event.status
        if before not in REPLAYABLE:
            detail = f"not replayable ({before})"
            outcomes.append(ReplayOutcome(event.id, event.shop_domain, before, before, detail))
            continue
        violations = remap_event(session, spec, event)
        if violations:
            event.status, event.violations = EventStatus.QUARANTINED, violations
            event.reason = "breaks the track spec"
            detail = "still breaks the spec: " + "; ".join(violations)
        else:
            event.status, event.violations, event.reason = EventStatus.PENDING, None, "replayed"
            event.next_attempt_at = None
            event.lease_owner = event.lease_until = None
            detail = "queued again with the same id"
        outcomes.append(ReplayOutcome(event.id, event.shop_domain, before, event.status, detail))
    return outcomes


def _audit(session: Session, actor: str, request: ReplayRequest, result: ReplayResult) -> int:
    return record_replay(
        session,
        actor=actor,
        filters=request.describe(),
        event_ids=[o.event_id for o in result.outcomes if o.before in REPLAYABLE],
        shops=sorted({o.shop_domain for o in result.outcomes}),
        considered=len(result.outcomes),
        requeued=result.requeued,
        quarantined=result.quarantined,
        skipped=result.skipped,
        missing=len(result.missing),
    )
