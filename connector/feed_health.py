"""The merchant's feed health: the figures of a shop's recent events, and what to do about them.

Pure: `connector/storage/health.py` fills `FeedHealth` from the database, the settings page
shows it with `advise`'s plain words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from connector.statuses import ShopStatus

QUIET_AFTER = timedelta(hours=24)  # no order webhook for this long: say so
STUCK_AFTER = timedelta(minutes=15)  # an event waiting this long is worth a word


@dataclass(frozen=True)
class FeedWindow:
    """The events whose shopper action falls in the last `hours`, by outcome."""

    hours: int
    delivered: int = 0
    failed: int = 0
    waiting: int = 0  # to be sent: queued, retrying, or held back by the shop's status
    unidentifiable: int = 0  # no customer id and no email: never sent
    quarantined: int = 0  # breaks the track spec: not sent
    lag_p95: float | None = None  # seconds from the shopper's action to delivery

    @property
    def label(self) -> str:
        return f"{self.hours} hours" if self.hours < 48 else f"{self.hours // 24} days"


@dataclass(frozen=True)
class FeedHealth:
    """One shop's feed over the last day and week."""

    shop_status: str
    has_credentials: bool
    windows: tuple[FeedWindow, ...]  # shortest first
    last_delivered_at: datetime | None  # within the longest window
    last_order_received_at: datetime | None  # the last order webhook, within the longest window
    oldest_waiting_at: datetime | None  # when the oldest event still to send was stored
    failures: tuple[tuple[str, int], ...]  # stored reasons and counts, most frequent first
    webhooks_set_aside: int  # stored webhooks that could not be read or mapped

    @property
    def week(self) -> FeedWindow:
        return self.windows[-1]


@dataclass(frozen=True)
class Advice:
    """One thing the merchant should know, with a tone as Polaris names it."""

    tone: str  # "critical", "warning", "info" or "success"
    text: str
    action: str | None = None  # the field to go to, when the fix is on this page


_GAVE_UP = re.compile(r"^gave up after \d+ attempts: ")
_RETRYING = "retrying: "
_STATUS = re.compile(r"^(\d{3})\b")


def plain_reason(reason: str) -> str:
    """A stored failure reason in a merchant's words (the status codes and jargon go)."""
    detail = _GAVE_UP.sub("", reason.removeprefix(_RETRYING))
    gave_up = _GAVE_UP.match(reason) is not None
    code = _STATUS.match(detail)
    status = int(code.group(1)) if code else None
    if status in (401, 403):
        return "Customer.io rejected the site id or API key"
    if status == 429:
        return "Customer.io kept asking the connector to slow down"
    if status is not None and status >= 500:
        return "Customer.io had an error on its side" + (" for a day" if gave_up else "")
    if detail.startswith(("timeout", "connection error", "request error")):
        return "Customer.io could not be reached" + (" for a day" if gave_up else "")
    if status is not None and 400 <= status < 500:
        return "Customer.io refused the event as invalid"
    if detail.startswith("cannot be sent"):
        return "the event's stored data could not be sent"
    return reason


def plain_failures(failures: tuple[tuple[str, int], ...], limit: int = 3) -> list[tuple[str, int]]:
    """The top failure reasons in plain words; reasons that read the same are added up."""
    totals: dict[str, int] = {}
    for reason, count in failures:
        words = plain_reason(reason)
        totals[words] = totals.get(words, 0) + count
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:limit]


def _events(count: int) -> str:
    return f"{count} event" if count == 1 else f"{count} events"


def advise(health: FeedHealth, now: datetime) -> list[Advice]:
    """What the merchant should do about the feed, most urgent first; empty when all is well."""
    week = health.week
    found: list[Advice] = []
    if not health.has_credentials:
        found.append(
            Advice(
                "warning",
                "Enter your Customer.io site id and Track API key: "
                "nothing is sent until they are saved.",
                "site_id",
            )
        )
    if health.shop_status == ShopStatus.CREDENTIALS_REJECTED:
        found.append(
            Advice(
                "critical",
                "Customer.io rejected the API key: update it here. "
                "Events wait meanwhile and go out once a working key is saved.",
                "api_key",
            )
        )
    if week.failed:
        top = plain_failures(health.failures, limit=1)
        why = f" (mostly: {top[0][0]})" if top else ""
        found.append(
            Advice(
                "warning",
                f"{_events(week.failed)} could not be delivered in the last 7 days{why}. "
                "Contact support to have them sent again once the cause is fixed.",
            )
        )
    if week.quarantined:
        verbs = (
            "breaks the track spec and was"
            if week.quarantined == 1
            else "break the track spec and were"
        )
        found.append(
            Advice(
                "warning",
                f"{_events(week.quarantined)} {verbs} not sent: contact support.",
            )
        )
    if health.webhooks_set_aside:
        found.append(
            Advice(
                "warning",
                f"{health.webhooks_set_aside} webhook(s) from Shopify could not be read "
                "and were set aside: contact support.",
            )
        )
    waiting_since = health.oldest_waiting_at
    if (
        waiting_since is not None
        and now - waiting_since > STUCK_AFTER
        and health.shop_status == ShopStatus.ACTIVE
        and health.has_credentials
    ):
        found.append(
            Advice(
                "info",
                f"{_events(week.waiting)} waiting to be sent, the oldest for over "
                f"{_duration(now - waiting_since)}: Customer.io is retried automatically; "
                "contact support if this lasts.",
            )
        )
    last_order = health.last_order_received_at
    if last_order is None or now - last_order > QUIET_AFTER:
        found.append(
            Advice(
                "info",
                "No order received from Shopify in 24 hours. If your store took orders "
                "since, contact support (missed orders are looked for every 15 minutes).",
            )
        )
    if week.unidentifiable:
        found.append(
            Advice(
                "info",
                f"{_events(week.unidentifiable)} had no customer and no email (such as "
                "in-person sales) and could not be sent to anyone. Nothing to do.",
            )
        )
    return found


def _duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} minutes"
    hours = minutes // 60
    return f"{hours} hours" if hours < 48 else f"{hours // 24} days"


def format_lag(seconds: float | None) -> str:
    """A lag as a merchant reads it: "4 s", "3 min", "2.5 h"; a dash without deliveries."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
