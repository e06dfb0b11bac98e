"""Send due events to Customer.io: identify the person, then track the event, in batches.

Each round of a drain claims a batch of every shop's due events (a lease, so a killed
worker's events come back), cuts each into v2 batch requests (identify + event per event,
in that order; a person's events in one request), posts them all at once on a thread pool,
each after its workspace's shared rate limiter lets it, and records every outcome per
event. Customer.io dedupes on the stable event id, so a resend
after an unknown outcome is safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from connector import metrics
from connector.crypto import SecretBox
from connector.customerio import (
    SendResult,
    TrackClient,
    encode_fitting,
    event_op,
    identifiers_for,
    identify_op,
    track_base_url,
)
from connector.events import IDENTIFY_ONLY
from connector.statuses import DeliveryOutcome, EventStatus, ShopStatus
from connector.storage import events
from connector.storage.db import Session, Sessions, transaction
from connector.storage.ledger import order_stats
from connector.storage.models import Event, Shop
from connector.storage.shoppers import consents_for
from connector.storage.shops import get_shop, get_shops
from connector.timeutil import utcnow
from jobs import retry
from jobs.ratelimit import RateLimiter, RateLimitTimeout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryPolicy:
    batch_size: int
    lease_seconds: int
    retry_schedule: tuple[int, ...]
    track_url_override: str | None
    http_timeout: float
    concurrency: int = 16  # workspaces sent to at once by one worker
    # Requests one shop may make per round (they go at once): a backlog drains faster, and
    # a round (so another shop's new order) waits for about one request's time.
    batches_per_shop: int = 4
    rate_wait_seconds: float = 1.0  # the longest a batch waits for its workspace's limiter


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


@dataclass(frozen=True)
class Lags:
    """What the delivery metrics need of an event, kept from its claim."""

    name: str
    occurred_at: datetime
    queued_at: datetime
    source: Any


@dataclass
class Batch:
    """One shop's claimed events for a round, ready to go: the workspace client and each
    event's operations and person, in the order they will be sent."""

    shop_domain: str
    client: TrackClient
    event_ids: list[str]
    operations: list[Operations]
    people: list[str]  # each event's person (a request keeps a person's events together)
    lags: dict[str, Lags] = field(default_factory=dict)

    def requests(self, size: int) -> list[Batch]:
        """The batch cut into requests of about `size` events that may go at once.

        A person's events stay together in one request, in their order, so they reach
        Customer.io in the order they happened (a checkout_started never overtakes its
        order_placed). A person with more than `size` events gets a longer part, which
        `Deliverer._send_batch` sends in requests of `size`, one after the other.
        """
        if len(self.event_ids) <= size:
            return [self]
        by_person: dict[str, list[int]] = {}
        for position, person in enumerate(self.people):
            by_person.setdefault(person, []).append(position)
        parts: list[list[int]] = [[]]
        for positions in by_person.values():
            if parts[-1] and len(parts[-1]) + len(positions) > size:
                parts.append([])
            parts[-1].extend(positions)
        return [self._part(sorted(positions)) for positions in parts]

    def _part(self, positions: list[int]) -> Batch:
        return Batch(
            self.shop_domain,
            self.client,
            [self.event_ids[p] for p in positions],
            [self.operations[p] for p in positions],
            [self.people[p] for p in positions],
            self.lags,
        )


@dataclass
class Sent:
    """One Track API request made for some events of a batch, and what it came to."""

    event_ids: list[str]
    operations: list[Operations]
    result: SendResult


@dataclass
class BatchOutcome:
    """What sending a batch came to: the requests made, the events not sent because the
    workspace must wait (given back without an attempt), and for how long to leave the
    workspace alone."""

    batch: Batch
    sent: list[Sent] = field(default_factory=list)
    unsent: list[str] = field(default_factory=list)
    rest_seconds: float = 0.0
    error: Exception | None = None  # an outage met while sending (Redis): raised once recorded


class Deliverer:
    """Drains due events of every shop, sending to several workspaces at once; one
    instance per job run.

    A round claims a fair share of every shop's due events in one transaction (at most
    one batch per shop), sends each shop's batch on a thread pool (the waits on
    Customer.io overlap; one workspace's rate limit or pause holds up only its own
    batch), then records every outcome in one transaction. So the database round trips and
    the waits per round do not grow with the number of shops that have a little work.
    """

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
        # Claims take shops in name order from after this one, wrapping around; a job that
        # ends leaves it for the next job (`jobs.tasks.deliver_pending`), so every shop's
        # turn comes even when more shops have work than one claim takes.
        self.next_after = ""

    def drain(
        self,
        shop_domain: str | None = None,
        deadline: float | None = None,
        hand_back: Callable[[], bool] = lambda: False,
    ) -> tuple[int, bool]:
        """Deliver until nothing is due or `deadline` (time.monotonic) passes, for every
        shop (or just `shop_domain`); return (events delivered, whether due events may
        remain).

        After a round that took less than it could (so the backlog is delivered, and what
        is left arrives as it is mapped), `hand_back()` is asked: True ends the drain, so
        the worker can take a job that waits for it (jobs.tasks.deliver_pending)."""
        delivered = 0
        resting: dict[str, float] = {}  # shop -> time.monotonic() until which it waits
        with ThreadPoolExecutor(self.policy.concurrency) as pool:
            while True:
                if deadline is not None and time.monotonic() > deadline:
                    return delivered, True
                now = time.monotonic()
                skip = [shop for shop, until in resting.items() if until > now]
                claimed = self._claim(shop_domain, skip)
                if claimed is None:
                    return delivered, False
                batches, caught_up = claimed
                size = self.policy.batch_size
                parts = [part for batch in batches for part in batch.requests(size)]
                if len(parts) == 1:
                    outcomes = [self._send_batch(parts[0])]
                else:
                    outcomes = list(pool.map(self._send_batch, parts))
                delivered += self._record(outcomes)
                for outcome in outcomes:
                    if outcome.error is not None:  # what was sent is recorded: now fail the job
                        raise outcome.error
                    if outcome.rest_seconds > 0:
                        resting[outcome.batch.shop_domain] = now + outcome.rest_seconds
                if caught_up and not resting and hand_back():
                    return delivered, True  # events mapped meanwhile go to the next drain

    def _claim(self, shop_domain: str | None, skip: list[str]) -> tuple[list[Batch], bool] | None:
        """Lease the next round's events and build their requests, and say whether the
        round took every due event (no shop gave its full share, fewer shops than a round
        holds); None when none is due. An event whose request cannot be built fails alone
        (one unsendable event never holds up the rest)."""
        per_shop = self.policy.batch_size * self.policy.batches_per_shop
        max_shops = self.policy.concurrency * 4
        with transaction(self.sessions) as session:
            claimed = events.claim_due_events_of_shops(
                session,
                per_shop=per_shop,
                lease_seconds=self.policy.lease_seconds,
                max_attempts=len(self.policy.retry_schedule) + 1,
                shop_domain=shop_domain,
                skip_shops=skip,
                after=self.next_after,
                max_shops=max_shops,
            )
            if not claimed:
                return None
            self.next_after = claimed[-1].shop_domain  # the next claim starts after it
            by_shop: dict[str, list[Event]] = {}
            for event in claimed:
                by_shop.setdefault(event.shop_domain, []).append(event)
            caught_up = len(by_shop) < max_shops and all(
                len(shop_events) < per_shop for shop_events in by_shop.values()
            )
            # What every shop's requests need, for all the round's shops in one query each.
            people = [(e.shop_domain, e.person_id) for e in claimed if e.person_id]
            stats = order_stats(session, people)
            consents = consents_for(session, people)
            batches = []
            for shop in get_shops(session, list(by_shop)):
                batch = self._batch(shop, by_shop[shop.domain], stats, consents)
                if batch is not None:
                    batches.append(batch)
            return batches, caught_up

    def _batch(
        self,
        shop: Shop,
        claimed: list[Event],
        stats: dict[tuple[str, str], dict[str, Any]],
        consents: dict[tuple[str, str], dict[str, str]],
    ) -> Batch | None:
        if shop.status != ShopStatus.ACTIVE or not shop.cio_site_id:  # changed since the claim
            for event in claimed:
                event.lease_owner = None
                event.lease_until = None
            return None
        batch = Batch(shop.domain, self._client(shop), [], [], [])
        for event in claimed:
            person = (shop.domain, event.person_id or "")
            try:
                pair = build_operations(event, stats.get(person), consents.get(person))
            except Exception as exc:  # one unsendable event never holds up the rest
                _set_aside(event, exc)
                continue
            batch.event_ids.append(event.id)
            batch.operations.append(pair)
            batch.people.append(event.person_id or "")
            batch.lags[event.id] = Lags(
                event.name,
                event.occurred_at,
                event.queued_at or event.created_at,
                (event.properties or {}).get("event_source"),
            )
        return batch if batch.event_ids else None

    def _client(self, shop: Shop) -> TrackClient:
        return self.client_factory(
            site_id=shop.cio_site_id,
            api_key=self.secrets.decrypt(shop.cio_api_key_encrypted or ""),
            base_url=track_base_url(shop.cio_region, self.policy.track_url_override),
            timeout=self.policy.http_timeout,
        )

    # -- sending (no database: runs on the pool's threads) ------------------------------------

    def _send_batch(self, batch: Batch) -> BatchOutcome:
        """Send a shop's events in requests of `batch_size`, stopping when the workspace
        must wait (what is left is given back unsent)."""
        outcome = BatchOutcome(batch)
        size = self.policy.batch_size
        try:
            for start in range(0, len(batch.event_ids), size):
                chunk = slice(start, start + size)
                ids, operations = batch.event_ids[chunk], batch.operations[chunk]
                if not self._send(batch.client, ids, operations, outcome):
                    outcome.unsent.extend(batch.event_ids[start + size :])
                    break
        except Exception as exc:  # e.g. Redis gone: the other shops' sends still get recorded
            done = {event_id for sent in outcome.sent for event_id in sent.event_ids}
            done.update(outcome.unsent)
            outcome.unsent.extend(e for e in batch.event_ids if e not in done)
            outcome.error = exc
        return outcome

    def _send(
        self,
        client: TrackClient,
        event_ids: list[str],
        operations: list[Operations],
        outcome: BatchOutcome,
    ) -> bool:
        """Send these events as one request (or one by one when one of them spoils the
        request); add what happened to `outcome`; False when the workspace must wait."""
        flat = [op for pair in operations for op in pair if op is not None]
        try:
            body, fits = encode_fitting(flat)  # the request, encoded once
        except (ValueError, TypeError) as exc:  # a value JSON cannot carry (NaN, a surrogate)
            if len(event_ids) > 1:
                return self._send_one_by_one(client, event_ids, operations, outcome)
            unsendable = SendResult(
                None, 0.0, DeliveryOutcome.REJECTED, reason=_unsendable_reason(exc)
            )
            outcome.sent.append(Sent(event_ids, operations, unsendable))
            return True
        if len(event_ids) > 1 and not fits:  # over Customer.io's size limits
            return self._send_one_by_one(client, event_ids, operations, outcome)
        try:
            self.limiter.acquire(client.site_id, max_wait=self.policy.rate_wait_seconds)
        except RateLimitTimeout:  # paused (a 429 seen by any worker) or far behind
            outcome.unsent.extend(event_ids)
            outcome.rest_seconds = max(self.limiter.paused_for(client.site_id), 1.0)
            return False
        result = client.send_batch(flat, body)
        if result.outcome == DeliveryOutcome.REJECTED and len(event_ids) > 1:
            # One bad operation spoils a whole v2 request: send each event alone to isolate it.
            return self._send_one_by_one(client, event_ids, operations, outcome)
        outcome.sent.append(Sent(event_ids, operations, result))
        if result.outcome == DeliveryOutcome.RETRY and result.status_code == 429:
            self.limiter.pause(client.site_id, result.retry_after or 1.0)
        if result.outcome in (DeliveryOutcome.RETRY, DeliveryOutcome.REJECTED_CREDENTIALS):
            outcome.rest_seconds = max(result.retry_after or 1.0, 1.0)
            return False
        return True

    def _send_one_by_one(
        self,
        client: TrackClient,
        event_ids: list[str],
        operations: list[Operations],
        outcome: BatchOutcome,
    ) -> bool:
        """Send each event as its own request; the leases are still ours while we do."""
        for position, (event_id, pair) in enumerate(zip(event_ids, operations, strict=True)):
            if not self._send(client, [event_id], [pair], outcome):
                outcome.unsent.extend(event_ids[position + 1 :])
                return False
        return True

    # -- recording ------------------------------------------------------------------------------

    def _record(self, outcomes: list[BatchOutcome]) -> int:
        """Record every request's outcome per event, in one transaction; return how many
        events were delivered."""
        now = utcnow()
        delivered: list[dict[str, Any]] = []
        with transaction(self.sessions) as session:
            for outcome in outcomes:
                for sent in outcome.sent:
                    delivered += self._record_request(session, outcome.batch, sent, now)
                rest = timedelta(seconds=max(outcome.rest_seconds, 1.0))
                events.release_unsent(session, outcome.unsent, now + rest)
            events.record_delivered(session, delivered)
        for outcome in outcomes:
            for sent in outcome.sent:
                self._report(outcome.batch.shop_domain, sent)
        return len(delivered)

    def _record_request(
        self, session: Session, batch: Batch, sent: Sent, now: datetime
    ) -> list[dict[str, Any]]:
        """Record the events a request did not deliver; return the delivered ones' rows
        (see `events.record_delivered`), written for the whole round at once."""
        result = sent.result
        # The request's operations in order, each with the position of its event.
        owners = [
            position
            for position, pair in enumerate(sent.operations)
            for op in pair
            if op is not None
        ]
        failed_events = {
            owners[index]: reason
            for index, reason in result.failed_ops.items()
            if index < len(owners)
        }
        attempt: dict[str, Any] = {
            "attempted_at": now,
            "status_code": result.status_code,
            "latency_ms": result.latency_ms,
            "excerpt": result.excerpt or None,
            "batch_size": len(sent.event_ids),
        }
        outcomes: list[tuple[str, DeliveryOutcome, str | None]] = []
        delivered: list[dict[str, Any]] = []
        for position, (event_id, (identify, track)) in enumerate(
            zip(sent.event_ids, sent.operations, strict=True)
        ):
            outcome, reason = result.outcome, result.reason
            if outcome == DeliveryOutcome.PARTIAL:
                failed = position in failed_events
                outcome = DeliveryOutcome.REJECTED if failed else DeliveryOutcome.DELIVERED
                reason = failed_events.get(position, result.reason)
            if outcome == DeliveryOutcome.DELIVERED:
                sent_ops = {"sent_identify": identify, "sent_track": track}
                delivered.append({"event_id": event_id, **sent_ops, **attempt})
            else:
                outcomes.append((event_id, outcome, reason))
        for done in delivered:
            lags = batch.lags.get(done["event_id"])
            if lags is not None:
                metrics.observe_delivered(
                    lags.name, lags.occurred_at, lags.queued_at, lags.source, now
                )
        by_id = events.events_by_id(session, [event_id for event_id, _, _ in outcomes])
        for event_id, outcome, why in outcomes:
            event = by_id.get(event_id)
            if event is None:
                continue
            event.attempts += 1
            event.lease_owner = None
            event.lease_until = None
            if outcome == DeliveryOutcome.RETRY:
                event.next_attempt_at = retry.next_attempt_at(
                    now, event.attempts, self.policy.retry_schedule, result.retry_after
                )
                if event.next_attempt_at is None:
                    event.status = EventStatus.FAILED
                    event.reason = f"gave up after {event.attempts} attempts: {why}"
                else:
                    event.reason = f"retrying: {why}"
            else:
                event.status = EventStatus.FAILED
                event.reason = why
            events.add_attempt(session, event_id, outcome=outcome, reason=why, **attempt)
        if result.outcome == DeliveryOutcome.REJECTED_CREDENTIALS:
            shop = get_shop(session, batch.shop_domain)
            if shop is not None:
                shop.status = ShopStatus.CREDENTIALS_REJECTED
                shop.status_reason = result.reason
        return delivered

    @staticmethod
    def _report(shop_domain: str, sent: Sent) -> None:
        result = sent.result
        status = str(result.status_code or "none")
        metrics.CUSTOMERIO_REQUESTS.labels(outcome=result.outcome, status=status).inc()
        log.info(
            "delivery shop=%s events=%d outcome=%s status=%s latency_ms=%.0f",
            shop_domain,
            len(sent.event_ids),
            result.outcome,
            result.status_code,
            result.latency_ms,
            extra={
                "shop": shop_domain,
                "event_ids": sent.event_ids,
                "outcome": str(result.outcome),
            },
        )
