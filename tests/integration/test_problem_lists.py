"""The console's problem lists (connector/storage/problems.py), on SQLite and PostgreSQL:
exact totals and groups read from indexes, the latest rows of every part of a list."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import insert, text

from connector.runtime import Runtime
from connector.statuses import EventStatus
from connector.storage import problems
from connector.storage.db import alembic_config, make_engine, transaction, upgrade
from connector.storage.models import Event, violations_digest
from connector.timeutil import utcnow
from tests.support import SHOP, add_shop

OTHER = "other-shop.myshopify.com"
STUCK = "stuck-shop.myshopify.com"
PRICE = "items[0].price: must be a number"
CURRENCY = "order_placed.currency: missing"
SKU = "items[1].sku: not in the spec"


def add_events(rt: Runtime, *specs: tuple[str, str, dict[str, Any]]) -> list[str]:
    """One event per (shop, status, fields), an hour apart, newest last; returns their ids."""
    start = utcnow() - timedelta(days=1)
    ids = []
    with transaction(rt.sessions) as session:
        for n, (shop, status, fields) in enumerate(specs):
            event_id = f"01PROBLEM{n:017d}"
            session.add(
                Event(
                    id=event_id,
                    shop_domain=shop,
                    name="order_placed",
                    natural_key=str(1000 + n),
                    occurred_at=start + timedelta(hours=n),
                    status=status,
                    **fields,
                )
            )
            ids.append(event_id)
    return ids


def quarantined(*violations: str) -> dict[str, Any]:
    return {"reason": "breaks the track spec", "violations": list(violations)}


def test_quarantined_groups_count_each_violation_over_every_event(rt: Runtime) -> None:
    add_events(
        rt,
        (SHOP, EventStatus.QUARANTINED, quarantined(PRICE)),
        (SHOP, EventStatus.QUARANTINED, quarantined(PRICE, CURRENCY)),
        (OTHER, EventStatus.QUARANTINED, quarantined(PRICE, CURRENCY)),
        (OTHER, EventStatus.QUARANTINED, quarantined(SKU, CURRENCY)),
        (SHOP, EventStatus.PENDING, {"violations": None}),
    )
    with rt.sessions() as session:
        listing = problems.event_list(session, "quarantined")
        one_shop = problems.event_list(session, "quarantined", shop=OTHER)
    assert listing.total == 4
    assert listing.groups == [(PRICE, 3), (CURRENCY, 3), (SKU, 1)]
    assert [e.occurred_at for e in listing.events] == sorted(
        (e.occurred_at for e in listing.events), reverse=True
    )
    assert (one_shop.total, one_shop.groups) == (2, [(CURRENCY, 2), (PRICE, 1), (SKU, 1)])


def test_quarantined_groups_past_the_commonest_lists_say_what_they_counted(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past VIOLATION_LISTS distinct lists, the rarest are left out of the groups (the total
    stays exact) and the page says how many events the groups count."""
    monkeypatch.setattr(problems, "VIOLATION_LISTS", 2)
    add_events(
        rt,
        *[(SHOP, EventStatus.QUARANTINED, quarantined(PRICE)) for _ in range(3)],
        *[(SHOP, EventStatus.QUARANTINED, quarantined(CURRENCY, PRICE)) for _ in range(2)],
        (SHOP, EventStatus.QUARANTINED, quarantined(SKU)),
    )
    with rt.sessions() as session:
        listing = problems.event_list(session, "quarantined")
    assert (listing.total, listing.grouped) == (6, 5)
    assert listing.groups == [(PRICE, 5), (CURRENCY, 2)]
    monkeypatch.setattr(problems, "VIOLATION_LISTS", 3)
    with rt.sessions() as session:
        assert problems.event_list(session, "quarantined").grouped is None  # all counted


def test_quarantined_events_written_without_the_orm_still_count(rt: Runtime) -> None:
    """A row inserted without violations_key (a bulk load, an older writer) is read as
    before, so the groups stay exact."""
    add_events(rt, (SHOP, EventStatus.QUARANTINED, quarantined(PRICE)))
    with transaction(rt.sessions) as session:
        session.execute(
            insert(Event),
            [
                {
                    "id": "01RAW00000000000000000000R",
                    "shop_domain": SHOP,
                    "name": "order_placed",
                    "natural_key": "raw",
                    "occurred_at": utcnow(),
                    "person": {},
                    "properties": {},
                    "status": EventStatus.QUARANTINED,
                    "violations": [PRICE, SKU],
                    "attempts": 0,
                }
            ],
        )
    with rt.sessions() as session:
        listing = problems.event_list(session, "quarantined")
    assert (listing.total, listing.groups) == (2, [(PRICE, 2), (SKU, 1)])


def test_the_violations_key_follows_every_write_of_the_violations(rt: Runtime) -> None:
    [event_id] = add_events(rt, (SHOP, EventStatus.QUARANTINED, quarantined(PRICE, SKU)))
    with transaction(rt.sessions) as session:
        event = session.get(Event, event_id)
        assert event is not None
        assert event.violations_key == violations_digest([PRICE, SKU])
        assert len(event.violations_key or "") == 32
        event.violations = [CURRENCY]
    with transaction(rt.sessions) as session:
        event = session.get(Event, event_id)
        assert event is not None and event.violations_key == violations_digest([CURRENCY])
        event.status, event.violations = EventStatus.PENDING, None
    with rt.sessions() as session:
        event = session.get(Event, event_id)
        assert event is not None and event.violations_key is None
    assert violations_digest([]) is None
    assert violations_digest([PRICE, SKU]) != violations_digest([SKU, PRICE])


def test_failed_groups_by_reason_and_filters_one_reason(rt: Runtime) -> None:
    gave_up, refused = "gave up after 11 attempts: 503", "400 Bad Request: invalid attribute"
    ids = add_events(
        rt,
        (SHOP, EventStatus.FAILED, {"reason": gave_up}),
        (OTHER, EventStatus.FAILED, {"reason": refused}),
        (SHOP, EventStatus.FAILED, {"reason": gave_up}),
        (SHOP, EventStatus.FAILED, {"reason": None}),
        (SHOP, EventStatus.DELIVERED, {"reason": None}),
    )
    with rt.sessions() as session:
        listing = problems.event_list(session, "failed")
        one_reason = problems.event_list(session, "failed", reason=gave_up)
        one_shop = problems.event_list(session, "failed", shop=OTHER)
    assert listing.total == 4
    assert listing.groups == [(gave_up, 2), ("(no reason)", 1), (refused, 1)]  # ties by label
    assert [e.id for e in listing.events] == [ids[3], ids[2], ids[1], ids[0]]
    assert (one_reason.total, [e.id for e in one_reason.events]) == (2, [ids[2], ids[0]])
    assert (one_shop.total, one_shop.groups) == (1, [(refused, 1)])


def test_waiting_list_merges_anonymous_checkouts_and_stuck_shops(rt: Runtime) -> None:
    add_shop(rt, SHOP)
    add_shop(rt, STUCK, status="credentials_rejected")
    ids = add_events(
        rt,
        (STUCK, EventStatus.PENDING, {}),
        (SHOP, EventStatus.WAITING_FOR_IDENTITY, {"reason": "anonymous checkout: held"}),
        (SHOP, EventStatus.PENDING, {}),  # an active shop's: on its way, not waiting
        (STUCK, EventStatus.PENDING, {}),
        (STUCK, EventStatus.WAITING_FOR_IDENTITY, {}),
    )
    with rt.sessions() as session:
        listing = problems.event_list(session, "waiting")
        counts = problems.list_counts(session)
        stuck_only = problems.event_list(session, "waiting", shop=STUCK)
    assert listing.total == counts["waiting"] == 4
    assert listing.groups == [
        (f"{STUCK}: shop credentials rejected", 2),
        (f"{STUCK}: anonymous checkout, waiting for an email", 1),
        (f"{SHOP}: anonymous checkout, waiting for an email", 1),
    ]
    assert [e.id for e in listing.events] == [ids[4], ids[3], ids[1], ids[0]]
    assert (stuck_only.total, [e.id for e in stuck_only.events]) == (3, [ids[4], ids[3], ids[0]])


def test_waiting_list_shows_the_latest_rows_of_both_parts(rt: Runtime, monkeypatch: Any) -> None:
    monkeypatch.setattr(problems, "ROW_LIMIT", 3)
    add_shop(rt, STUCK, status="uninstalled")
    ids = add_events(
        rt,
        *[(STUCK, EventStatus.PENDING, {}) for _ in range(3)],
        *[(SHOP, EventStatus.WAITING_FOR_IDENTITY, {}) for _ in range(2)],
        (STUCK, EventStatus.PENDING, {}),
    )
    with rt.sessions() as session:
        listing = problems.event_list(session, "waiting")
    assert listing.total == 6
    assert [e.id for e in listing.events] == [ids[5], ids[4], ids[3]]


def test_migration_0013_keys_the_stored_quarantined_events(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    engine = make_engine(url)
    config = alembic_config(url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0012_pending_events_index")
        for n, (status, violations) in enumerate(
            [("quarantined", f'["{PRICE}", "{SKU}"]'), ("pending", "null")]
        ):
            conn.execute(
                text(
                    "INSERT INTO events (id, shop_domain, name, natural_key, person,"
                    " occurred_at, properties, status, violations, attempts, created_at,"
                    " updated_at) VALUES (:id, :shop, 'order_placed', :key, '{}',"
                    " '2026-07-01 00:00:00', '{}', :status, :violations, 0,"
                    " '2026-07-01 00:00:00', '2026-07-01 00:00:00')"
                ),
                {
                    "id": f"0OLD{n}",
                    "shop": SHOP,
                    "key": str(n),
                    "status": status,
                    "violations": violations,
                },
            )
    upgrade(engine)
    with engine.connect() as conn:
        keys = conn.execute(text("SELECT id, violations_key FROM events ORDER BY id")).all()
    engine.dispose()
    assert keys == [("0OLD0", violations_digest([PRICE, SKU])), ("0OLD1", None)]
