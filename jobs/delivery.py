"""Send due events to Customer.io: identify the person, then track the event, in batches.

Each drain claims a batch of a shop's due events (a lease, so a killed worker's events
come back), waits for the workspace's shared rate limiter, posts one v2 batch request
(identify + event per event, in that order), and records every outcome per event.
Customer.io dedupes on the stable event id, so a resend after an unknown outcome is safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from connector import metrics
from connector.crypto import SecretBox
from connector.customerio import (
    SendResult,
    TrackClient,
    batch_size_ok,
    event_op,
    identifiers_for,
    identify_op,
    shared_session,
    track_base_url,
)
from connector.events import IDENTIFY_ONLY
from connector.statuses import DeliveryOutcome, EventStatus, ShopStatus
from connector.storage import events
from connector.storage.db import Sessions, transaction
from connector.storage.ledger import order_stats
from connector.storage.models import Event, Shop
from connector.storage.shoppers import consents_for
from connector.storage.shops import get_shop
from connector.timeutil import utcnow
from jobs import retry
from jobs.ratelimit import RateLimiter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryPolicy:
    batch_size: int
    lease_seconds: int
    retry_schedule: tuple[int, ...]
    track_url_override: str | None
    http_timeout: float


def _seconds(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment else None


def _accepts(state: str | None) -> bool | None:
    """Shopify's consent state as a yes/no; None when it says neither (pending, unknown)."""
    if state == "subscribed":
        return True
    if state in ("not_subscribed", "unsubscribed"):
        return False
    return None


# One event's operations: its identify, and its track (None for an identify-only event).
Operations = tuple[dict[str, Any], dict[str, Any] | None]


def build_operations(
    event: Event, stats: dict[str, Any] | None, consents: dict[str, str] | None = None
) -> Operations:
    """The identify and track operations for one event (what the console shows as sent);
    a profile update (IDENTIFY_ONLY) is an identify alone.

    Order counts, spend and order dates come only from the connector's ledger (`stats`),
    and only when it knows the person's orders: a shopper it knows nothing about (a guest
    checkout) gets no `orders_count` rather than a 0 that would reset their profile.
    """
    stats = stats or {}
    email_consent = (consents or {}).get("email") or (event.person or {}).get("email_consent")
    sms_consent = (consents or {}).get("sms") or (event.person or {}).get("sms_consent")
    assert event.person_id is not None
    person = event.person or {}
    identifiers = identifiers_for(event.person_id)
    attributes: dict[str, Any] = {
        "email": person.get("email"),
        "first_name": person.get("first_name"),
        "last_name": person.get("last_name"),
        "accepts_marketing": _accepts(email_consent),
        "email_marketing_consent": email_consent,
        "accepts_sms_marketing": _accepts(sms_consent),
        "sms_marketing_consent": sms_consent,
        # Only ever set to true: an unsubscribe made in Customer.io must never be undone
        # by an order whose consent Shopify still shows as subscribed.
        "unsubscribed": True if email_consent == "unsubscribed" else None,
        "shopify_customer_id": person.get("customer_id"),
        "shopify_shop": event.shop_domain,
        "phone": person.get("phone"),
        "created_at": person.get("created_at"),
        "orders_count": stats.get("orders_count"),
        "total_spent": stats.get("total_spent"),
        "first_order_at": _seconds(stats.get("first_order_at")),
        "last_order_at": _seconds(stats.get("last_order_at")),
    }
    attributes = {key: value for key, value in attributes.items() if value is not None}
    timestamp = int(event.occurred_at.timestamp())
    identify = identify_op(identifiers, attributes, timestamp)
    if event.name in IDENTIFY_ONLY:
        return identify, None
    track = event_op(identifiers, event.name, event.id, timestamp, event.properties)
    return identify, track


def _unsendable_reason(exc: BaseException) -> str:
    return f"cannot be sent: a value cannot be written as JSON ({type(exc).__name__})"


def _set_aside(event: Event, exc: BaseException) -> None:
    """Fail one claimed event whose request cannot even be built; say why, without values."""
    log.warning("event %s set aside: %s", event.id, type(exc).__name__)
    event.status = EventStatus.FAILED
    event.reason = f"cannot be sent: its stored data is unusable ({type(exc).__name__})"
    event.lease_owner = None
    event.lease_until = None


class Deliverer:
    """Drains one shop's due events; one instance per job run."""

    def __init__(
        self,
        *,
        sessions: Sessions,
        secrets: SecretBox,
        limiter: RateLimiter,
        policy: DeliveryPolicy,
        client_factory: Callable[..., TrackClient] = TrackClient,
    ) -> None:
        self.sessions = sessions
        self.secrets = secrets
        self.limiter = limiter
        self.policy = policy
        self.client_factory = client_factory

    def drain(self, shop_domain: str, deadline: float | None = None) -> tuple[int, bool]:
        """Deliver until nothing is due, the workspace needs to back off, or `deadline`
        (time.monotonic) passes; return (events delivered, whether due events may remain)."""
        delivered = 0
        while True:
            if deadline is not None and time.monotonic() > deadline:
                return delivered, True
            with transaction(self.sessions) as session:
                shop = get_shop(session, shop_domain)
                if shop is None or shop.status != ShopStatus.ACTIVE or not shop.cio_site_id:
                    return delivered, False  # waits: unconfigured, key rejected, uninstalled
                client = self._client(shop)
                claimed = events.claim_due_events(
                    session,
                    shop_domain,
                    self.policy.batch_size,
                    self.policy.lease_seconds,
                    max_attempts=len(self.policy.retry_schedule) + 1,
                )
                people = [e.person_id for e in claimed if e.person_id]
                stats = order_stats(session, shop_domain, people)
                consents = consents_for(session, shop_domain, people)
                event_ids: list[str] = []
                operations: list[Operations] = []
                for event in claimed:
                    try:
                        pair = build_operations(
                            event,
                            stats.get(event.person_id or ""),
                            consents.get(event.person_id or ""),
                        )
                    except Exception as exc:  # one unsendable event never holds up the rest
                        _set_aside(event, exc)
                        continue
                    event_ids.append(event.id)
                    operations.append(pair)
            if not claimed:
                return delivered, False
            if not event_ids:
                continue
            keep_going, sent = self._send(client, shop_domain, event_ids, operations)
            delivered += sent
            if not keep_going:
                return delivered, False

    def _client(self, shop: Shop) -> TrackClient:
        return self.client_factory(
            site_id=shop.cio_site_id,
            api_key=self.secrets.decrypt(shop.cio_api_key_encrypted or ""),
            base_url=track_base_url(shop.cio_region, self.policy.track_url_override),
            timeout=self.policy.http_timeout,
            session=shared_session(),
        )

    def _send(
        self,
        client: TrackClient,
        shop_domain: str,
        event_ids: list[str],
        operations: list[Operations],
    ) -> tuple[bool, int]:
        flat = [op for pair in operations for op in pair if op is not None]
        try:
            fits = batch_size_ok(flat)  # encodes the request, as sending it will
        except (ValueError, TypeError) as exc:  # a value JSON cannot carry (NaN, a surrogate)
            if len(event_ids) > 1:
                return self._send_one_by_one(client, shop_domain, event_ids, operations)
            unsendable = SendResult(
                None, 0.0, DeliveryOutcome.REJECTED, reason=_unsendable_reason(exc)
            )
            return self._record(shop_domain, event_ids, operations, unsendable)
        if len(event_ids) > 1 and not fits:  # over Customer.io's size limits
            return self._send_one_by_one(client, shop_domain, event_ids, operations)
        self.limiter.acquire(client.site_id, max_wait=self.policy.lease_seconds / 2)
        result = client.send_batch(flat)
        if result.outcome == DeliveryOutcome.REJECTED and len(event_ids) > 1:
            # One bad operation spoils a whole v2 request: send each event alone to isolate it.
            return self._send_one_by_one(client, shop_domain, event_ids, operations)
        if result.outcome == DeliveryOutcome.RETRY and result.status_code == 429:
            self.limiter.pause(client.site_id, result.retry_after or 1.0)
        return self._record(shop_domain, event_ids, operations, result)

    def _send_one_by_one(
        self,
        client: TrackClient,
        shop_domain: str,
        event_ids: list[str],
        operations: list[Operations],
    ) -> tuple[bool, int]:
        """Send each event as its own request; the leases are still ours while we do."""
        sent = 0
        for event_id, pair in zip(event_ids, operations, strict=True):
            keep_going, ok = self._send(client, shop_domain, [event_id], [pair])
            sent += ok
            if not keep_going:
                return False, sent
        return True, sent

    def _record(
        self,
        shop_domain: str,
        event_ids: list[str],
        operations: list[Operations],
        result: SendResult,
    ) -> tuple[bool, int]:
        now = utcnow()
        # The batch's operations in order, each with the position of its event.
        owners = [
            position for position, pair in enumerate(operations) for op in pair if op is not None
        ]
        failed_events = {
            owners[index]: reason
            for index, reason in result.failed_ops.items()
            if index < len(owners)
        }
        sent = 0
        with transaction(self.sessions) as session:
            by_id = events.events_by_id(session, event_ids)
            for position, (event_id, (identify, track)) in enumerate(
                zip(event_ids, operations, strict=True)
            ):
                event = by_id.get(event_id)
                if event is None:
                    continue
                event.attempts += 1
                event.lease_owner = None
                event.lease_until = None
                outcome, reason = result.outcome, result.reason
                if outcome == DeliveryOutcome.PARTIAL:
                    failed = position in failed_events
                    outcome = DeliveryOutcome.REJECTED if failed else DeliveryOutcome.DELIVERED
                    reason = failed_events.get(position, result.reason)
                if outcome == DeliveryOutcome.DELIVERED:
                    event.status = EventStatus.DELIVERED
                    event.delivered_at = now
                    event.reason = None
                    event.sent_identify = identify
                    event.sent_track = track
                    sent += 1
                    metrics.observe_delivered(
                        event.name,
                        event.occurred_at,
                        event.queued_at or event.created_at,
                        (event.properties or {}).get("event_source"),
                        now,
                    )
                elif outcome == DeliveryOutcome.RETRY:
                    event.next_attempt_at = retry.next_attempt_at(
                        now, event.attempts, self.policy.retry_schedule, result.retry_after
                    )
                    if event.next_attempt_at is None:
                        event.status = EventStatus.FAILED
                        event.reason = f"gave up after {event.attempts} attempts: {reason}"
                    else:
                        event.reason = f"retrying: {reason}"
                else:
                    event.status = EventStatus.FAILED
                    event.reason = reason
                events.add_attempt(
                    session,
                    event_id,
                    attempted_at=now,
                    outcome=outcome,
                    status_code=result.status_code,
                    latency_ms=result.latency_ms,
                    reason=reason,
                    excerpt=result.excerpt or None,
                    batch_size=len(event_ids),
                )
            if result.outcome == DeliveryOutcome.REJECTED_CREDENTIALS:
                shop = get_shop(session, shop_domain)
                if shop is not None:
                    shop.status = ShopStatus.CREDENTIALS_REJECTED
                    shop.status_reason = result.reason
        status = str(result.status_code or "none")
        metrics.CUSTOMERIO_REQUESTS.labels(outcome=result.outcome, status=status).inc()
        log.info(
            "delivery shop=%s events=%d outcome=%s status=%s latency_ms=%.0f",
            shop_domain,
            len(event_ids),
            result.outcome,
            result.status_code,
            result.latency_ms,
            extra={"shop": shop_domain, "event_ids": event_ids, "outcome": str(result.outcome)},
        )
        keep_going = result.outcome in (
            DeliveryOutcome.DELIVERED,
            DeliveryOutcome.PARTIAL,
            DeliveryOutcome.REJECTED,
        )
        return keep_going, sent
