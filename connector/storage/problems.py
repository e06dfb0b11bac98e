"""The console's problem lists: failed, quarantined, unidentifiable and waiting events, each
with its exact total, its groups (by reason, violation, shop or why it waits) and the latest
events.

With a million events stored these lists hold tens of thousands, so totals and groups are
read from indexes alone (ix_event_due, ix_events_failed_reason, ix_events_quarantined), and
only the rows shown are read from the table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from connector.statuses import EventStatus, ShopStatus
from connector.storage.db import Session
from connector.storage.models import Event, Shop

LIST_KINDS = ("failed", "quarantined", "unidentifiable", "waiting")
WAITING_SHOP_STATES = (ShopStatus.CREDENTIALS_REJECTED, ShopStatus.UNINSTALLED)
ROW_LIMIT = 200
GROUP_LIMIT = 50
VIOLATION_LISTS = 1000  # distinct lists of violations read per page, the commonest first
_STATUS = {
    "failed": EventStatus.FAILED,
    "quarantined": EventStatus.QUARANTINED,
    "unidentifiable": EventStatus.UNIDENTIFIABLE,
}


@dataclass(frozen=True)
class EventList:
    kind: str
    total: int
    groups: list[tuple[str, int]]
    events: list[Event]
    # The events the groups were counted over, when not all of them: quarantined events
    # with more than VIOLATION_LISTS distinct lists of violations (the rarest are left out).
    grouped: int | None = None


def event_list(
    session: Session, kind: str, shop: str | None = None, reason: str | None = None
) -> EventList:
    """One of LIST_KINDS: the total, the counts per group, and the latest matching events."""
    parts = _list_parts(kind)
    if shop:
        parts = [part & (Event.shop_domain == shop) for part in parts]
    if reason and kind == "failed":
        parts = [part & (Event.reason == reason) for part in parts]
    total = sum(_count(session, part) for part in parts)
    grouped = None
    if kind == "quarantined":
        groups, grouped = _violation_groups(session, parts[0])
    else:
        groups = _groups(session, kind, parts)
    latest = _latest(session, parts)
    return EventList(kind, total, groups, latest, None if grouped == total else grouped)


def list_counts(session: Session) -> dict[str, int]:
    """How many events each problem list holds."""
    return {kind: sum(_count(session, part) for part in _list_parts(kind)) for kind in LIST_KINDS}


def _list_parts(kind: str) -> list[ColumnElement[bool]]:
    """The list's events as disjoint conditions, each one an index can answer alone (an OR
    across statuses makes PostgreSQL read the whole index)."""
    if kind != "waiting":
        return [Event.status == _STATUS[kind]]
    stuck_shops = select(Shop.domain).where(Shop.status.in_(WAITING_SHOP_STATES))
    return [
        Event.status == EventStatus.WAITING_FOR_IDENTITY,
        (Event.status == EventStatus.PENDING) & Event.shop_domain.in_(stuck_shops),
    ]


def _count(session: Session, where: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(Event).where(where)) or 0


def _latest(session: Session, parts: list[ColumnElement[bool]]) -> list[Event]:
    """The ROW_LIMIT latest events over all parts: each part's latest on its own, merged."""
    newest = Event.occurred_at.desc()
    if len(parts) == 1:
        return list(
            session.scalars(select(Event).where(parts[0]).order_by(newest).limit(ROW_LIMIT))
        )
    latest = select(Event.id, Event.occurred_at).order_by(newest).limit(ROW_LIMIT)
    found = [row for part in parts for row in session.execute(latest.where(part))]
    found.sort(key=lambda row: row[1], reverse=True)
    ids = [event_id for event_id, _ in found[:ROW_LIMIT]]
    if not ids:
        return []
    return list(session.scalars(select(Event).where(Event.id.in_(ids)).order_by(newest)))


def _groups(session: Session, kind: str, parts: list[ColumnElement[bool]]) -> list[tuple[str, int]]:
    where = parts[0]
    if kind == "waiting":
        return _waiting_groups(session, parts)
    key = Event.reason if kind == "failed" else Event.shop_domain
    query = select(key, func.count()).where(where).group_by(key)
    rows = session.execute(query.order_by(func.count().desc(), key).limit(GROUP_LIMIT))
    return _ranked((label or "(no reason)", int(count)) for label, count in rows)


def _violation_groups(
    session: Session, where: ColumnElement[bool]
) -> tuple[list[tuple[str, int]], int]:
    """Events per violation, exact over the events counted, and how many those are: the
    events are counted per distinct list of violations (on the index), then one event's
    list is read for each of the VIOLATION_LISTS commonest lists (all of them, usually: a
    mapping or spec problem gives the same few lists to every event it breaks)."""
    key, count = Event.violations_key, func.count()
    keyed = session.execute(
        select(key, count, func.min(Event.id))
        .where(where, key.is_not(None))
        .group_by(key)
        .order_by(count.desc(), key)
        .limit(VIOLATION_LISTS)
    ).all()
    found = session.execute(
        select(Event.id, Event.violations).where(Event.id.in_([first for _, _, first in keyed]))
    )
    examples: dict[str, list[str] | None] = {event_id: listed for event_id, listed in found}
    counts: Counter[str] = Counter()
    for _, events, first in keyed:
        for violation in examples.get(first) or ():
            counts[violation] += events
    grouped = sum(events for _, events, _ in keyed)
    if _count(session, where & key.is_(None)):  # written without the ORM: read one by one
        rows = session.scalars(select(Event.violations).where(where, key.is_(None)))
        for violations in rows:
            counts.update(violations or ())
            grouped += 1
    return _ranked(counts.items()), grouped


def _waiting_groups(session: Session, parts: list[ColumnElement[bool]]) -> list[tuple[str, int]]:
    """Per shop and why its events wait; the parts' groups are disjoint, so the top groups
    of all are among each part's top ones."""
    counted: list[tuple[str, int]] = []
    for part in parts:
        query = (
            select(Event.shop_domain, Shop.status, Event.status, func.count())
            .outerjoin(Shop, Shop.domain == Event.shop_domain)
            .where(part)
            .group_by(Event.shop_domain, Shop.status, Event.status)
            .order_by(func.count().desc())
            .limit(GROUP_LIMIT)
        )
        for shop, shop_status, status, count in session.execute(query):
            if status == EventStatus.WAITING_FOR_IDENTITY:
                why = "anonymous checkout, waiting for an email"
            else:
                why = f"shop {str(shop_status).replace('_', ' ')}"
            counted.append((f"{shop}: {why}", int(count)))
    return _ranked(counted)


def _ranked(groups: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """The GROUP_LIMIT largest groups, largest first, ties by label (on any database)."""
    return sorted(groups, key=lambda group: (-group[1], group[0]))[:GROUP_LIMIT]
