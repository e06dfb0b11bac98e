"""Delivery claims: two workers never lease the same event, and a lease is read back."""

from __future__ import annotations

import pytest

from connector.runtime import Runtime
from connector.storage import events
from connector.storage.db import transaction
from connector.storage.models import Event
from tests.integration.test_poison import SHOP, stored_event

LEASE_SECONDS = 300
MAX_ATTEMPTS = 5


def claim(rt: Runtime, limit: int = 10) -> list[str]:
    with transaction(rt.sessions) as session:
        claimed = events.claim_due_events(session, SHOP, limit, LEASE_SECONDS, MAX_ATTEMPTS)
        assert all(event.lease_owner and event.lease_until for event in claimed)
        return [event.id for event in claimed]


def test_a_claim_leases_due_events_once(rt: Runtime, shop: str) -> None:
    ids = [stored_event(rt, 881000 + n) for n in range(3)]
    first = claim(rt, limit=2)
    assert len(first) == 2 and set(first) < set(ids)
    second = claim(rt)
    assert second == sorted(set(ids) - set(first))  # the leased two are not due again
    assert claim(rt) == []
    with rt.sessions() as session:
        owners = {session.get(Event, event_id).lease_owner for event_id in ids}
    assert None not in owners and len(owners) == 2  # two claims, two owners


def test_a_claim_skips_the_events_another_claim_holds_locked(rt: Runtime, shop: str) -> None:
    if rt.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: a second claim waits for the first")
    ids = {stored_event(rt, 882000 + n) for n in range(4)}
    with transaction(rt.sessions) as first:
        held = events.claim_due_events(first, SHOP, 10, LEASE_SECONDS, MAX_ATTEMPTS)
        assert {event.id for event in held} == ids
        # Still uncommitted: the rows are locked, not yet visibly leased.
        assert claim(rt) == []  # SKIP LOCKED: the second claim neither waits nor takes them
    assert claim(rt) == []  # committed: leased to the first
