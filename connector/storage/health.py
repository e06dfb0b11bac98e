"""Delivery health for the console overview: volumes, success rate, lag, failures by reason.

Everything is bounded to a recent window (by when the shopper acted), so a page costs the
same with ten thousand events stored or ten million.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connector.statuses import EventStatus
from connector.storage.models import Event, Shop
from connector.timeutil import utcnow

WINDOW_DAYS = 7


@dataclass(frozen=True)
class ShopHealth:
    """One shop's last WINDOW_DAYS: counts per status and the delivery success rate."""

    domain: str
    shop_status: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def success_rate(self) -> float | None:
        """Delivered / (delivered + failed); None before anything was settled."""
        delivered = self.counts.get(EventStatus.DELIVERED, 0)
        settled = delivered + self.counts.get(EventStatus.FAILED, 0)
        return delivered / settled if settled else None


@dataclass(frozen=True)
class ShopDetail:
    health: ShopHealth
    days: list[tuple[str, dict[str, int]]]  # newest first
    lag_p50: float | None  # seconds from the shopper's action to delivery
    lag_p95: float | None
    lag_samples: int
    failures: list[tuple[str, int]]


def _window_start(now: datetime | None = None) -> datetime:
    return (now or utcnow()) - timedelta(days=WINDOW_DAYS)


def shops_health(session: Session) -> list[ShopHealth]:
    """Every shop (and any shop that only has events), with its recent counts."""
    rows = session.execute(
        select(Event.shop_domain, Event.status, func.count())
        .where(Event.occurred_at >= _window_start())
        .group_by(Event.shop_domain, Event.status)
    )
    counts: dict[str, dict[str, int]] = {}
    for shop, status, count in rows:
        counts.setdefault(shop, {})[status] = int(count)
    states = dict(session.execute(select(Shop.domain, Shop.status)).tuples().all())
    domains = sorted(set(states) | set(counts))
    return [ShopHealth(d, states.get(d, "unknown"), counts.get(d, {})) for d in domains]


def shop_detail(session: Session, domain: str) -> ShopDetail:
    """Per-day counts, success rate, p50/p95 lag and failures by reason for one shop."""
    start = _window_start()
    recent = (Event.shop_domain == domain) & (Event.occurred_at >= start)
    day = _day(session, Event.occurred_at)
    days: dict[str, dict[str, int]] = {}
    for label, status, count in session.execute(
        select(day, Event.status, func.count()).where(recent).group_by(day, Event.status)
    ):
        days.setdefault(str(label), {})[status] = int(count)
    totals: dict[str, int] = {}
    for per_status in days.values():
        for status, count in per_status.items():
            totals[status] = totals.get(status, 0) + count
    shop = session.get(Shop, domain)
    health = ShopHealth(domain, shop.status if shop else "unknown", totals)
    lags = sorted(
        session.scalars(
            select(_lag_seconds(session)).where(recent, Event.delivered_at.is_not(None))
        )
    )
    failures = session.execute(
        select(Event.reason, func.count())
        .where(Event.shop_domain == domain, Event.status == EventStatus.FAILED)
        .group_by(Event.reason)
        .order_by(func.count().desc())
        .limit(20)
    )
    return ShopDetail(
        health=health,
        days=sorted(days.items(), reverse=True),
        lag_p50=percentile(lags, 50),
        lag_p95=percentile(lags, 95),
        lag_samples=len(lags),
        failures=[(reason or "(no reason)", int(count)) for reason, count in failures],
    )


def percentile(ordered: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list; None when it is empty."""
    if not ordered:
        return None
    rank = max(1, -(-len(ordered) * pct // 100))  # ceil(n * pct / 100)
    return float(ordered[int(rank) - 1])


def _day(session: Session, column: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.date(column)  # SQLite stores UTC text


def _lag_seconds(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", Event.delivered_at - Event.occurred_at)
    return (func.julianday(Event.delivered_at) - func.julianday(Event.occurred_at)) * 86400.0
