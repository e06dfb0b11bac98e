"""The merchant's feed health in plain words (connector/feed_health.py): pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from connector.feed_health import (
    FeedHealth,
    FeedWindow,
    advise,
    format_lag,
    plain_failures,
    plain_reason,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

HEALTHY = FeedHealth(
    shop_status="active",
    has_credentials=True,
    windows=(FeedWindow(24, delivered=5), FeedWindow(168, delivered=40)),
    last_delivered_at=NOW - timedelta(minutes=3),
    last_order_received_at=NOW - timedelta(hours=1),
    oldest_waiting_at=None,
    failures=(),
    webhooks_set_aside=0,
)


def texts(health: FeedHealth) -> list[str]:
    return [item.text for item in advise(health, NOW)]


def test_a_healthy_feed_needs_no_advice() -> None:
    assert advise(HEALTHY, NOW) == []


def test_rejected_credentials_come_first_and_point_at_the_key() -> None:
    failing = replace(
        HEALTHY,
        shop_status="credentials_rejected",
        windows=(FeedWindow(24, failed=1), FeedWindow(168, failed=2)),
        failures=(("401 Unauthorized: bad key", 2),),
    )
    first, second = advise(failing, NOW)
    assert first.tone == "critical" and first.action == "api_key"
    assert first.text.startswith("Customer.io rejected the API key: update it here.")
    assert second.text.startswith("2 events could not be delivered in the last 7 days")
    assert "(mostly: Customer.io rejected the site id or API key)" in second.text


def test_spec_violations_set_aside_webhooks_and_unidentifiable_orders_are_explained() -> None:
    health = replace(
        HEALTHY,
        windows=(FeedWindow(24), FeedWindow(168, quarantined=3, unidentifiable=1)),
        webhooks_set_aside=2,
    )
    said = texts(health)
    assert "3 events break the track spec and were not sent: contact support." in said
    assert any(t.startswith("2 webhook(s) from Shopify could not be read") for t in said)
    assert any(t.startswith("1 event had no customer and no email") for t in said)


def test_a_quiet_day_and_a_stuck_queue_are_mentioned() -> None:
    quiet = replace(HEALTHY, last_order_received_at=NOW - timedelta(hours=25))
    assert any(t.startswith("No order received from Shopify in 24 hours") for t in texts(quiet))
    assert any(
        t.startswith("No order received")
        for t in texts(replace(HEALTHY, last_order_received_at=None))
    )

    stuck = replace(
        HEALTHY,
        windows=(FeedWindow(24, waiting=4), FeedWindow(168, waiting=4)),
        oldest_waiting_at=NOW - timedelta(hours=3),
    )
    assert texts(stuck)[0].startswith("4 events waiting to be sent, the oldest for over 3 hours")
    fresh = replace(stuck, oldest_waiting_at=NOW - timedelta(minutes=2))
    assert texts(fresh) == []


def test_missing_credentials_ask_for_them() -> None:
    (item,) = advise(replace(HEALTHY, has_credentials=False), NOW)
    assert item.action == "site_id" and "nothing is sent" in item.text


def test_failure_reasons_in_plain_words_are_added_up() -> None:
    assert plain_reason("gave up after 11 attempts: timeout") == (
        "Customer.io could not be reached for a day"
    )
    assert (
        plain_reason("retrying: 503 Service Unavailable") == "Customer.io had an error on its side"
    )
    assert plain_reason("400 Bad Request: invalid timestamp") == (
        "Customer.io refused the event as invalid"
    )
    assert plain_reason("something new") == "something new"
    failures = (
        ("401 Unauthorized", 2),
        ("400 Bad Request: x", 3),
        ("403 Forbidden", 2),
        ("cannot be sent: its stored data is unusable (TypeError)", 1),
    )
    assert plain_failures(failures, limit=2) == [
        ("Customer.io rejected the site id or API key", 4),
        ("Customer.io refused the event as invalid", 3),
    ]


def test_lags_read_like_a_merchant_would_say_them() -> None:
    assert [format_lag(v) for v in (None, 4.2, 180.0, 9000.0)] == ["—", "4 s", "3 min", "2.5 h"]
