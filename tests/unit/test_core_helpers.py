"""The one helper per concept: times, shop domains, the person key, statuses and topics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.events import EventName, Person, stable_event_id
from connector.identity import normalize_email, person_key
from connector.shop_domain import is_shop_domain, normalize_shop_domain
from connector.statuses import EventStatus
from connector.timeutil import parse_utc, utcnow
from webhooks.topics import PRIVACY_TOPICS, SUBSCRIBED_TOPICS, Topic

NOON = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-07-01T12:00:00Z",
        "2026-07-01T12:00:00z",
        "2026-07-01T12:00:00+00:00",
        "2026-07-01T14:00:00+02:00",
        "2026-07-01T08:00:00-04:00",
        "2026-07-01T12:00:00",  # no offset: UTC
        "2026-07-01 12:00",
        "  2026-07-01T12:00:00Z\n",
    ],
)
def test_parse_utc_reads_every_iso_spelling_as_aware_utc(text: str) -> None:
    parsed = parse_utc(text)
    assert parsed == NOON
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "2026-13-01",
        "yesterday",
        "0001-01-01T00:00+01:00",
        "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC: OverflowError inside
        "9999-12-31T23:59:59.999999-00:01",
        "2026-07-01T12:00:00+24:00",
        "2026-07-01T12:00:00\x00",
        "\ud800",
    ],
)
def test_parse_utc_refuses_garbage_with_a_clean_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="not an ISO-8601 time") as caught:
        parse_utc(text)
    assert repr(text) in str(caught.value)
    assert type(caught.value) is ValueError


OFFSETS = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23))
ISO_TIMES = st.builds(
    lambda moment, offset, sep: moment.replace(tzinfo=offset).isoformat(sep=sep),
    st.datetimes(),
    st.none() | st.builds(timezone, OFFSETS),
    st.sampled_from(["T", " "]),
)


@settings(max_examples=300)
@given(st.text() | ISO_TIMES)
def test_parse_utc_reads_any_text_as_aware_utc_or_raises_value_error(text: str) -> None:
    """Other code catches ValueError only (the webhook door leaves an unreadable header out)."""
    try:
        parsed = parse_utc(text)
    except ValueError as exc:
        assert type(exc) is ValueError
        return
    assert parsed.tzinfo is UTC


def test_utcnow_is_aware_utc() -> None:
    assert utcnow().tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "domain"),
    [
        ("maya-shop.myshopify.com", "maya-shop.myshopify.com"),
        ("  Maya-Shop.MyShopify.com \n", "maya-shop.myshopify.com"),
        ("shop1.myshopify.com", "shop1.myshopify.com"),
    ],
)
def test_normalize_shop_domain_trims_and_lowercases(text: str, domain: str) -> None:
    assert normalize_shop_domain(text) == domain


@pytest.mark.parametrize(
    "text",
    [
        "",
        "maya-shop",
        "maya-shop.example.com",
        "https://maya-shop.myshopify.com",
        "-shop.myshopify.com",
        "maya shop.myshopify.com",
        "a" * 250 + ".myshopify.com",
    ],
)
def test_normalize_shop_domain_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="myshopify"):
        normalize_shop_domain(text)


def test_is_shop_domain_accepts_only_normalized_domains() -> None:
    assert is_shop_domain("maya-shop.myshopify.com")
    assert not is_shop_domain("Maya-Shop.myshopify.com")
    assert not is_shop_domain(" maya-shop.myshopify.com")
    assert not is_shop_domain("maya-shop.example.com")


@pytest.mark.parametrize(
    ("customer_id", "email", "key"),
    [
        (7234567890123, "maya@example.com", "7234567890123"),  # the customer id wins
        ("7234567890123", None, "7234567890123"),
        (None, " Maya.Chen@Example.com ", "maya.chen@example.com"),  # a guest: the email
        ("", "maya@example.com", "maya@example.com"),
        (None, "   ", None),  # unidentifiable
        (None, None, None),
        (None, 42, None),
    ],
)
def test_person_key_prefers_the_customer_id_then_the_email(
    customer_id: object, email: object, key: str | None
) -> None:
    assert person_key(customer_id, email) == key


def test_normalize_email() -> None:
    assert normalize_email("  Maya@Example.COM") == "maya@example.com"
    assert normalize_email("") is None
    assert normalize_email(None) is None


@pytest.mark.parametrize(
    ("person", "key"),
    [
        (Person(customer_id="72", email="maya@example.com"), "72"),
        (Person(email="maya@example.com"), "maya@example.com"),
        (Person(), None),
    ],
)
def test_a_persons_id_is_its_person_key(person: Person, key: str | None) -> None:
    assert person.id == key


def test_stable_event_id_depends_only_on_what_the_event_is_about() -> None:
    first = stable_event_id("maya-shop.myshopify.com", EventName.ORDER_PLACED, "820982911946154508")
    again = stable_event_id("maya-shop.myshopify.com", "order_placed", "820982911946154508")
    other = stable_event_id(
        "maya-shop.myshopify.com", EventName.CHECKOUT_STARTED, "820982911946154508"
    )
    assert first == again != other
    assert len(first) == 26


def test_statuses_and_topics_are_their_stored_strings() -> None:
    assert EventStatus.WAITING_FOR_IDENTITY == "waiting_for_identity"
    assert Topic("orders/create") is Topic.ORDERS_CREATE
    assert Topic.ORDERS_CREATE.graphql_name == "ORDERS_CREATE"


def test_the_app_subscribes_to_every_topic_but_the_privacy_ones() -> None:
    assert set(SUBSCRIBED_TOPICS) == set(Topic) - PRIVACY_TOPICS
    assert Topic.APP_UNINSTALLED in SUBSCRIBED_TOPICS
